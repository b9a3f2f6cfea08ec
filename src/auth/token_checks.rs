//! Remembers, briefly, that a token's `jti` was found unrevoked, so that a client making
//! many requests does not cost a database round trip on each one.
//!
//! A revocation (logout) makes every instance forget the token: the revoking instance when
//! it commits, the others when the bus brings the write's message (which names the revoked
//! token), and all of them forget everything whenever their bus reconnects (it may have
//! dropped a revocation meanwhile). So a revoked token stops working at once where it was
//! revoked, within the bus's latency elsewhere, and, if a bus silently lost the message,
//! within the time to live at worst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// At most this many tokens are remembered; past it, expired ones are dropped first and
/// new ones are not remembered until there is room again.
const MAX_ENTRIES: usize = 100_000;

pub struct TokenChecks {
    ttl: Duration,
    checked: DashMap<Uuid, Checked>,
    /// Bumped by every forget: a check that started before a revocation arrived must not
    /// be remembered after it (it may have read the row just before the revocation).
    generation: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Checked {
    user_id: Uuid,
    until: Instant,
}

/// Taken before a database check, handed back to [`TokenChecks::remember`].
#[derive(Debug, Clone, Copy)]
pub struct CheckStarted(u64);

impl TokenChecks {
    /// `ttl` zero remembers nothing: every request checks the database.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            checked: DashMap::new(),
            generation: AtomicU64::new(0),
        }
    }

    /// Whether `jti` of `user_id` was found unrevoked less than the time to live ago.
    pub fn is_known_good(&self, jti: Uuid, user_id: Uuid) -> bool {
        self.checked
            .get(&jti)
            .is_some_and(|c| c.user_id == user_id && c.until > Instant::now())
    }

    pub fn start_check(&self) -> CheckStarted {
        CheckStarted(self.generation.load(Ordering::Acquire))
    }

    /// Remembers a token the database said was usable, unless something was forgotten
    /// since the check started.
    pub fn remember(&self, jti: Uuid, user_id: Uuid, started: CheckStarted) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.checked.len() >= MAX_ENTRIES {
            self.checked.retain(|_, c| c.until > now);
            if self.checked.len() >= MAX_ENTRIES {
                return;
            }
        }
        let until = now + self.ttl;
        self.checked.insert(jti, Checked { user_id, until });
        // A forget that ran between the check and the insert: undo, it may concern `jti`.
        if self.generation.load(Ordering::Acquire) != started.0 {
            self.checked.remove(&jti);
        }
    }

    /// A token was revoked.
    pub fn forget(&self, jti: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.checked.remove(&jti);
    }

    /// Revocations may have been missed (a bus reconnected).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.checked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_token_is_known_good_for_its_user_only() {
        let checks = TokenChecks::new(Duration::from_secs(60));
        let (jti, user, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(!checks.is_known_good(jti, user));
        checks.remember(jti, user, checks.start_check());
        assert!(checks.is_known_good(jti, user));
        assert!(!checks.is_known_good(jti, other));
    }

    #[test]
    fn forgetting_wins_over_a_check_that_started_before_it() {
        let checks = TokenChecks::new(Duration::from_secs(60));
        let (jti, user) = (Uuid::new_v4(), Uuid::new_v4());
        let started = checks.start_check();
        checks.forget(jti);
        checks.remember(jti, user, started);
        assert!(!checks.is_known_good(jti, user));

        checks.remember(jti, user, checks.start_check());
        checks.forget_all();
        assert!(!checks.is_known_good(jti, user));
    }

    #[test]
    fn zero_ttl_remembers_nothing_and_entries_expire() {
        let off = TokenChecks::new(Duration::ZERO);
        let (jti, user) = (Uuid::new_v4(), Uuid::new_v4());
        off.remember(jti, user, off.start_check());
        assert!(!off.is_known_good(jti, user));

        let short = TokenChecks::new(Duration::from_millis(1));
        short.remember(jti, user, short.start_check());
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.is_known_good(jti, user));
    }
}
