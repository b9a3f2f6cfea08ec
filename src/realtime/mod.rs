//! Real-time delivery.
//!
//! The event table is the truth: every write appends its events in its own transaction
//! (see `service`). After the commit, [`Realtime::commit`] hands them to this instance's
//! [`hub::Hub`] and announces them on the [`bus`] so that other instances wake their
//! connections too. A connection that sees a gap reads it from the table; a periodic check
//! (and every bus reconnection) catches anything a bus dropped. So whatever a bus loses,
//! clients still see every event, in order, exactly once.

pub mod bus;
pub mod connection;
pub mod hub;
pub mod protocol;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use self::bus::{BusMessage, EventBus};
use self::hub::Hub;
use crate::auth::TokenChecks;
use crate::domain::Event;
use crate::error::Result;
use crate::store::{Store, StoreTx};

pub use crate::config::RealtimeSettings;

pub struct Realtime {
    /// This instance, so that it can skip its own bus messages.
    pub instance: Uuid,
    pub hub: Arc<Hub>,
    pub bus: Arc<dyn EventBus>,
    pub settings: RealtimeSettings,
}

impl Realtime {
    pub fn new(
        bus: Arc<dyn EventBus>,
        instance: Uuid,
        settings: RealtimeSettings,
        token_checks: Arc<TokenChecks>,
    ) -> Self {
        Self {
            instance,
            hub: Arc::new(Hub::new(settings.limits, token_checks)),
            bus,
            settings,
        }
    }

    /// Commits a write whose events were appended in `tx`, then delivers them here and
    /// announces them to the other instances. `revoked` names a token the write revoked.
    pub async fn commit(
        &self,
        mut tx: Box<dyn StoreTx>,
        user_id: Uuid,
        events: Vec<Event>,
        revoked: Option<Uuid>,
    ) -> Result<()> {
        let Some(last_seq) = events.last().map(|e| e.seq) else {
            tx.commit().await?;
            return Ok(());
        };
        for event in &events {
            metrics::counter!(crate::metrics::EVENTS, "type" => event.kind.as_str()).increment(1);
        }
        let message = Arc::new(BusMessage {
            origin: self.instance,
            user_id,
            last_seq,
            events,
            revoked,
        });
        self.bus.before_commit(tx.as_mut(), &message).await?;
        tx.commit().await?;
        self.hub.deliver(&message);
        self.bus.clone().after_commit(&message);
        Ok(())
    }

    /// Starts the bus subscription, the periodic catch-up and the retention pruner.
    pub fn spawn_background(self: &Arc<Self>, store: Arc<dyn Store>) -> Vec<JoinHandle<()>> {
        let (resync_tx, resync_rx) = mpsc::channel(1);
        vec![
            tokio::spawn(self.bus.clone().run(self.hub.clone(), resync_tx)),
            tokio::spawn(catch_up(
                self.hub.clone(),
                store.clone(),
                self.settings.catch_up_interval,
                resync_rx,
            )),
            tokio::spawn(prune_events(
                store,
                self.settings.retention,
                self.settings.retention_min_events,
            )),
        ]
    }
}

/// Compares the latest seq of every connected user with what the hub has seen, and wakes
/// the connections of users who are behind: the safety net under every bus.
async fn catch_up(
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    every: Duration,
    mut resync: mpsc::Receiver<()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = resync.recv() => hub.resync_started(),
        }
        for chunk in hub.connected_users().chunks(500) {
            let known: HashMap<Uuid, i64> = chunk.iter().copied().collect();
            let ids: Vec<Uuid> = known.keys().copied().collect();
            let latest = match store.latest_seqs(&ids).await {
                Ok(latest) => latest,
                Err(err) => {
                    tracing::warn!(error = %err, "catch-up: cannot read latest seqs");
                    break;
                }
            };
            for (user_id, last_seq) in latest {
                if known.get(&user_id).is_some_and(|&seen| last_seq > seen) {
                    hub.deliver(&Arc::new(BusMessage {
                        origin: Uuid::nil(),
                        user_id,
                        last_seq,
                        events: Vec::new(),
                        revoked: None,
                    }));
                }
            }
        }
    }
}

/// Deletes events past retention (older than `retention` and not among their user's last
/// `keep`), hourly, in small batches so writers are never held up for long.
async fn prune_events(store: Arc<dyn Store>, retention: Duration, keep: i64) {
    const BATCH: i64 = 5_000;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            return;
        };
        let cutoff = crate::domain::now() - retention;
        let mut total = 0;
        loop {
            match store.prune_events(cutoff, keep, BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < BATCH as u64 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "pruning events failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(pruned = total, "old events pruned");
        }
    }
}
