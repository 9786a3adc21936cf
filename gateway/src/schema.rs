//! OpenAPI schemas that derive attributes cannot state (docs/behaviour.md#external-rest-api): the
//! vocabulary's enumerations, the parameters of the Stats API, and the constraints of body fields,
//! for the types that are both serialised and documented.

use common::ErrorCode;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, RefOr, Required};
use utoipa::{PartialSchema, ToSchema};

use crate::vocabulary;

/// The `error.code` values, from the one table of error codes.
pub fn error_code_schema(codes: &[ErrorCode]) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes.iter().map(|c| c.as_str()))).into()
}

fn always(value: bool) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([value]))
}

/// A boolean that is always `true` (`success` of an answer, `deleted`).
pub fn always_true() -> ObjectBuilder {
    always(true)
}

/// A boolean that is always `false` (`success` of an error).
pub fn always_false() -> ObjectBuilder {
    always(false)
}

pub fn date_time() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// A string schema with the values of a vocabulary list, described by its doc comment.
macro_rules! string_enum {
    ($($(#[doc = $doc:literal])+ $name:ident = $values:expr;)*) => {
        $(
            $(#[doc = $doc])+
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    let description = [$($doc),+].map(str::trim).join(" ");
                    string_of($values).description(Some(description)).into()
                }
            }

            impl ToSchema for $name {}
        )*
    };
}

string_enum! {
    /// Range of `/analytics`: the last 24 hours, or days up to today in the site's time zone.
    Range = vocabulary::RANGES.iter().copied();
    /// Plausible's period; `24h` and `1y` are ours. `custom` takes `date=YYYY-MM-DD,YYYY-MM-DD`;
    /// `realtime` is the last 5 minutes.
    /// `all` runs from the site's first day with an event to today.
    Period = vocabulary::PERIODS.iter().copied();
    /// Bucket of a time series (`date` and `day` are the same).
    Interval = vocabulary::INTERVALS.iter().copied();
    /// A metric: `visitors` are distinct daily visitors, `bounce_rate` a percentage,
    /// `visit_duration` seconds, `views_per_visit` has two decimals. `conversion_rate` (percent of
    /// the period's visitors, goal and property filters aside, with one decimal) needs an
    /// `event:goal` dimension or filter, as does `group_conversion_rate` (percent of each row's
    /// group's visitors; of the period's by goal); `percentage` (percent of the period's visitors, one
    /// decimal) needs a dimension. `total_revenue` and `average_revenue` (of revenue goals'
    /// events, as `{short, long, value}` in the goals' currency, null where none applies) need
    /// an `event:goal` dimension or filter. `time_on_page` seconds and `scroll_depth` percent come
    /// from engagement events, null without.
    Metric = vocabulary::METRICS.iter().copied();
    /// A property to break down by; custom properties are `event:props:<name>` besides these.
    Property = vocabulary::PROPERTIES.iter().copied();
    /// A dimension of a query: a property, or time; custom properties are `event:props:<name>`
    /// besides these.
    Dimension = vocabulary::dimensions();
    /// Comparison of an aggregate.
    Compare = vocabulary::COMPARISONS.iter().copied();
}

/// `event:props:<name>`, a custom property.
fn custom_property() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::CUSTOM_PROPERTY))
        .description(Some("A custom property: `event:props:` and its name (1 to 300 characters, no `\"`)."))
}

/// A property of `Property`, or a custom property.
pub struct AnyProperty;

impl PartialSchema for AnyProperty {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new().item(schema_ref("Property")).item(custom_property()).into()
    }
}

impl ToSchema for AnyProperty {}

/// A dimension of `Dimension`, or a custom property.
pub struct AnyDimension;

impl PartialSchema for AnyDimension {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new().item(schema_ref("Dimension")).item(custom_property()).into()
    }
}

impl ToSchema for AnyDimension {}

/// The parameters every Stats API v1 endpoint takes (`/stats/*` and `/plausible/api/v1/stats/*`),
/// parsed by the handlers as `stats::V1Params`.
pub struct StatsParams;

impl utoipa::IntoParams for StatsParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let query = |name: &str, required: bool, description: &str, schema: RefOr<Schema>| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if required { Required::True } else { Required::False })
                .description(Some(description))
                .schema(Some(schema))
        };
        vec![
            query(
                "site_id",
                true,
                "The website: its id or its domain.",
                ObjectBuilder::new().schema_type(Type::String).into(),
            )
            .build(),
            query("period", false, "Default `30d`.", schema_ref("Period")).build(),
            query(
                "date",
                false,
                "`YYYY-MM-DD`, the last day of the period (default: today in the site's time zone); for \
                 `period=custom` (and only then), `YYYY-MM-DD,YYYY-MM-DD`: the first and last day, the first not \
                 after the last, at most 10 years (3,660 days) apart.",
                v1_date().into(),
            )
            .build(),
            query(
                "metrics",
                false,
                "Comma-separated, each metric once; default `visitors`. Which metrics go with which filters and \
                 breakdowns is Plausible's: `time_on_page` only with a page filter or by `event:page`; \
                 `views_per_visit` not by page, nor with a page filter; a visit's metrics (`visits`, `bounce_rate`, \
                 `visit_duration`, `views_per_visit`) not by or filtered on `event:name`, `event:goal` or a \
                 property; `conversion_rate` only by `event:goal` or with a goal filter (README, \"Events and \
                 statistics\").",
                v1_metrics().into(),
            )
            .style(Some(ParameterStyle::Form))
            .explode(Some(false))
            .build(),
            query(
                "filters",
                false,
                "Filters joined by `;`, each `<property><op><values>` with `==`, `!=`, `~` (contains) or `!~` and 1 \
                 to 100 values separated by `|` (each at most 2,000 bytes of UTF-8); `*` in an `==` or `!=` value \
                 is a wildcard. Example: `event:page==/blog/**;visit:country==US|DE`.",
                v1_filters().into(),
            )
            .build(),
        ]
    }
}

fn v1_date() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::V1_DATE.as_str()))
}

fn v1_metrics() -> ArrayBuilder {
    let metric = string_of(vocabulary::V1_METRICS.iter().copied());
    ArrayBuilder::new().items(metric).min_items(Some(1)).unique_items(true)
}

fn v1_filters() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::V1_FILTERS.as_str()))
}

/// `error.code`: a value of the error table.
pub struct ErrorCodeName;

impl PartialSchema for ErrorCodeName {
    fn schema() -> RefOr<Schema> {
        error_code_schema(ErrorCode::ALL)
    }
}

impl ToSchema for ErrorCodeName {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

pub fn string_of(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values))
}

pub fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// `date_range` of a query: a period, or two days.
pub fn date_range() -> AnyOfBuilder {
    let period = string_of(vocabulary::PERIODS.iter().copied().filter(|p| *p != vocabulary::CUSTOM_PERIOD))
        .description(Some(
            "A period, with Plausible v2's days: `Nd` and `Nmo` end before the current day or month, `month` and \
         `year` are the whole current month or year, `all` starts on the site's first day with an event.",
        ));
    let last_n = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::V2_LAST_N))
        .description(Some("The last 1–5000 whole days (`30d`) or 1–100 whole months (`6mo`) before the current one."));
    let day = ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::V2_DAY.as_str()));
    let instant =
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    let days = ArrayBuilder::new().items(day).min_items(Some(2)).max_items(Some(2)).description(Some(
        "First and last day, `YYYY-MM-DD`, the first not after the last, at most 10 years (3,660 days) apart.",
    ));
    let instants = ArrayBuilder::new().items(instant).min_items(Some(2)).max_items(Some(2)).description(Some(
        "Two RFC 3339 date-times: exactly those instants, the last whole second included, in order and at most \
         10 years apart. A day beside a date-time is refused, as Plausible refuses it.",
    ));
    // Any of: `7d` is both a listed period and a `Nd`.
    AnyOfBuilder::new().item(period).item(last_n).item(days).item(instants)
}

/// `event_name` of a new goal.
pub fn goal_event_name() -> OneOfBuilder {
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::NAME))
        .min_length(Some(1))
        .max_length(Some(120))
        .description(Some("A custom event's name, 1 to 120 characters (not `pageview` or `engagement`)."));
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(name)
}

/// A metric's figure: a number, or for revenue `{short, long, value}` (null where no currency
/// applies).
pub fn metric_figure() -> AnyOfBuilder {
    let number = ObjectBuilder::new().schema_type(Type::Number);
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let revenue = ObjectBuilder::new()
        .property("short", text())
        .property("long", text())
        .property("value", ObjectBuilder::new().schema_type(Type::Number))
        .required("short")
        .required("long")
        .required("value");
    AnyOfBuilder::new().item(number).item(revenue).item(ObjectBuilder::new().schema_type(Type::Null))
}

/// The figures of a row, in the order of the requested metrics.
pub fn metric_figures() -> ArrayBuilder {
    ArrayBuilder::new().items(metric_figure()).description(Some("In the order of the requested metrics."))
}

/// `currency` of a new goal.
pub fn goal_currency() -> OneOfBuilder {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Z]{3}$"))
        .description(Some("ISO 4217, such as `EUR`: makes a custom event goal a revenue goal."));
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(code)
}

/// `page_path` of a new goal.
pub fn goal_page_path() -> OneOfBuilder {
    let path = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::PAGE_PATH))
        .max_length(Some(2000))
        .description(Some("A page path starting with `/`; `*` stands for any characters."));
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(path)
}

/// `domain` of a new website.
pub fn domain() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::DOMAIN))
        .max_length(Some(crate::rules::DOMAIN_MAX))
        .description(Some(
            "A host name of at least two labels (ASCII letters, digits and inner hyphens, 1–63 characters each; \
             punycode for international names), optionally with `http://` or `https://`, a trailing dot, a port \
             and a path; at most 253 characters in all. Stored normalised (lower case; scheme, port, path and \
             trailing dot dropped); unique platform-wide.",
        ))
}

/// `name` of a website: trimmed when stored.
pub fn website_name() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(crate::rules::NAME))
        .min_length(Some(1))
        .max_length(Some(crate::rules::NAME_MAX))
        .description(Some("1 to 100 characters, not all white space; stored trimmed."))
}

/// `name` of a website update: absent or null keeps the name.
pub fn website_name_or_null() -> OneOfBuilder {
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(website_name())
}

/// An IANA time zone name, as the server's time-zone database knows them.
pub struct TimeZone;

impl PartialSchema for TimeZone {
    fn schema() -> RefOr<Schema> {
        string_of(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
            .description(Some(
                "An IANA time zone such as `Europe/Paris`; days and hours of the statistics are local to it.",
            ))
            .into()
    }
}

impl ToSchema for TimeZone {}

/// `site_id` of a query body: may be absent or null on `/query/{websiteId}`.
pub fn query_site_id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .pattern(Some(crate::rules::LINE))
        .description(Some(
            "Website id or domain. `/query/{websiteId}` names the site in its path: there `site_id` may be left \
             out (or null), and when given must name the same site. Required by the Plausible mount.",
        ))
}

/// `metrics` of a query.
pub fn query_metrics() -> ArrayBuilder {
    ArrayBuilder::new().items(schema_ref("Metric")).min_items(Some(1)).unique_items(true).description(Some(
        "Each metric once. Which metrics go with which filters, dimensions and includes is Plausible's: \
             `time_on_page` and `scroll_depth` only with an `event:page` filter or dimension; `views_per_visit` \
             with no dimension and no page filter; a visit's metrics (`bounce_rate`, `visit_duration`, \
             `views_per_visit`) not by an `event:*` dimension but `event:page` alone; an event's metrics not by \
             `visit:entry_page` or `visit:exit_page`; `include.time_labels` only with a time dimension; a \
             `visit:country` filter with 2-letter codes (README, \"Events and statistics\").",
    ))
}

/// `dimensions` of a query.
pub fn query_dimensions() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(schema_ref("AnyDimension"))
        .max_items(Some(4))
        .unique_items(true)
        .description(Some("Each dimension once, at most one of them time (`time:*`, or `time` for the interval Plausible chooses for the period: hours up to 48 hours, days up to 40 days, weeks up to 52 weeks, else months)."))
}

/// `filters` of a query: each a [`QueryFilter`], all of them applying.
pub fn filters() -> ArrayBuilder {
    ArrayBuilder::new().items(schema_ref("QueryFilter")).description(Some(
        "All of them apply. Groups are rewritten into conditions that all apply (README, \"Events and \
         statistics\"): an `and` adds its filters, a `not` turns its conditions into their opposites, and an `or` \
         (or a `not` of an `and`) of conditions on one dimension with `is`, `contains`, `matches_wildcard`, \
         or with `matches` alone, becomes one condition with all their values (at most 100; of several of \
         those operators, as wildcards, without `matches`, the case modifier, `*` in a value or an empty \
         value's label); any other `or` is a 400. As Plausible, `event:goal` and `event:hostname` are filtered only at the top level, and \
         custom properties too when `metrics` has `conversion_rate`; `{\"case_sensitive\": false}` does not \
         go with `matches_wildcard`, `matches_wildcard_not`, `matches` or `matches_not`. `matches` takes \
         regular expressions in RE2's syntax, found anywhere in the value unless anchored (`^/blog/\\d+$`); \
         one the regex crate cannot compile, or compiles beyond 1 MiB, is a 400 naming it, and so is, on \
         PostgreSQL, one that PostgreSQL's flavour does not take (they agree on classes, anchors, \
         alternatives, repetitions and a leading `(?i)`).",
    ))
}

/// One of a query's `filters`: a condition `[operator, dimension, [values], {modifiers}?]`, a
/// group `["and" | "or", [filters]]`, or `["not", filter]`.
pub struct QueryFilter;

impl PartialSchema for QueryFilter {
    fn schema() -> RefOr<Schema> {
        let operator = string_of([
            "is",
            "is_not",
            "contains",
            "contains_not",
            "matches_wildcard",
            "matches_wildcard_not",
            "matches",
            "matches_not",
        ]);
        let values = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::LINE)))
            .min_items(Some(1))
            .max_items(Some(crate::rules::FILTER_VALUES_MAX))
            .description(Some("Each at most 2,000 bytes of UTF-8."));
        let modifiers = ObjectBuilder::new()
            .property("case_sensitive", ObjectBuilder::new().schema_type(Type::Boolean))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some(
                "Plausible's modifier: `false` makes `is` and `contains` ignore case (default `true`); not with \
                 `matches_wildcard`, `matches_wildcard_not`, `matches` or `matches_not`.",
            ));
        let condition = ArrayBuilder::new()
            .prefix_items([
                Schema::from(operator.build()),
                AnyProperty::schema().into(),
                values.build().into(),
                modifiers.build().into(),
            ])
            .items(ArrayItems::False)
            .min_items(Some(3));
        let group = ArrayBuilder::new()
            .prefix_items([
                Schema::from(string_of(["and", "or"]).build()),
                ArrayBuilder::new().items(schema_ref("QueryFilter")).min_items(Some(1)).build().into(),
            ])
            .items(ArrayItems::False)
            .min_items(Some(2));
        let negation = ArrayBuilder::new()
            .prefix_items([
                Schema::from(string_of(["not"]).build()),
                AllOfBuilder::new().item(schema_ref("QueryFilter")).into(),
            ])
            .items(ArrayItems::False)
            .min_items(Some(2));
        OneOfBuilder::new().item(condition).item(group).item(negation).into()
    }
}

impl ToSchema for QueryFilter {}

/// `order_by` of a query: `[metric or dimension, "asc" | "desc"]` pairs.
pub fn order_by() -> ArrayBuilder {
    let key = AnyOfBuilder::new()
        .item(string_of(vocabulary::METRICS.iter().copied().chain(vocabulary::dimensions())))
        .item(custom_property())
        .description(Some("One of the query's `metrics` or `dimensions`."));
    let pair = ArrayBuilder::new()
        .prefix_items([Schema::from(key.build()), string_of(["asc", "desc"]).build().into()])
        .items(ArrayItems::False)
        .min_items(Some(2));
    ArrayBuilder::new().items(pair)
}
