//! The write path: one function per use case. Each mutation is one store transaction that
//! changes the rows and adds the notification, so a failure leaves nothing half-done.
//! Handlers stay thin: they parse, call one function here, and shape the response.

pub mod accounts;
pub mod media;
pub mod notifications;
pub mod profile;
pub mod tasks;

use std::sync::Arc;

use crate::auth::{PasswordHasher, TokenIssuer};
use crate::store::Store;

pub use accounts::{AuthSession, Authenticated};
pub use media::MediaStore;

/// Everything a use case needs, shared by every request.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub passwords: PasswordHasher,
    pub tokens: TokenIssuer,
    pub media: MediaStore,
}
