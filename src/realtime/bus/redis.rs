//! Redis pub/sub: PUBLISH after commit, one subscription per instance. Redis forgets
//! what it could not deliver, so every (re)subscription is followed by a resync.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{backoff, encode, receive, BusHandler, BusKey, EventBus};
use crate::domain::StreamUpdate;

pub const CHANNEL: &str = "taskstream:events";
/// Events larger than this travel as a reference; subscribers read them from the table.
const MAX_PAYLOAD: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisBus {
    client: redis::Client,
    instance: Uuid,
    key: BusKey,
    /// The shared publishing connection; made on first use, since Redis may be down when
    /// the server starts, and reconnecting by itself after that.
    publisher: OnceCell<ConnectionManager>,
}

impl RedisBus {
    pub fn new(url: &str, instance: Uuid, key: BusKey) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            instance,
            key,
            publisher: OnceCell::new(),
        })
    }

    async fn publish(&self, payload: String) {
        let connect = || async {
            match tokio::time::timeout(TIMEOUT, ConnectionManager::new(self.client.clone())).await {
                Ok(made) => made,
                Err(_) => Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "connect timed out",
                ))),
            }
        };
        let published = async {
            let mut conn = self.publisher.get_or_try_init(connect).await?.clone();
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(&payload)
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(TIMEOUT, published).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(
                error = %err,
                "event bus: PUBLISH failed; other instances catch up from the table"
            ),
            Err(_) => tracing::warn!(
                "event bus: PUBLISH timed out; other instances catch up from the table"
            ),
        }
    }
}

#[async_trait]
impl EventBus for RedisBus {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn after_commit(self: Arc<Self>, update: &StreamUpdate) {
        let payload = encode(&self.key, self.instance, update, MAX_PAYLOAD);
        // Publishing runs beside the request: a slow or absent Redis must not hold up the
        // response, and the events are safe in the table whatever happens here.
        tokio::spawn(async move { self.publish(payload).await });
    }

    async fn run(self: Arc<Self>, handler: Arc<dyn BusHandler>) {
        let mut attempt = 0;
        loop {
            let subscription = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = match tokio::time::timeout(Duration::from_secs(5), subscription).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "event bus: cannot subscribe to Redis; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(_) => {
                    tracing::warn!("event bus: Redis subscription timed out; retrying");
                    attempt += 1;
                    continue;
                }
            };
            if attempt > 0 {
                tracing::info!("event bus: Redis subscription re-established");
            }
            attempt = 0;
            handler.on_resync();
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match message.get_payload::<String>() {
                    Ok(payload) => receive(
                        handler.as_ref(),
                        &self.key,
                        self.instance,
                        "redis",
                        &payload,
                    ),
                    Err(err) => tracing::warn!(error = %err, "event bus: unreadable Redis message"),
                }
            }
            tracing::warn!("event bus: Redis subscription lost; reconnecting");
            attempt += 1;
            tokio::time::sleep(backoff(0)).await;
        }
    }
}
