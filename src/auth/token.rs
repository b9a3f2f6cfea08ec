use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Secret;
use crate::error::Error;

/// The claims of a taskstream token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Token id: only the session's current one is accepted.
    pub jti: Uuid,
    /// The session the token belongs to. Required: tokens from before sessions existed
    /// have none and are invalid.
    pub sid: Uuid,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
    /// The true lifetime in seconds.
    pub expires_in: i64,
}

/// Signs and verifies HS256 tokens. Only HS256 is accepted: `alg: none` or any other
/// algorithm, a bad signature, a missing `exp` or an expired token are all invalid.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: chrono::Duration,
    session_max_age: chrono::Duration,
}

impl TokenIssuer {
    /// Tokens live `ttl`, and never beyond their session's `session_max_age`.
    pub fn new(
        secret: &Secret,
        ttl: std::time::Duration,
        session_max_age: std::time::Duration,
    ) -> anyhow::Result<Self> {
        if secret.expose().len() < 32 {
            anyhow::bail!("JWT secret must be at least 32 bytes long");
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        validation.leeway = 0;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl: chrono::Duration::from_std(ttl)?,
            session_max_age: chrono::Duration::from_std(session_max_age)?,
        })
    }

    /// The absolute lifetime of a session, from sign-in.
    pub fn session_max_age(&self) -> chrono::Duration {
        self.session_max_age
    }

    /// A new token of session `sid`, living no longer than the session (`not_after`).
    pub fn issue(
        &self,
        user_id: Uuid,
        sid: Uuid,
        not_after: DateTime<Utc>,
    ) -> Result<IssuedToken, Error> {
        let now = Utc::now().timestamp();
        let exp = (now + self.ttl.num_seconds()).min(not_after.timestamp());
        let expires_in = exp - now;
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp,
            jti: Uuid::new_v4(),
            sid,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(anyhow::anyhow!("signing token: {e}")))?;
        Ok(IssuedToken {
            token,
            claims,
            expires_in,
        })
    }

    /// The claims of a well-formed, correctly signed, unexpired token; revocation is
    /// checked against the store by the caller.
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| Error::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            &Secret::new("x".repeat(40)),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(3600),
        )
        .unwrap()
    }

    #[test]
    fn round_trips() {
        let issuer = issuer();
        let user = Uuid::new_v4();
        let issued = issuer
            .issue(user, Uuid::new_v4(), DateTime::<Utc>::MAX_UTC)
            .unwrap();
        assert_eq!(issued.expires_in, 60);
        let claims = issuer.verify(&issued.token).unwrap();
        assert_eq!(claims.sub, user);
        assert_eq!(claims, issued.claims);
    }

    #[test]
    fn refuses_other_keys_and_tampering() {
        let issued = issuer()
            .issue(Uuid::new_v4(), Uuid::new_v4(), DateTime::<Utc>::MAX_UTC)
            .unwrap();
        let other = TokenIssuer::new(
            &Secret::new("y".repeat(40)),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        assert!(matches!(
            other.verify(&issued.token),
            Err(Error::InvalidToken)
        ));
        let mut tampered = issued.token.clone();
        tampered.push('x');
        assert!(matches!(
            issuer().verify(&tampered),
            Err(Error::InvalidToken)
        ));
        assert!(matches!(issuer().verify(""), Err(Error::InvalidToken)));
    }

    #[test]
    fn tokens_end_with_their_session_and_need_a_session_id() {
        let issuer = issuer();
        let soon = Utc::now() + chrono::Duration::seconds(10);
        let issued = issuer.issue(Uuid::new_v4(), Uuid::new_v4(), soon).unwrap();
        assert!(issued.expires_in <= 10);
        assert_eq!(issued.claims.exp, soon.timestamp());
        // A token from before sessions (no `sid`) is refused.
        #[derive(Serialize)]
        struct Old {
            sub: Uuid,
            iat: i64,
            exp: i64,
            jti: Uuid,
        }
        let now = Utc::now().timestamp();
        let old = Old {
            sub: Uuid::new_v4(),
            iat: now,
            exp: now + 60,
            jti: Uuid::new_v4(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &old,
            &EncodingKey::from_secret("x".repeat(40).as_bytes()),
        )
        .unwrap();
        assert!(matches!(issuer.verify(&token), Err(Error::InvalidToken)));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenIssuer::new(
            &Secret::new("short"),
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(3600)
        )
        .is_err());
    }
}
