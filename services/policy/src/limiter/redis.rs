use std::time::Duration;

use common::redis_link::{Link, Target, Timeouts};
use common::{Error, Result};
use redis::Script;

use super::{Budget, DailyDecision, Limiter, Month, Observed, RateDecision, WINDOW_MS, day_of, decide, decide_in_turn};

/// Trim the window, read both counters, and take from both or neither: one atomic script per
/// decision (or per batch of one budget's decisions, below), on Redis's own clock so that every
/// replica agrees on time. The sorted set holds at most `limit` members (120 on the largest
/// plan), small enough for Redis's compact listpack encoding. The month is named by the caller;
/// its counter expires a day after the month, a time set when the counter is made. Admitted requests read and count the month in one
/// `INCRBY` (the excess given back by `DECRBY` when the month turns out spent): each command a
/// script calls costs Redis about a microsecond of the script's 12 or so (README,
/// "Benchmarks"). A refusal by the month thus writes twice, but gateways repeat a refusal until
/// its reset without asking.
///
/// One call decides `ARGV[4]` requests of the budget, as that many calls one after another
/// would: the first ones take while both the window and the month have room, each with its own
/// slot named by one of the nonces that follow. Zero takes nothing (a peek). The answer holds
/// the counts before this call's requests, Redis's time and the slots taken.
pub const DECIDE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_minute = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_month = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local oldest = -1
if count > 0 then oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) end
local room = math.min(wanted, per_minute - count)
local used
local slots = {}
if room > 0 then
  used = redis.call('INCRBY', KEYS[2], room) - room
  if used == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
  local granted = math.max(0, math.min(room, per_month - used))
  if granted < room then redis.call('DECRBY', KEYS[2], room - granted) end
  if granted > 0 then
    local members = {}
    for i = 1, granted do
      slots[i] = now .. '-' .. ARGV[5 + i]
      members[2 * i - 1] = now
      members[2 * i] = slots[i]
    end
    redis.call('ZADD', KEYS[1], unpack(members))
    redis.call('PEXPIRE', KEYS[1], window)
  end
else
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
end
return {count, oldest, used, now, slots}
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

    /// Takes for `wanted` requests of the budget in one script call (none for a peek): what the
    /// script saw before them, and the slots they took.
    #[tracing::instrument(name = "redis.evalsha", skip_all, fields(otel.kind = "client", db.system = "redis", db.operation.name = "EVALSHA", decisions = wanted))]
    async fn run(&self, budget: &Budget<'_>, wanted: u32) -> Result<(Observed, Vec<String>)> {
        let month = Month::of(common::time::now_ms());
        let month_reset = month.next_start_ms();
        let (window_key, month_key) = self.keys(budget, month);
        let mut conn = self.conn.clone();
        // The month counter outlives its month by a day, for clocks that disagree a little.
        let month_ttl_ms = (month_reset - common::time::now_ms()).max(0) + 86_400_000;
        let mut call = self.decide.key(window_key);
        call.key(month_key).arg(budget.per_minute).arg(WINDOW_MS).arg(budget.per_month).arg(wanted).arg(month_ttl_ms);
        for _ in 0..wanted {
            call.arg(rand::random::<u64>());
        }
        let (count, oldest, used, now, slots): (u32, i64, u64, i64, Vec<String>) =
            call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok((Observed { count, oldest: (oldest >= 0).then_some(oldest), month_used: used, now }, slots))
    }
}

fn unavailable(e: redis::RedisError) -> Error {
    tracing::warn!(error = %e, "rate-limit decision failed");
    Error::unavailable("the rate limiter")
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        let (seen, slots) = self.run(budget, 1).await?;
        Ok(decide_in_turn(&seen, budget, 1, slots).remove(0))
    }

    async fn acquire_many(&self, budget: &Budget<'_>, n: u32) -> Result<Vec<RateDecision>> {
        let (seen, slots) = self.run(budget, n).await?;
        Ok(decide_in_turn(&seen, budget, n, slots))
    }

    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        let (seen, _) = self.run(budget, 0).await?;
        Ok(decide(&seen, budget, false))
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
