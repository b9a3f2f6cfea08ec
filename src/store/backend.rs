//! The contract between the SQL written once ([`super::sql`]) and each database.

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::{Database, Decode, Encode, Type};

use super::pool::{ConnPool, Tx};
use super::{PoolSizes, StoreError};
use crate::config::DatabaseUrl;
use crate::domain::{EventDraft, StreamKey};

/// What a database supplies to [`super::SqlStore`]: everything that differs between
/// PostgreSQL and SQLite. Implemented on sqlx's database types (`sqlx::Postgres`,
/// `sqlx::Sqlite`).
///
/// The shared SQL also needs sqlx's executors and the [`Column`] types on the database;
/// Rust does not carry such bounds along with a trait, so they are spelled out on the
/// `Store` and `StoreTx` impls of [`super::SqlStore`] instead of here.
pub trait Backend: Database {
    /// `"postgres"` or `"sqlite"`, for logs and health output.
    const LABEL: &'static str;

    /// Appended to a `SELECT` that must lock its rows until commit (`" FOR UPDATE"`), or
    /// empty where writes are serialised otherwise.
    const ROW_LOCK: &'static str;

    /// Appended to a `SELECT` that claims rows for one worker among several
    /// (`" FOR UPDATE SKIP LOCKED"`), or empty where one writer runs at a time.
    const SKIP_LOCKED: &'static str;

    /// The full-text condition of the task filter (`queries::TaskQueries`): `$7`
    /// is the search as typed (null for none), `$8` and `$9` its FTS5 form
    /// ([`crate::domain::TextSearch::fts5_include`] and `fts5_exclude`); a backend reads
    /// what it needs of them.
    const TASK_SEARCH: &'static str;

    /// Joined to `tasks` when a page is ordered by relevance, for [`Self::TASK_RANK`]
    /// (empty when the rank needs no join).
    const TASK_RANK_JOIN: &'static str;

    /// How well a task matches that search, higher is better: what `sort=relevance`
    /// orders by.
    const TASK_RANK: &'static str;

    /// Opens the pools, applying the migrations first.
    fn connect(
        url: &DatabaseUrl,
        sizes: PoolSizes,
    ) -> impl Future<Output = anyhow::Result<Pools<Self>>> + Send;

    /// Begins the transaction of one write use case on the write pool.
    fn begin_write(
        write: &ConnPool<Self>,
    ) -> impl Future<Output = Result<Tx<Self>, sqlx::Error>> + Send;

    /// Takes the stream's next `drafts.len()` seqs and inserts the events with them, at
    /// `at`; returns the first seq. Must serialise the stream's writers until commit, so
    /// that seq order is commit order, and apply `domain::held_deltas(drafts)` to the
    /// user's `task_count` and `notification_count` (a project's `task_count`) in the same
    /// statement. `drafts` is never empty. `notices` (empty unless [`Self::NOTIFIES`]) go
    /// in the same round trip.
    fn insert_events(
        tx: &mut Self::Connection,
        stream: StreamKey,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
        notices: &Notices,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;

    /// Records how many sockets users have on `instance` now (`present`, the users of
    /// accounts that still exist) and that `gone` have none left there: at most one
    /// statement each on PostgreSQL, as an instance may flush thousands a second.
    fn set_presence(
        tx: &mut Self::Connection,
        instance: uuid::Uuid,
        present: &[(uuid::Uuid, i64)],
        gone: &[uuid::Uuid],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Whether the database has NOTIFY ([`Self::notify_in_tx`]).
    const NOTIFIES: bool;

    /// Sends the notices when the transaction commits, in one round trip. Called only
    /// when [`Self::NOTIFIES`].
    fn notify_in_tx(
        tx: &mut Self::Connection,
        notices: &Notices,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// The name of the unique constraint a violation hit, as PostgreSQL's schema names it.
    fn unique_constraint(err: &dyn DatabaseError) -> Option<String>;

    /// The store's error for a driver error of this backend.
    fn store_error(err: sqlx::Error) -> StoreError {
        StoreError::from_sqlx(err, Self::unique_constraint)
    }
}

/// A store's connections: reads never wait for a connection a writer holds.
#[derive(Debug)]
pub struct Pools<B: Database> {
    pub read: ConnPool<B>,
    pub write: ConnPool<B>,
}

/// A type the shared SQL binds and reads as a column value on database `B`.
pub trait Column<B: Database>: for<'q> Encode<'q, B> + for<'r> Decode<'r, B> + Type<B> {}

impl<B: Database, T> Column<B> for T where T: for<'q> Encode<'q, B> + for<'r> Decode<'r, B> + Type<B>
{}

/// What a database without NOTIFY answers when asked to send one.
pub fn notify_refused() -> sqlx::Error {
    sqlx::Error::Configuration(
        "NOTIFY needs PostgreSQL: use EVENT_BUS=memory or redis with SQLite".into(),
    )
}

/// The NOTIFYs a write transaction has queued: they ride along with its next append of
/// events, or go just before its commit. Either way PostgreSQL delivers them only if
/// the transaction commits, in the order they were queued.
#[derive(Debug, Default)]
pub struct Notices {
    /// Parallel lists (the form PostgreSQL's `unnest` takes), kept in step by `push`.
    channels: Vec<String>,
    payloads: Vec<String>,
}

impl Notices {
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn push(&mut self, channel: &str, payload: &str) {
        self.channels.push(channel.to_owned());
        self.payloads.push(payload.to_owned());
    }

    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn payloads(&self) -> &[String] {
        &self.payloads
    }
}
