//! taskstream: a real-time, WebSocket-first task-management backend.
//!
//! The crate is laid out by concern, and data flows one way through it:
//! `http` (thin handlers) -> `service` (the use cases) -> `store` (the `Store` trait,
//! PostgreSQL and SQLite behind it). Every write commits in one place,
//! `service::commit::WriteFunnel`, which then hands the committed events to a
//! `service::Publisher`; `realtime` (hub, buses, WebSocket connections) implements it and
//! carries the events to clients. `domain` holds values that cannot be invalid once
//! parsed; `auth` holds passwords, tokens and the one `Authenticator` that HTTP and
//! sockets share; `cpu` runs argon2 and photo decoding on low-priority threads; `config` and
//! `startup` build and run the server. No module imports one
//! that imports it back: `service` knows nothing of `realtime`, a bus knows nothing of the
//! hub (it hands what it receives to a `BusHandler`).

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cpu;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod realtime;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
