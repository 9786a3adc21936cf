use std::time::Duration;

use common::redis_link::{Link, Target, Timeouts};
use common::{Error, Result};
use redis::Script;

use super::{
    Budget, DailyDecision, Limiter, Month, Quota, RateDecision, Seen, Takes, WINDOW_MS, WindowSeen, day_of, decide,
    decide_in_turn,
};

/// Trim the windows, read the counters, and take from both a window and the month or from
/// neither: one atomic script per decision, or per batch of one user's decisions under one
/// monthly limit (below), on Redis's own clock so that every replica agrees on time. A sorted
/// set holds at most `limit` members (120 on the largest plan), small enough for Redis's compact
/// listpack encoding. The month is named by the caller; its counter expires a day after the
/// month, a time set when the counter is made. Admitted requests read and count the month in one
/// `INCRBY` (the excess given back by `DECRBY` when the month turns out spent): each command a
/// script calls costs Redis about a microsecond, of the 12 or so a lone decision's script costs
/// (README, "Benchmarks"). A refusal by the month thus writes twice, but gateways repeat a
/// refusal until its reset without asking.
///
/// `KEYS[1]` is the user's month and the others the windows of their keys. One call decides
/// `ARGV[4]` requests, as that many calls one after another would: each names its window (from
/// 0), its per-minute limit and a nonce for its slot. The windows admit requests in order while
/// they have room; the month then grants the first of those while it has room, which is what
/// the calls one after another would have taken, since a request the month refuses takes
/// nothing and every one after it is refused too. Each request taken gets its own slot
/// (`<ms>-<nonce>`), which `RELEASE` gives back alone. Zero requests take nothing (a peek).
/// The answer holds the month's count before this call, Redis's time, each window's count and
/// oldest entry before it, and the slots taken, in order, as one text of space-separated fields:
/// the client parses each value of an answer at a cost, and the nested arrays this answer once
/// was cost policy more to read than the rest of a decision (README, "Benchmarks").
///
/// Numbers cross between Lua and Redis as text, and a double is costly to write: Lua writes
/// each number it passes, and Redis writes each score it answers with up to 17 digits. So the
/// script writes Redis's time and the window's start once, passes the window's length as it
/// came, and reads a window's oldest entry as its member, whose `<ms>` is its score, rather than
/// `WITHSCORES`: a fifth of the script's cost over large windows (README, "Benchmarks"). The
/// answer's text costs Lua one formatted number per window (its count); measured over seven
/// windows, that cost Redis no more than the arrays it replaced.
pub const DECIDE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tostring(now)
local start = tostring(now - tonumber(ARGV[1]))
local per_month = tonumber(ARGV[2])
local wanted = tonumber(ARGV[4])
local out, count = {'', at}, {}
for w = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[w], '-inf', start)
  local c = redis.call('ZCARD', KEYS[w])
  local oldest = ''
  if c > 0 then oldest = redis.call('ZRANGE', KEYS[w], 0, 0)[1] end
  out[#out + 1] = c
  out[#out + 1] = oldest
  count[w] = c
end
local admitted = {}
for i = 0, wanted - 1 do
  local w = tonumber(ARGV[5 + 3 * i]) + 2
  if count[w] < tonumber(ARGV[6 + 3 * i]) then
    count[w] = count[w] + 1
    admitted[#admitted + 1] = {w, ARGV[7 + 3 * i]}
  end
end
local room = #admitted
local used
if room > 0 then
  used = redis.call('INCRBY', KEYS[1], room) - room
  if used == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
  local granted = math.max(0, math.min(room, per_month - used))
  if granted < room then redis.call('DECRBY', KEYS[1], room - granted) end
  local members = {}
  for g = 1, granted do
    local w = admitted[g][1]
    local slot = at .. '-' .. admitted[g][2]
    out[#out + 1] = slot
    local m = members[w] or {}
    m[#m + 1] = at
    m[#m + 1] = slot
    members[w] = m
  end
  for w = 2, #KEYS do
    if members[w] then
      redis.call('ZADD', KEYS[w], unpack(members[w]))
      redis.call('PEXPIRE', KEYS[w], ARGV[1])
    end
  end
else
  used = tonumber(redis.call('GET', KEYS[1]) or '0')
end
out[1] = string.format('%d', used)
return table.concat(out, ' ')
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

/// Gives back one call of a day's count, never below nothing.
const GIVE_BACK_DAILY: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
";

/// Adds a month's count kept under its name of the releases before the user hash tag
/// (`KEYS[1]`) to its name now (`KEYS[2]`), which keeps its expiry or takes the old one, and
/// deletes the old name: in one step, so that replicas starting together add it once.
const FOLD_UNTAGGED_MONTH: &str = r"
local used = redis.call('GET', KEYS[1])
if not used then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('INCRBY', KEYS[2], used)
if redis.call('PTTL', KEYS[2]) < 0 then
  if ttl < 0 then ttl = tonumber(ARGV[1]) end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('DEL', KEYS[1])
return 1
";

/// The expiry a carried-over count takes when neither name has one: no longer than a month and a
/// day.
const UNTAGGED_MONTH_TTL_MS: i64 = 32 * 86_400_000;

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
    fold_untagged_month: Script,
    daily: Script,
    give_back_daily: Script,
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
            fold_untagged_month: Script::new(FOLD_UNTAGGED_MONTH),
            daily: Script::new(DAILY),
            give_back_daily: Script::new(GIVE_BACK_DAILY),
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

    /// Carries the monthly counts that releases before the user hash tag kept under
    /// `<prefix>mq:<user>:<month>` over to `<prefix>mq:{<user>}:<month>`, so that an upgrade
    /// leaves this month's usage as it was (README, "Upgrading"). Only a single Redis is
    /// scanned: those releases ran on no cluster. Returns how many counts were carried over; a
    /// count that cannot be (not a number) is logged and left.
    pub async fn fold_untagged_months(&self) -> Result<u64> {
        let Link::Single(conn) = &self.conn else { return Ok(0) };
        let mut conn = conn.clone();
        let months = format!("{}mq:", self.prefix);
        let pattern = format!("{}*", glob_escaped(&months));
        let mut untagged = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            untagged.extend(keys.into_iter().filter(|key| !key[months.len()..].starts_with('{')));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut folded = 0;
        for old in untagged {
            let Some((user, month)) = old[months.len()..].rsplit_once(':') else { continue };
            let new = format!("{months}{{{user}}}:{month}");
            let carried: redis::RedisResult<i64> =
                self.fold_untagged_month.key(&old).key(new).arg(UNTAGGED_MONTH_TTL_MS).invoke_async(&mut conn).await;
            match carried {
                Ok(carried) => folded += carried as u64,
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                    tracing::warn!(error = %e, "a monthly count under an older release's name was not carried over");
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(folded)
    }

    fn keys(&self, budget: &Budget<'_>, month: Month) -> (String, String) {
        (self.window_key(budget.user, budget.key), self.month_key(budget.user, month))
    }

    fn window_key(&self, user: &str, key: &str) -> String {
        format!("{}rl:{{{user}}}:{key}", self.prefix)
    }

    fn month_key(&self, user: &str, month: Month) -> String {
        format!("{}mq:{{{user}}}:{month}", self.prefix)
    }

    /// Takes for requests of one user's month in one script call, each from the window it names
    /// among `windows` under its per-minute limit; none for a peek.
    #[tracing::instrument(name = "redis.evalsha", skip_all, fields(otel.kind = "client", db.system = "redis", db.operation.name = "EVALSHA", decisions = requests.len()))]
    async fn run(&self, quota: Quota<'_>, keys: &[&str], requests: &[(usize, u32)]) -> Result<Seen> {
        let now = common::time::now_ms();
        let this_month = Month::of(now);
        // The month counter outlives its month by a day, for clocks that disagree a little.
        let month_ttl_ms = (this_month.next_start_ms() - now).max(0) + 86_400_000;
        let mut call = self.decide.key(self.month_key(quota.user, this_month));
        for key in keys {
            call.key(self.window_key(quota.user, key));
        }
        call.arg(WINDOW_MS).arg(quota.per_month).arg(month_ttl_ms).arg(requests.len());
        for &(window, per_minute) in requests {
            call.arg(window).arg(per_minute).arg(rand::random::<u64>());
        }
        let mut conn = self.conn.clone();
        let answer: String = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        seen(&answer, keys.len()).ok_or_else(|| {
            let fields = answer.split(' ').count();
            Error::internal(format!("Redis answered {fields} fields for {} windows", keys.len()))
        })
    }
}

/// The decision script's answer: the month's count, Redis's time, each of `windows` windows'
/// count and oldest member (empty for none), then the slots taken, separated by spaces.
fn seen(answer: &str, windows: usize) -> Option<Seen> {
    let mut parts = answer.split(' ');
    let month_used = parts.next()?.parse().ok()?;
    let now = parts.next()?.parse().ok()?;
    let windows = (0..windows)
        .map(|_| {
            let count = parts.next()?.parse().ok()?;
            // Only this script writes windows, so the oldest member is a slot; were it not,
            // the window would still count it and report its reset as a window from now.
            Some(WindowSeen { count, oldest: taken_at(parts.next()?) })
        })
        .collect::<Option<_>>()?;
    let slots = parts.map(str::to_owned).collect();
    Some(Seen { windows, month_used, now, slots })
}

/// `text` as a pattern of Redis's `SCAN MATCH` that matches it alone.
fn glob_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// When a slot (`<ms>-<nonce>`, a window's member) was taken: its score, in unix ms.
fn taken_at(slot: &str) -> Option<i64> {
    slot.split_once('-')?.0.parse().ok()
}

fn unavailable(e: redis::RedisError) -> Error {
    // Decisions and the replica heartbeat alike: during an outage the heartbeat says so every
    // couple of seconds, whether requests come or not.
    tracing::warn!(error = %e, "a call of the rate limiter to Redis failed");
    Error::unavailable("the rate limiter")
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        Ok(self.acquire_many(&Takes::of(*budget)).await?.remove(0))
    }

    async fn acquire_many(&self, takes: &Takes<'_>) -> Result<Vec<RateDecision>> {
        let seen = self.run(takes.quota(), takes.keys(), takes.requests()).await?;
        Ok(decide_in_turn(seen, takes))
    }

    async fn peek(&self, budget: &Budget<'_>) -> Result<RateDecision> {
        let seen = self.run(budget.quota(), &[budget.key], &[]).await?;
        Ok(decide(&seen.before(&seen.windows[0], 0, 0), budget, false))
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

    async fn give_back_daily(&self, user: &str, reset_at_ms: i64) -> Result<()> {
        let (day, _) = day_of(reset_at_ms - 1);
        let mut conn = self.conn.clone();
        self.give_back_daily
            .key(format!("{}mcp:{user}:{day}", self.prefix))
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, budget: &Budget<'_>, slot: &str) -> Result<()> {
        // Its month is the one it was taken in.
        let at = taken_at(slot).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_gives_each_window_its_count_and_oldest_slot_then_the_slots_taken() {
        let seen = seen("7 1733390000123 2 1733389990000-41 0  1733390000123-5 1733390000123-6", 2).unwrap();
        assert_eq!((seen.month_used, seen.now), (7, 1_733_390_000_123));
        let windows: Vec<(u32, Option<i64>)> = seen.windows.iter().map(|w| (w.count, w.oldest)).collect();
        assert_eq!(windows, [(2, Some(1_733_389_990_000)), (0, None)]);
        assert_eq!(seen.slots, ["1733390000123-5", "1733390000123-6"]);
    }

    #[test]
    fn an_empty_last_window_and_no_slots_leave_no_slot() {
        let seen = seen("0 1733390000123 0 ", 1).unwrap();
        assert!(seen.slots.is_empty());
        assert_eq!((seen.windows[0].count, seen.windows[0].oldest), (0, None));
    }

    #[test]
    fn an_answer_of_another_shape_is_refused() {
        assert!(seen("0 1733390000123 1 1733389990000-41", 2).is_none());
        assert!(seen("zero 1733390000123 0 ", 1).is_none());
    }
}
