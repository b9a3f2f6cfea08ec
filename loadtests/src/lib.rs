//! taskstream-load: load scenarios for taskstream.
//!
//! - [`scenario::connections`]: many idle authenticated WebSockets on one instance, the
//!   connect rate and the server's memory per socket;
//! - [`scenario::fanout`]: writers over REST and clients checking their event streams
//!   (nothing lost, duplicated or reordered) with end-to-end latency;
//! - [`scenario::rest`]: a realistic REST mix, per route;
//! - [`scenario::limit`]: the server against pgbench running its own transaction;
//! - [`scenario::abuse`]: honest users' latency with and without a sign-in flood, an
//!   anonymous socket flood and upload bombs ([`bomb`] makes the PNGs).
//! - [`scenario::reminders`]: many tasks' due-date reminders due in one window, each
//!   timed from its `remind_at` to its arrival on the owner's socket, and counted (none
//!   lost, none twice).
//!
//! - [`bare_ws`]: a WebSocket server that does nothing, the machine's floor under
//!   `presence-churn --churn-url`.
//!
//! [`client`] talks to the server, [`report`] turns numbers into JSON, a summary line and
//! what a plot shows, `plot` draws it (with the `plot` feature, which the tests leave
//! out), [`progress`] shows what is going on, [`sys`] deals with the machine.

#![forbid(unsafe_code)]

pub mod bare_ws;
pub mod bomb;
pub mod client;
pub mod metrics;
pub mod pg;
#[cfg(feature = "plot")]
pub mod plot;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod sys;
pub mod workload;

/// Where the server listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Where the server's metrics listener (METRICS_BIND) is by default.
pub const DEFAULT_METRICS: &str = "http://127.0.0.1:9091";
