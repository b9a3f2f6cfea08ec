//! In-process: the single instance delivers to its own hub at commit, so there is
//! nothing to send anywhere.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{BusMessage, EventBus};
use crate::realtime::hub::Hub;
use crate::store::StoreTx;

#[derive(Debug, Default)]
pub struct MemoryBus;

#[async_trait]
impl EventBus for MemoryBus {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn before_commit(
        &self,
        _tx: &mut dyn StoreTx,
        _message: &BusMessage,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    fn after_commit(self: Arc<Self>, _message: &Arc<BusMessage>) {}

    async fn run(self: Arc<Self>, _hub: Arc<Hub>, _resync: mpsc::Sender<()>) {
        std::future::pending::<()>().await;
    }
}
