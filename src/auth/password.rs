use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

use crate::domain::Password;

pub use crate::config::PasswordParams;

/// Hashes and verifies passwords on the blocking thread pool, so a burst of sign-ins never
/// stalls the async runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Verified against when the e-mail is unknown, so that an unknown account and a wrong
    /// password take the same time.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(params: PasswordParams) -> anyhow::Result<Self> {
        let params = Params::new(params.memory_kib, params.iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, "taskstream-dummy-password")?;
        Ok(Self { params, dummy_hash })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.expose().to_string();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .context("password hashing task failed")?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// account, taking the same time either way. Returns whether it matched and whether
    /// the stored hash should be replaced because its parameters are outdated.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> anyhow::Result<Verification> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_string();
        let password = password.expose().to_string();
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Verification::default();
            };
            let matched = known
                && Self::argon2(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
            let outdated = parsed.algorithm != Algorithm::Argon2id.ident()
                || Params::try_from(&parsed).map_or(true, |p| {
                    p.m_cost() != params.m_cost()
                        || p.t_cost() != params.t_cost()
                        || p.p_cost() != params.p_cost()
                });
            Verification {
                matched,
                needs_rehash: matched && outdated,
            }
        })
        .await
        .context("password verification task failed")
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matched: bool,
    pub needs_rehash: bool,
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    PasswordHasher::argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(s: &str) -> Password {
        Password::for_sign_in(s.to_string()).expect("valid password")
    }

    #[tokio::test]
    async fn verifies_and_detects_outdated_parameters() {
        let old = PasswordHasher::new(PasswordParams {
            memory_kib: 64,
            iterations: 1,
        })
        .unwrap();
        let new = PasswordHasher::new(PasswordParams {
            memory_kib: 128,
            iterations: 1,
        })
        .unwrap();
        let hash = old.hash(&password("Secret-Pass1")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));

        let same = old
            .verify(&password("Secret-Pass1"), Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            same,
            Verification {
                matched: true,
                needs_rehash: false
            }
        );
        let upgraded = new
            .verify(&password("Secret-Pass1"), Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            upgraded,
            Verification {
                matched: true,
                needs_rehash: true
            }
        );
        let wrong = old
            .verify(&password("Wrong-Pass1"), Some(&hash))
            .await
            .unwrap();
        assert!(!wrong.matched);
        let unknown = old.verify(&password("Secret-Pass1"), None).await.unwrap();
        assert!(!unknown.matched);
    }
}
