//! The event writers: group commit of accepted events, each joined to its visitor's open visit.
//!
//! A writer stores whatever has queued up while its previous batch was being written, in one
//! transaction, then answers every sender: a 202 always means "committed", and the cost of a
//! commit is shared by a whole batch. Writing is the one serial step of ingestion, so each
//! writer speaks its database's fastest dialect (`sqlite.rs`, `postgres.rs`: statements
//! prepared once, their text the same for every batch) and keeps the visits it wrote in memory,
//! so that the next event of a visit does not read the visit back.

mod postgres;
mod sqlite;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::db::{Backend, OpenError};
use common::time::now_ms;
use common::{Error, ErrorCode, Result};
use tokio::sync::{mpsc, oneshot};

use crate::events::ENGAGEMENT;
use crate::store::{DAY_MS, NewEvent, VISIT_GAP_MS, VisitAttributes, continues_visit, day_of};

/// Most events written in one transaction.
pub const MAX_BATCH: usize = 1000;

/// Writers per process on PostgreSQL. Each owns a connection and a share of the visitors, so
/// their transactions never touch the same visit: one reads and inserts while the other waits on
/// its round trips or commits. They meet only on the pending-rollup row of a day whose version
/// they both bump (late events, imports), where the second waits for the first's commit. SQLite
/// takes one writer at a time.
const POSTGRES_WRITERS: usize = 2;

/// Visits kept per generation of a writer's cache; see [`VisitCache`].
const CACHED_VISITS: usize = 32_768;

/// An event and where to answer whether it was stored.
type Pending = (NewEvent, oneshot::Sender<Result<bool>>);

/// The sending side of the writer tasks.
#[derive(Clone)]
pub struct Writer(Arc<[mpsc::Sender<Pending>]>);

impl Writer {
    /// Starts the writers, each on a thread and runtime of its own, which stop once every
    /// `Writer` is dropped. On the shared runtime each wake-up of the writer waited behind the
    /// queued request tasks (about 1 ms per round trip with 64 concurrent senders, measured),
    /// which capped ingestion well below what the database could take.
    /// Call after the store is open: it applies the migrations.
    pub async fn spawn(backend: &Backend) -> std::result::Result<Writer, OpenError> {
        let count = if matches!(backend, Backend::Postgres { .. }) { POSTGRES_WRITERS } else { 1 };
        let failed = |source| OpenError::Writer { service: "analytics", source };
        let mut senders = Vec::with_capacity(count);
        for i in 0..count {
            let db = Db::open(backend)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
            let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
            let writer = BatchWriter { db, cache: VisitCache::default() };
            std::thread::Builder::new()
                .name(format!("event-writer-{i}"))
                .spawn(move || runtime.block_on(writer.run(rx)))
                .map_err(failed)?;
            senders.push(tx);
        }
        Ok(Writer(senders.into()))
    }

    /// Queues an event with the writer of its visitor; the receiver answers once it is stored.
    /// The event must be valid already (see `Analytics::ingest` and `import`); public for tests
    /// that play several replicas' writers.
    pub async fn enqueue(&self, event: NewEvent) -> Result<oneshot::Receiver<Result<bool>>> {
        // Visitor ids are hex digests: their first character spreads visitors evenly.
        let shard = usize::from(event.visitor_id.bytes().next().unwrap_or_default()) % self.0.len();
        let (reply, stored) = oneshot::channel();
        self.0[shard].send((event, reply)).await.map_err(|_| Error::unavailable("event storage"))?;
        Ok(stored)
    }
}

/// A visit as a batch sees it: where it stands, and what the batch adds to it.
#[derive(Debug, Clone)]
pub(crate) struct Visit {
    pub id: String,
    pub website_id: String,
    pub visitor_id: String,
    pub start_ts: i64,
    /// The last event's time, engagement events left out: the end of the visit's duration.
    pub last_ts: i64,
    /// The last event's time, engagement events included: the next event within 30 minutes of
    /// it continues the visit.
    pub alive_ts: i64,
    /// Whether this batch changed the visit, so that it is written.
    pub touched: bool,
    /// Pageviews and events this batch adds: all of them for a visit it starts. Stored as
    /// increments, so that a visit extended meanwhile by another replica keeps its counts.
    pub pageviews: i64,
    pub events: i64,
    /// Events after the first sent with `interactive: false`, likewise an increment: the visit
    /// bounced while all its events but one are such.
    pub passive: i64,
    /// Whether the visit's first event is still to be added (a visit this batch starts).
    pub first_to_come: bool,
    pub exit_page: String,
    pub attributes: VisitAttributes,
    /// Whether this batch gave the visit its entry page: a pageview after events of the visit
    /// stored (or batched) with none, which then take it too (see [`ENTERED_LATE`]).
    pub entered_late: bool,
}

impl Visit {
    /// A visit from its first event. Its entry and exit pages are its first and last pageview's,
    /// as Plausible's: empty while it has none (a visit begun by a custom event).
    fn start(event: &NewEvent) -> Visit {
        let page = if event.name == "pageview" { event.pathname.clone() } else { String::new() };
        Visit {
            id: uuid::Uuid::now_v7().to_string(),
            website_id: event.website_id.clone(),
            visitor_id: event.visitor_id.clone(),
            start_ts: event.ts,
            last_ts: event.ts,
            alive_ts: event.ts,
            touched: false,
            pageviews: 0,
            events: 0,
            passive: 0,
            first_to_come: true,
            exit_page: page.clone(),
            attributes: VisitAttributes { entry_page: page, ..event.visit.clone() },
            entered_late: false,
        }
    }

    /// Counts the event in the visit, and gives the event the visit's attributes. An engagement
    /// event only keeps the visit open.
    fn add(&mut self, event: &mut NewEvent) {
        self.touched = true;
        self.alive_ts = self.alive_ts.max(event.ts);
        if event.name == "pageview" && self.attributes.entry_page.is_empty() {
            // Not the visit's first event: one begun by a pageview has its entry page from `start`.
            self.attributes.entry_page = event.pathname.clone();
            self.entered_late = true;
        }
        event.visit_id = self.id.clone();
        event.visit = self.attributes.clone();
        if event.name == ENGAGEMENT {
            return;
        }
        self.last_ts = self.last_ts.max(event.ts);
        self.events += 1;
        if !std::mem::take(&mut self.first_to_come) && event.non_interactive {
            self.passive += 1;
        }
        if event.name == "pageview" {
            self.pageviews += 1;
            self.exit_page = event.pathname.clone();
        }
    }

    /// A stored visit from its row, by column index in `VISIT_COLUMNS` order; its counts are
    /// what the batch adds, none yet.
    fn from_row<E>(
        text: impl Fn(usize) -> Result<String, E>,
        int: impl Fn(usize) -> Result<i64, E>,
    ) -> Result<Visit, E> {
        Ok(Visit {
            id: text(0)?,
            website_id: text(1)?,
            visitor_id: text(2)?,
            start_ts: int(3)?,
            last_ts: int(4)?,
            alive_ts: int(23)?,
            touched: false,
            pageviews: 0,
            events: 0,
            passive: 0,
            first_to_come: false,
            exit_page: text(8)?,
            attributes: VisitAttributes {
                entry_page: text(7)?,
                source: text(9)?,
                utm_source: text(10)?,
                utm_medium: text(11)?,
                utm_campaign: text(12)?,
                country: text(13)?,
                browser: text(14)?,
                os: text(15)?,
                device: text(16)?,
                referrer: text(17)?,
                channel: text(18)?,
                utm_content: text(19)?,
                utm_term: text(20)?,
                browser_version: text(21)?,
                os_version: text(22)?,
            },
            entered_late: false,
        })
    }

    fn key(&self) -> (String, String) {
        (self.website_id.clone(), self.visitor_id.clone())
    }
}

/// What a batch writes, in one transaction: its events, the visits they start or extend, and
/// the site-days they change (sorted, so that two writers lock shared rows in the same order):
/// stale ones, whose rollup (or rolled-up closed part of today) they change, and open ones,
/// written to only now (see [`open_write`]).
pub(crate) struct Rows<'a> {
    pub events: &'a [&'a NewEvent],
    pub visits: &'a [Visit],
    pub stale_days: Vec<(&'a str, i64)>,
    pub open_days: Vec<(&'a str, i64)>,
    /// When the days were told apart (unix ms).
    pub classified_at: i64,
}

impl Rows<'_> {
    /// The conflict clause of the open days' pending rows, at the end of the transaction: a
    /// batch that took so long that its open events may now be late (a stalled database) bumps
    /// their days' versions too, as a rollup of today's closed part may have missed them.
    pub fn open_conflict(&self) -> &'static str {
        if now_ms() - self.classified_at > LATE_MS / 2 { PENDING_STALE } else { PENDING_OPEN }
    }
}

/// How long before its end a UTC day stops counting as open.
const OPEN_DAY_MARGIN_MS: i64 = 10 * 60_000;

/// Whether `day` is today, with more than 10 minutes left. A day is rolled up whole only once it
/// has ended, and its closed part only up to two minutes before now (see [`open_write`]), so a
/// live event of an open day need only make sure the day is pending, not bump its version. That
/// spares the day's pending row an update in every transaction, which on PostgreSQL was a new
/// row version per batch and a lock that made the two writers wait for each other's commits.
/// The margin covers clocks that differ between replicas and a transaction that takes long to
/// commit.
pub fn open_day(day: i64, now: i64) -> bool {
    day == day_of(now) && now < day + DAY_MS - OPEN_DAY_MARGIN_MS
}

/// Whether an event of instant `ts` written at `now` only adds to the open part of today: its
/// day is open and it is at most [`LATE_MS`] old. Today's part that ended before is rolled up
/// meanwhile (see `rollup.rs`), and an older event changes it: it bumps the day's version like
/// a write to a closed day, so that those pieces stop counting.
fn open_write(ts: i64, now: i64) -> bool {
    open_day(day_of(ts), now) && ts >= now - LATE_MS
}

/// How old an event may be when written and still count as live: it covers the time a batch
/// waits and clocks that differ between replicas.
pub(crate) const LATE_MS: i64 = 60_000;

/// One writer's database connection, in the dialect of its backend.
enum Db {
    Sqlite(sqlite::Db),
    // Boxed: with its connect options it is three times the size of the SQLite one.
    Postgres(Box<postgres::Db>),
}

impl Db {
    /// `db.system` of the backend, for spans.
    fn system(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgresql",
        }
    }

    fn open(backend: &Backend) -> std::result::Result<Db, OpenError> {
        Ok(match backend {
            Backend::Sqlite { data_dir } => {
                Db::Sqlite(sqlite::Db::open(&common::db::sqlite_file(data_dir, "analytics"))?)
            }
            Backend::Postgres { url } => Db::Postgres(Box::new(postgres::Db::open(url)?)),
        })
    }

    /// Visits of these visitors with an event at or after `since`.
    async fn visits(&mut self, visitors: &[&str], since: i64) -> Result<Vec<Visit>> {
        match self {
            Db::Sqlite(db) => db.visits(visitors, since),
            Db::Postgres(db) => db.visits(visitors, since).await,
        }
    }

    async fn begin(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(db) => db.begin(),
            Db::Postgres(db) => db.begin().await,
        }
    }

    async fn write(&mut self, rows: &Rows<'_>) -> Result<()> {
        match self {
            Db::Sqlite(db) => db.write(rows),
            Db::Postgres(db) => db.write(rows).await,
        }
    }

    async fn commit(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(db) => db.commit(),
            Db::Postgres(db) => db.commit().await,
        }
    }

    async fn rollback(&mut self) {
        match self {
            Db::Sqlite(db) => db.rollback(),
            Db::Postgres(db) => db.rollback().await,
        }
    }
}

/// The visits a writer stored lately, by (site, visitor). A writer owns its visitors, so its
/// own last write of a visit is the visit as stored, unless another analytics replica wrote to
/// the visitor since. Extending the visit only moves its last event later, so an event within
/// 30 minutes of the cached last event belongs to the cached visit either way, and any other
/// event reads the store. (Only events arriving out of order across replicas could have made
/// another replica start a newer visit meanwhile; such an event joins the cached one.) Two
/// generations bound the memory: when the recent one is full it becomes the old one, and the
/// visits nobody returned to during a whole generation are dropped.
#[derive(Default)]
struct VisitCache {
    recent: HashMap<(String, String), Visit>,
    old: HashMap<(String, String), Visit>,
}

impl VisitCache {
    /// Takes a visit out of the cache: it goes back in once the batch that extends it commits.
    /// From both generations: a batch that ended a visit and started the next may have put
    /// them on either side of a swap, and the older must not outlive the newer.
    fn take(&mut self, key: &(String, String)) -> Option<Visit> {
        let (recent, old) = (self.recent.remove(key), self.old.remove(key));
        recent.or(old)
    }

    fn put(&mut self, visit: Visit) {
        if self.recent.len() >= CACHED_VISITS {
            self.old = std::mem::take(&mut self.recent);
        }
        self.recent.insert(visit.key(), visit);
    }
}

struct BatchWriter {
    db: Db,
    cache: VisitCache,
}

impl BatchWriter {
    async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let (mut events, replies): (Vec<NewEvent>, Vec<_>) = batch.drain(..).unzip();
            match self.store(&mut events).await {
                Ok(stored) => replies.into_iter().zip(stored).for_each(|(reply, stored)| drop(reply.send(Ok(stored)))),
                // One bad event (its site deleted meanwhile, say) must not fail the rest, and a
                // lone event gets a second try: the connection is not checked before use, so its
                // first statement after a database restart fails and the retry reconnects. Once
                // an event finds the database unavailable, the rest are told so at once rather
                // than each waiting out its own timeout.
                Err(_) => {
                    let mut down: Option<Error> = None;
                    for (event, reply) in events.into_iter().zip(replies) {
                        let stored = match &down {
                            Some(e) => Err(e.clone()),
                            None => self.store(&mut [event]).await.map(|stored| stored[0]),
                        };
                        if let Err(e) = &stored
                            && e.code == ErrorCode::ServiceUnavailable
                        {
                            down = Some(e.clone());
                        }
                        drop(reply.send(stored));
                    }
                }
            }
        }
    }

    /// Stores a batch of events in one transaction, each joined to its visitor's open visit or
    /// starting a new one; returns, for each, whether it was stored (an engagement event outside
    /// any visit is not). Events are taken in time order.
    #[tracing::instrument(name = "db.query", skip_all, fields(otel.kind = "client", db.system = self.db.system(), db.operation.name = "INSERT events", batch = events.len()))]
    async fn store(&mut self, events: &mut [NewEvent]) -> Result<Vec<bool>> {
        self.db.begin().await?;
        // A failed COMMIT may leave the transaction open (SQLite says to roll back then), and
        // an open one would fail every later BEGIN.
        let written = match self.write(events).await {
            Ok(visits) => self.db.commit().await.map(|()| visits),
            Err(e) => Err(e),
        };
        match written {
            Ok(visits) => {
                visits.into_iter().for_each(|visit| self.cache.put(visit));
                Ok(events.iter().map(|e| !e.visit_id.is_empty()).collect())
            }
            Err(e) => {
                self.db.rollback().await;
                Err(e)
            }
        }
    }

    /// The visits a batch may touch: `visits`, with `current` pointing at each visitor's latest.
    async fn open_visits(
        &mut self,
        events: &[NewEvent],
        order: &[usize],
    ) -> Result<(Vec<Visit>, HashMap<(String, String), usize>)> {
        let mut visits: Vec<Visit> = vec![];
        let mut current: HashMap<(String, String), usize> = HashMap::new();
        let mut unknown: Vec<&str> = vec![];
        let mut since = i64::MAX;
        let mut seen = HashSet::new();
        for &i in order {
            let event = &events[i];
            if !seen.insert((event.website_id.as_str(), event.visitor_id.as_str())) {
                continue;
            }
            let key = (event.website_id.clone(), event.visitor_id.clone());
            match self.cache.take(&key) {
                Some(visit) if continues_visit(visit.alive_ts, event.ts) => {
                    current.insert(key, visits.len());
                    visits.push(Visit {
                        pageviews: 0,
                        events: 0,
                        passive: 0,
                        touched: false,
                        entered_late: false,
                        ..visit
                    });
                }
                _ => {
                    unknown.push(event.visitor_id.as_str());
                    since = since.min(event.ts);
                }
            }
        }
        let found = if unknown.is_empty() { vec![] } else { self.db.visits(&unknown, since - VISIT_GAP_MS).await? };
        for visit in found {
            let key = visit.key();
            if current.get(&key).is_none_or(|&i| visits[i].alive_ts < visit.alive_ts) {
                current.insert(key, visits.len());
                visits.push(visit);
            }
        }
        Ok((visits, current))
    }

    /// The batch's writes, in the open transaction; returns the visits it wrote. An engagement
    /// event with no open visit is not written (its `visit_id` stays empty), as Plausible drops it.
    async fn write(&mut self, events: &mut [NewEvent]) -> Result<Vec<Visit>> {
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].ts);
        let (mut visits, mut current) = self.open_visits(events, &order).await?;
        for i in order {
            let event = &mut events[i];
            let key = (event.website_id.clone(), event.visitor_id.clone());
            let index = match current.get(&key) {
                Some(&i) if continues_visit(visits[i].alive_ts, event.ts) => i,
                _ if event.name == ENGAGEMENT => continue,
                _ => {
                    current.insert(key, visits.len());
                    visits.push(Visit::start(event));
                    visits.len() - 1
                }
            };
            visits[index].add(event);
        }
        visits.retain(|visit| visit.touched);
        // In one order for every writer, so that two replicas' batches sharing visits take their
        // row locks in the same order.
        visits.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let kept: Vec<&NewEvent> = events.iter().filter(|e| !e.visit_id.is_empty()).collect();
        let now = now_ms();
        let (mut open_days, mut stale_days) = (Vec::new(), Vec::new());
        for e in &kept {
            let days = if open_write(e.ts, now) { &mut open_days } else { &mut stale_days };
            days.push((e.website_id.as_str(), day_of(e.ts)));
        }
        // Earlier events of a visit that entered late take its entry page: their days' rollups
        // change, as for a late event.
        for visit in visits.iter().filter(|v| v.entered_late) {
            let days = (day_of(visit.start_ts)..=day_of(visit.alive_ts)).step_by(DAY_MS as usize);
            stale_days.extend(days.map(|day| (visit.website_id.as_str(), day)));
        }
        for days in [&mut open_days, &mut stale_days] {
            days.sort_unstable();
            days.dedup();
        }
        // A day written both ways is stale.
        open_days.retain(|day| stale_days.binary_search(day).is_err());
        self.db.write(&Rows { events: &kept, visits: &visits, stale_days, open_days, classified_at: now }).await?;
        Ok(visits)
    }
}

/// `SET` of a visit written again, after each backend's conflict target: the batch's counts are
/// increments, its exit page stands unless the stored visit has a later event (from another
/// replica), and its entry page fills one still empty (a visit whose first pageview came late). With one writer per visitor that is exact; across replicas the exit page is the
/// last pageview of the batch that wrote the latest event, which may differ from the latest
/// pageview when a custom event and a pageview of one visit reach two replicas within one batch
/// time.
const VISIT_UPDATE: &str = "DO UPDATE SET \
     last_ts = CASE WHEN excluded.last_ts > visits.last_ts THEN excluded.last_ts ELSE visits.last_ts END, \
     alive_ts = CASE WHEN excluded.alive_ts > visits.alive_ts THEN excluded.alive_ts ELSE visits.alive_ts END, \
     pageviews = visits.pageviews + excluded.pageviews, events = visits.events + excluded.events, \
     passive = visits.passive + excluded.passive, \
     exit_page = CASE WHEN excluded.pageviews > 0 AND excluded.last_ts >= visits.last_ts \
     THEN excluded.exit_page ELSE visits.exit_page END, \
     entry_page = CASE WHEN visits.entry_page = '' THEN excluded.entry_page ELSE visits.entry_page END";

/// The events of a visit that entered late (`$1` its entry page, `$2` its id, `$3` its site,
/// `$4`..`$5` its first and latest event's times) take its entry page, as Plausible's events
/// take their session's: a custom event before the visit's first pageview counts under the page
/// the visit entered on. Bounded by site and time, so that it reads the site's events of those
/// minutes only.
pub(crate) const ENTERED_LATE: &str = "UPDATE events SET entry_page = $1 \
     WHERE website_id = $3 AND ts >= $4 AND ts <= $5 AND visit_id = $2 AND entry_page = ''";

/// Conflict clauses of a site-day's pending-rollup row: a stale write bumps the day's version,
/// an open one only makes sure the day is pending (see [`open_write`]). Open rows are written
/// first: an open insert waits for another writer's uncommitted bump of the row, so a writer
/// waiting there must hold no bumped row of its own, or two writers could wait for each other.
const PENDING_STALE: &str =
    "ON CONFLICT (website_id, day) DO UPDATE SET version = rollup_pending.version + 1, claimed_until = 0";
const PENDING_OPEN: &str = "ON CONFLICT (website_id, day) DO NOTHING";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_open_until_ten_minutes_before_its_end() {
        let day = 20_000 * DAY_MS;
        assert!(open_day(day, day));
        assert!(open_day(day, day + DAY_MS - OPEN_DAY_MARGIN_MS - 1));
        assert!(!open_day(day, day + DAY_MS - OPEN_DAY_MARGIN_MS), "the last ten minutes");
        assert!(!open_day(day, day + DAY_MS), "yesterday");
        assert!(!open_day(day + DAY_MS, day + DAY_MS / 2), "tomorrow, by a clock behind");
    }

    #[test]
    fn an_event_of_today_older_than_a_minute_is_a_stale_write() {
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert!(open_write(noon, noon));
        assert!(open_write(noon - LATE_MS, noon));
        assert!(!open_write(noon - LATE_MS - 1, noon), "older than a minute");
        assert!(!open_write(noon - DAY_MS, noon), "yesterday");
    }
}
