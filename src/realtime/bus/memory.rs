//! In-process: the single instance delivers to its own hub at commit, so there is
//! nothing to send anywhere.

use std::sync::Arc;

use async_trait::async_trait;

use super::{BusHandler, EventBus};

#[derive(Debug, Default)]
pub struct MemoryBus;

#[async_trait]
impl EventBus for MemoryBus {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn run(self: Arc<Self>, _handler: Arc<dyn BusHandler>) {
        std::future::pending::<()>().await;
    }
}
