//! Counters in this process: governor's keyed GCRA limiters, one per limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;

use super::{Decision, Limit, Policy, Quota};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub struct LocalLimits {
    limiters: HashMap<Limit, Keyed>,
    clock: DefaultClock,
    /// Keys whose budget is spent, and until when: governor has no way to ask without
    /// spending, and `peek` must not spend.
    spent_until: DashMap<(Limit, String), Instant>,
}

impl LocalLimits {
    pub fn new(policy: &Policy) -> Self {
        let limiters = Limit::ALL
            .into_iter()
            .filter_map(|limit| {
                let quota = policy.quota(limit)?;
                let burst = NonZeroU32::new(quota.count)?;
                let gcra = governor::Quota::with_period(quota.interval())?.allow_burst(burst);
                Some((
                    limit,
                    RateLimiter::dashmap(gcra).with_middleware::<StateInformationMiddleware>(),
                ))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
            spent_until: DashMap::new(),
        }
    }

    pub fn check(&self, limit: Limit, quota: Quota, key: &str, spend: bool) -> Decision {
        let now = Instant::now();
        let key = key.to_string();
        if !spend {
            let spent = self
                .spent_until
                .get(&(limit, key))
                .map(|until| *until)
                .filter(|until| *until > now);
            return match spent {
                Some(until) => denied(limit, quota, until - now),
                None => Decision {
                    limit,
                    quota,
                    allowed: true,
                    remaining: quota.count,
                    reset: Duration::ZERO,
                    retry_after: Duration::ZERO,
                },
            };
        }
        let Some(limiter) = self.limiters.get(&limit) else {
            return denied(limit, quota, quota.interval());
        };
        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                if remaining == 0 {
                    // The next unit comes back within one interval.
                    self.spent_until
                        .insert((limit, key), now + quota.interval());
                }
                Decision {
                    limit,
                    quota,
                    allowed: true,
                    remaining,
                    reset: quota.interval() * (quota.count - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                self.spent_until.insert((limit, key), now + wait);
                denied(limit, quota, wait)
            }
        }
    }

    pub fn forget_idle(&self) {
        for limiter in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.spent_until.retain(|_, until| *until > now);
    }
}

fn denied(limit: Limit, quota: Quota, wait: Duration) -> Decision {
    Decision {
        limit,
        quota,
        allowed: false,
        remaining: 0,
        reset: quota.period,
        retry_after: wait,
    }
}
