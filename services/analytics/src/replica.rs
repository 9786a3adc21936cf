//! A PostgreSQL streaming replica for statistics queries. Writes, and every read that must see
//! its own writes (websites, rollup computation, ingestion's visit lookups), stay on the
//! primary; statistics go to the replica while it is reachable and no further behind than
//! allowed, and to the primary otherwise.
//!
//! Lag is measured, not estimated from replay timestamps (which grow while the primary is idle):
//! twice a second the primary's WAL position is noted with the time, and the replica's lag is how
//! long ago the primary was at the position the replica has replayed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use common::db::{AnyPool, OpenError};
use common::time::now_ms;
use sqlx::Row;

/// How often the lag is measured.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// A replica as configured.
#[derive(Debug, Clone)]
pub struct ReadReplica {
    pub url: String,
    /// Past this lag statistics are read from the primary.
    pub max_lag: Duration,
}

/// The replica's pool and what the last probe found.
pub(crate) struct Replica {
    pub(crate) pool: AnyPool,
    max_lag_ms: i64,
    /// Lag at the last probe, in ms.
    lag_ms: AtomicI64,
    usable: AtomicBool,
    /// Whether the replica's failure was said since it was last usable (or since start), so that
    /// one that never answers is said once too.
    failure_said: AtomicBool,
    /// The primary's recent WAL positions, oldest first: (unix ms, position).
    primary_positions: Mutex<VecDeque<(i64, u64)>>,
}

static GAUGES: OnceLock<(opentelemetry::metrics::ObservableGauge<f64>, opentelemetry::metrics::ObservableGauge<u64>)> =
    OnceLock::new();

impl Replica {
    pub(crate) fn connect(config: &ReadReplica, statement_timeout: Duration) -> Result<Arc<Replica>, OpenError> {
        // A replica that does not answer within a second is reported at once, so that the
        // caller can turn to the primary.
        let reader = common::db::Reader {
            url: &config.url,
            service: "analytics",
            max_connections: 16,
            acquire_timeout: Duration::from_secs(1),
            statement_timeout,
        };
        let replica = Arc::new(Replica {
            pool: common::db::connect_reader(&reader)?,
            max_lag_ms: config.max_lag.as_millis() as i64,
            lag_ms: AtomicI64::new(0),
            usable: AtomicBool::new(false),
            failure_said: AtomicBool::new(false),
            primary_positions: Mutex::default(),
        });
        replica.register_gauges();
        Ok(replica)
    }

    /// Whether statistics may be read here now.
    pub(crate) fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// A query failed here for want of the server: the primary answers until a probe finds the
    /// replica well again.
    pub(crate) fn failed(&self, error: &sqlx::Error) {
        let was_usable = self.usable.swap(false, Ordering::Relaxed);
        let said = self.failure_said.swap(true, Ordering::Relaxed);
        if was_usable || !said {
            tracing::warn!(%error, "read replica unavailable; statistics are read from the primary");
        }
    }

    fn register_gauges(self: &Arc<Self>) {
        let (lag, in_use) = (Arc::downgrade(self), Arc::downgrade(self));
        let meter = opentelemetry::global::meter("zenovay-analytics");
        let lag = meter
            .f64_observable_gauge("zenovay.analytics.replica.lag")
            .with_unit("s")
            .with_description("How far the read replica's replay is behind the primary")
            .with_callback(move |observer| {
                if let Some(replica) = lag.upgrade() {
                    observer.observe(replica.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0, &[]);
                }
            })
            .build();
        let in_use = meter
            .u64_observable_gauge("zenovay.analytics.replica.in_use")
            .with_description("1 while statistics are read from the replica, 0 while from the primary")
            .with_callback(move |observer| {
                if let Some(replica) = in_use.upgrade() {
                    observer.observe(u64::from(replica.usable()), &[]);
                }
            })
            .build();
        // One replica per process: the gauges live as long as the process.
        let _ = GAUGES.set((lag, in_use));
    }

    /// Measures the lag now and then while the replica is in use by anyone.
    pub(crate) fn spawn_probe(self: &Arc<Self>, primary: AnyPool) {
        let weak: Weak<Replica> = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(replica) = weak.upgrade() {
                replica.probe(&primary).await;
                drop(replica);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    async fn probe(&self, primary: &AnyPool) {
        match self.measure(primary).await {
            Ok(lag) => {
                let (lag_ms, usable) = match lag {
                    Lag::Within(ms) => (ms, ms <= self.max_lag_ms),
                    // Older than all this process has seen (it has just started, or the
                    // replica has just come back): how much older is not known.
                    Lag::BeforeEverySample(ms) => (ms, false),
                };
                self.lag_ms.store(lag_ms, Ordering::Relaxed);
                match (self.usable.swap(usable, Ordering::Relaxed), usable) {
                    (false, true) => {
                        self.failure_said.store(false, Ordering::Relaxed);
                        tracing::info!(lag_ms, "statistics are read from the read replica");
                    }
                    (true, false) => {
                        tracing::warn!(lag_ms, "read replica lag past the limit; statistics are read from the primary")
                    }
                    _ => {}
                }
            }
            Err(error) => self.failed(&error),
        }
    }

    /// The replica's lag: how long ago the primary was where the replica has replayed to.
    async fn measure(&self, primary: &AnyPool) -> Result<Lag, sqlx::Error> {
        let at = sqlx::query("SELECT pg_current_wal_lsn()::text AS at").fetch_one(primary).await?;
        let now = now_ms();
        let row = sqlx::query(
            "SELECT pg_is_in_recovery() AS standby, COALESCE(pg_last_wal_replay_lsn()::text, '0/0') AS replayed",
        )
        .fetch_one(&self.pool)
        .await?;
        let standby: bool = row.try_get("standby")?;
        let replayed = parse_lsn(&row.try_get::<String, _>("replayed")?);
        let mut positions = self.primary_positions.lock().expect("positions lock poisoned");
        positions.push_back((now, parse_lsn(&at.try_get::<String, _>("at")?)));
        // Enough history to tell any lag up to twice the limit.
        while positions.front().is_some_and(|(t, _)| now - t > 2 * self.max_lag_ms + 1000) {
            positions.pop_front();
        }
        Ok(if standby { lag(&positions, replayed, now) } else { Lag::Within(0) })
    }
}

/// A replica's lag in ms, as far as the primary's samples tell it.
#[derive(Debug, PartialEq, Eq)]
enum Lag {
    Within(i64),
    /// Behind the oldest sample, taken this long ago: at least this much, maybe far more.
    BeforeEverySample(i64),
}

/// How long ago the primary was at or before `replayed`: 0 when the replica has everything the
/// primary had at the last sample, before every sample when it has none of them.
fn lag(positions: &VecDeque<(i64, u64)>, replayed: u64, now: i64) -> Lag {
    let mut caught_up_to: Option<i64> = None;
    for (t, position) in positions.iter().rev() {
        if *position <= replayed {
            caught_up_to = Some(*t);
            break;
        }
    }
    match (caught_up_to, positions.back()) {
        (Some(t), Some((last, _))) if t == *last => Lag::Within(0),
        // Replayed up to where the primary was at `t`, but not what came after: behind since
        // the sample after `t` at the latest.
        (Some(t), _) => Lag::Within(positions.iter().find(|(s, _)| *s > t).map_or(0, |(s, _)| now - s)),
        (None, _) => Lag::BeforeEverySample(positions.front().map_or(0, |(first, _)| now - first)),
    }
}

/// A `pg_lsn` as text (`16/B374D848`) as one number.
fn parse_lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').unwrap_or(("0", "0"));
    (u64::from_str_radix(high, 16).unwrap_or(0) << 32) | u64::from_str_radix(low, 16).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_numbers() {
        assert_eq!(parse_lsn("0/0"), 0);
        assert_eq!(parse_lsn("16/B374D848"), (0x16 << 32) | 0xB374D848);
    }

    #[test]
    fn lag_is_the_age_of_the_first_position_not_replayed() {
        let positions: VecDeque<(i64, u64)> = [(1000, 10), (1500, 20), (2000, 30)].into();
        assert_eq!(lag(&positions, 30, 2100), Lag::Within(0), "caught up with the last sample");
        assert_eq!(lag(&positions, 25, 2100), Lag::Within(100), "behind what the primary wrote by 2000");
        assert_eq!(lag(&positions, 10, 2100), Lag::Within(600));
        assert_eq!(lag(&positions, 5, 2100), Lag::BeforeEverySample(1100), "behind every sample");
    }
}
