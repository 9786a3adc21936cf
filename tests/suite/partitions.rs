//! Upgrades of stores written before the PostgreSQL partitioning of `events` (migration 0010)
//! and of `visits` (0012): what was stored before is kept and answers as before, and a visit
//! open before the upgrade is continued after it. On SQLite the same migrations only index, and
//! the same checks hold. Making a partition never holds up writes behind a long query. Browsers
//! and operating systems stored under their former names are renamed as Plausible names them
//! (0018).

use std::borrow::Cow;
use std::path::Path;

use analytics::service::QueryRequest;
use analytics::store::{DAY_MS, day_of};
use common::db::{AnyPool, Backend};
use sqlx::Row;
use sqlx::migrate::Migrator;

use crate::conformance::pageview;
use crate::harness::asked_period;
use crate::harness::on_each_empty_backend;

/// 2026-01-10T00:00:00Z, the day the stores below were written.
const DAY: i64 = 1_768_003_200_000;

/// Analytics' database on `backend` with the migrations up to `version` applied, as a release
/// of that time left it (each backend's text, as the service picks them).
pub(crate) async fn analytics_migrated_to(backend: &Backend, version: i64) -> AnyPool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/analytics/migrations");
    let up_to = |migrator: Migrator| Migrator {
        migrations: Cow::Owned(migrator.iter().filter(|m| m.version <= version).cloned().collect()),
        ..Migrator::DEFAULT
    };
    let shared = up_to(Migrator::new(dir.as_path()).await.unwrap());
    let postgres = up_to(Migrator::new(dir.join("postgres").as_path()).await.unwrap());
    common::db::open_with_postgres_variants(backend, "analytics", &shared, &postgres).await.unwrap()
}

async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().try_get(0).unwrap()
}

async fn figures(analytics: &analytics::Analytics, website_id: &str, metrics: &str) -> Vec<f64> {
    let (period, end_day) = asked_period("day", "2026-01-10");
    let request = QueryRequest {
        website_id: website_id.into(),
        metrics: metrics.split(',').map(str::to_owned).collect(),
        period,
        end_day,
        ..Default::default()
    };
    analytics.query(request).await.unwrap().0.rows[0].1.clone()
}

async fn insert_website(pool: &AnyPool, id: &str) {
    sqlx::query(
        "INSERT INTO websites (id, team_id, domain, name, timezone, tracking_code, created_at) \
         VALUES ($1, 't1', $2, 'S', 'UTC', $3, 0)",
    )
    .bind(id)
    .bind(format!("{id}.example"))
    .bind(format!("code-{id}"))
    .execute(pool)
    .await
    .unwrap();
}

/// A large `events` table written before migration 0010 (which rebuilds it as the first
/// partition of a partitioned table on PostgreSQL) keeps every event, each found by its key,
/// and the statistics count them all.
#[tokio::test]
async fn events_stored_before_partitioning_are_all_kept() {
    const EVENTS: i64 = 50_000;
    on_each_empty_backend(|backend| async move {
        let pool = analytics_migrated_to(&backend, 9).await;
        insert_website(&pool, "before").await;
        // One statement for both backends: 50,000 pageviews of 500 visitors over ten pages, one
        // a second from midnight.
        sqlx::query(
            "WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1) \
             INSERT INTO events (id, website_id, ts, name, pathname, referrer_host, visitor_id, country, props) \
             SELECT 'e' || i, 'before', $2 + i * 1000, 'pageview', '/p' || (i % 10), '', 'v' || (i % 500), 'FR', '{}' \
             FROM n",
        )
        .bind(EVENTS)
        .bind(DAY)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let pool = analytics_migrated_to(&backend, i64::MAX).await;
        assert_eq!(count(&pool, "SELECT COUNT(DISTINCT id) FROM events").await, EVENTS);
        let last =
            format!("SELECT COUNT(*) FROM events WHERE id = 'e{}' AND ts = {}", EVENTS - 1, DAY + (EVENTS - 1) * 1000);
        assert_eq!(count(&pool, &last).await, 1, "found by its key");
        assert_eq!(figures(&analytics, "before", "visitors,pageviews").await, [500.0, EVENTS as f64]);
        if let Backend::Postgres { .. } = backend {
            let old = count(&pool, "SELECT COUNT(*) FROM events_before_partitioning").await;
            assert_eq!(old, EVENTS, "the old table is the first partition");
        }
    })
    .await;
}

/// One visit as the writer before migration 0012 stored it, with its pageviews (minutes after
/// 10:00 on `DAY`), each pageview with the visit's attributes.
async fn insert_visit(pool: &AnyPool, id: &str, visitor: &str, minutes: &[i64]) {
    let at = |m: i64| DAY + 10 * 3_600_000 + m * 60_000;
    let (start, last) = (at(minutes[0]), at(*minutes.last().unwrap()));
    sqlx::query(
        "INSERT INTO visits (id, website_id, visitor_id, start_ts, last_ts, alive_ts, pageviews, events, \
         entry_page, exit_page, source, utm_source, utm_medium, utm_campaign, country, browser, os, device) \
         VALUES ($1, 'before', $2, $3, $4, $4, $5, $5, '/', '/', 'Direct / None', '', '', '', '', '', '', '')",
    )
    .bind(id)
    .bind(visitor)
    .bind(start)
    .bind(last)
    .bind(minutes.len() as i64)
    .execute(pool)
    .await
    .unwrap();
    for &m in minutes {
        sqlx::query(
            "INSERT INTO events (id, website_id, ts, name, pathname, referrer_host, visitor_id, country, props, \
             visit_id, entry_page, source) VALUES ($1, 'before', $2, 'pageview', '/', '', $3, '', '{}', $4, '/', 'Direct / None')",
        )
        .bind(format!("{id}-{m}"))
        .bind(at(m))
        .bind(visitor)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Visits written before migration 0012 (which partitions `visits` on PostgreSQL) keep their
/// figures, and an event after the upgrade continues the visit that was open: its counts and
/// duration grow in place, no second visit starts. A visit of a later day goes to that day's
/// partition, made ahead of time.
#[tokio::test]
async fn visits_stored_before_partitioning_keep_their_figures_and_stay_open() {
    use analytics::writer::Writer;

    on_each_empty_backend(|backend| async move {
        let pool = analytics_migrated_to(&backend, 11).await;
        insert_website(&pool, "before").await;
        // `pageview`'s visitor, at 10:00 and 10:05: the visit the writer continues below.
        insert_visit(&pool, "visit-a", &pageview("", 0, "").visitor_id, &[0, 5]).await;
        insert_visit(&pool, "visit-b", "fedcba9876543210fedcba9876543210", &[60]).await;
        pool.close().await;

        let analytics = analytics::Analytics::open(&backend).await.unwrap();
        let all = "visits,pageviews,visit_duration,bounce_rate";
        assert_eq!(figures(&analytics, "before", all).await, [2.0, 3.0, 150.0, 50.0]);

        // Fifteen minutes after its last event, read back from the store by a fresh writer.
        let writer = Writer::spawn(&backend).await.unwrap();
        writer.enqueue(pageview("before", 20, "/c")).await.unwrap().await.unwrap().unwrap();
        assert_eq!(figures(&analytics, "before", all).await, [2.0, 4.0, 600.0, 50.0]);
        let pool = analytics_migrated_to(&backend, i64::MAX).await;
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM visits").await, 2, "no visit started again");

        if let Backend::Postgres { .. } = backend {
            let today = day_of(common::time::now_ms()) + DAY_MS / 2;
            let event = analytics::store::NewEvent { ts: today, ..pageview("before", 0, "/") };
            writer.enqueue(event).await.unwrap().await.unwrap().unwrap();
            let partition = analytics::retention::partition_name("visits", today);
            assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {partition}")).await, 1, "today's partition");
        }
    })
    .await;
}

/// Browsers and systems stored by earlier releases under their own names ("Edge", "macOS") are
/// renamed as Plausible names them in events, visits and one dimension's rollups; rollups of a
/// pair with a browser or a system go, and such a pair's days read raw events.
#[tokio::test]
async fn browsers_and_systems_stored_under_former_names_are_renamed_as_plausible_names_them() {
    on_each_empty_backend(|backend| async move {
        let pool = analytics_migrated_to(&backend, 17).await;
        insert_website(&pool, "before").await;
        insert_visit(&pool, "visit-a", "0123456789abcdef0123456789abcdef", &[0]).await;
        for table in ["events", "visits"] {
            sqlx::query(&format!("UPDATE {table} SET browser = 'Edge', os = 'macOS'")).execute(&pool).await.unwrap();
        }
        let rollup = "INSERT INTO rollups (website_id, day, dim, value, visitors, pageviews, events, visits, bounces, \
                      duration, views) VALUES ('before', $1, $2, $3, 1, 1, 1, 1, 1, 0, 1)";
        for (dim, value) in [
            ("visit:os", "Linux"),
            ("visit:browser", "Samsung Internet"),
            ("visit:browser", "Webview"),
            (r#"["visit:browser","visit:os"]"#, r#"["Edge","macOS"]"#),
            (r#"["visit:browser","visit:os"]"#, ""),
            (r#"["visit:country","visit:source"]"#, r#"["FR","Edge"]"#),
        ] {
            sqlx::query(rollup).bind(DAY).bind(dim).bind(value).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let pool = analytics_migrated_to(&backend, i64::MAX).await;
        for table in ["events", "visits"] {
            let row = sqlx::query(&format!("SELECT browser, os FROM {table}")).fetch_one(&pool).await.unwrap();
            let names: (String, String) = (row.get(0), row.get(1));
            assert_eq!(names, ("Microsoft Edge".to_owned(), "Mac".to_owned()), "{table}");
        }
        let rows = sqlx::query("SELECT dim, value FROM rollups ORDER BY dim, value").fetch_all(&pool).await.unwrap();
        let rows: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let expected = [
            (r#"["visit:country","visit:source"]"#, r#"["FR","Edge"]"#),
            ("visit:browser", "Mobile App"),
            ("visit:browser", "Samsung Browser"),
            ("visit:os", "GNU/Linux"),
        ];
        assert_eq!(rows, expected.map(|(d, v)| (d.to_owned(), v.to_owned())));
    })
    .await;
}

/// Making a day's partition takes an exclusive lock on `events`. While a long query holds the
/// table, the partition waits for it a moment at a time instead of queueing every write behind
/// its request: today's events are stored meanwhile, and the partition is made once the query
/// ends.
#[tokio::test]
async fn a_partition_waiting_for_a_long_query_holds_up_no_write() {
    use sqlx::Connection as _;

    let database = crate::harness::TestDatabase::create().await;
    let backend = Backend::Postgres { url: database.url.clone() };
    let analytics = analytics::Analytics::open(&backend).await.unwrap();
    let site = analytics.create_website("t1", "locked.example", "S", None).await.unwrap();
    let writer = analytics::writer::Writer::spawn(&backend).await.unwrap();

    let mut reader = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::raw_sql("SET search_path TO analytics; BEGIN; SELECT COUNT(*) FROM events")
        .execute(&mut reader)
        .await
        .unwrap();
    let other = analytics::store::Store::open(&backend, &analytics::Storage::default()).await.unwrap();
    let making = tokio::spawn(async move { other.ensure_partitions(DAY - 400 * DAY_MS, DAY - 400 * DAY_MS).await });
    let mut watcher = sqlx::PgConnection::connect(&database.url).await.unwrap();
    // The partition's request for the lock on this database's `events`, seen waiting once.
    let waiting = "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock' \
                   AND relation = 'analytics.events'::regclass \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watcher).await.unwrap() == 0 {
        assert!(!making.is_finished(), "the partition was made or failed without waiting for the query");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let now = common::time::now_ms();
    let today = analytics::store::NewEvent { ts: now, ..pageview(&site.id, 0, "/") };
    writer.enqueue(today).await.unwrap().await.unwrap().unwrap();
    assert!(!making.is_finished(), "the partition still waits for the query");

    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    making.await.unwrap().unwrap();
    let name = analytics::retention::partition_name("events", day_of(DAY - 400 * DAY_MS));
    let made: Option<String> = sqlx::query_scalar(&format!("SELECT to_regclass('analytics.{name}')::text"))
        .fetch_one(&mut watcher)
        .await
        .unwrap();
    assert!(made.is_some(), "{name} was made");
}

/// Without statistics PostgreSQL took a day's conditions to match a row or two: a day written
/// in one go and rolled up at once (an import, with the server's upkeep beside it) joined tens of
/// thousands of visits to their events by nested loops. A rollup gives such a day's partitions
/// their statistics first.
#[tokio::test]
async fn a_day_rolled_up_before_autovacuum_reached_it_is_analyzed_first() {
    let database = crate::harness::TestDatabase::create().await;
    let backend = Backend::Postgres { url: database.url.clone() };
    let analytics = analytics::Analytics::open(&backend).await.unwrap();
    let site = analytics.create_website("t1", "fresh.example", "S", None).await.unwrap();
    analytics.prepare_import(DAY, DAY).await.unwrap();
    let writer = analytics::writer::Writer::spawn(&backend).await.unwrap();
    for minute in 0..200 {
        let event = analytics::store::NewEvent {
            visitor_id: format!("{minute:032x}"),
            ..pageview(&site.id, minute, &format!("/p{}", minute % 7))
        };
        writer.enqueue(event).await.unwrap().await.unwrap().unwrap();
    }
    let pool = analytics_migrated_to(&backend, i64::MAX).await;
    for table in ["events", "visits"] {
        let name = analytics::retention::partition_name(table, DAY);
        // Autovacuum would analyze them too, at a time of its own.
        sqlx::raw_sql(&format!("ALTER TABLE {name} SET (autovacuum_enabled = false)")).execute(&pool).await.unwrap();
    }
    let tuples = |table: &str| {
        let name = analytics::retention::partition_name(table, DAY);
        let pool = pool.clone();
        async move {
            count(&pool, &format!("SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE oid = to_regclass('{name}')"))
                .await
        }
    };
    assert_eq!((tuples("events").await, tuples("visits").await), (-1, -1), "not analyzed yet");

    assert_eq!(analytics.roll_up(DAY + 2 * DAY_MS).await.unwrap(), 1);
    assert_eq!((tuples("events").await, tuples("visits").await), (200, 200));
}
