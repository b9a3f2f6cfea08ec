//! PostgreSQL LISTEN/NOTIFY: `pg_notify` inside the writing transaction (so it fires only
//! on commit), one dedicated LISTEN connection per instance, and a resync after every
//! reconnection because notifications sent meanwhile are gone.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use super::{backoff, encode, receive, BusHandler, BusKey, EventBus};
use crate::config::DatabaseUrl;
use crate::domain::StreamUpdate;
use crate::store::StoreTx;

pub const CHANNEL: &str = "taskstream_events";
/// NOTIFY payloads must stay under 8000 bytes; bigger messages go as a reference only.
const MAX_PAYLOAD: usize = 7_900;

pub struct PostgresBus {
    url: DatabaseUrl,
    instance: Uuid,
    key: BusKey,
}

impl PostgresBus {
    pub fn new(url: DatabaseUrl, instance: Uuid, key: BusKey) -> Self {
        Self { url, instance, key }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect(self.url.expose()).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

#[async_trait]
impl EventBus for PostgresBus {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn before_commit(
        &self,
        tx: &mut dyn StoreTx,
        update: &StreamUpdate,
    ) -> anyhow::Result<()> {
        tx.notify(
            CHANNEL,
            &encode(&self.key, self.instance, update, MAX_PAYLOAD),
        )
        .await?;
        Ok(())
    }

    async fn run(self: Arc<Self>, handler: Arc<dyn BusHandler>) {
        let mut attempt = 0;
        loop {
            let mut listener = match self.listen().await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "event bus: cannot LISTEN; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
            };
            if attempt > 0 {
                tracing::info!("event bus: LISTEN connection re-established");
            }
            attempt = 0;
            handler.on_resync();
            // `try_recv` reports a lost connection as `Ok(None)` instead of silently
            // reconnecting, so the resync above runs after every reconnection.
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => receive(
                        handler.as_ref(),
                        &self.key,
                        self.instance,
                        "postgres",
                        notification.payload(),
                    ),
                    Ok(None) => {
                        tracing::warn!("event bus: LISTEN connection lost; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event bus: LISTEN failed; reconnecting");
                        break;
                    }
                }
            }
            attempt += 1;
            tokio::time::sleep(backoff(0)).await;
        }
    }
}
