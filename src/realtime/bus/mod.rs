//! The buses that tell every instance "user U has events up to seq S". A bus is only a
//! wake-up: connections read whatever they miss from the event table, so a message lost
//! by a bus delays delivery (until the next message or the periodic check) but never loses
//! an event.

mod memory;
mod postgres;
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use memory::MemoryBus;
pub use postgres::PostgresBus;
pub use redis::RedisBus;

use super::hub::Hub;
use crate::domain::Event;
use crate::store::StoreTx;

/// One committed write, as announced to every instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusMessage {
    /// The instance that made the write (it has delivered locally already).
    #[serde(rename = "o")]
    pub origin: Uuid,
    #[serde(rename = "u")]
    pub user_id: Uuid,
    /// The user's latest seq after this write.
    #[serde(rename = "s")]
    pub last_seq: i64,
    /// The events themselves when they fit; empty means "read them from the table".
    #[serde(rename = "e", default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// A token revoked by this write (logout): its sockets close with 4003.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Uuid>,
}

impl BusMessage {
    /// The message as JSON, without the events when it would exceed `max_bytes`.
    pub fn encode(&self, max_bytes: usize) -> String {
        let full = serde_json::to_string(self).unwrap_or_default();
        if full.len() <= max_bytes {
            return full;
        }
        let reference = Self {
            events: Vec::new(),
            ..self.clone()
        };
        serde_json::to_string(&reference).unwrap_or_default()
    }
}

/// A way to tell the other instances about committed writes.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Adds to the transaction what must travel with its commit (PostgreSQL's NOTIFY).
    async fn before_commit(
        &self,
        _tx: &mut dyn StoreTx,
        _message: &BusMessage,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    /// Announces a committed write (Redis: PUBLISH). Must not block the caller.
    fn after_commit(self: Arc<Self>, _message: &Arc<BusMessage>) {}

    /// Receives what other instances announce and hands it to the hub, until the task is
    /// aborted. After every (re)connection it asks for a resync through `resync`, since
    /// whatever was announced while it was away is lost.
    async fn run(self: Arc<Self>, hub: Arc<Hub>, resync: mpsc::Sender<()>);
}

/// Reconnection delays: 100 ms doubling to 5 s.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Decodes a message from another instance and hands it to the hub; the instance's own
/// messages were delivered locally at commit and are skipped.
pub(crate) fn receive(hub: &Hub, me: Uuid, bus: &'static str, payload: &str) {
    match serde_json::from_str::<BusMessage>(payload) {
        Ok(message) if message.origin == me => {}
        Ok(message) => {
            if let Some(last) = message.events.last() {
                metrics::histogram!(crate::metrics::BUS_LAG, "bus" => bus)
                    .record(crate::metrics::seconds_since(last.at));
            }
            hub.deliver(&Arc::new(message));
        }
        Err(err) => tracing::warn!(error = %err, "ignoring a malformed bus message"),
    }
}
