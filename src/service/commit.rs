//! The write funnel: the one place a write transaction commits.
//!
//! Every use case opens a transaction ([`WriteFunnel::begin`]), changes its rows, and ends
//! in [`WriteFunnel::commit`] (or `commit_streams`), which appends the write's events to
//! each stream it touched (the outbox clients read), lets the publisher add what must
//! commit with them (PostgreSQL's NOTIFY), commits, and then hands the committed events to
//! the publisher. The publisher is the only thing of the real-time layer the services
//! know. A stream whose row the write locked at its start (a project's) has known seqs, so
//! its NOTIFY is queued first and travels with the append: one round trip for both.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::domain::{Event, EventDraft, StreamKey, StreamUpdate};
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
        let appends = vec![(StreamKey::User(user_id), events.to_vec())];
        self.finish(tx, appends, at, (user_id, revoked, Vec::new()))
            .await
    }

    /// Appends to several streams at once (a project's, and the users a change concerns),
    /// commits, and publishes each stream's update.
    pub async fn commit_streams(
        &self,
        tx: Box<dyn StoreTx>,
        appends: Vec<(StreamKey, Vec<EventDraft>)>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.finish(tx, appends, at, (Uuid::nil(), Vec::new(), Vec::new()))
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
        self.finish(tx, Vec::new(), at, (user_id, Vec::new(), vec![old]))
            .await
    }

    /// `tokens`: the user whose tokens the write `(revoked, rotated)`.
    async fn finish(
        &self,
        mut tx: Box<dyn StoreTx>,
        appends: Vec<(StreamKey, Vec<EventDraft>)>,
        at: DateTime<Utc>,
        tokens: (Uuid, Vec<Uuid>, Vec<Uuid>),
    ) -> Result<()> {
        // Streams are appended in one order (projects, then users, each by id), so that
        // two writes touching the same users' streams (whose rows the appends lock) cannot
        // wait for each other; their NOTIFYs go in that order too. A stream named twice
        // gets one append with both.
        let mut streams: Vec<(StreamKey, Vec<EventDraft>)> = Vec::with_capacity(appends.len());
        for (stream, drafts) in appends {
            match streams.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, all)) => all.extend(drafts),
                None => streams.push((stream, drafts)),
            }
        }
        streams.retain(|(_, drafts)| !drafts.is_empty());
        streams.sort_by_key(|(stream, _)| lock_order(*stream));
        let (user_id, revoked, rotated) = tokens;
        let mut tokens = Some((StreamKey::User(user_id), revoked, rotated))
            .filter(|(_, revoked, rotated)| !revoked.is_empty() || !rotated.is_empty());
        let mut updates: Vec<StreamUpdate> = Vec::with_capacity(streams.len() + 1);
        for (stream, drafts) in streams {
            // A stream whose row the write locked first (a project's) has known seqs:
            // the update is announced (PostgreSQL's NOTIFY) in the append's own round
            // trip. Otherwise the append takes the seqs, then the update is announced.
            let known = tx.latest_seq(stream);
            let first = match known {
                Some(latest) => latest + 1,
                None => tx.append_events(stream, &drafts, at).await?,
            };
            let events = Event::appended(stream, first, &drafts, at);
            let last_seq = events.last().map_or(0, |e| e.seq);
            let mut update = StreamUpdate {
                events,
                ..StreamUpdate::position(stream, last_seq)
            };
            if let Some((_, revoked, rotated)) = tokens.take_if(|(s, _, _)| *s == stream) {
                update.revoked = revoked;
                update.rotated = rotated;
            }
            self.publisher.before_commit(tx.as_mut(), &update).await?;
            if known.is_some() {
                tx.append_events(stream, &drafts, at).await?;
            }
            updates.push(update);
        }
        // Tokens stopped by a write without events of their user.
        if let Some((stream, revoked, rotated)) = tokens {
            let update = StreamUpdate {
                revoked,
                rotated,
                ..StreamUpdate::position(stream, 0)
            };
            self.publisher.before_commit(tx.as_mut(), &update).await?;
            updates.push(update);
        }
        let enqueued = tx.enqueued_deliveries();
        tx.commit().await?;
        if !updates.is_empty() {
            metrics::histogram!(crate::metrics::WRITE_TRANSACTION)
                .record(crate::metrics::seconds_since(at));
        }
        if enqueued {
            self.deliveries.notify_one();
        }
        for event in updates.iter().flat_map(|u| &u.events) {
            metrics::counter!(crate::metrics::EVENTS, "type" => event.kind.as_str()).increment(1);
        }
        for update in updates {
            self.authenticator.forget(&update.revoked);
            self.authenticator.forget(&update.rotated);
            self.publisher.publish(update);
        }
        Ok(())
    }
}

/// Projects before users, each by id.
fn lock_order(stream: StreamKey) -> (u8, Uuid) {
    match stream {
        StreamKey::Project(id) => (0, id),
        StreamKey::User(id) => (1, id),
    }
}
