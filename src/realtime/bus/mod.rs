//! The buses that tell every instance "stream K (a user's or a project's) has events up to
//! seq S". A bus is only a
//! wake-up: connections read whatever they miss from the event table, so a message lost
//! by a bus delays delivery (until the next message or the periodic check) but never loses
//! an event.

mod memory;
mod postgres;
mod redis;
mod seal;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::MemoryBus;
pub use postgres::PostgresBus;
pub use redis::RedisBus;
pub use seal::BusKey;

use crate::domain::{Event, StreamKey, StreamUpdate};
use crate::store::StoreTx;

/// What a bus hands what it receives to (the real-time node implements it). A bus knows
/// nothing of hubs or sockets.
pub trait BusHandler: Send + Sync + 'static {
    /// Another instance committed this update.
    fn on_update(&self, update: StreamUpdate);

    /// The bus (re)connected: whatever was announced while it was away may be lost.
    fn on_resync(&self);
}

/// A way to tell the other instances about committed writes.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Adds to the transaction what must travel with its commit (PostgreSQL's NOTIFY).
    async fn before_commit(
        &self,
        _tx: &mut dyn StoreTx,
        _update: &StreamUpdate,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Announces a committed write (Redis: PUBLISH). Must not block the caller.
    fn after_commit(self: Arc<Self>, _update: &StreamUpdate) {}

    /// Receives what other instances announce and hands it to `handler`, until the task
    /// is aborted; calls `handler.on_resync()` after every (re)connection.
    async fn run(self: Arc<Self>, handler: Arc<dyn BusHandler>);
}

/// One update on the wire, with the instance that committed it (which has delivered it
/// locally already, and skips it when the bus brings it back).
#[derive(Serialize)]
struct Outgoing<'a> {
    #[serde(rename = "o")]
    origin: Uuid,
    #[serde(rename = "k")]
    stream: StreamKey,
    #[serde(rename = "s")]
    last_seq: i64,
    /// The events themselves when they fit; empty means "read them from the table".
    #[serde(rename = "e", skip_serializing_if = "<[Event]>::is_empty")]
    events: &'a [Event],
    /// Tokens stopped by the write.
    #[serde(rename = "r", skip_serializing_if = "<[Uuid]>::is_empty")]
    revoked: &'a [Uuid],
    /// Tokens replaced by a refresh.
    #[serde(rename = "t", skip_serializing_if = "<[Uuid]>::is_empty")]
    rotated: &'a [Uuid],
}

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "o")]
    origin: Uuid,
    #[serde(rename = "k")]
    stream: StreamKey,
    #[serde(rename = "s")]
    last_seq: i64,
    #[serde(rename = "e", default)]
    events: Vec<Event>,
    #[serde(rename = "r", default)]
    revoked: Vec<Uuid>,
    #[serde(rename = "t", default)]
    rotated: Vec<Uuid>,
}

/// The update as signed JSON, without the events when it would exceed `max_bytes`.
pub(crate) fn encode(
    key: &BusKey,
    origin: Uuid,
    update: &StreamUpdate,
    max_bytes: usize,
) -> String {
    let max_bytes = max_bytes.saturating_sub(seal::SEAL_LEN);
    let mut wire = Outgoing {
        origin,
        stream: update.stream,
        last_seq: update.last_seq,
        events: &update.events,
        revoked: &update.revoked,
        rotated: &update.rotated,
    };
    let full = serde_json::to_string(&wire).unwrap_or_default();
    if full.len() <= max_bytes {
        return key.seal(&full);
    }
    wire.events = &[];
    key.seal(&serde_json::to_string(&wire).unwrap_or_default())
}

/// Reconnection delays: 100 ms doubling to 5 s.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Checks and decodes a message from another instance and hands it on; the instance's own
/// messages were delivered locally at commit and are skipped, and anything not signed with
/// the deployment's key is dropped.
pub(crate) fn receive(
    handler: &dyn BusHandler,
    key: &BusKey,
    me: Uuid,
    bus: &'static str,
    payload: &str,
) {
    let Some(json) = key.open(payload) else {
        metrics::counter!(crate::metrics::BUS_REJECTED, "bus" => bus).increment(1);
        tracing::warn!(bus, "dropping a bus message that no instance signed");
        return;
    };
    match serde_json::from_str::<Incoming>(json) {
        Ok(message) if message.origin == me => {}
        Ok(message) => {
            if let Some(last) = message.events.last() {
                metrics::histogram!(crate::metrics::BUS_LAG, "bus" => bus)
                    .record(crate::metrics::seconds_since(last.at));
            }
            handler.on_update(StreamUpdate {
                stream: message.stream,
                last_seq: message.last_seq,
                events: message.events,
                revoked: message.revoked,
                rotated: message.rotated,
            });
        }
        Err(err) => tracing::warn!(error = %err, "ignoring a malformed bus message"),
    }
}
