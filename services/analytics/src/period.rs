//! Which instants a named period covers. The same name means different days to our own
//! endpoints and to Plausible's Stats API v1 and v2, whose clients expect Plausible's days (the
//! README's "Events and statistics" has the table).

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use common::{Error, Result};
use proto::analytics::v1::{Interval, NamedPeriod as Named};

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

/// A period as asked, before it is resolved: the contract's kinds of period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    Named(Named),
    /// Plausible v2's `Nd`: whole days before the current one.
    LastDays(u32),
    /// Plausible v2's `Nmo`: whole months before the current one.
    LastMonths(u32),
    /// Two days (`YYYY-MM-DD`), both included.
    Custom {
        first_day: String,
        last_day: String,
    },
    /// Plausible v2's two date-times: `[from, to)` in unix milliseconds, exactly.
    Instants {
        from: i64,
        to: i64,
    },
}

impl Default for Asked {
    /// Names no period: resolving it is an error.
    fn default() -> Asked {
        Asked::Named(Named::Unspecified)
    }
}

impl Asked {
    /// Only `all` needs the site's first event.
    pub fn is_all(&self) -> bool {
        *self == Asked::Named(Named::All)
    }
}

/// A period as asked, with what resolving it depends on.
pub struct Period<'a> {
    pub meaning: Meaning,
    pub asked: &'a Asked,
    /// The day a named or counted period ends on (`YYYY-MM-DD`), empty for today.
    pub end_day: &'a str,
    pub now: DateTime<Utc>,
    /// When the site's first event happened, for `all`.
    pub first_event: Option<i64>,
}

/// The interval of a v1 time series over `[from, to)` that names none (its period is `all`): as
/// Plausible's v1 chooses it from the first and last local days, months once they are a whole
/// month apart, days once they differ, else hours.
pub fn v1_interval(tz: Tz, (from, to): (i64, i64)) -> Interval {
    let day = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&tz).date_naive();
    let (first, last) = (day(from), day(to - 1));
    let months = (last.year() - first.year()) * 12 + last.month() as i32
        - first.month() as i32
        - i32::from(last.day() < first.day());
    if months > 0 {
        Interval::Month
    } else if last > first {
        Interval::Day
    } else {
        Interval::Hour
    }
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
        .map_err(|_| Error::invalid("date", "must be a day of the calendar, YYYY-MM-DD (or two, for custom)"))
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

fn custom(first_day: &str, last_day: &str) -> Result<(NaiveDate, NaiveDate)> {
    let (a, b) = (day(first_day)?, day(last_day)?);
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
fn ours(period: Named, end: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    let last_days = |n: u64| back(end, n - 1).map(|first| (first, end));
    Some(match period {
        Named::Day => Ok((end, end)),
        Named::NamedPeriod7d => last_days(7),
        Named::NamedPeriod28d => last_days(28),
        Named::NamedPeriod30d => last_days(30),
        Named::NamedPeriod90d => last_days(90),
        Named::NamedPeriod91d => last_days(91),
        Named::NamedPeriod1y => last_days(365),
        Named::Month => Ok((first_of_month(end), end)),
        Named::Year => Ok((end.with_ordinal(1).expect("day 1 exists"), end)),
        Named::NamedPeriod6mo => months_back(end, 5).map(|first| (first, end)),
        Named::NamedPeriod12mo => months_back(end, 11).map(|first| (first, end)),
        Named::NamedPeriod24h | Named::All | Named::Realtime | Named::Unspecified => return None,
    })
}

/// Plausible's v1 days: its `Nd` are the `n` days before `end`; months and years are whole.
fn plausible_v1(period: Named, end: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    let whole_months = |n: u32| Ok((months_back(end, n - 1)?, last_of_month(end)?));
    Some(match period {
        Named::NamedPeriod7d | Named::NamedPeriod28d | Named::NamedPeriod30d | Named::NamedPeriod90d => {
            let (n, _) = count_and_unit(period.name())?;
            back(end, u64::from(n)).and_then(|first| Ok((first, back(end, 1)?)))
        }
        Named::Month => whole_months(1),
        Named::NamedPeriod6mo => whole_months(6),
        Named::NamedPeriod12mo => whole_months(12),
        Named::Year => whole_year(end),
        _ => return ours(period, end),
    })
}

/// Plausible's v2 days: `Nd` (1–5000) and `Nmo` (1–100), asked as counts or by name, end
/// before the current day or month; names that are not Plausible's (`1y`) keep our meaning.
fn plausible_v2(asked: &Asked, today: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    let days_before = |n: u32| back(today, u64::from(n)).and_then(|first| Ok((first, back(today, 1)?)));
    let months_before =
        |n: u32| months_back(today, n).and_then(|first| Ok((first, last_of_month(months_back(today, 1)?)?)));
    let counted = |named: Named| count_and_unit(named.name());
    Some(match asked {
        Asked::Named(Named::Day) => Ok((today, today)),
        Asked::Named(Named::Month) => last_of_month(today).map(|last| (first_of_month(today), last)),
        Asked::Named(Named::Year) => whole_year(today),
        Asked::LastDays(n @ 1..=5000) => days_before(*n),
        Asked::LastMonths(n @ 1..=100) => months_before(*n),
        Asked::Named(named) => match counted(*named) {
            Some((n, "d")) => days_before(n),
            Some((n, "mo")) => months_before(n),
            _ => return ours(*named, today),
        },
        _ => return None,
    })
}

/// The first and last day of a named or counted period ending on `end`, in `meaning`.
fn days(meaning: Meaning, asked: &Asked, end: NaiveDate) -> Option<Result<(NaiveDate, NaiveDate)>> {
    match (meaning, asked) {
        (Meaning::Ours, Asked::Named(named)) => ours(*named, end),
        (Meaning::PlausibleV1, Asked::Named(named)) => plausible_v1(*named, end),
        (Meaning::PlausibleV2, asked) => plausible_v2(asked, end),
        _ => None,
    }
}

/// A period the meaning has no days for: the gateway sends only those it has.
fn unknown(meaning: Meaning, asked: &Asked) -> Error {
    Error::invalid("period", format!("{asked:?} has no days in {meaning:?}'s meaning"))
}

/// `[from, to)` in unix ms of `period` in the site's zone.
pub fn resolve(tz: Tz, period: &Period<'_>) -> Result<(i64, i64)> {
    let now_ms = period.now.timestamp_millis();
    match period.asked {
        Asked::Named(Named::Realtime) => return Ok((now_ms - 5 * 60_000, now_ms + 1)),
        Asked::Named(Named::NamedPeriod24h) => return Ok((now_ms - 86_400_000, now_ms + 1)),
        Asked::Instants { from, to } => {
            if from >= to {
                return Err(Error::invalid("date", "the first instant must be before the second"));
            }
            if to - from > 3661 * 86_400_000 {
                return Err(Error::invalid("date", "a period spans at most 10 years"));
            }
            return Ok((*from, *to));
        }
        _ => {}
    }
    let local_today = period.now.with_timezone(&tz).date_naive();
    // Plausible's v1 takes "today" from the server's UTC clock, not the site's zone.
    let today = if period.meaning == Meaning::PlausibleV1 { period.now.date_naive() } else { local_today };
    let end = match period.asked {
        Asked::Custom { .. } | Asked::Named(Named::All) => today,
        _ if period.end_day.is_empty() => today,
        _ => day(period.end_day)?,
    };
    let (first, last) = match period.asked {
        Asked::Custom { first_day, last_day } => custom(first_day, last_day)?,
        Asked::Named(Named::All) => {
            let start = period.first_event.and_then(DateTime::<Utc>::from_timestamp_millis);
            let start = start.map_or(today, |t| t.with_timezone(&tz).date_naive());
            (start.min(today), today)
        }
        asked => days(period.meaning, asked, end).ok_or_else(|| unknown(period.meaning, asked))??,
    };
    let after = last.checked_add_days(Days::new(1)).ok_or_else(out_of_range)?;
    Ok((midnight(tz, first)?, midnight(tz, after)?))
}

/// The period of the same length just before `(from, to)`, a period `resolve` gave, that a
/// comparison is with. A period of whole local days is first cut at the end of today (v1's
/// today is UTC's), as Plausible cuts it: `month` on the 5th compares the 1st to the 5th with the
/// 5 days before. Other periods (`24h`, instants) move back by their length.
pub fn previous(tz: Tz, period: &Period<'_>, (from, to): (i64, i64)) -> Result<(i64, i64)> {
    let local_day = |at: i64| DateTime::<Utc>::from_timestamp_millis(at).map(|t| t.with_timezone(&tz).date_naive());
    let (Some(first), Some(end)) = (local_day(from), local_day(to)) else {
        return Err(out_of_range());
    };
    let whole_days = midnight(tz, first)? == from && midnight(tz, end)? == to;
    if !whole_days {
        return Ok((from - (to - from), from));
    }
    let local_today = period.now.with_timezone(&tz).date_naive();
    let today = if period.meaning == Meaning::PlausibleV1 { period.now.date_naive() } else { local_today };
    let after_today = today.checked_add_days(Days::new(1)).ok_or_else(out_of_range)?;
    let days = (end.min(after_today) - first).num_days().max(1) as u64;
    Ok((midnight(tz, back(first, days)?)?, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_chooses_months_once_the_days_are_a_whole_month_apart() {
        let utc = |d: &str| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis()
        };
        let days = |a: &str, b: &str| v1_interval(Tz::UTC, (utc(a), utc(b) + 86_400_000));
        assert_eq!(days("2026-01-15", "2026-02-15"), Interval::Month);
        assert_eq!(days("2026-01-15", "2026-02-14"), Interval::Day);
        assert_eq!(days("2026-01-31", "2026-02-28"), Interval::Day);
        assert_eq!(days("2024-06-01", "2026-12-06"), Interval::Month);
        assert_eq!(days("2026-12-06", "2026-12-06"), Interval::Hour);
    }

    /// A period as clients name it: a name, or `Nd`/`Nmo` counted.
    fn asked(name: &str) -> Asked {
        match (Named::from_name(name), count_and_unit(name)) {
            (Some(named), _) => Asked::Named(named),
            (None, Some((n, "d"))) => Asked::LastDays(n),
            (None, Some((n, "mo"))) => Asked::LastMonths(n),
            _ => Asked::default(),
        }
    }

    fn days(meaning: Meaning, name: &str, end_day: &str, now: DateTime<Utc>) -> (String, String) {
        let asked = asked(name);
        let period = Period { meaning, asked: &asked, end_day, now, first_event: None };
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
            let asked = asked(name);
            let period = Period { meaning, asked: &asked, end_day: "", now, first_event: None };
            assert!(resolve(Tz::UTC, &period).is_err(), "{name}");
        }
    }

    #[test]
    fn a_comparison_is_with_the_days_before_the_period_cut_at_today() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let compared = |meaning, name: &str| {
            let asked = asked(name);
            let period = Period { meaning, asked: &asked, end_day: "", now, first_event: None };
            let (from, to) = previous(paris, &period, resolve(paris, &period).unwrap()).unwrap();
            let day = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap().with_timezone(&paris).date_naive();
            (day(from).to_string(), day(to - 1).to_string())
        };
        // v1's December, cut at the 5th, is compared with the 5 days before.
        assert_eq!(compared(Meaning::PlausibleV1, "month"), ("2026-11-26".into(), "2026-11-30".into()));
        assert_eq!(compared(Meaning::PlausibleV1, "7d"), ("2026-11-21".into(), "2026-11-27".into()));
        let day = Period { meaning: Meaning::Ours, asked: &asked("24h"), end_day: "", now, first_event: None };
        let range = resolve(paris, &day).unwrap();
        assert_eq!(previous(paris, &day, range).unwrap(), (range.0 - (range.1 - range.0), range.0));
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
            let asked = asked(name);
            let (from, to) =
                resolve(new_york, &Period { meaning, asked: &asked, end_day: "", now, first_event }).unwrap();
            (local_day(from), local_day(to - 1))
        };
        assert_eq!(resolve_in(Meaning::PlausibleV1, "day"), ("2026-03-15".into(), "2026-03-15".into()));
        assert_eq!(resolve_in(Meaning::PlausibleV2, "day"), ("2026-03-14".into(), "2026-03-14".into()));
        assert_eq!(resolve_in(Meaning::PlausibleV2, "all"), ("2026-01-19".into(), "2026-03-14".into()));
        let all = Asked::Named(Named::All);
        let none = Period { meaning: Meaning::PlausibleV2, asked: &all, end_day: "", now, first_event: None };
        let (from, to) = resolve(new_york, &none).unwrap();
        assert_eq!((local_day(from), local_day(to - 1)), ("2026-03-14".into(), "2026-03-14".into()));
    }
}
