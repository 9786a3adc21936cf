use std::time::Duration;

use common::{Error, Result};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Limiter, RateDecision, WINDOW_MS, decide};

/// Trim, count, maybe add: one atomic script per decision, on Redis's own clock so that every
/// replica agrees on time. The sorted set holds at most `limit` members (120 on the largest
/// plan), small enough for Redis's compact listpack encoding.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
end
return {count, oldest and tonumber(oldest) or -1, now}
";

/// Sliding-window log in Redis, shared by every replica.
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
}

impl RedisLimiter {
    /// Connects lazily: the process starts without Redis, and decisions fail with
    /// SERVICE_UNAVAILABLE until it is reachable.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        Ok(RedisLimiter {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            script: Script::new(SCRIPT),
            prefix: format!("{prefix}rl:"),
        })
    }
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(&self, key: &str, limit: u32) -> Result<RateDecision> {
        let mut conn = self.conn.clone();
        let nonce: u64 = rand::random();
        let (count, oldest, now): (u32, i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(limit)
            .arg(WINDOW_MS)
            .arg(nonce)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "rate-limit decision failed");
                Error::unavailable("the rate limiter")
            })?;
        Ok(decide((oldest >= 0).then_some(oldest), count, limit, now))
    }
}
