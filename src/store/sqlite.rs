//! SQLite: the embedded backend. One file in WAL mode; readers use a pool, writers share a
//! single connection so transactions queue in-process instead of failing with
//! `SQLITE_BUSY` (SQLite admits one writer at a time anyway).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Sqlite;

use super::PoolSizes;
use crate::config::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &DatabaseUrl, sizes: PoolSizes) -> anyhow::Result<Self> {
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
        // A local file needs no ping before each use.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening {}", url.redacted()))?;
        Self::migrator()
            .run(&write)
            .await
            .context("applying SQLite migrations")?;
        let read = SqlitePoolOptions::new()
            .max_connections(
                PoolSizes {
                    writers: 1,
                    ..sizes
                }
                .split()
                .1,
            )
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening {}", url.redacted()))?;
        Ok(Self { read, write })
    }

    pub fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/sqlite")
    }

    fn pool_stats(&self) -> (u32, u32) {
        let idle = (self.read.num_idle() + self.write.num_idle()) as u32;
        (
            (self.read.size() + self.write.size()).saturating_sub(idle),
            idle,
        )
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front, so a transaction that reads before it
        // writes cannot fail half-way when another process wrote in between.
        self.write.begin_with("BEGIN IMMEDIATE").await
    }
}

impl SqliteTx {
    /// Takes the next seqs of the user and inserts the events with them; returns the first
    /// seq. (The single writer already serialises writes; SQLite has no data-modifying
    /// CTEs, and its round trips are in-process.)
    async fn insert_events(
        &mut self,
        user_id: Uuid,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        let last: i64 = sqlx::query_scalar(
            "UPDATE users SET last_event_seq = last_event_seq + $2 WHERE id = $1 \
             RETURNING last_event_seq",
        )
        .bind(user_id)
        .bind(drafts.len() as i64)
        .fetch_one(&mut *self.tx)
        .await?;
        let first = last - drafts.len() as i64 + 1;
        let mut query =
            sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO events (user_id, seq, kind, at, data) ");
        query.push_values(drafts.iter().enumerate(), |mut row, (i, draft)| {
            row.push_bind(user_id)
                .push_bind(first + i as i64)
                .push_bind(draft.kind.as_str())
                .push_bind(at)
                .push_bind(draft.data.to_string());
        });
        query.build().execute(&mut *self.tx).await?;
        Ok(first)
    }

    async fn notify_in_tx(&mut self, _channel: &str, _payload: &str) -> Result<(), sqlx::Error> {
        Err(sqlx::Error::Configuration(
            "NOTIFY needs PostgreSQL: use EVENT_BUS=memory or redis with SQLite".into(),
        ))
    }
}

sql_store!(db: Sqlite, store: super::SqliteStore, tx: SqliteTx, backend: "sqlite", lock: "");
