//! The write path: one function per use case. Each mutation is one store transaction that
//! changes the rows, adds the notification and appends the user's events (the outbox the
//! WebSocket clients read), so a failure leaves nothing half-done and no change goes
//! unannounced.
//! Handlers stay thin: they parse, call one function here, and shape the response.

pub mod accounts;
pub mod commit;
pub mod contact;
pub mod events;
pub mod media;
pub mod notifications;
pub mod profile;
pub mod projects;
pub mod push;
pub mod reminders;
pub mod tasks;

use std::sync::Arc;

use crate::auth::{Authenticator, PasswordHasher, TokenIssuer};
use crate::config::QuotaSettings;
use crate::limits::RateLimiter;
use crate::store::Store;

pub use accounts::AuthSession;
pub use commit::{Publisher, WriteFunnel};
pub use media::MediaStore;

/// Everything a use case needs, shared by every request.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    // Behind `Arc`s: every request holds a clone of `Services`.
    pub passwords: Arc<PasswordHasher>,
    pub tokens: Arc<TokenIssuer>,
    pub authenticator: Arc<Authenticator>,
    pub media: Arc<MediaStore>,
    pub limits: Arc<RateLimiter>,
    /// Where every write transaction begins and commits.
    pub writes: Arc<WriteFunnel>,
    /// How much each account may hold.
    pub quotas: QuotaSettings,
    /// How long before a due date its `TASK_DUE_SOON` reminder fires.
    pub reminder_lead: chrono::Duration,
    /// Where contact-form messages are mailed (none: they are only stored).
    pub contact_email: Option<String>,
    /// The VAPID public key browsers subscribe with.
    pub push_public_key: Arc<str>,
    /// Whether `http://` (and local) push endpoints are accepted: tests only.
    pub push_allow_http: bool,
}
