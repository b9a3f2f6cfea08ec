//! Rate limiting: one [`RateLimiter`] answers "may this key spend one unit of this
//! limit's budget now?".
//!
//! With Redis configured the counters live in Redis (one Lua script, one round trip per
//! check), so every instance shares them; without it, or while Redis cannot be reached,
//! they live in this process (governor's GCRA). An unreachable Redis never stops the API:
//! it falls back to the local counters, says so once in the log, counts it in a metric,
//! and tries Redis again a few seconds later.

mod local;
mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::config::{Limit, Policy, Quota};

use self::local::LocalLimits;
use self::redis::RedisLimits;

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub limit: Limit,
    pub quota: Quota,
    pub allowed: bool,
    /// Units left after this one.
    pub remaining: u32,
    /// Until the whole budget is back.
    pub reset: Duration,
    /// Until the next unit is available (zero when allowed).
    pub retry_after: Duration,
}

/// After Redis fails, how long the local counters are used before Redis is tried again.
const REDIS_RETRY: Duration = Duration::from_secs(5);

pub struct RateLimiter {
    policy: Policy,
    local: LocalLimits,
    redis: Option<RedisLimits>,
    /// Milliseconds since `started` before which Redis is not tried again.
    redis_down_until: AtomicU64,
    /// Whether the current Redis outage has been logged.
    outage_logged: AtomicBool,
    started: Instant,
}

impl RateLimiter {
    /// `redis_url`: share the counters through this Redis.
    pub fn new(policy: Policy, redis_url: Option<&str>) -> anyhow::Result<Self> {
        let redis = match (&policy, redis_url) {
            (Policy::On(_), Some(url)) => Some(RedisLimits::new(url)?),
            _ => None,
        };
        Ok(Self {
            local: LocalLimits::new(&policy),
            policy,
            redis,
            redis_down_until: AtomicU64::new(0),
            outage_logged: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    pub fn is_off(&self) -> bool {
        self.policy == Policy::Off
    }

    /// Spends one unit of `limit` for `key`; `None` when limits are off.
    pub async fn hit(&self, limit: Limit, key: &str) -> Option<Decision> {
        self.check(limit, key, true).await
    }

    /// Whether a unit of `limit` is available for `key`, without spending it (a sign-in
    /// checks its e-mail's budget of failures before it knows whether this one fails).
    pub async fn peek(&self, limit: Limit, key: &str) -> Option<Decision> {
        self.check(limit, key, false).await
    }

    async fn check(&self, limit: Limit, key: &str, spend: bool) -> Option<Decision> {
        let quota = self.policy.quota(limit)?;
        let decision = match self.shared() {
            Some(redis) => match redis.check(limit, quota, key, spend).await {
                Ok(decision) => {
                    if self.outage_logged.swap(false, Ordering::Relaxed) {
                        tracing::info!("rate limits: Redis is back; counters are shared again");
                    }
                    decision
                }
                Err(err) => {
                    self.redis_failed(&err);
                    self.local.check(limit, quota, key, spend)
                }
            },
            None => self.local.check(limit, quota, key, spend),
        };
        if !decision.allowed && spend {
            metrics::counter!(crate::metrics::RATE_LIMITED, "limit" => limit.name()).increment(1);
        }
        Some(decision)
    }

    /// Redis, unless there is none or it failed a moment ago.
    fn shared(&self) -> Option<&RedisLimits> {
        let redis = self.redis.as_ref()?;
        let now = self.started.elapsed().as_millis() as u64;
        (now >= self.redis_down_until.load(Ordering::Relaxed)).then_some(redis)
    }

    fn redis_failed(&self, err: &anyhow::Error) {
        let retry_at = (self.started.elapsed() + REDIS_RETRY).as_millis() as u64;
        self.redis_down_until.store(retry_at, Ordering::Relaxed);
        metrics::counter!(crate::metrics::RATE_LIMIT_FALLBACKS).increment(1);
        if !self.outage_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %err, "rate limits: Redis unreachable; counting per instance until it is back");
        }
    }

    /// Drops local counters that have fully recovered (call periodically: keys are client
    /// controlled, so the map must not keep what no longer matters).
    pub fn forget_idle(&self) {
        self.local.forget_idle();
    }
}

impl RateLimiter {
    /// Spends one unit of `limit` for `key`, or refuses with 429 `RATE_LIMITED`. The
    /// decision is kept for the response's `RateLimit-*` headers (see [`scope`]).
    pub async fn enforce(&self, limit: Limit, key: &str) -> crate::error::Result<()> {
        match self.hit(limit, key).await {
            Some(decision) => check(decision),
            None => Ok(()),
        }
    }

    /// Refuses with 429 when `limit` is spent for `key`, without spending anything.
    pub async fn ensure_available(&self, limit: Limit, key: &str) -> crate::error::Result<()> {
        match self.peek(limit, key).await {
            Some(decision) => check(decision),
            None => Ok(()),
        }
    }
}

fn check(decision: Decision) -> crate::error::Result<()> {
    record(&decision);
    if decision.allowed {
        return Ok(());
    }
    Err(crate::error::Error::RateLimited {
        limit: decision.quota.count,
        reset: decision.reset,
        retry_after: decision.retry_after,
    })
}

tokio::task_local! {
    /// The tightest decision of the request being served (HTTP middleware scope).
    static TIGHTEST: std::cell::RefCell<Option<Decision>>;
}

/// Keeps `decision` for the current request's headers if it is the tightest so far.
fn record(decision: &Decision) {
    let _ = TIGHTEST.try_with(|tightest| {
        let mut tightest = tightest.borrow_mut();
        if tightest
            .as_ref()
            .is_none_or(|t| decision.remaining < t.remaining)
        {
            *tightest = Some(decision.clone());
        }
    });
}

/// Runs one request, returning what it produced and the tightest limit it checked.
pub async fn scope<F: std::future::Future>(request: F) -> (F::Output, Option<Decision>) {
    TIGHTEST
        .scope(std::cell::RefCell::new(None), async move {
            let output = request.await;
            let tightest = TIGHTEST.with(|t| t.borrow_mut().take());
            (output, tightest)
        })
        .await
}
