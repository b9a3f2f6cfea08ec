//! One module per scenario; each has its clap arguments, a `run` that returns its report,
//! and the report type.

pub mod abuse;
pub mod connections;
pub mod fanout;
pub mod limit;
pub mod measured_socket;
pub mod open_loop;
pub mod reminders;
pub mod rest;
pub mod team;
pub mod team_fanout;
pub mod team_write;
