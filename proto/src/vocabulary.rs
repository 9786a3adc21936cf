//! The external names of the statistics vocabulary (metrics, properties, intervals, named
//! periods), derived once from the enums of `analytics.proto`, which are the only list of them.
//!
//! The rule: a value's proto name without its enum's prefix, in lower case
//! (`METRIC_BOUNCE_RATE` → `bounce_rate`, `NAMED_PERIOD_7D` → `7d`); for a property the first
//! `_` then becomes `:` (`PROPERTY_VISIT_UTM_SOURCE` → `visit:utm_source`). A time dimension is
//! `time:` and an interval's name; a custom property is `event:props:` and its own name.
//! Every enum's values are numbered from 1 without gaps, `*_UNSPECIFIED` (0) having no name.

use std::sync::LazyLock;

use crate::analytics::v1::{Interval, Metric, NamedPeriod, Property};

/// Prefix of a custom property (`event:props:plan`).
pub const PROPS: &str = "event:props:";

/// Prefix of a time dimension (`time:day`).
pub const TIME: &str = "time:";

/// The time dimension whose interval the period chooses (Plausible v2's `time`).
pub const AUTO_TIME: &str = "time";

/// The period that takes two days instead of a name.
pub const CUSTOM_PERIOD: &str = "custom";

/// The source of a visit with no referrer, named as Plausible names it.
pub const DIRECT: &str = "Direct / None";

/// The label Plausible gives a visit attribute left empty.
pub const NOT_SET: &str = "(not set)";

/// `METRIC_BOUNCE_RATE` → `bounce_rate` for the prefix `METRIC_`.
fn lower_without(proto_name: &str, prefix: &str) -> String {
    proto_name.strip_prefix(prefix).unwrap_or(proto_name).to_ascii_lowercase()
}

/// `event_page` → `event:page`.
fn scoped(name: String) -> String {
    name.replacen('_', ":", 1)
}

macro_rules! named {
    ($ty:ident, $prefix:literal, $rule:expr) => {
        impl $ty {
            /// Every value but the unspecified one, in the contract's order.
            pub fn all() -> impl Iterator<Item = $ty> {
                (1..).map_while(|n| $ty::try_from(n).ok())
            }

            /// The external name (the module's rule); empty for the unspecified value.
            pub fn name(self) -> &'static str {
                static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
                    let rule: fn(String) -> String = $rule;
                    let named = $ty::all().map(|v| rule(lower_without(v.as_str_name(), $prefix)));
                    std::iter::once(String::new()).chain(named).collect()
                });
                &NAMES[self as usize]
            }

            /// The value of an external name.
            pub fn from_name(name: &str) -> Option<$ty> {
                $ty::all().find(|v| v.name() == name)
            }

            /// Every external name, in the contract's order.
            pub fn names() -> impl Iterator<Item = &'static str> {
                $ty::all().map($ty::name)
            }
        }

        /// Its external name, so lists of values and of names render alike.
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.name()
            }
        }
    };
}

named!(Metric, "METRIC_", |name| name);
named!(Property, "PROPERTY_", scoped);
named!(Interval, "INTERVAL_", |name| name);
named!(NamedPeriod, "NAMED_PERIOD_", |name| name);

impl Interval {
    /// Its time dimension: `time:` and its name.
    pub fn dimension(self) -> &'static str {
        static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
            std::iter::once(String::new()).chain(Interval::names().map(|n| format!("{TIME}{n}"))).collect()
        });
        &NAMES[self as usize]
    }

    /// The interval of a time dimension's name.
    pub fn from_dimension(name: &str) -> Option<Interval> {
        Interval::from_name(name.strip_prefix(TIME)?)
    }

    /// The interval [`AUTO_TIME`] stands for over `[from, to)` (unix milliseconds), as Plausible
    /// chooses it from the period's first and last second: hours up to 48 whole hours apart,
    /// days up to 40 whole days, weeks up to 52 whole weeks, months beyond.
    pub fn for_period(from_ms: i64, to_ms: i64) -> Interval {
        const HOUR: i64 = 3_600_000;
        const DAY: i64 = 24 * HOUR;
        let apart = (to_ms - 1000 - from_ms).max(0);
        if apart / HOUR <= 48 {
            Interval::Hour
        } else if apart / DAY <= 40 {
            Interval::Day
        } else if apart / (7 * DAY) <= 52 {
            Interval::Week
        } else {
            Interval::Month
        }
    }
}

/// The dimensions of a fixed name: the properties, then time (each interval's, then
/// [`AUTO_TIME`]).
pub fn dimensions() -> impl Iterator<Item = &'static str> {
    Property::names().chain(Interval::all().map(Interval::dimension)).chain([AUTO_TIME])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_round_trips_through_its_name() {
        assert_eq!(Metric::all().count(), 14);
        for metric in Metric::all() {
            assert_eq!(Metric::from_name(metric.name()), Some(metric));
        }
        assert_eq!(Metric::BounceRate.name(), "bounce_rate");
    }

    #[test]
    fn every_property_round_trips_through_a_scoped_name() {
        assert_eq!(Property::all().count(), 20);
        for property in Property::all() {
            assert_eq!(Property::from_name(property.name()), Some(property));
            assert!(property.name().starts_with("event:") || property.name().starts_with("visit:"));
        }
        assert_eq!(Property::VisitUtmSource.name(), "visit:utm_source");
        assert_eq!(Property::EventGoal.name(), "event:goal");
    }

    #[test]
    fn every_interval_round_trips_as_a_name_and_as_a_time_dimension() {
        for interval in Interval::all() {
            assert_eq!(Interval::from_name(interval.name()), Some(interval));
            assert_eq!(Interval::from_dimension(interval.dimension()), Some(interval));
        }
        assert_eq!(Interval::Week.dimension(), "time:week");
        assert_eq!(Interval::from_dimension("week"), None);
    }

    #[test]
    fn every_named_period_round_trips_through_its_name() {
        let names: Vec<_> = NamedPeriod::names().collect();
        assert_eq!(
            names,
            ["day", "24h", "7d", "28d", "30d", "90d", "91d", "month", "6mo", "12mo", "year", "1y", "all", "realtime"]
        );
        for period in NamedPeriod::all() {
            assert_eq!(NamedPeriod::from_name(period.name()), Some(period));
        }
    }

    #[test]
    fn a_list_of_values_reads_as_their_names() {
        let metrics = [Metric::Visitors, Metric::BounceRate];
        let names: Vec<&str> = metrics.iter().map(AsRef::as_ref).collect();
        assert_eq!(names, ["visitors", "bounce_rate"]);
        assert_eq!(Property::VisitCountry.as_ref(), "visit:country");
    }

    #[test]
    fn unspecified_values_have_no_name_and_no_name_finds_them() {
        assert_eq!(Metric::Unspecified.name(), "");
        assert_eq!(Metric::from_name(""), None);
        assert_eq!(Property::from_name("unspecified"), None);
        assert_eq!(Metric::from_name("VISITORS"), None);
    }

    #[test]
    fn dimensions_are_the_properties_then_time() {
        let dimensions: Vec<_> = dimensions().collect();
        assert_eq!(dimensions.len(), 25);
        assert_eq!(dimensions[0], "event:page");
        assert_eq!(dimensions[20..], ["time:hour", "time:day", "time:week", "time:month", "time"]);
    }

    #[test]
    fn time_stands_for_the_interval_plausible_chooses_for_the_period() {
        const DAY: i64 = 86_400_000;
        let from = 1_700_000_000_000 - 1_700_000_000_000 % DAY;
        let days = |n: i64| Interval::for_period(from, from + n * DAY);
        assert_eq!(days(1), Interval::Hour);
        assert_eq!(days(2), Interval::Hour, "47 whole hours apart");
        assert_eq!(days(3), Interval::Day);
        assert_eq!(days(41), Interval::Day, "40 whole days apart");
        assert_eq!(days(42), Interval::Week);
        assert_eq!(days(366), Interval::Week, "52 whole weeks apart");
        assert_eq!(days(372), Interval::Month);
        assert_eq!(Interval::for_period(from, from + 1000), Interval::Hour);
    }
}
