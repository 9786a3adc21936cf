//! v2 `filters` (README, "Events and statistics"): conditions `[operator, dimension, [values],
//! {modifiers}?]`, and Plausible's groups `["and", [filters]]`, `["or", [filters]]` and
//! `["not", filter]`. Analytics takes a list of conditions that all hold, so each group is
//! rewritten into that form where it has one: an `and` adds its conditions to the list, a `not`
//! turns its conditions into their opposites (and an `and` under it into an `or`, an `or` into an
//! `and`), and an `or` of conditions on one dimension that pick values becomes one condition
//! with all their values. An `or` of anything else has no such form and is refused.

use proto::analytics::v1 as anpb;
use proto::vocabulary::{DIRECT, NOT_SET, PROPS};
use serde_json::Value;

use crate::error::{ApiResult, invalid};

/// The conditions that hold exactly when every filter of `filters` does.
pub(crate) fn conjunction(filters: &[Value]) -> ApiResult<Vec<anpb::Filter>> {
    let mut all = Vec::new();
    for filter in filters {
        all.extend(holding(parse(filter)?, Sense::Holds)?);
    }
    Ok(all)
}

/// Plausible's rules on filters that [`conjunction`] took, in its words: goals and hostnames are
/// filtered only at the top level, custom properties too with a conversion rate, and a pattern
/// operator takes no case modifier.
pub(crate) fn plausible_rules(filters: &[Value], metrics: &[String]) -> Result<(), (&'static str, String)> {
    let mut nested: Vec<&str> = Vec::new();
    let mut patterned_ignoring_case = None;
    for filter in filters {
        conditions(filter, Depth::Top, &mut |parts, depth| {
            if let [Value::String(operator), Value::String(dimension), values, Value::Object(modifiers)] = parts {
                let pattern = operator.starts_with("matches");
                if pattern && modifiers.get("case_sensitive") == Some(&Value::Bool(false)) {
                    patterned_ignoring_case.get_or_insert((operator, dimension, values));
                }
            }
            if let (Depth::Nested, Some(dimension)) = (depth, parts.get(1).and_then(Value::as_str)) {
                nested.push(dimension);
            }
        });
    }
    if let Some((operator, dimension, values)) = patterned_ignoring_case {
        // Plausible shows the filter as Elixir writes it.
        let text = format!(
            "Invalid filters. The case_sensitive modifier is not allowed with pattern operators \
             ([:{operator}, {}, {values}, %{{case_sensitive: false}}])",
            Value::String(dimension.clone()),
        );
        return Err(("filters", text));
    }
    if let Some(only_top) = nested.iter().find(|d| **d == "event:goal" || **d == "event:hostname") {
        let text = format!("Invalid filters. Dimension `{only_top}` can only be filtered at the top level.");
        return Err(("filters", text));
    }
    let converts = metrics.iter().any(|m| m == "conversion_rate" || m == "group_conversion_rate");
    if converts && nested.iter().any(|d| d.starts_with(PROPS)) {
        let text = "Invalid filters. When `conversion_rate` or `group_conversion_rate` metrics are used, custom \
                    property filters can only be used on top level.";
        return Err(("filters", text.to_owned()));
    }
    Ok(())
}

/// Where a filter sits: in the query's list, or inside a group.
#[derive(Clone, Copy, PartialEq)]
enum Depth {
    Top,
    Nested,
}

/// Calls `visit` with each condition of `filter` and where it sits.
fn conditions<'a>(filter: &'a Value, depth: Depth, visit: &mut impl FnMut(&'a [Value], Depth)) {
    let parts = filter.as_array().map(Vec::as_slice).unwrap_or_default();
    match parts {
        [Value::String(group), Value::Array(items)] if group == "and" || group == "or" => {
            items.iter().for_each(|item| conditions(item, Depth::Nested, visit));
        }
        [Value::String(not), inner] if not == "not" => conditions(inner, Depth::Nested, visit),
        parts => visit(parts, depth),
    }
}

/// A filter as given.
enum Given {
    Condition(anpb::Filter),
    And(Vec<Given>),
    Or(Vec<Given>),
    Not(Box<Given>),
}

/// Whether a filter is wanted to hold, or (under a `not`) to fail.
#[derive(Clone, Copy)]
enum Sense {
    Holds,
    Fails,
}

impl Sense {
    fn opposite(self) -> Sense {
        match self {
            Sense::Holds => Sense::Fails,
            Sense::Fails => Sense::Holds,
        }
    }
}

/// The conditions that all hold exactly when `given` is as `sense` says.
fn holding(given: Given, sense: Sense) -> ApiResult<Vec<anpb::Filter>> {
    match (given, sense) {
        (Given::Condition(condition), Sense::Holds) => Ok(vec![condition]),
        (Given::Condition(condition), Sense::Fails) => Ok(vec![opposite(condition)]),
        (Given::Not(inner), sense) => holding(*inner, sense.opposite()),
        (Given::And(items), Sense::Holds) | (Given::Or(items), Sense::Fails) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(holding(item, sense)?);
            }
            Ok(all)
        }
        (Given::Or(items), Sense::Holds) | (Given::And(items), Sense::Fails) => any_of(items, sense),
    }
}

/// The conditions that hold exactly when any of `items` is as `sense` says: the one item's, or
/// one condition of the values of several on one dimension whose operators pick values (`is`,
/// `contains`, `matches_wildcard`, `matches`), whose union that is: of one operator, with all their
/// values; of several but `matches`, as wildcards (`is v` is `v`, `contains v` is `*v*`), where
/// each value can be one.
fn any_of(mut items: Vec<Given>, sense: Sense) -> ApiResult<Vec<anpb::Filter>> {
    let refused = || invalid("filters", OR_REFUSED);
    if items.len() == 1 {
        return holding(items.remove(0), sense);
    }
    let mut conditions = Vec::new();
    for item in items {
        let [condition] = <[anpb::Filter; 1]>::try_from(holding(item, sense)?).map_err(|_| refused())?;
        let picks = matches!(condition.operator.as_str(), "is" | "contains" | "matches" | "regex");
        let first: &anpb::Filter = conditions.first().unwrap_or(&condition);
        if !picks || first.dimension != condition.dimension || first.ignore_case != condition.ignore_case {
            return Err(refused());
        }
        conditions.push(condition);
    }
    let mut union = conditions[0].clone();
    union.values.clear();
    if conditions.iter().all(|c| c.operator == union.operator) {
        conditions.into_iter().for_each(|c| union.values.extend(c.values));
        return Ok(vec![union]);
    }
    // A wildcard ignores no case, and its `*` cannot stand for itself; the labels of empty values
    // (`(not set)`) are names `is` gives to what a wildcard cannot find.
    if union.ignore_case {
        return Err(refused());
    }
    union.operator = "matches".to_owned();
    for condition in conditions {
        for value in condition.values {
            let blank_label = [NOT_SET, DIRECT].contains(&value.as_str());
            let pattern = match condition.operator.as_str() {
                "is" if !value.contains('*') && !blank_label => value,
                "contains" if !value.contains('*') => format!("*{value}*"),
                "matches" => value,
                // Nor a regular expression: its case is its own, where `contains` ignores it in our
                // queries and respects it in Plausible's.
                _ => return Err(refused()),
            };
            union.values.push(pattern);
        }
    }
    Ok(vec![union])
}

/// Why an `or` was refused; the OpenAPI document's description of `filters` says the same.
pub(crate) const OR_REFUSED: &str = "an \"or\" group (or a \"not\" of an \"and\") takes conditions on one dimension \
with is, contains, matches_wildcard, or with matches alone; other groups are not supported";

/// The condition that holds exactly when `condition` fails.
fn opposite(mut condition: anpb::Filter) -> anpb::Filter {
    condition.operator = match condition.operator.as_str() {
        "is" => "is_not",
        "is_not" => "is",
        "contains" => "contains_not",
        "contains_not" => "contains",
        "matches" => "matches_not",
        "matches_not" => "matches",
        "regex" => "regex_not",
        "regex_not" => "regex",
        other => unreachable!("{other:?} is not an operator parse gives"),
    }
    .to_owned();
    condition
}

fn parse(filter: &Value) -> ApiResult<Given> {
    let parts =
        filter.as_array().ok_or_else(|| invalid("filters", "each filter is [operator, dimension, [values]]"))?;
    let operator =
        parts.first().and_then(Value::as_str).ok_or_else(|| invalid("filters", "an operator is required"))?;
    match operator {
        "and" | "or" => {
            let items = match parts.as_slice() {
                [_, Value::Array(items)] if !items.is_empty() => items,
                _ => return Err(invalid("filters", format!("{operator:?} takes a non-empty list of filters"))),
            };
            let items = items.iter().map(parse).collect::<ApiResult<Vec<_>>>()?;
            Ok(if operator == "and" { Given::And(items) } else { Given::Or(items) })
        }
        "not" => match parts.as_slice() {
            [_, inner] => Ok(Given::Not(Box::new(parse(inner)?))),
            _ => Err(invalid("filters", "\"not\" takes one filter")),
        },
        "has_done" | "has_not_done" => {
            Err(invalid("filters", format!("{operator:?} is not supported; filters combine with and, or, not")))
        }
        _ => condition(operator, parts).map(Given::Condition),
    }
}

fn condition(operator: &str, parts: &[Value]) -> ApiResult<anpb::Filter> {
    let dimension = parts
        .get(1)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| invalid("filters", "a dimension is required"))?;
    let values = parts
        .get(2)
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
        .ok_or_else(|| invalid("filters", "values must be a list of strings"))?;
    for value in &values {
        common::text::check_line("filters", value)?;
    }
    // Plausible's one modifier of a filter: `{"case_sensitive": false}` makes `is` and
    // `contains` ignore case.
    let ignore_case = match parts.get(3) {
        None => false,
        Some(Value::Object(modifiers)) if parts.len() == 4 => {
            let mut ignore_case = false;
            for (name, value) in modifiers {
                match (name.as_str(), value) {
                    ("case_sensitive", Value::Bool(sensitive)) => ignore_case = !sensitive,
                    _ => return Err(invalid("filters", "the only modifier is {\"case_sensitive\": true|false}")),
                }
            }
            ignore_case
        }
        Some(_) => return Err(invalid("filters", "a filter is [operator, dimension, [values], {modifiers}]")),
    };
    let operator = match operator {
        "matches_wildcard" => "matches",
        "matches_wildcard_not" => "matches_not",
        "matches" => "regex",
        "matches_not" => "regex_not",
        "is" | "is_not" | "contains" | "contains_not" => operator,
        other => {
            return Err(invalid(
                "filters",
                format!(
                    "unknown operator {other:?}; use is, is_not, contains, contains_not, matches_wildcard, \
                     matches_wildcard_not, matches, matches_not, and, or, not"
                ),
            ));
        }
    };
    Ok(anpb::Filter { operator: operator.to_owned(), dimension, values, ignore_case })
}
