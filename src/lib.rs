//! taskstream: a real-time, WebSocket-first task-management backend.
//!
//! The crate is laid out by concern, and data flows one way through it:
//! `http` (thin handlers) -> `service` (the write path, one transaction per use case)
//! -> `store` (the `Store` trait, PostgreSQL and SQLite behind it), and after each commit
//! `realtime` (hub, buses, WebSocket connections) carries the write's events to clients.
//! `domain` holds values that cannot be invalid once parsed, `auth` holds passwords and
//! tokens, `config` and `startup` build and run the server.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod realtime;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
