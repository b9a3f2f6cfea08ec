//! PostgreSQL: the production backend. Row locks (`FOR UPDATE`) serialise concurrent
//! writers of the same task or profile across instances.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};

use crate::config::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .expose()
            .parse()
            .with_context(|| format!("invalid DATABASE_URL {}", url.redacted()))?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
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
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to {}", url.redacted()))?;
        Self::migrator()
            .run(&pool)
            .await
            .context("applying PostgreSQL migrations")?;
        Ok(Self { pool })
    }

    pub fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations/postgres")
    }

    fn pool_stats(&self) -> (u32, u32) {
        let idle = self.pool.num_idle() as u32;
        (self.pool.size().saturating_sub(idle), idle)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

impl PostgresTx {
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
