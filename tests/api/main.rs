//! Behaviour tests: the real server over HTTP, on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod notifications;
mod operations;
mod profile;
mod tasks;
