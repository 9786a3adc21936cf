//! The names of the statistics vocabulary the external API accepts (docs/behaviour.md#external-rest-api):
//! the handlers validate against these lists and the OpenAPI document enumerates them. They are
//! built from the contract's enums (`proto::vocabulary`), which alone write the names.

use std::sync::LazyLock;

use common::Error;
use proto::analytics::v1::period::Kind;
use proto::analytics::v1::{self as anpb, Interval, Metric, NamedPeriod, PeriodMeaning, Property};
pub use proto::vocabulary::{CUSTOM_PERIOD, PROPS};

type Names = LazyLock<Vec<&'static str>>;

/// Range of `/analytics`: the periods up to today that the overview offers.
pub static RANGES: Names = LazyLock::new(|| {
    use NamedPeriod as P;
    [P::NamedPeriod24h, P::NamedPeriod7d, P::NamedPeriod30d, P::NamedPeriod90d, P::NamedPeriod1y].map(P::name).to_vec()
});

/// A range of `/analytics` by name.
pub fn range(name: &str) -> Option<NamedPeriod> {
    NamedPeriod::from_name(name).filter(|_| RANGES.contains(&name))
}

/// Plausible's periods, with ours (`24h`, `1y`), and `custom`.
pub static PERIODS: Names = LazyLock::new(|| NamedPeriod::names().chain([CUSTOM_PERIOD]).collect());

/// Plausible v1's name of the `day` interval besides `day`.
pub const V1_DAY: &str = "date";

/// Buckets of a v1 time series: the intervals, with `date` for `day`.
pub static INTERVALS: Names = LazyLock::new(|| {
    Interval::all().flat_map(|i| if i == Interval::Day { vec![V1_DAY, i.name()] } else { vec![i.name()] }).collect()
});

pub static METRICS: Names = LazyLock::new(|| Metric::names().collect());

/// The metrics of the Stats API v1: all but v2's `group_conversion_rate` (v1's `conversion_rate`
/// is of each row's group already).
pub static V1_METRICS: Names =
    LazyLock::new(|| Metric::all().filter(|m| *m != Metric::GroupConversionRate).map(Metric::name).collect());

/// Properties to break down or filter by; custom properties are `event:props:<name>` besides.
pub static PROPERTIES: Names = LazyLock::new(|| Property::names().collect());

/// Dimensions of a query: the properties, then time.
pub use proto::vocabulary::dimensions;

/// Comparisons of an aggregate.
pub const COMPARISONS: &[&str] = &["previous_period"];

/// A period by name, as the contract carries it.
pub fn named(period: NamedPeriod) -> anpb::Period {
    anpb::Period { kind: Some(Kind::Named(period.into())) }
}

/// A period and its `date` as clients send them (`7d` and the day it ends on; `custom` and
/// `YYYY-MM-DD,YYYY-MM-DD`), as the contract's period and the day it ends on. Plausible v2 also
/// takes any `Nd` (1–5000) and `Nmo` (1–100). Errors name `period` or `date`; analytics checks
/// the days themselves.
pub fn period(name: &str, date: &str, meaning: PeriodMeaning) -> Result<(anpb::Period, String), Error> {
    if name == CUSTOM_PERIOD {
        let (first, last) =
            date.split_once(',').ok_or_else(|| Error::invalid("date", "custom needs YYYY-MM-DD,YYYY-MM-DD"))?;
        let range = anpb::DateRange { first_day: first.to_owned(), last_day: last.to_owned() };
        return Ok((anpb::Period { kind: Some(Kind::Custom(range)) }, String::new()));
    }
    let kind = match NamedPeriod::from_name(name) {
        Some(named) => Kind::Named(named.into()),
        None if meaning == PeriodMeaning::PlausibleV2 => counted(name).ok_or_else(|| unknown_period(meaning))?,
        None => return Err(unknown_period(meaning)),
    };
    Ok((anpb::Period { kind: Some(kind) }, date.to_owned()))
}

/// The most days and months Plausible v2's `Nd` and `Nmo` count.
const MOST_DAYS: u32 = 5000;
const MOST_MONTHS: u32 = 100;

/// Plausible v2's `Nd` and `Nmo`.
fn counted(name: &str) -> Option<Kind> {
    let digits = name.find(|c: char| !c.is_ascii_digit())?;
    let n: u32 = name[..digits].parse().ok()?;
    match &name[digits..] {
        "d" if (1..=MOST_DAYS).contains(&n) => Some(Kind::LastDays(n)),
        "mo" if (1..=MOST_MONTHS).contains(&n) => Some(Kind::LastMonths(n)),
        _ => None,
    }
}

fn unknown_period(meaning: PeriodMeaning) -> Error {
    let names = match meaning {
        PeriodMeaning::PlausibleV2 => {
            use NamedPeriod as P;
            let [day, month, year, all, days, months, hours, one_year, realtime] = [
                P::Day,
                P::Month,
                P::Year,
                P::All,
                P::NamedPeriod7d,
                P::NamedPeriod6mo,
                P::NamedPeriod24h,
                P::NamedPeriod1y,
                P::Realtime,
            ]
            .map(P::name);
            format!(
                "{day}, {month}, {year}, {all}, {days} (any 1–{MOST_DAYS} days), \
                 {months} (any 1–{MOST_MONTHS} months), {hours}, {one_year}, {realtime}"
            )
        }
        _ => PERIODS.join(", "),
    };
    Error::invalid("period", format!("must be one of {names}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str, date: &str, meaning: PeriodMeaning) -> Option<Kind> {
        period(name, date, meaning).unwrap().0.kind
    }

    #[test]
    fn a_custom_period_crosses_as_a_date_range() {
        let (period, end_day) = period("custom", "2026-01-01,2026-01-31", PeriodMeaning::Ours).unwrap();
        let range = anpb::DateRange { first_day: "2026-01-01".into(), last_day: "2026-01-31".into() };
        assert_eq!(period.kind, Some(Kind::Custom(range)));
        assert_eq!(end_day, "");
        let error = super::period("custom", "2026-01-01", PeriodMeaning::Ours).unwrap_err();
        assert_eq!(error.text(), "date: custom needs YYYY-MM-DD,YYYY-MM-DD");
    }

    #[test]
    fn only_plausible_v2_counts_days_and_months() {
        assert_eq!(kind("7d", "2026-01-10", PeriodMeaning::Ours), Some(Kind::Named(NamedPeriod::NamedPeriod7d.into())));
        assert_eq!(kind("45d", "", PeriodMeaning::PlausibleV2), Some(Kind::LastDays(45)));
        assert_eq!(kind("3mo", "", PeriodMeaning::PlausibleV2), Some(Kind::LastMonths(3)));
        assert!(period("45d", "", PeriodMeaning::PlausibleV1).is_err());
        for name in ["0d", "5001d", "101mo", "7w"] {
            let error = period(name, "", PeriodMeaning::PlausibleV2).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("period"), "{name}");
        }
    }

    #[test]
    fn an_unknown_period_lists_the_names() {
        let error = period("week", "", PeriodMeaning::Ours).unwrap_err();
        assert_eq!(
            error.text(),
            "period: must be one of day, 24h, 7d, 28d, 30d, 90d, 91d, month, 6mo, 12mo, year, 1y, all, realtime, custom"
        );
    }

    #[test]
    fn an_unknown_v2_period_says_days_and_months_are_counted() {
        let error = period("8w", "", PeriodMeaning::PlausibleV2).unwrap_err();
        assert_eq!(
            error.text(),
            "period: must be one of day, month, year, all, 7d (any 1–5000 days), 6mo (any 1–100 months), 24h, 1y, realtime"
        );
    }
}
