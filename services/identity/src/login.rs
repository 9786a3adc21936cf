//! Abuse resistance of sign-in and sign-up: attempts counted per account and per client address
//! in identity's database, which every replica shares, and password hashing bounded per process.
//! The limits are described in README.md ("Sign-in protection").

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use common::secret::Digest;
use common::{Error, ErrorCode};
use tokio::sync::Semaphore;

use crate::store::Store;

const MINUTE_MS: i64 = 60_000;

/// At most `attempts` in a window of `window`, opened by the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub attempts: i64,
    pub window: Duration,
}

impl Limit {
    fn window_ms(self) -> i64 {
        self.window.as_millis() as i64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed logins per account (by e-mail, known or not).
    pub failures_per_account: Limit,
    /// Failed logins per client address, over every account.
    pub failures_per_address: Limit,
    /// Sign-ups per client address, successful or not.
    pub signups_per_address: Limit,
    /// OAuth client registrations (MCP clients) per client address, successful or not.
    pub registrations_per_address: Limit,
    /// Password hashes running at once in this process (each holds about 19 MiB).
    pub concurrent_hashes: usize,
    /// How long an attempt waits for a hashing slot before it is refused with 503.
    pub hash_wait: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        LoginLimits {
            failures_per_account: Limit { attempts: 10, window: Duration::from_secs(15 * 60) },
            failures_per_address: Limit { attempts: 100, window: Duration::from_secs(15 * 60) },
            signups_per_address: Limit { attempts: 30, window: Duration::from_secs(60 * 60) },
            registrations_per_address: Limit { attempts: 300, window: Duration::from_secs(60 * 60) },
            concurrent_hashes: 2 * cores,
            hash_wait: Duration::from_secs(2),
        }
    }
}

/// A refused sign-in or sign-up, with how long to wait when waiting helps (throttled: 429,
/// hashing busy: 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: Error,
    pub retry_after_secs: Option<u64>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal { error, retry_after_secs: None }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        Error::from(error).into()
    }
}

/// The client's address as throttling counts it. An IPv6 client counts by its /64, which one
/// host usually holds whole; an IPv4-mapped address counts as the IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(Option<String>);

impl ClientAddress {
    /// No address: only the per-account limit applies.
    pub const UNKNOWN: ClientAddress = ClientAddress(None);

    /// An IP address, or empty for unknown.
    pub fn parse(text: &str) -> Result<ClientAddress, Error> {
        if text.is_empty() {
            return Ok(ClientAddress::UNKNOWN);
        }
        let address: IpAddr =
            text.parse().map_err(|_| Error::validation("client_address must be an IP address or empty"))?;
        let counted = match address.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        Ok(ClientAddress(Some(counted)))
    }
}

/// A counted attempt, to take back when it turns out to be no failure.
pub(crate) struct Counted {
    bucket: String,
    window_start: i64,
}

fn bucket(kind: &str, subject: &str) -> String {
    Digest::of(&format!("{kind}:{subject}")).to_hex()
}

/// The attempt counters, in the database.
pub(crate) struct Throttle {
    store: Store,
    limits: LoginLimits,
    /// Minute of this process's last sweep of closed windows.
    swept: AtomicI64,
}

/// `what` there were too many of, and when to try again (`Retry-After` too).
fn throttled(what: &str, retry_after_ms: i64) -> Refusal {
    let secs = (retry_after_ms.max(0) as u64).div_ceil(1000).max(1);
    let message = format!("too many {what}, try again in {}", common::time::wait_in_words(secs));
    Refusal { error: Error::new(ErrorCode::RateLimitExceeded, message), retry_after_secs: Some(secs) }
}

impl Throttle {
    pub(crate) fn new(store: Store, limits: LoginLimits) -> Throttle {
        Throttle { store, limits, swept: AtomicI64::new(0) }
    }

    /// Counts one attempt in `bucket`; refused when it goes over `limit`.
    async fn take(&self, bucket: String, limit: Limit, now: i64, what: &str) -> Result<Counted, Refusal> {
        self.sweep(now);
        let (attempts, window_start) = self.store.count_attempt(&bucket, now, limit.window_ms()).await?;
        if attempts > limit.attempts {
            // Another replica may have opened the window a moment "after" this attempt's now.
            let retry_after_ms = (window_start + limit.window_ms() - now).min(limit.window_ms());
            return Err(throttled(what, retry_after_ms));
        }
        Ok(Counted { bucket, window_start })
    }

    /// Counts a login attempt against its address and its account, before any hashing.
    pub(crate) async fn login(
        &self,
        from: &ClientAddress,
        email: &str,
        now: i64,
    ) -> Result<(Option<Counted>, Counted), Refusal> {
        let failed_logins = "failed logins";
        let address = match &from.0 {
            Some(address) => Some(
                self.take(bucket("login-address", address), self.limits.failures_per_address, now, failed_logins)
                    .await?,
            ),
            None => None,
        };
        let account =
            self.take(bucket("login-account", email), self.limits.failures_per_account, now, failed_logins).await?;
        Ok((address, account))
    }

    /// A login succeeded: the account starts afresh and the address gets its attempt back.
    pub(crate) async fn succeeded(&self, address: Option<Counted>, account: Counted) -> Result<(), Error> {
        self.store.clear_attempts(&account.bucket).await?;
        if let Some(address) = address {
            self.store.refund_attempt(&address.bucket, address.window_start).await?;
        }
        Ok(())
    }

    /// Counts a sign-up against its address.
    pub(crate) async fn signup(&self, from: &ClientAddress, now: i64) -> Result<(), Refusal> {
        if let Some(address) = &from.0 {
            let limit = self.limits.signups_per_address;
            self.take(bucket("signup-address", address), limit, now, "sign-ups").await?;
        }
        Ok(())
    }

    /// Counts an OAuth client registration against its address.
    pub(crate) async fn registration(&self, from: &ClientAddress, now: i64) -> Result<(), Refusal> {
        if let Some(address) = &from.0 {
            let limit = self.limits.registrations_per_address;
            self.take(bucket("register-address", address), limit, now, "client registrations").await?;
        }
        Ok(())
    }

    /// Deletes closed windows, at most once a minute per process, off the request's path.
    fn sweep(&self, now: i64) {
        let minute = now / MINUTE_MS;
        if self.swept.swap(minute, Ordering::Relaxed) == minute {
            return;
        }
        let longest = [
            self.limits.failures_per_account,
            self.limits.failures_per_address,
            self.limits.signups_per_address,
            self.limits.registrations_per_address,
        ]
        .into_iter()
        .map(Limit::window_ms)
        .max()
        .unwrap_or_default();
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.forget_attempts_before(now - longest).await {
                tracing::warn!(error = %e, "could not sweep login attempts");
            }
        });
    }
}

/// What the hashing bound has seen, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingStats {
    /// Most hashes that ever ran at once.
    pub high_water: usize,
    /// Hashes and verifications run.
    pub runs: u64,
    /// Argon2 verifications done, against a real hash or the dummy one.
    pub verifications: u64,
}

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
    runs: AtomicU64,
    verifications: AtomicU64,
}

impl Counters {
    /// One argon2 verification, always run to the end.
    fn verify(&self, password: &str, phc: &str) -> Result<bool, Error> {
        let hash = PasswordHash::new(phc).map_err(Error::internal)?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &hash).is_ok();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        Ok(matches)
    }
}

/// Password hashing on the blocking pool, at most `concurrent_hashes` at once; an attempt that
/// finds no slot within `hash_wait` is refused instead of queueing without bound.
#[derive(Clone)]
pub(crate) struct Hashing {
    permits: Arc<Semaphore>,
    wait: Duration,
    counters: Arc<Counters>,
}

fn busy() -> Refusal {
    Refusal {
        error: Error::new(ErrorCode::ServiceUnavailable, "too many logins at once, try again shortly"),
        retry_after_secs: Some(1),
    }
}

/// The hash an unknown e-mail is verified against, made with the parameters of real ones so
/// that it costs the same.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"not a password", &salt).expect("hashing a constant").to_string()
    })
}

impl Hashing {
    pub(crate) fn new(limits: &LoginLimits) -> Hashing {
        Hashing {
            permits: Arc::new(Semaphore::new(limits.concurrent_hashes.max(1))),
            wait: limits.hash_wait,
            counters: Arc::default(),
        }
    }

    pub(crate) fn stats(&self) -> HashingStats {
        HashingStats {
            high_water: self.counters.high_water.load(Ordering::Relaxed),
            runs: self.counters.runs.load(Ordering::Relaxed),
            verifications: self.counters.verifications.load(Ordering::Relaxed),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Refusal> {
        let permit = match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return Err(busy()),
        };
        let counters = self.counters.clone();
        // The permit moves into the work: a caller that goes away does not free the slot of a
        // hash still running.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let running = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            counters.high_water.fetch_max(running, Ordering::SeqCst);
            counters.runs.fetch_add(1, Ordering::Relaxed);
            let done = work();
            counters.in_flight.fetch_sub(1, Ordering::SeqCst);
            done
        })
        .await
        .map_err(|e| Error::internal(e).into())
    }

    pub(crate) async fn hash(&self, password: String) -> Result<String, Refusal> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await?
        .map_err(|e| Error::internal(e).into())
    }

    /// Verifies against `stored`, or against the dummy hash when there is no user, so that an
    /// unknown e-mail costs what a wrong password costs.
    pub(crate) async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Refusal> {
        let counters = self.counters.clone();
        self.run(move || {
            let matches = counters.verify(&password, stored.as_deref().unwrap_or_else(|| dummy_hash()))?;
            Ok::<_, Error>(stored.is_some() && matches)
        })
        .await?
        .map_err(Refusal::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64() {
        let a = ClientAddress::parse("2001:db8:1:2:aaaa::1").unwrap();
        let b = ClientAddress::parse("2001:db8:1:2:bbbb::2").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, ClientAddress::parse("2001:db8:1:3::1").unwrap());
        assert_eq!(ClientAddress::parse("::ffff:192.0.2.7").unwrap(), ClientAddress::parse("192.0.2.7").unwrap());
        assert_eq!(ClientAddress::parse("").unwrap(), ClientAddress::UNKNOWN);
        assert_eq!(ClientAddress::parse("nonsense").unwrap_err().code, ErrorCode::Validation);
    }

    #[tokio::test]
    async fn hashing_beyond_the_bound_is_refused_with_retry_after_not_queued() {
        let limits =
            LoginLimits { concurrent_hashes: 1, hash_wait: Duration::from_millis(20), ..LoginLimits::default() };
        let hashing = Hashing::new(&limits);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let hashing = hashing.clone();
            async move { hashing.run(move || held.recv()).await }
        });
        while hashing.stats().runs == 0 {
            tokio::task::yield_now().await;
        }
        // The only slot is held until released: this attempt cannot get one.
        let refused = hashing.run(|| ()).await.unwrap_err();
        assert_eq!(refused.error.code, ErrorCode::ServiceUnavailable);
        assert_eq!(refused.retry_after_secs, Some(1));
        release.send(()).unwrap();
        holder.await.unwrap().unwrap().unwrap();
        hashing.run(|| ()).await.unwrap();
        assert_eq!(hashing.stats().high_water, 1);
    }

    #[tokio::test]
    async fn an_unknown_email_is_verified_against_a_dummy_hash() {
        let hashing = Hashing::new(&LoginLimits::default());
        assert!(!hashing.verify("some password".into(), None).await.unwrap());
        assert_eq!(hashing.stats().verifications, 1, "the dummy verification runs");
        // The dummy has the parameters of a real hash: the same work.
        let real = hashing.hash("some password".into()).await.unwrap();
        let params = |phc: &str| PasswordHash::new(phc).unwrap().params.to_string();
        assert_eq!(params(dummy_hash()), params(&real));
        assert!(hashing.verify("some password".into(), Some(real)).await.unwrap());
    }
}
