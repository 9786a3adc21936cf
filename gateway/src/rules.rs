//! Formats of the external API that the OpenAPI document states as JSON Schema patterns, and the
//! checks the handlers make with the very same patterns: the document and the server cannot
//! disagree on them. Patterns use only plain ASCII classes (`[0-9]`, not `\d`) and anchors, which
//! mean the same in ECMA-262 (JSON Schema) and in the `regex` crate.

use std::sync::LazyLock;

use regex::Regex;

use crate::vocabulary::PROPERTIES;

/// A day of the proleptic Gregorian calendar, `YYYY-MM-DD` with years 0000–9999: months and
/// days that exist, February 29 in leap years only.
const DAY: &str = concat!(
    "(?:[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)",
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)",
);

/// `date` of the Stats API v1: one day, or two joined by a comma (for `period=custom`).
pub static V1_DATE: LazyLock<String> = LazyLock::new(|| format!("^{DAY}(?:,{DAY})?$"));

/// One day, as an item of a v2 `date_range`.
pub static V2_DAY: LazyLock<String> = LazyLock::new(|| format!("^{DAY}$"));

/// Plausible v2's relative `date_range`: 1 to 5000 days (`30d`) or 1 to 100 months (`6mo`).
pub const V2_LAST_N: &str = "^(?:(?:[1-9][0-9]{0,2}|[1-4][0-9]{3}|5000)d|(?:[1-9][0-9]?|100)mo)$";

/// A website's domain as given: a host name of at least two labels (letters, digits, inner
/// hyphens, 1–63 characters each), optionally with `http://` or `https://`, a trailing dot, a
/// port and a path, which are dropped.
pub const DOMAIN: &str = concat!(
    "^(?:[Hh][Tt][Tt][Pp][Ss]?://)?",
    "(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.?",
    "(?::[0-9]{1,5})?(?:/[!-~]*)?$",
);

/// The whole domain, scheme and path included, is at most this long (so the host is too).
pub const DOMAIN_MAX: usize = 253;

/// Control characters (Unicode's Cc: C0, DEL and C1), which no one-line value holds.
macro_rules! controls {
    () => {
        "\\x00-\\x1F\\x7F-\\x9F"
    };
}

/// A one-line value from outside (an id, a filter value): no control character.
pub const LINE: &str = concat!("^[^", controls!(), "]*$");

/// A name: one line holding something other than white space (Unicode's White_Space, which is
/// what the server trims).
pub const NAME: &str = concat!(
    "^[^",
    controls!(),
    "]*",
    "[^",
    controls!(),
    " \\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
    "[^",
    controls!(),
    "]*$",
);

/// A custom property as a dimension, `event:props:<name>`: a name of 1 to 300 characters,
/// without control characters or `"`.
pub const CUSTOM_PROPERTY: &str = concat!("^event:props:[^\"", controls!(), "]{1,300}$");

/// A goal's page path: `/` then one line.
pub const PAGE_PATH: &str = concat!("^/[^", controls!(), "]*$");

/// Characters of a website's name, before trimming.
pub const NAME_MAX: usize = 100;

/// Values per filter, in v1 and v2 alike.
pub const FILTER_VALUES_MAX: usize = 100;

/// `filters` of the Stats API v1: `<property><op><value>[|<value>…]` joined by `;`, spaces allowed
/// around the property and the operator.
pub static V1_FILTERS: LazyLock<String> = LazyLock::new(|| {
    // A custom property's name here also leaves out what the grammar separates with.
    let custom = concat!("event:props:[^ \"=!~;|", controls!(), "]{1,300}");
    let properties = format!("{}|{custom}", PROPERTIES.join("|"));
    let more = FILTER_VALUES_MAX - 1;
    let value = concat!("[^;|", controls!(), "]*");
    let filter = format!(" *(?:{properties}) *(?:==|!=|!~|~){value}(?:\\|{value}){{0,{more}}}");
    format!("^(?:{filter}(?:;{filter})*)?$")
});

/// Largest integer of an `int32` parameter (pages, offsets).
pub const INT32_MAX: u32 = i32::MAX as u32;

fn compiled(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a pattern of the document compiles")
}

static V1_DATE_RE: LazyLock<Regex> = LazyLock::new(|| compiled(&V1_DATE));
static V2_DAY_RE: LazyLock<Regex> = LazyLock::new(|| compiled(&V2_DAY));
static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| compiled(DOMAIN));
static NAME_RE: LazyLock<Regex> = LazyLock::new(|| compiled(NAME));
static V1_FILTERS_RE: LazyLock<Regex> = LazyLock::new(|| compiled(&V1_FILTERS));
static CUSTOM_PROPERTY_RE: LazyLock<Regex> = LazyLock::new(|| compiled(CUSTOM_PROPERTY));

pub fn is_custom_property(text: &str) -> bool {
    CUSTOM_PROPERTY_RE.is_match(text)
}

pub fn is_v1_date(text: &str) -> bool {
    V1_DATE_RE.is_match(text)
}

pub fn is_day(text: &str) -> bool {
    V2_DAY_RE.is_match(text)
}

/// `YYYY-MM-DD` in digits, whether or not that day exists.
pub fn is_day_shaped(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
}

pub fn is_domain(text: &str) -> bool {
    text.len() <= DOMAIN_MAX && DOMAIN_RE.is_match(text)
}

pub fn is_name(text: &str) -> bool {
    text.chars().count() <= NAME_MAX && NAME_RE.is_match(text)
}

pub fn is_v1_filters(text: &str) -> bool {
    V1_FILTERS_RE.is_match(text)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn the_documented_line_pattern_refuses_what_the_services_refuse() {
        let pattern = compiled(LINE);
        for text in ["Zoë's site", "a\tb", "a\nb", "\0", "\u{7f}", "\u{85}", "\u{200e}x", ""] {
            assert_eq!(pattern.is_match(text), common::text::check_line("x", text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn the_day_pattern_accepts_exactly_the_calendar_days() {
        for year in [0, 4, 100, 400, 1900, 1999, 2000, 2023, 2024, 2100, 9996, 9999] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year:04}-{month:02}-{day:02}");
                    let exists = NaiveDate::from_ymd_opt(year, month, day).is_some();
                    assert_eq!(is_day(&text), exists, "{text}");
                }
            }
        }
        for bad in ["2024-1-01", " 2024-01-01", "2024-01-01\n", "12024-01-01", "2024-01-01T00:00:00Z", "٢٠٢٤-01-01"]
        {
            assert!(!is_day(bad), "{bad:?}");
        }
        assert!(is_v1_date("2024-01-01,2024-01-31"));
        assert!(!is_v1_date("2024-01-01,"));
    }

    #[test]
    fn domains_are_hosts_with_an_optional_scheme_port_and_path() {
        for good in ["example.com", "HTTPS://Blog.Example.co.uk.:443/a?b#c", "http://a-b.c0", "x.y/"] {
            assert!(is_domain(good), "{good:?}");
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in ["", "localhost", "exa mple.com", "-a.com", "a..com", "ex_ample.com", "éxample.com", &long] {
            assert!(!is_domain(bad), "{bad:?}");
        }
        assert!(!is_domain(&format!("{}.com", ["a"; 126].join("."))));
    }

    #[test]
    fn names_need_something_besides_white_space() {
        assert!(is_name(" Docs "));
        assert!(is_name(&"n".repeat(NAME_MAX)));
        for bad in ["", " \t", "\u{3000}", "a\0", "a\u{85}", &"n".repeat(NAME_MAX + 1)] {
            assert!(!is_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn v1_filters_follow_the_grammar() {
        for good in [
            "",
            "event:page==/blog/**",
            "visit:country==US|DE;event:page~pricing",
            " visit:os != Linux",
            "event:props:plan==pro|team;event:goal==Signup",
        ] {
            assert!(is_v1_filters(good), "{good:?}");
        }
        let many = format!("visit:country=={}", ["x"; FILTER_VALUES_MAX + 1].join("|"));
        for bad in [
            "event:page",
            "visit:city==x",
            "event:page==a\0",
            "event:page==\u{9f}",
            "event:page==a;",
            "time:day==x",
            many.as_str(),
        ] {
            assert!(!is_v1_filters(bad), "{bad:?}");
        }
    }
}
