//! The write path: one function per use case. Each mutation is one store transaction that
//! changes the rows, adds the notification and appends the user's events (the outbox the
//! WebSocket clients read), so a failure leaves nothing half-done and no change goes
//! unannounced.
//! Handlers stay thin: they parse, call one function here, and shape the response.

pub mod accounts;
pub mod events;
pub mod media;
pub mod notifications;
pub mod profile;
pub mod tasks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::{PasswordHasher, TokenChecks, TokenIssuer};
use crate::domain::EventDraft;
use crate::error::Result;
use crate::realtime::Realtime;
use crate::store::{Store, StoreTx};

pub use accounts::{AuthSession, Authenticated};
pub use media::MediaStore;

/// Everything a use case needs, shared by every request.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    // Behind `Arc`s: every request and every socket holds a clone of `Services`.
    pub passwords: Arc<PasswordHasher>,
    pub tokens: Arc<TokenIssuer>,
    pub media: Arc<MediaStore>,
    pub realtime: Arc<Realtime>,
    /// Tokens recently found unrevoked (the realtime hub forgets revoked ones).
    pub token_checks: Arc<TokenChecks>,
}

impl Services {
    /// Opens a write transaction, and the time the write happens at: read once the
    /// transaction has begun (on SQLite, once it holds the write lock), so that times
    /// follow commit order.
    pub async fn begin(&self) -> Result<(Box<dyn StoreTx>, DateTime<Utc>)> {
        let tx = self.store.begin().await?;
        Ok((tx, crate::domain::now()))
    }

    /// Appends the write's events to the user's stream in `tx`, commits, and hands the
    /// events to the real-time channel. Every write use case ends here.
    pub async fn commit(
        &self,
        tx: Box<dyn StoreTx>,
        user_id: Uuid,
        events: &[EventDraft],
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.commit_revoking(tx, user_id, events, at, None).await
    }

    /// `commit`, also announcing that the token `revoked` no longer works (logout).
    pub async fn commit_revoking(
        &self,
        mut tx: Box<dyn StoreTx>,
        user_id: Uuid,
        events: &[EventDraft],
        at: DateTime<Utc>,
        revoked: Option<Uuid>,
    ) -> Result<()> {
        let events = tx.append_events(user_id, events, at).await?;
        self.realtime.commit(tx, user_id, events, revoked).await
    }
}
