//! Which instants a named period covers. The same name means different days to our own
//! endpoints and to Plausible's Stats API v1 and v2, whose clients expect Plausible's days (the
//! README's "Events and statistics" has the table).

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use common::{Error, Result};

/// Whose meaning a period name has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Meaning {
    /// Our endpoints': the days up to and including today.
    #[default]
    Ours,
    /// Plausible's Stats API v1: `7d` ends yesterday, `month`, `6mo`, `12mo` and `year` run to
    /// the end of their last month or year; its default date is today in UTC.
    PlausibleV1,
    /// Plausible's Stats API v2: `Nd` and `Nmo` are whole days or months before the current
    /// one; `month` and `year` are the whole current month or year.
    PlausibleV2,
}

/// A period as asked, before it is resolved.
pub struct Period<'a> {
    pub meaning: Meaning,
    pub name: &'a str,
    /// The day the period is relative to (`YYYY-MM-DD`, default today), or two days for `custom`.
    pub date: &'a str,
    pub now: DateTime<Utc>,
    /// When the site's first event happened, for `all`.
    pub first_event: Option<i64>,
}

/// The day's first instant: midnight, or the end of a DST gap that swallowed it.
pub fn midnight(tz: Tz, d: NaiveDate) -> Result<i64> {
    (0..=3)
        .find_map(|hour| tz.from_local_datetime(&d.and_hms_opt(hour, 0, 0)?).earliest())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| Error::internal("no first instant of the local day"))
}

fn out_of_range() -> Error {
    Error::invalid("date", "out of range")
}

fn day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| Error::invalid("date", "must be YYYY-MM-DD (or two, for custom)"))
}

fn back(end: NaiveDate, days: u64) -> Result<NaiveDate> {
    end.checked_sub_days(Days::new(days)).ok_or_else(out_of_range)
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

fn last_of_month(d: NaiveDate) -> Result<NaiveDate> {
    let next = first_of_month(d).checked_add_months(Months::new(1)).ok_or_else(out_of_range)?;
    back(next, 1)
}

fn months_back(d: NaiveDate, n: u32) -> Result<NaiveDate> {
    first_of_month(d).checked_sub_months(Months::new(n)).ok_or_else(out_of_range)
}

fn whole_year(d: NaiveDate) -> Result<(NaiveDate, NaiveDate)> {
    let first = d.with_ordinal(1).expect("day 1 exists");
    let last = NaiveDate::from_ymd_opt(d.year(), 12, 31).ok_or_else(out_of_range)?;
    Ok((first, last))
}

fn custom(date: &str) -> Result<(NaiveDate, NaiveDate)> {
    let (a, b) = date.split_once(',').ok_or_else(|| Error::invalid("date", "custom needs YYYY-MM-DD,YYYY-MM-DD"))?;
    let (a, b) = (day(a)?, day(b)?);
    if a > b {
        return Err(Error::invalid("date", "the first day must not be after the second"));
    }
    if b.signed_duration_since(a) > Duration::days(3660) {
        return Err(Error::invalid("date", "a custom period spans at most 10 years"));
    }
    Ok((a, b))
}

/// `7d` → (7, "d"), `12mo` → (12, "mo").
fn count_and_unit(name: &str) -> Option<(u32, &str)> {
    let digits = name.find(|c: char| !c.is_ascii_digit())?;
    let n = name[..digits].parse().ok().filter(|n| *n > 0)?;
    Some((n, &name[digits..]))
}

/// First and last day of a period named as our endpoints name them: up to `end` included.
fn ours(name: &str, end: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    let last_days = |n: u64| back(end, n - 1).map(|first| (first, end));
    Some(match name {
        "day" => Ok((end, end)),
        "7d" => last_days(7),
        "28d" => last_days(28),
        "30d" => last_days(30),
        "90d" => last_days(90),
        "91d" => last_days(91),
        "1y" => last_days(365),
        "month" => Ok((first_of_month(end), end)),
        "year" => Ok((end.with_ordinal(1).expect("day 1 exists"), end)),
        "6mo" => months_back(end, 5).map(|first| (first, end)),
        "12mo" => months_back(end, 11).map(|first| (first, end)),
        _ => return None,
    })
}

/// Plausible's v1 days: its `Nd` are the `n` days before `end`; months and years are whole.
fn plausible_v1(name: &str, end: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    let whole_months = |n: u32| Ok((months_back(end, n - 1)?, last_of_month(end)?));
    Some(match name {
        "7d" | "28d" | "30d" | "90d" => {
            let (n, _) = count_and_unit(name)?;
            back(end, u64::from(n)).and_then(|first| Ok((first, back(end, 1)?)))
        }
        "month" => whole_months(1),
        "6mo" => whole_months(6),
        "12mo" => whole_months(12),
        "year" => whole_year(end),
        _ => return ours(name, end),
    })
}

/// Plausible's v2 days: `Nd` (1–5000) and `Nmo` (1–100) end before the current day or month;
/// names that are not Plausible's (`1y`) keep our meaning.
fn plausible_v2(name: &str, today: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    Some(match (name, count_and_unit(name)) {
        ("day", _) => Ok((today, today)),
        ("month", _) => last_of_month(today).map(|last| (first_of_month(today), last)),
        ("year", _) => whole_year(today),
        (_, Some((n, "d"))) if n <= 5000 => back(today, u64::from(n)).and_then(|first| Ok((first, back(today, 1)?))),
        (_, Some((n, "mo"))) if n <= 100 => {
            months_back(today, n).and_then(|first| Ok((first, last_of_month(months_back(today, 1)?)?)))
        }
        _ => return ours(name, today),
    })
}

fn unknown(meaning: Meaning) -> Error {
    let names = match meaning {
        Meaning::PlausibleV2 => {
            "day, month, year, all, 7d (any 1–5000 days), 6mo (any 1–100 months), 24h, 1y, realtime"
        }
        _ => "day, 24h, 7d, 28d, 30d, 90d, 91d, month, 6mo, 12mo, year, 1y, all, realtime, custom",
    };
    Error::invalid("period", format!("must be one of {names}"))
}

/// `[from, to)` in unix ms of `period` in the site's zone.
pub fn resolve(tz: Tz, period: &Period<'_>) -> Result<(i64, i64)> {
    let now_ms = period.now.timestamp_millis();
    match period.name {
        "realtime" => return Ok((now_ms - 5 * 60_000, now_ms + 1)),
        "24h" => return Ok((now_ms - 86_400_000, now_ms + 1)),
        _ => {}
    }
    let local_today = period.now.with_timezone(&tz).date_naive();
    // Plausible's v1 takes "today" from the server's UTC clock, not the site's zone.
    let today = if period.meaning == Meaning::PlausibleV1 { period.now.date_naive() } else { local_today };
    let end = match period.name {
        "custom" | "all" => today,
        _ if period.date.is_empty() => today,
        _ => day(period.date)?,
    };
    let (first, last) = match period.name {
        "custom" => custom(period.date)?,
        "all" => {
            let start = period.first_event.and_then(DateTime::<Utc>::from_timestamp_millis);
            let start = start.map_or(today, |t| t.with_timezone(&tz).date_naive());
            (start.min(today), today)
        }
        name => {
            let days = match period.meaning {
                Meaning::Ours => ours(name, end),
                Meaning::PlausibleV1 => plausible_v1(name, end),
                Meaning::PlausibleV2 => plausible_v2(name, end),
            };
            days.ok_or_else(|| unknown(period.meaning))??
        }
    };
    let after = last.checked_add_days(Days::new(1)).ok_or_else(out_of_range)?;
    Ok((midnight(tz, first)?, midnight(tz, after)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(meaning: Meaning, name: &str, date: &str, now: DateTime<Utc>) -> (String, String) {
        let period = Period { meaning, name, date, now, first_event: None };
        let (from, to) = resolve(Tz::UTC, &period).unwrap();
        let day = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d").to_string();
        (day(from), day(to - 1))
    }

    #[test]
    fn plausible_periods_cover_plausibles_days() {
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
        let v1 = |name| days(Meaning::PlausibleV1, name, "", now);
        assert_eq!(v1("day"), ("2026-03-15".into(), "2026-03-15".into()));
        assert_eq!(v1("7d"), ("2026-03-08".into(), "2026-03-14".into()));
        assert_eq!(v1("30d"), ("2026-02-13".into(), "2026-03-14".into()));
        assert_eq!(v1("month"), ("2026-03-01".into(), "2026-03-31".into()));
        assert_eq!(v1("6mo"), ("2025-10-01".into(), "2026-03-31".into()));
        assert_eq!(v1("12mo"), ("2025-04-01".into(), "2026-03-31".into()));
        assert_eq!(v1("year"), ("2026-01-01".into(), "2026-12-31".into()));
        assert_eq!(days(Meaning::PlausibleV1, "7d", "2026-01-03", now), ("2025-12-27".into(), "2026-01-02".into()));
        let v2 = |name| days(Meaning::PlausibleV2, name, "", now);
        assert_eq!(v2("day"), ("2026-03-15".into(), "2026-03-15".into()));
        assert_eq!(v2("7d"), ("2026-03-08".into(), "2026-03-14".into()));
        assert_eq!(v2("30d"), ("2026-02-13".into(), "2026-03-14".into()));
        assert_eq!(v2("month"), ("2026-03-01".into(), "2026-03-31".into()));
        assert_eq!(v2("6mo"), ("2025-09-01".into(), "2026-02-28".into()));
        assert_eq!(v2("12mo"), ("2025-03-01".into(), "2026-02-28".into()));
        assert_eq!(v2("year"), ("2026-01-01".into(), "2026-12-31".into()));
        assert_eq!(v2("1mo"), ("2026-02-01".into(), "2026-02-28".into()));
        assert_eq!(v2("1y"), ("2025-03-16".into(), "2026-03-15".into()), "ours");
        let ours = |name| days(Meaning::Ours, name, "", now);
        assert_eq!(ours("7d"), ("2026-03-09".into(), "2026-03-15".into()));
        assert_eq!(ours("month"), ("2026-03-01".into(), "2026-03-15".into()));
        for (meaning, name) in
            [(Meaning::PlausibleV2, "0d"), (Meaning::PlausibleV2, "5001d"), (Meaning::PlausibleV2, "101mo")]
        {
            let period = Period { meaning, name, date: "", now, first_event: None };
            assert!(resolve(Tz::UTC, &period).is_err(), "{name}");
        }
    }

    #[test]
    fn v1_takes_today_from_utc_and_all_starts_at_the_first_event() {
        // 02:00 UTC on the 15th is still the 14th in New York.
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 2, 0, 0).unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        let local_day = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms).unwrap().with_timezone(&new_york).format("%Y-%m-%d").to_string()
        };
        let resolve_in = |meaning, name| {
            let first_event = Some(Utc.with_ymd_and_hms(2026, 1, 20, 3, 0, 0).unwrap().timestamp_millis());
            let (from, to) = resolve(new_york, &Period { meaning, name, date: "", now, first_event }).unwrap();
            (local_day(from), local_day(to - 1))
        };
        assert_eq!(resolve_in(Meaning::PlausibleV1, "day"), ("2026-03-15".into(), "2026-03-15".into()));
        assert_eq!(resolve_in(Meaning::PlausibleV2, "day"), ("2026-03-14".into(), "2026-03-14".into()));
        assert_eq!(resolve_in(Meaning::PlausibleV2, "all"), ("2026-01-19".into(), "2026-03-14".into()));
        let none = Period { meaning: Meaning::PlausibleV2, name: "all", date: "", now, first_event: None };
        let (from, to) = resolve(new_york, &none).unwrap();
        assert_eq!((local_day(from), local_day(to - 1)), ("2026-03-14".into(), "2026-03-14".into()));
    }
}
