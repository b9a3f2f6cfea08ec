//! Counters in Redis, shared by every instance: GCRA in one Lua script, so a check is
//! one round trip and atomic. The key holds the "theoretical arrival time" of the next
//! unit, in milliseconds of Redis's own clock (instances' clocks never matter), and
//! expires when the budget is whole again.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{Decision, Limit, Quota};

/// A check that takes longer than this counts as Redis being unreachable.
const TIMEOUT: Duration = Duration::from_millis(250);

const GCRA: &str = r#"
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local spend = ARGV[3] == "1"
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call("GET", key) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
if spend then
  redis.call("SET", key, new_tat, "PX", math.max(1, new_tat - now))
else
  new_tat = tat
end
local remaining = math.floor((now - (new_tat - burst * interval)) / interval)
return {1, remaining, 0, new_tat - now}
"#;

pub struct RedisLimits {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
}

impl RedisLimits {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: OnceCell::new(),
            script: redis::Script::new(GCRA),
        })
    }

    pub async fn check(
        &self,
        limit: Limit,
        quota: Quota,
        key: &str,
        spend: bool,
    ) -> anyhow::Result<Decision> {
        let checked = async {
            let mut conn = self
                .connection
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?
                .clone();
            let interval = quota.interval().as_millis().max(1) as u64;
            self.script
                .key(format!("taskstream:rl:{}:{key}", limit.name()))
                .arg(quota.count)
                .arg(interval)
                .arg(if spend { "1" } else { "0" })
                .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                .await
        };
        let (allowed, remaining, retry_ms, reset_ms) = tokio::time::timeout(TIMEOUT, checked)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within {TIMEOUT:?}"))??;
        let millis = |ms: i64| Duration::from_millis(ms.max(0) as u64);
        Ok(Decision {
            limit,
            quota,
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(quota.count)) as u32,
            reset: millis(reset_ms),
            retry_after: millis(retry_ms),
        })
    }
}
