"""Schemathesis hooks of .ci/schemathesis.sh.

JSON Schema describes each parameter alone; a few rules of the API tie two values together, and the
document states them in prose. A schema-valid request refused (400) by one of those rules, with the
rule's own message, is not a disagreement between the document and the server, so the
positive-data check drops exactly those failures. Every other failure stands.
"""

import os
import re
import sys
import urllib.parse

import schemathesis

# Messages of the rules that tie values together, as the server words them (regular expressions
# matching the whole message). Each is stated in the description of the parameter or field it names.
CROSS_FIELD_RULES = [
    re.compile(rule)
    for rule in (
        # `date` with `period`: two days for `custom` only, in order, at most 10 years apart.
        r"date: custom needs YYYY-MM-DD,YYYY-MM-DD",
        r"date: must be a day of the calendar, YYYY-MM-DD \(or two, for custom\)",
        r"date(_range)?: the first (day|date-time) must not be after the second",
        r"date(_range)?: a (custom )?period spans at most 10 years",
        # The same rules in Plausible's words, on the drop-in.
        r"The `date` parameter is required when using a custom period\. See https://plausible\.io/docs/stats-api#time-periods",
        r"Invalid format for `date` parameter\. When using a custom period, please include two ISO-8601 formatted "
        r"dates joined by a comma\. See https://plausible\.io/docs/stats-api#time-periods",
        r"Error parsing `date` parameter: invalid_(format|date)\. Please specify a valid date in ISO-8601 format\.",
        # Time buckets: at most 800 per answer (hours over a year are too many).
        r"(interval|dimensions): too fine for this period; use a coarser one",
        # A query's dimensions: at most one of time; its order keys among its metrics and dimensions.
        r"dimensions: at most one time dimension",
        r'order_by: ".*" is neither a queried metric nor a dimension',
        r"Invalid order_by entry '\{.+, :\w+\}'\. Entry is not a queried metric or dimension\.",
        r"#/date_range: Invalid date range .+",
        # Two days or two date-times, not one of each.
        r"date_range: must be two days \(YYYY-MM-DD\) or two RFC 3339 date-times",
        # `/query/{websiteId}`: a `site_id` in the body names the site of the path.
        r"site_id: names another site than the path",
        # Shares: `conversion_rate` with a goal dimension or filter, `percentage` with a dimension.
        r"metrics: (conversion_rate|group_conversion_rate|total_revenue|average_revenue) needs an event:goal "
        r"dimension or filter",
        r"([\w.]+: )?Metric `\w+` can only be queried with event:goal filters or dimensions\.",
        r"metrics: percentage needs a dimension",
        # A goal filter names goals the site has (as a path names a website that exists).
        r'filters: the goal ".*" is not configured for this site',
        r"(Invalid filters\. )?The (pageview )?goal (for the pathname )?`.*` is not configured for this site\. "
        r"Find out how to configure goals here: https://plausible\.io/docs/stats-api#filtering-by-goals",
        # A goal is of an event or of pages: one of `event_name` and `page_path`, by `goal_type`.
        r"event_name: give either event_name or page_path",
        r"currency: only a custom event goal has revenue",
        r"(event_name|page_path): is required with goal_type (event|page)",
        r"(site_id|goal_type): Parameter `(site_id|goal_type)` is required to .*",
        # Which metrics go with which filters, dimensions and includes, as Plausible rules on its
        # shapes (v1 and v2, ours naming the field first): stated in `metrics`' description.
        r"([\w.]+: )?Metric `\w+` can only be queried in a page breakdown or with a page filter\.",
        r"([\w.]+: )?Metric `\w+` can only be queried in a goal breakdown or with a goal filter",
        r"([\w.]+: )?Metric `\w+` can only be queried with event:page filters or dimensions\.",
        r"([\w.]+: )?Metric `\w+` cannot be queried when filtering by `.+`",
        r"([\w.]+: )?Metric `\w+` cannot be queried with `dimensions`\.",
        r"([\w.]+: )?Metric `\w+` cannot be queried with a filter on `event:page`\.",
        r"([\w.]+: )?Metric `\w+` is not supported in breakdown queries( \(except `event:page` breakdown\))?\.?",
        r"([\w.]+: )?Metrics cannot be queried multiple times\.",
        r"([\w.]+: )?Session metric `\w+` cannot be queried for breakdown by `.+`\.",
        r"([\w.]+: )?Session metric `\w+` cannot be queried when using a filter on `.+`\.",
        r"([\w.]+: )?Session metric\(s\) .* cannot be queried along with event dimension\(s\) .*",
        r"([\w.]+: )?Event metric\(s\) .* cannot be queried along with session dimension\(s\) .*",
        r"([\w.]+: )?Invalid include\.time_labels: requires a time dimension\.",
        r"([\w.]+: )?Invalid visit:country filter, visit:country needs to be a valid 2-letter country code\.",
        # Filter groups that do not come to conditions that all hold, and an `or` whose values
        # together pass 100: stated in `filters`' description.
        r'(filters: )?an "or" group \(or a "not" of an "and"\) takes conditions on one dimension with '
        r"is, contains, matches_wildcard, or with matches alone; other groups are not supported",
        # A `matches` value that is not a regular expression (RE2's syntax), or that PostgreSQL's
        # flavour does not take: stated in `QueryFilter`'s description.
        r'(filters: )?".*" is not a regular expression we take: .*',
        r"(filters: )?PostgreSQL does not take this regular expression: .*",
        # A page of rows whose answer would pass 16 MiB: stated in `QueryPagination`'s `limit`.
        r"(limit: )?the answer would be \d+ MiB, over the \d+ MiB an answer may be: ask for fewer rows "
        r"\(a smaller limit\)",
        r"(filters: )?each filter needs 1 to 100 values",
        r"(filters: )?Invalid filters\. Dimension `.+` can only be filtered at the top level\.",
        r"(filters: )?Invalid filters\. The case_sensitive modifier is not allowed with pattern operators \(.*\)",
        r"(filters: )?Invalid filters\. When `conversion_rate` or `group_conversion_rate` metrics are used, custom "
        r"property filters can only be used on top level\.",
        # The audit log's page size by its name or its earlier name, not both.
        r"limit: give per_page or limit, not both",
        # The audit log's `before` names an entry of the team's log (as a path names what exists).
        r"before: no entry of the team's audit log has this id",
    )
]


# Control characters (Unicode's Cc), which the document's one-line pattern (`rules::LINE`) forbids
# in every free-text parameter. Schemathesis's stateful phase has been seen to send a path
# parameter that is already percent-encoded (`%1B`) as it is, having checked the pattern against
# the encoded text: the server decodes a control character, and its refusal agrees with the
# document.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTROL_REFUSAL = re.compile(r"\w+: must not contain control characters")


def _holds_control_character(case) -> bool:
    values = [v for v in (case.path_parameters or {}).values() if isinstance(v, str)]
    decoded = [urllib.parse.unquote(v) for v in values]
    return any(CONTROL.search(v) for v in values + decoded)


def _error_message(response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error or "")


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    if failure.code != "ST202" or response.status_code != 400:
        return True
    message = _error_message(response)
    if CONTROL_REFUSAL.fullmatch(message) and _holds_control_character(case):
        if os.environ.get("SCHEMATHESIS_SHOW_DROPPED"):
            print(f"dropped: {case.operation.label}: {message}", file=sys.stderr)
        return False
    if any(rule.fullmatch(message) for rule in CROSS_FIELD_RULES):
        if os.environ.get("SCHEMATHESIS_SHOW_DROPPED"):
            print(f"dropped: {case.operation.label}: {message}", file=sys.stderr)
        return False
    return True
