use std::time::Duration;

use common::redis_link::{Link, Target, Timeouts};
use common::{Error, Result};
use redis::Script;

use super::{Budget, DailyDecision, Limiter, Month, Observed, RateDecision, WINDOW_MS, day_of, decide};

/// Trim the window, read both counters, and take from both or neither: one atomic script per
/// decision, on Redis's own clock so that every replica agrees on time. The sorted set holds at
/// most `limit` members (120 on the largest plan), small enough for Redis's compact listpack
/// encoding. The month is named by the caller; its counter expires a day after the month, a
/// time set when the counter is made. An admitted request reads and counts the month in one
/// `INCR` (given back by `DECR` when the month turns out spent): each command a script calls
/// costs Redis about a microsecond of the script's 12 or so (README, "Benchmarks"). A refusal
/// by the month thus writes twice, but gateways repeat a refusal until its reset without asking.
pub const DECIDE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_minute = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_month = tonumber(ARGV[3])
local take = ARGV[5] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local oldest = nil
if count > 0 then oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] end
local used
local slot = ''
if take and count < per_minute then
  used = redis.call('INCR', KEYS[2]) - 1
  if used == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[6]) end
  if used < per_month then
    slot = now .. '-' .. ARGV[4]
    redis.call('ZADD', KEYS[1], now, slot)
    redis.call('PEXPIRE', KEYS[1], window)
  else
    redis.call('DECR', KEYS[2])
  end
else
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
end
return {count, oldest and tonumber(oldest) or -1, used, now, slot}
";

/// Gives back a slot: it leaves the window and the month's count.
const RELEASE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used > 0 then redis.call('DECR', KEYS[2]) end
end
return 1
";

/// Counts a daily call if the day has some left; the counter expires with a day's margin.
const DAILY: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used < tonumber(ARGV[1]) then
  used = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, used}
end
return {0, used}
";

/// Records a replica as alive and counts those seen in the last ten seconds.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10000)
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
";

/// Sliding-window logs and monthly counters in Redis, shared by every replica. A decision's keys
/// (the key's window, its user's month) carry the user as hash tag, so that on a Redis Cluster
/// they share a slot and the script stays one atomic step on one node.
pub struct RedisLimiter {
    conn: Link,
    decide: Script,
    release: Script,
    heartbeat: Script,
    daily: Script,
    prefix: String,
}

impl RedisLimiter {
    /// Connects lazily: the process starts without Redis, and decisions fail with
    /// SERVICE_UNAVAILABLE until it is reachable.
    /// `timeout` bounds every call; past it the decision is made without Redis.
    pub fn new(target: &Target, prefix: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        let timeouts = Timeouts { connect: timeout, response: timeout, retries: 1 };
        Ok(RedisLimiter {
            conn: Link::open(target, timeouts)?,
            decide: Script::new(DECIDE_SCRIPT),
            release: Script::new(RELEASE),
            heartbeat: Script::new(HEARTBEAT),
            daily: Script::new(DAILY),
            prefix: prefix.to_owned(),
        })
    }

    /// Counts the policy replicas alive, this one included.
    pub async fn heartbeat(&self, replica: &str) -> Result<u32> {
        let mut conn = self.conn.clone();
        self.heartbeat
            .key(format!("{}replicas", self.prefix))
            .arg(replica)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    fn keys(&self, budget: &Budget<'_>, month: Month) -> (String, String) {
        let tag = format!("{{{}}}", budget.user);
        (format!("{}rl:{tag}:{}", self.prefix, budget.key), format!("{}mq:{tag}:{month}", self.prefix))
    }

    #[tracing::instrument(name = "redis.evalsha", skip_all, fields(otel.kind = "client", db.system = "redis", db.operation.name = "EVALSHA"))]
    async fn run(&self, budget: &Budget<'_>, take: bool) -> Result<RateDecision> {
        let month = Month::of(common::time::now_ms());
        let month_reset = month.next_start_ms();
        let (window_key, month_key) = self.keys(budget, month);
        let mut conn = self.conn.clone();
        let nonce: u64 = rand::random();
        // The month counter outlives its month by a day, for clocks that disagree a little.
        let month_ttl_ms = (month_reset - common::time::now_ms()).max(0) + 86_400_000;
        let (count, oldest, used, now, slot): (u32, i64, u64, i64, String) = self
            .decide
            .key(window_key)
            .key(month_key)
            .arg(budget.per_minute)
            .arg(WINDOW_MS)
            .arg(budget.per_month)
            .arg(nonce)
            .arg(if take { "1" } else { "0" })
            .arg(month_ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let seen = Observed { count, oldest: (oldest >= 0).then_some(oldest), month_used: used, now };
        let mut decision = decide(&seen, budget, take);
        decision.slot = (!slot.is_empty()).then_some(slot);
        Ok(decision)
    }
}

fn unavailable(e: redis::RedisError) -> Error {
    tracing::warn!(error = %e, "rate-limit decision failed");
    Error::unavailable("the rate limiter")
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        self.run(budget, true).await
    }

    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        self.run(budget, false).await
    }

    async fn take_daily(&self, user: &str, per_day: u32) -> Result<DailyDecision> {
        let now = common::time::now_ms();
        let (day, reset_at_ms) = day_of(now);
        let mut conn = self.conn.clone();
        let (allowed, used): (u32, u32) = self
            .daily
            .key(format!("{}mcp:{user}:{day}", self.prefix))
            .arg(per_day)
            .arg(reset_at_ms - now + 86_400_000)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(DailyDecision { allowed: allowed == 1, used, limit: per_day, reset_at_ms })
    }

    async fn release(&self, budget: &Budget<'_>, slot: &str) -> Result<()> {
        // The slot is "<ms>-<nonce>": its month is the one it was taken in.
        let at: i64 = slot.split('-').next().and_then(|ms| ms.parse().ok()).unwrap_or_default();
        let (window_key, month_key) = self.keys(budget, Month::of(at));
        let mut conn = self.conn.clone();
        self.release
            .key(window_key)
            .key(month_key)
            .arg(slot)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
