//! PostgreSQL: the production backend. Row locks (`FOR UPDATE`) serialise concurrent
//! writers of the same task or profile across instances.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use super::PoolSizes;
use crate::config::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &DatabaseUrl, sizes: PoolSizes) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .with_context(|| format!("invalid DATABASE_URL {}", url.redacted()))?;
        let (writers, readers) = sizes.split();
        let write = Self::pool(writers)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        Self::migrator()
            .run(&write)
            .await
            .context("applying PostgreSQL migrations")?;
        let read = Self::pool(readers)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        Ok(Self { read, write })
    }

    fn pool(size: u32) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(size)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            // Health check: a connection idle for a while is pinged before use. Pinging on
            // every acquire (sqlx's default) would add a round trip to every query.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(30) {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .idle_timeout(Duration::from_secs(600))
    }

    pub fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/postgres")
    }

    fn pool_stats(&self) -> (u32, u32) {
        let idle = (self.read.num_idle() + self.write.num_idle()) as u32;
        (
            (self.read.size() + self.write.size()).saturating_sub(idle),
            idle,
        )
    }

    fn reader(&self) -> &PgPool {
        &self.read
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.write.begin().await
    }
}

impl PostgresTx {
    /// Takes the next seqs of the user and inserts the events with them, in one round
    /// trip; returns the first seq. The UPDATE locks the user's row until commit: the
    /// user's writers take their seqs one transaction at a time, so seq order is commit
    /// order.
    async fn insert_events(
        &mut self,
        user_id: Uuid,
        drafts: &[EventDraft],
        at: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        let kinds: Vec<&str> = drafts.iter().map(|d| d.kind.as_str()).collect();
        let data: Vec<String> = drafts.iter().map(|d| d.data.to_string()).collect();
        let seqs: Vec<i64> = sqlx::query_scalar(
            "WITH bumped AS ( \
                 UPDATE users SET last_event_seq = last_event_seq + $2 WHERE id = $1 \
                 RETURNING last_event_seq - $2 AS before) \
             INSERT INTO events (user_id, seq, kind, at, data) \
             SELECT $1, bumped.before + e.n, e.kind, $3, e.data \
             FROM bumped, unnest($4::text[], $5::text[]) WITH ORDINALITY AS e (kind, data, n) \
             RETURNING seq",
        )
        .bind(user_id)
        .bind(drafts.len() as i64)
        .bind(at)
        .bind(kinds)
        .bind(data)
        .fetch_all(&mut *self.tx)
        .await?;
        seqs.into_iter().min().ok_or(sqlx::Error::RowNotFound)
    }

    async fn notify_in_tx(&mut self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
    }
}

sql_store!(db: Postgres, store: super::PostgresStore, tx: PostgresTx, backend: "postgres", lock: " FOR UPDATE");
