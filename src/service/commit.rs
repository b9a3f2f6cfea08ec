//! The write funnel: the one place a write transaction commits.
//!
//! Every use case opens a transaction ([`WriteFunnel::begin`]), changes its rows, and ends
//! in [`WriteFunnel::commit`], which appends the write's events to the user's stream (the
//! outbox clients read), lets the publisher add what must commit with them (PostgreSQL's
//! NOTIFY), commits, and then hands the committed events to the publisher. The publisher
//! is the only thing of the real-time layer the services know.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::domain::{EventDraft, StreamUpdate};
use crate::error::Result;
use crate::store::{Store, StoreTx};

/// Where committed writes go (the real-time layer implements it).
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Adds to the transaction what must commit with the update (PostgreSQL's NOTIFY).
    async fn before_commit(
        &self,
        tx: &mut dyn StoreTx,
        update: &StreamUpdate,
    ) -> anyhow::Result<()>;

    /// Hands on a committed update. Must not block: the request is waiting.
    fn publish(&self, update: StreamUpdate);
}

pub struct WriteFunnel {
    store: Arc<dyn Store>,
    publisher: Arc<dyn Publisher>,
    /// Forgets a token this instance revoked, at once.
    authenticator: Arc<Authenticator>,
    /// Wakes this instance's delivery worker when a commit added deliveries (the others
    /// find them at their next poll).
    deliveries: Arc<Notify>,
}

impl WriteFunnel {
    pub fn new(
        store: Arc<dyn Store>,
        publisher: Arc<dyn Publisher>,
        authenticator: Arc<Authenticator>,
        deliveries: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            publisher,
            authenticator,
            deliveries,
        }
    }

    /// Commits a write that belongs to no user's stream (a contact message).
    pub async fn commit_unannounced(&self, tx: Box<dyn StoreTx>) -> Result<()> {
        let enqueued = tx.enqueued_deliveries();
        tx.commit().await?;
        if enqueued {
            self.deliveries.notify_one();
        }
        Ok(())
    }

    /// Opens a write transaction, and the time the write happens at: read once the
    /// transaction has begun (on SQLite, once it holds the write lock), so that times
    /// follow commit order.
    pub async fn begin(&self) -> Result<(Box<dyn StoreTx>, DateTime<Utc>)> {
        let tx = self.store.begin().await?;
        Ok((tx, crate::domain::now()))
    }

    /// Appends `events` to the user's stream in `tx`, commits, and publishes them.
    /// `revoked` names the tokens the write stopped (sessions ended, a token refreshed):
    /// every instance forgets them and closes their sockets, so a write that stops tokens
    /// is announced even without events (`last_seq` 0 then, which no socket acts on).
    pub async fn commit(
        &self,
        tx: Box<dyn StoreTx>,
        user_id: Uuid,
        events: &[EventDraft],
        at: DateTime<Utc>,
        revoked: Vec<Uuid>,
    ) -> Result<()> {
        self.finish(tx, user_id, events, at, revoked, Vec::new())
            .await
    }

    /// Commits a token refresh: the replaced token `old` stops working for REST on every
    /// instance at once, and its sockets are told to move to the new one.
    pub async fn commit_rotation(
        &self,
        tx: Box<dyn StoreTx>,
        user_id: Uuid,
        at: DateTime<Utc>,
        old: Uuid,
    ) -> Result<()> {
        self.finish(tx, user_id, &[], at, Vec::new(), vec![old])
            .await
    }

    async fn finish(
        &self,
        mut tx: Box<dyn StoreTx>,
        user_id: Uuid,
        events: &[EventDraft],
        at: DateTime<Utc>,
        revoked: Vec<Uuid>,
        rotated: Vec<Uuid>,
    ) -> Result<()> {
        let events = tx.append_events(user_id, events, at).await?;
        let last_seq = events.last().map_or(0, |e| e.seq);
        let enqueued = tx.enqueued_deliveries();
        if events.is_empty() && revoked.is_empty() && rotated.is_empty() {
            tx.commit().await?;
            if enqueued {
                self.deliveries.notify_one();
            }
            return Ok(());
        }
        for event in &events {
            metrics::counter!(crate::metrics::EVENTS, "type" => event.kind.as_str()).increment(1);
        }
        let update = StreamUpdate {
            user_id,
            last_seq,
            events,
            revoked,
            rotated,
        };
        self.publisher.before_commit(tx.as_mut(), &update).await?;
        tx.commit().await?;
        if enqueued {
            self.deliveries.notify_one();
        }
        self.authenticator.forget(&update.revoked);
        self.authenticator.forget(&update.rotated);
        self.publisher.publish(update);
        Ok(())
    }
}
