use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cpu::CpuPool;
use crate::domain::Password;
use crate::error::{Error, Result};
use crate::metrics;

pub use crate::config::{HashBounds, PasswordParams};

/// Hashes and verifies passwords on the blocking thread pool, so a burst of sign-ins never
/// stalls the async runtime, and bounds them: each argon2 run holds a core and its memory
/// cost, so a flood of sign-ins would otherwise starve every other request and grow memory
/// without limit.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Verified against when the e-mail is unknown, so that an unknown account and a wrong
    /// password take the same time.
    dummy_hash: String,
    /// One permit per run or queue place: when none is left the request is refused at
    /// once instead of queued.
    admitted: Arc<Semaphore>,
    /// One permit per run allowed at once.
    running: Arc<Semaphore>,
    /// argon2 computations done, dummy verifications included.
    runs: Arc<AtomicU64>,
    /// Where the computations run, below every request's priority.
    cpu: Arc<CpuPool>,
}

impl PasswordHasher {
    pub fn new(
        params: PasswordParams,
        bounds: HashBounds,
        cpu: Arc<CpuPool>,
    ) -> anyhow::Result<Self> {
        let params = Params::new(params.memory_kib, params.iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let dummy_hash = hash_with(&params, "taskstream-dummy-password")?;
        let concurrency = bounds.concurrency.max(1);
        Ok(Self {
            params,
            dummy_hash,
            admitted: Arc::new(Semaphore::new(concurrency.saturating_add(bounds.queue))),
            running: Arc::new(Semaphore::new(concurrency)),
            runs: Arc::new(AtomicU64::new(0)),
            cpu,
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    /// How many argon2 computations this hasher has run.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// A place among the runs and the queue, or a refusal at once (503) when every slot
    /// and queue place is taken. Taken before anything else a sign-in does, so a flood
    /// the hasher refuses costs no database read.
    pub fn admit(&self) -> Result<Admission> {
        match self.admitted.clone().try_acquire_owned() {
            Ok(place) => Ok(Admission(place)),
            Err(_) => {
                ::metrics::counter!(metrics::PASSWORD_HASH_REJECTED).increment(1);
                Err(Error::Unavailable(
                    "Too many sign-ins and sign-ups at once; try again shortly".into(),
                ))
            }
        }
    }

    /// Runs `work` on the CPU pool once a slot is free. The permits move into the job, so
    /// a request that gives up early (timeout, disconnect) still holds its slot until the
    /// computation it started ends.
    async fn run<T: Send + 'static>(
        &self,
        Admission(place): Admission,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let slot = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("password hashing closed: {e}")))?;
        let runs = self.runs.clone();
        self.cpu
            .run(move || {
                let _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit) = (place, slot);
                let gauge = ::metrics::gauge!(metrics::PASSWORD_HASHES_IN_FLIGHT);
                gauge.increment(1.0);
                runs.fetch_add(1, Ordering::Relaxed);
                let result = work();
                gauge.decrement(1.0);
                result
            })
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("password hashing failed: {e}")))
    }

    pub async fn hash(&self, password: &Password) -> Result<String> {
        let params = self.params.clone();
        let password = password.expose().to_string();
        let admission = self.admit()?;
        Ok(self
            .run(admission, move || hash_with(&params, &password))
            .await??)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// account: the same argon2 work either way, so the answer's timing does not tell
    /// whether the account exists. Returns whether it matched and whether the stored hash
    /// should be replaced because its parameters are outdated.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verification> {
        self.verify_admitted(self.admit()?, password, stored).await
    }

    /// [`Self::verify`] in a place taken earlier with [`Self::admit`].
    pub async fn verify_admitted(
        &self,
        admission: Admission,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<Verification> {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_string();
        let password = password.expose().to_string();
        let params = self.params.clone();
        self.run(admission, move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Verification::default();
            };
            // Always verified, then `known` applied: short-circuiting would skip the work
            // for unknown e-mails.
            let correct = Self::argon2(&params)
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            let matched = known && correct;
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
    }
}

/// A place in the hasher's runs or queue, held until the computation it is used for ends.
#[derive(Debug)]
pub struct Admission(OwnedSemaphorePermit);

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

    const BOUNDS: HashBounds = HashBounds {
        concurrency: 2,
        queue: 8,
    };

    fn hasher(memory_kib: u32, bounds: HashBounds) -> PasswordHasher {
        PasswordHasher::new(
            PasswordParams {
                memory_kib,
                iterations: 1,
            },
            bounds,
            Arc::new(CpuPool::new(2).expect("pool")),
        )
        .expect("valid parameters")
    }

    #[tokio::test]
    async fn an_unknown_account_costs_one_verification_like_a_known_one() {
        let hasher = hasher(64, BOUNDS);
        let hash = hasher.hash(&password("Secret-Pass1")).await.unwrap();
        let before = hasher.runs();
        let unknown = hasher
            .verify(&password("Secret-Pass1"), None)
            .await
            .unwrap();
        assert!(!unknown.matched);
        assert_eq!(hasher.runs(), before + 1, "the dummy hash was verified");
        let wrong = hasher
            .verify(&password("Wrong-Pass1"), Some(&hash))
            .await
            .unwrap();
        assert!(!wrong.matched);
        assert_eq!(hasher.runs(), before + 2);
        // The dummy password itself never signs anyone in.
        let dummy = hasher
            .verify(&password("taskstream-dummy-password"), None)
            .await
            .unwrap();
        assert!(!dummy.matched);
    }

    #[tokio::test]
    async fn work_beyond_the_slots_and_queue_is_refused_at_once() {
        let hasher = hasher(
            64,
            HashBounds {
                concurrency: 1,
                queue: 0,
            },
        );
        // Stands for a sign-in in progress: the only place is taken.
        let held = hasher.admitted.clone().try_acquire_owned().unwrap();
        let refused = hasher.verify(&password("Secret-Pass1"), None).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        let refused = hasher.hash(&password("Secret-Pass1")).await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        assert_eq!(hasher.runs(), 0, "nothing was queued or run");
        drop(held);
        assert!(hasher.hash(&password("Secret-Pass1")).await.is_ok());
    }

    #[tokio::test]
    async fn verifies_and_detects_outdated_parameters() {
        let old = hasher(64, BOUNDS);
        let new = hasher(128, BOUNDS);
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
