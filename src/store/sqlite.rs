//! SQLite: the embedded backend. One file in WAL mode; readers use a pool, writers share a
//! single connection so transactions queue in-process instead of failing with
//! `SQLITE_BUSY` (SQLite admits one writer at a time anyway). That single writer is also
//! what serialises writes here: no row locks are needed.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::backend::{notify_refused, Backend, Notices, Pools};
use super::pool::{ConnPool, PoolLimits, Tx};
use super::{PoolSizes, USERS_EMAIL_KEY, USERS_NAME_KEY};
use crate::config::DatabaseUrl;
use crate::domain::{held_deltas, EventDraft, StreamKey};

/// Takes the user's next `$2` seqs; returns the last of them.
const TAKE_SEQS: &str = "UPDATE users SET last_event_seq = last_event_seq + $2, \
                         task_count = task_count + $3, notification_count = notification_count + $4 \
                         WHERE id = $1 RETURNING last_event_seq";

/// Takes the project's next `$2` seqs; returns the last of them.
const TAKE_PROJECT_SEQS: &str = "UPDATE projects SET last_event_seq = last_event_seq + $2, \
                                 task_count = task_count + $3 WHERE id = $1 RETURNING last_event_seq";

/// Followed by one `VALUES` tuple per event.
const INSERT_EVENTS: &str = "INSERT INTO events (user_id, seq, kind, at, data) ";
const INSERT_PROJECT_EVENTS: &str = "INSERT INTO project_events (project_id, seq, kind, at, data) ";

/// SQLite reports a unique violation by its columns ("UNIQUE constraint failed:
/// users.email"); these are the PostgreSQL schema's names for them.
const UNIQUE_CONSTRAINTS: &[(&str, &str)] = &[
    ("users.email", USERS_EMAIL_KEY),
    ("users.name_key", USERS_NAME_KEY),
    ("users.id", "users_pkey"),
    ("tasks.id", "tasks_pkey"),
    ("notifications.id", "notifications_pkey"),
    ("sessions.id", "sessions_pkey"),
    ("events.user_id, events.seq", "events_pkey"),
];

impl Backend for Sqlite {
    const LABEL: &'static str = "sqlite";
    const ROW_LOCK: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    /// A task matches when the FTS5 index finds it for the alternatives with terms to
    /// match (`$8`), or does not find it for those made only of exclusions (`$9`); with a
    /// search that has neither, nothing matches (as in PostgreSQL). Each MATCH runs once
    /// per statement (a list sub-select, read only when its `IS NOT NULL` guard holds:
    /// FTS5 refuses a null query): asking FTS5 row by row (`rowid = tasks.id`) is 50 times
    /// slower for a user with 10,000 tasks.
    const TASK_SEARCH: &'static str = "($7 IS NULL \
         OR ($8 IS NOT NULL AND tasks.id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH $8)) \
         OR ($9 IS NOT NULL AND tasks.id NOT IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH $9)))";
    /// The score of each match, in one pass over the index (bm25 row by row is slower
    /// still); the title weighs 2.5 times the description, as `ts_rank` weighs
    /// PostgreSQL's A and B.
    const TASK_RANK_JOIN: &'static str = " LEFT JOIN (SELECT rowid AS fts_hit, \
         bm25(tasks_fts, 1.0, 0.4) AS fts_score FROM tasks_fts \
         WHERE $8 IS NOT NULL AND tasks_fts MATCH $8) fts ON fts.fts_hit = tasks.id";
    /// bm25 is lower for better matches.
    const TASK_RANK: &'static str = "coalesce(-fts.fts_score, 0)";

    async fn connect(url: &DatabaseUrl, sizes: PoolSizes) -> anyhow::Result<Pools<Self>> {
        let options = SqliteConnectOptions::from_str(url.expose())
            .with_context(|| format!("invalid DATABASE_URL {}", url.redacted()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        let limits = |max_connections| PoolLimits {
            max_connections,
            acquire_timeout: Duration::from_secs(5),
        };
        let write = ConnPool::connect(options.clone(), limits(1))
            .await
            .with_context(|| format!("opening {}", url.redacted()))?;
        let mut conn = write
            .acquire()
            .await
            .with_context(|| format!("opening {}", url.redacted()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run_direct(&mut *conn)
            .await
            .context("applying SQLite migrations")?;
        drop(conn);
        let readers = PoolSizes {
            writers: 1,
            ..sizes
        }
        .split()
        .1;
        let read = ConnPool::connect(options.read_only(true), limits(readers))
            .await
            .with_context(|| format!("opening {}", url.redacted()))?;
        Ok(Pools { read, write })
    }

    async fn begin_write(write: &ConnPool<Sqlite>) -> Result<Tx<Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front, so a transaction that reads before it
        // writes cannot fail half-way when another process wrote in between.
        write.begin(Some("BEGIN IMMEDIATE")).await
    }

    /// Two statements: SQLite has no data-modifying CTEs, and its round trips are
    /// in-process. The single writer already serialises the user's writers.
    async fn insert_events(
        tx: &mut SqliteConnection,
        stream: StreamKey,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
        _notices: &Notices,
    ) -> Result<i64, sqlx::Error> {
        let (tasks, notifications) = held_deltas(drafts);
        let (last, insert): (i64, _) = match stream {
            StreamKey::User(user_id) => (
                sqlx::query_scalar(TAKE_SEQS)
                    .bind(user_id)
                    .bind(drafts.len() as i64)
                    .bind(tasks)
                    .bind(notifications)
                    .fetch_one(&mut *tx)
                    .await?,
                INSERT_EVENTS,
            ),
            StreamKey::Project(project_id) => (
                sqlx::query_scalar(TAKE_PROJECT_SEQS)
                    .bind(project_id)
                    .bind(drafts.len() as i64)
                    .bind(tasks)
                    .fetch_one(&mut *tx)
                    .await?,
                INSERT_PROJECT_EVENTS,
            ),
        };
        let key = stream.id();
        let first = last - drafts.len() as i64 + 1;
        let mut query = QueryBuilder::<Sqlite>::new(insert);
        query.push_values(drafts.iter().enumerate(), |mut row, (i, draft)| {
            row.push_bind(key)
                .push_bind(first + i as i64)
                .push_bind(draft.kind.as_str())
                .push_bind(at)
                .push_bind(draft.data.to_string());
        });
        query.build().execute(&mut *tx).await?;
        Ok(first)
    }

    /// One statement per user: SQLite's round trips are in-process.
    async fn set_presence(
        tx: &mut SqliteConnection,
        instance: Uuid,
        present: &[(Uuid, i64)],
        gone: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        for &(user_id, devices) in present {
            sqlx::query(super::queries::PRESENCE_SET)
                .bind(user_id)
                .bind(instance)
                .bind(devices)
                .execute(&mut *tx)
                .await?;
        }
        for &user_id in gone {
            sqlx::query(super::queries::PRESENCE_LEFT)
                .bind(user_id)
                .bind(instance)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// SQLite has no NOTIFY: with it, events cross instances by Redis (or stay in the
    /// process).
    const NOTIFIES: bool = false;

    async fn notify_in_tx(
        _tx: &mut SqliteConnection,
        _notices: &Notices,
    ) -> Result<(), sqlx::Error> {
        Err(notify_refused())
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn unique_constraint(err: &dyn DatabaseError) -> Option<String> {
        let columns = err.message().strip_prefix("UNIQUE constraint failed: ")?;
        UNIQUE_CONSTRAINTS
            .iter()
            .find(|(reported, _)| *reported == columns)
            .map(|(_, name)| (*name).to_owned())
    }
}
