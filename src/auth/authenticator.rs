//! The one place a bearer token becomes a user, for HTTP requests and sockets alike.

use std::sync::Arc;

use uuid::Uuid;

use super::{Claims, TokenChecks, TokenIssuer};
use crate::error::{Error, Result};
use crate::store::{Store, TokenState};

/// A user who presented a valid, unrevoked token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub claims: Claims,
}

/// Verifies a token's signature and expiry, then that its session is open and still
/// accepts this token (asking the store unless the token was found usable a moment ago).
pub struct Authenticator {
    tokens: Arc<TokenIssuer>,
    checks: TokenChecks,
    store: Arc<dyn Store>,
}

impl Authenticator {
    pub fn new(tokens: Arc<TokenIssuer>, checks: TokenChecks, store: Arc<dyn Store>) -> Self {
        Self {
            tokens,
            checks,
            store,
        }
    }

    pub async fn authenticate(&self, token: &str) -> Result<Authenticated> {
        let claims = self.tokens.verify(token)?;
        if !self.checks.is_known_good(claims.jti, claims.sub) {
            let started = self.checks.start_check();
            match self.session_state(&claims).await? {
                TokenState::Usable => self.checks.remember(claims.jti, claims.sub, started),
                TokenState::Revoked | TokenState::UserGone => return Err(Error::InvalidToken),
            }
        }
        Ok(Authenticated {
            user_id: claims.sub,
            claims,
        })
    }

    /// Asks the store, never the memory of recent checks: for a socket re-checking the
    /// token it was opened with.
    pub async fn token_state(&self, claims: &Claims) -> Result<TokenState> {
        self.session_state(claims).await
    }

    async fn session_state(&self, claims: &Claims) -> Result<TokenState> {
        Ok(match self.store.session(claims.sid).await? {
            Some(session) => session.token_state(claims.sub, claims.jti),
            None => TokenState::UserGone,
        })
    }

    /// Whether the token's session is still open (whatever its current token): a socket
    /// whose token was replaced by a refresh may still move to the new one.
    pub async fn session_open(&self, claims: &Claims) -> Result<bool> {
        Ok(self
            .store
            .session(claims.sid)
            .await?
            .is_some_and(|s| s.user_id == claims.sub && s.ended_at.is_none()))
    }

    /// Tokens stopped working (sessions ended or refreshed, here or on another instance
    /// as the bus tells).
    pub fn forget(&self, jtis: &[Uuid]) {
        for jti in jtis {
            self.checks.forget(*jti);
        }
    }

    /// Revocations may have been missed (a bus reconnected).
    pub fn forget_all(&self) {
        self.checks.forget_all();
    }
}
