//! Plausible's v1 filter text (`event:page==/blog/**;visit:country==US|DE`), which the Stats
//! API v1, the drop-in and the console's website pages all take.

use proto::analytics::v1 as anpb;

use crate::error::{ApiError, ApiResult};
use crate::rules;
use crate::vocabulary::{PROPERTIES, PROPS};

/// v1 filters: `event:page==/blog/**;visit:country==US|DE`, with `==`, `!=`, `~` (contains) and
/// `!~`; `*` in an `==`/`!=` value makes it a wildcard match. The grammar is the document's
/// pattern ([`rules::V1_FILTERS`]), checked first; parsing then cannot fail.
pub fn v1_filters(text: &str) -> ApiResult<Vec<anpb::Filter>> {
    if !rules::is_v1_filters(text) {
        return Err(invalid(
            "must be <property><op><value>[|<value>…] joined by ;, with a property of the Stats API, \
             an op among ==, !=, ~, !~ and at most 100 values",
        ));
    }
    if text.is_empty() {
        return Ok(vec![]);
    }
    text.split(';').map(v1_filter).collect()
}

/// The filters of the console's pages: a JSON list of Plausible v2 filters
/// (`[["is","event:page",["/a|b"]]]`), whose values are taken as written, or the v1 text. A
/// value clicked in a page may hold `|`, `;` or `*`, which the v1 text reads as syntax.
pub fn console_filters(text: &str) -> ApiResult<Vec<anpb::Filter>> {
    if !text.starts_with('[') {
        return v1_filters(text);
    }
    let filters: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|_| invalid("a JSON list of filters must be well-formed (or give the Stats API v1 syntax)"))?;
    crate::routes::stats::v2_filters::conjunction(&filters)
}

/// A 400 naming `filters`.
fn invalid(message: impl std::fmt::Display) -> ApiError {
    common::Error::validation(format!("filters: {message}")).into()
}

/// One filter of a text that matches the grammar.
fn v1_filter(f: &str) -> ApiResult<anpb::Filter> {
    let f = f.trim_start_matches(' ');
    let fixed = PROPERTIES
        .iter()
        .find(|p| f.strip_prefix(**p).is_some_and(|rest| rest.trim_start_matches(' ').starts_with(['=', '!', '~'])));
    // A custom property's name runs up to the operator (the grammar keeps spaces out).
    let custom = || f.strip_prefix(PROPS)?.find([' ', '=', '!', '~']).map(|end| &f[..PROPS.len() + end]);
    let property = match fixed {
        Some(property) => *property,
        None => custom().ok_or_else(|| invalid(format!("{f:?} has no property")))?,
    };
    let rest = f[property.len()..].trim_start_matches(' ');
    let (op, values) = ["==", "!=", "!~", "~"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|values| (*op, values)))
        .ok_or_else(|| invalid(format!("{f:?} needs ==, !=, ~ or !~")))?;
    let values: Vec<String> = members(values).iter().map(|v| v.trim().to_owned()).collect();
    // A goal is named, `*` included (`Visit /blog**`), as Plausible's v1 names it.
    let wildcard = property != "event:goal" && values.iter().any(|v| v.contains('*'));
    let operator = match (op, wildcard) {
        ("==", false) => "is",
        ("==", true) => "matches",
        ("!=", false) => "is_not",
        ("!=", true) => "matches_not",
        ("~", _) => "contains",
        _ => "contains_not",
    };
    Ok(anpb::Filter { operator: operator.into(), dimension: property.into(), values, ignore_case: false })
}

/// The values of a list (`US|DE`), split at each `|` that no backslash escapes; an escaped one
/// (`/a\|b`) is a `|` of its value, as Plausible reads it.
fn members(list: &str) -> Vec<String> {
    let mut values = vec![String::new()];
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => values.last_mut().unwrap().push(chars.next().unwrap()),
            '|' => values.push(String::new()),
            c => values.last_mut().unwrap().push(c),
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use common::ErrorCode;

    use super::*;

    #[test]
    fn v1_filters_parse() {
        let filters =
            v1_filters("event:page==/blog/**;visit:country==US|DE;visit:source!=Google;event:page~pricing").unwrap();
        let ops: Vec<_> = filters.iter().map(|f| (f.operator.as_str(), f.dimension.as_str(), f.values.len())).collect();
        assert_eq!(
            ops,
            [
                ("matches", "event:page", 1),
                ("is", "visit:country", 2),
                ("is_not", "visit:source", 1),
                ("contains", "event:page", 1)
            ]
        );
        assert!(v1_filters("event:page").is_err());
        assert_eq!(ErrorCode::Validation, v1_filters("x").unwrap_err().error.code);
    }

    #[test]
    fn an_escaped_pipe_is_part_of_its_value() {
        let values = |text: &str| v1_filters(text).unwrap().remove(0).values;
        assert_eq!(values(r"event:page==/a\|b"), [r"/a|b"]);
        assert_eq!(values(r"event:page==/a\|b|/c"), [r"/a|b", "/c"]);
        assert_eq!(values(r"event:page==/a\"), [r"/a\"]);
    }
}
