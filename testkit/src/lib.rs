//! The test kit of taskstream: everything the tests of the workspace share.
//!
//! - [`TestApp`]: the real server in this process, on port 0, over a fresh database (a
//!   temporary SQLite file or a freshly created PostgreSQL database, see [`Backend`]),
//!   with the typed HTTP client of [`api`]; [`Server`] is a bare server for tests that
//!   build their own [`test_config`].
//! - [`api`]: typed calls per resource and the response assertions.
//! - [`ws`]: a WebSocket client that checks every server message against
//!   `protocol/schemas`.
//! - [`PgDatabase`]: a throwaway PostgreSQL database.
//! - [`process`]: server child processes, for multi-instance and fault tests.
//! - [`push::PushReceiver`]: a real Web Push receiver on loopback that checks VAPID and
//!   decrypts what it receives.
//! - [`RedisServer`]: a private `redis-server` child, for tests that stop Redis (never the
//!   machine's shared one).
//! - [`SmtpServer`]: a real SMTP server that receives and parses what taskstream mails,
//!   and can be stopped and started again on its port.

#![forbid(unsafe_code)]

pub mod api;
mod app;
mod postgres;
pub mod process;
pub mod push;
mod redis;
mod smtp;
pub mod ws;

pub use app::{test_config, Backend, Server, TestApp};
pub use postgres::{postgres_admin_url, PgDatabase};
pub use redis::RedisServer;
pub use smtp::{ReceivedMail, SmtpServer};
