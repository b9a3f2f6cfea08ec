//! Behaviour tests: the real server over HTTP and WebSocket, on SQLite and on PostgreSQL.

mod helpers;
// Shared with the cluster tests; each binary uses part of it.
#[allow(dead_code)]
#[path = "../common/ws.rs"]
mod ws;

mod auth;
mod conflicts;
mod notifications;
mod operations;
mod profile;
mod realtime;
mod tasks;
