//! In-process: the single instance delivers to its own hub at commit, so there is
//! nothing to send anywhere.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::EventBus;
use crate::realtime::hub::Hub;

#[derive(Debug, Default)]
pub struct MemoryBus;

#[async_trait]
impl EventBus for MemoryBus {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn run(self: Arc<Self>, _hub: Arc<Hub>, _resync: mpsc::Sender<()>) {
        std::future::pending::<()>().await;
    }
}
