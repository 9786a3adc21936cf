//! `GET /api/external/v1/openapi.json`: the OpenAPI 3.1 document of docs/behaviour.md#external-rest-api.
//!
//! Operations come from the `#[utoipa::path]` attributes on the handlers themselves, so a handler
//! and its description are read and changed together; this module adds what every operation
//! shares: the envelopes, the error responses, the security schemes and the rate-limit
//! headers (all in docs/behaviour.md). The response bodies below are schemas only: the handlers build their JSON
//! with `views` and `json!`, and the suite compares real responses with these schemas.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use common::ErrorCode;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{KnownFormat, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::routes::{external, goals, stats, teams};

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serialises"));

/// The document; public, so that clients can be generated before anyone has a key.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "getOpenApiDocument",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 document of the external API. No key needed.",
    security(),
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json")),
)]
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

const DESCRIPTION: &str = "\
Zenovay's external REST API. Authenticate with a personal API key: `Authorization: Bearer zv_…` \
(or `X-API-Key: zv_…`). The API needs a paid plan.

Each operation names the scope its key needs: `read` to read (GET, and the queries \
`POST /query/{websiteId}` and `POST /plausible/api/v2/query`), `write` to change, `admin` for the \
team endpoints; `full` satisfies all three.

Answers are `{\"success\": true, \"data\": …, \"timestamp\": …}`, errors \
`{\"success\": false, \"error\": {\"code\", \"message\", \"timestamp\"}}` with the HTTP status. \
Unknown fields, wrong types, out-of-range values and unknown values of enumerated parameters are \
a 400 `VALIDATION_ERROR` whose message names the field. The Plausible drop-in under `/plausible` \
answers Plausible's own bodies and `{\"error\": \"…\"}` instead.

Once a request has been decided, its response carries the rate-limit and usage headers, errors \
included; a 429 carries `Retry-After`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Zenovay external API", version = env!("CARGO_PKG_VERSION"), description = DESCRIPTION),
    servers((url = "/api/external/v1", description = "This gateway")),
    paths(
        external::list_websites,
        external::create_website,
        external::get_website,
        external::update_website,
        external::delete_website,
        goals::list,
        goals::create,
        goals::delete,
        stats::overview,
        stats::pages,
        stats::countries,
        stats::technology,
        stats::aggregate,
        stats::timeseries,
        stats::breakdown,
        stats::flexible_query,
        stats::realtime,
        external::usage,
        teams::external_members,
        teams::external_put_policy,
        teams::external_audit_log,
        stats::plausible_aggregate,
        stats::plausible_timeseries,
        stats::plausible_breakdown,
        stats::plausible_realtime,
        stats::plausible_query,
        stats::plausible_sites,
        goals::plausible_site,
        goals::plausible_goals,
        goals::plausible_put_goal,
        goals::plausible_delete_goal,
        goals::plausible_health,
        serve,
    ),
    components(
        schemas(
            ErrorEnvelope,
            PlausibleError,
            TimeZone,
            Range,
            Period,
            Interval,
            Metric,
            Property,
            Dimension,
            AnyProperty,
            AnyDimension,
            Compare
        ),
        responses(
            ValidationError,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            TooManyRequests,
            ServiceUnavailable,
            PlausibleValidationError,
            PlausibleUnauthorized,
            PlausibleForbidden,
            PlausibleNotFound,
            PlausibleTooManyRequests,
            PlausibleServiceUnavailable,
        ),
    ),
    modifiers(&Conventions),
    security(("bearer" = []), ("apiKey" = [])),
    tags(
        (name = "websites", description = "Websites of the teams a key reaches"),
        (name = "analytics", description = "Overview and top lists of a website"),
        (name = "stats", description = "Plausible's Stats API (v1 parameters, v2 query) inside the envelope"),
        (name = "plausible", description = "Plausible drop-in: Plausible's exact requests and bodies, no envelope"),
        (name = "usage", description = "Plan, limits and usage of the key's owner"),
        (name = "teams", description = "Team administration (admin scope)"),
        (name = "meta", description = "This document"),
    ),
)]
pub struct ApiDoc;

const BEARER: &str = "bearer";
const API_KEY: &str = "apiKey";

/// What every operation shares and derive attributes cannot say once for all.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("zv_…")
                    .description(Some("A personal API key: `Authorization: Bearer zv_…`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The same key in `X-API-Key: zv_…`.",
            ))),
        );
        plausible_query_body(openapi);
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    one_line(parameter);
                }
                // An operation without its own requirement takes the document's: a key.
                let keyed = operation.security.is_none();
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        add_headers(response, keyed && status != "401");
                    }
                }
            }
        }
    }
}

/// A free-text parameter (an id, a domain) holds no control character: the server refuses one.
fn one_line(parameter: &mut Parameter) {
    if let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
        && schema.schema_type == SchemaType::new(Type::String)
        && schema.enum_values.is_none()
        && schema.pattern.is_none()
    {
        schema.pattern = Some(crate::rules::LINE.into());
    }
}

/// The Plausible mount takes the query body of `/query/{websiteId}` with `site_id` required (and
/// not null): the site is named nowhere else.
fn plausible_query_body(openapi: &mut utoipa::openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    let Some(RefOr::T(Schema::Object(query))) = components.schemas.get("QueryBody") else {
        panic!("QueryBody is a registered object schema");
    };
    let mut body = query.clone();
    let site_id = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .pattern(Some(crate::rules::LINE))
        .description(Some("Website id or domain."));
    body.properties.insert("site_id".into(), site_id.into());
    body.required.insert(0, "site_id".into());
    components.schemas.insert("PlausibleQueryBody".into(), RefOr::T(Schema::Object(body)));
    let body = openapi
        .paths
        .paths
        .get_mut("/plausible/api/v2/query")
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
        .and_then(|body| body.content.get_mut("application/json"))
        .expect("the Plausible query operation has a JSON body");
    body.schema = Some(schema_ref("PlausibleQueryBody"));
}

/// `x-request-id` on every response, and on decided requests the headers of docs/behaviour.md#plans-limits-and-quotas.
fn add_headers(response: &mut Response, rate_limited: bool) {
    response.headers.insert(
        "x-request-id".into(),
        string_header("The request's id, also in the gateway's logs; the caller's own when it sent one."),
    );
    if !rate_limited {
        return;
    }
    let integer = |description: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
            .description(Some(description))
            .build()
    };
    let headers = [
        ("X-RateLimit-Limit", integer("Requests per minute this key may make.")),
        ("X-RateLimit-Remaining", integer("Requests left in the current 60-second window.")),
        ("X-RateLimit-Reset", integer("When a slot frees up, in unix seconds.")),
        ("X-Usage-Monthly", integer("Requests of the key's owner this UTC month.")),
        ("X-Usage-Limit", integer("Requests the key's owner may make per UTC month.")),
        (
            "X-Usage-Reset",
            HeaderBuilder::new()
                .schema(date_time())
                .description(Some("When the monthly quota resets (ISO 8601)."))
                .build(),
        ),
        ("RateLimit-Policy", string_header("IETF RateLimit policy: `\"per-minute\";q=<limit>;w=60`.")),
        ("RateLimit", string_header("IETF RateLimit fields: `\"per-minute\";r=<remaining>;t=<seconds to reset>`.")),
    ];
    for (name, header) in headers {
        response.headers.insert(name.into(), header);
    }
}

fn string_header(description: &str) -> Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}

fn date_time() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// The `error.code` values, from the one table of error codes.
fn error_code_schema(codes: &[ErrorCode]) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes.iter().map(|c| c.as_str()))).into()
}

fn always(value: bool) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([value]))
}

fn always_true() -> ObjectBuilder {
    always(true)
}

fn always_false() -> ObjectBuilder {
    always(false)
}

// ---- Error responses (docs/behaviour.md#authorization-of-a-request and #external-rest-api) ----

/// The two shapes an error takes: ours, and Plausible's under `/plausible`.
enum Shape {
    Envelope,
    Plausible,
}

fn error_response(description: &str, codes: &[ErrorCode], shape: Shape) -> Response {
    let listed: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
    let description = match shape {
        Shape::Envelope => format!("{description} (`error.code`: {})", listed.join(", ")),
        Shape::Plausible => format!("{description}; Plausible's body, `{{\"error\": \"…\"}}`"),
    };
    let mut content = ContentBuilder::new();
    content = match shape {
        Shape::Envelope => {
            // The shared envelope, with `error.code` narrowed to the codes of this status.
            let narrowed = ObjectBuilder::new()
                .property("error", ObjectBuilder::new().property("code", error_code_schema(codes)).required("code"));
            let schema = AllOfBuilder::new().item(schema_ref("Error")).item(narrowed);
            content.schema(Some(schema)).examples_from_iter(codes.iter().map(|code| {
                let example = utoipa::openapi::example::ExampleBuilder::new().value(Some(serde_json::json!({
                    "success": false,
                    "error": { "code": code.as_str(), "message": "…", "timestamp": "2026-01-01T00:00:00.000Z" },
                })));
                (code.as_str(), example)
            }))
        }
        Shape::Plausible => content.schema(Some(schema_ref("PlausibleError"))),
    };
    let mut response =
        ResponseBuilder::new().description(description).content("application/json", content.build()).build();
    let unauthorized = codes.contains(&ErrorCode::Unauthorized);
    add_headers(&mut response, !unauthorized);
    if unauthorized {
        response.headers.insert("WWW-Authenticate".into(), string_header("`Bearer realm=\"zenovay\"`."));
    }
    if codes.iter().any(|c| c.http_status() == 429) {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1));
        let retry =
            HeaderBuilder::new().schema(seconds).description(Some("Seconds until a retry may succeed.")).build();
        response.headers.insert("Retry-After".into(), retry);
    }
    response
}

macro_rules! error_responses {
    ($($name:ident => $shape:ident, $description:literal, [$($code:ident),+];)*) => {
        $(
            #[doc = $description]
            pub struct $name;

            impl<'r> ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    let codes = [$(ErrorCode::$code),+];
                    (stringify!($name), error_response($description, &codes, Shape::$shape).into())
                }
            }
        )*
    };
}

error_responses! {
    ValidationError => Envelope, "A parameter or the body is invalid; the message names the field", [Validation];
    Unauthorized => Envelope, "No key, or a malformed, unknown or revoked key; or an expired one", [Unauthorized, ApiKeyExpired];
    Forbidden => Envelope, "The key may not do this, or not from this address", [ApiPaidPlanRequired, InsufficientScope, Forbidden, KeyPolicyForbids, IpNotAllowed];
    NotFound => Envelope, "No such resource", [NotFound];
    Conflict => Envelope, "Another website already has this domain", [Conflict];
    TooManyRequests => Envelope, "Over the per-minute limit of the key or the monthly quota of its owner", [RateLimitExceeded, MonthlyLimitExceeded];
    ServiceUnavailable => Envelope, "A backend the answer needs is unavailable", [ServiceUnavailable];
    PlausibleValidationError => Plausible, "A parameter or the body is invalid", [Validation];
    PlausibleUnauthorized => Plausible, "No key, or a malformed, unknown or revoked key; or an expired one", [Unauthorized, ApiKeyExpired];
    PlausibleForbidden => Plausible, "The key may not do this, or not from this address", [ApiPaidPlanRequired, InsufficientScope, Forbidden, KeyPolicyForbids, IpNotAllowed];
    PlausibleNotFound => Plausible, "No such site", [NotFound];
    PlausibleTooManyRequests => Plausible, "Over the per-minute limit of the key or the monthly quota of its owner", [RateLimitExceeded, MonthlyLimitExceeded];
    PlausibleServiceUnavailable => Plausible, "A backend the answer needs is unavailable", [ServiceUnavailable];
}

// ---- Enumerations ----

/// A string schema with a fixed set of values, described by its doc comment.
macro_rules! string_enum {
    ($($(#[doc = $doc:literal])+ $name:ident = [$($value:literal),+ $(,)?];)*) => {
        $(
            $(#[doc = $doc])+
            pub struct $name;

            impl $name {
                pub const VALUES: &[&str] = &[$($value),+];
            }

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    let description = [$($doc),+].map(str::trim).join(" ");
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(description))
                        .enum_values(Some($name::VALUES.iter().copied()))
                        .into()
                }
            }

            impl ToSchema for $name {}
        )*
    };
}

string_enum! {
    /// Range of `/analytics`: the last 24 hours, or days up to today in the site's time zone.
    Range = ["24h", "7d", "30d", "90d", "1y"];
    /// Plausible's period; `24h` and `1y` are ours. `custom` takes `date=YYYY-MM-DD,YYYY-MM-DD`;
    /// `realtime` is the last 5 minutes.
    /// `all` runs from the site's first day with an event to today.
    Period = ["day", "24h", "7d", "28d", "30d", "90d", "91d", "month", "6mo", "12mo", "year", "1y", "all", "realtime", "custom"];
    /// Bucket of a time series (`date` and `day` are the same).
    Interval = ["hour", "date", "day", "week", "month"];
    /// A metric: `visitors` are distinct daily visitors, `bounce_rate` a percentage,
    /// `visit_duration` seconds, `views_per_visit` has two decimals. `conversion_rate` (percent of
    /// the period's visitors, goal and property filters aside, with one decimal) needs an
    /// `event:goal` dimension or filter; `percentage` (percent of the period's visitors, one
    /// decimal) needs a dimension. `total_revenue` and `average_revenue` (of revenue goals'
    /// events, as `{short, long, value}` in the goals' currency, null where none applies) need
    /// an `event:goal` dimension or filter. `time_on_page` seconds and `scroll_depth` percent come
    /// from engagement events, null without.
    Metric = [
        "visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events",
        "time_on_page", "scroll_depth", "conversion_rate", "percentage", "total_revenue", "average_revenue",
    ];
    /// A property to break down by; custom properties are `event:props:<name>` besides these.
    Property = [
        "event:page", "event:name", "event:goal", "event:hostname", "visit:entry_page", "visit:exit_page",
        "visit:source", "visit:referrer", "visit:channel", "visit:utm_source", "visit:utm_medium",
        "visit:utm_campaign", "visit:utm_content", "visit:utm_term", "visit:country", "visit:device",
        "visit:browser", "visit:browser_version", "visit:os", "visit:os_version",
    ];
    /// A dimension of a query: a property, or time; custom properties are `event:props:<name>`
    /// besides these.
    Dimension = [
        "event:page", "event:name", "event:goal", "event:hostname", "visit:entry_page", "visit:exit_page",
        "visit:source", "visit:referrer", "visit:channel", "visit:utm_source", "visit:utm_medium",
        "visit:utm_campaign", "visit:utm_content", "visit:utm_term", "visit:country", "visit:device",
        "visit:browser", "visit:browser_version", "visit:os", "visit:os_version", "time:hour", "time:day",
        "time:week", "time:month",
    ];
    /// Comparison of an aggregate.
    Compare = ["previous_period"];
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
            query("metrics", false, "Comma-separated, each metric once; default `visitors`.", v1_metrics().into())
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
    ArrayBuilder::new().items(schema_ref("Metric")).min_items(Some(1)).unique_items(true)
}

fn v1_filters() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::V1_FILTERS.as_str()))
}

// ---- Schemas ----
//
// These types are never built: they describe JSON that the handlers build with `views` and
// `json!` (typed views would change every caller of `views`); the suite checks real responses
// against them.

#[allow(dead_code, reason = "schemas only: these types are never built")]
mod shapes {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use utoipa::ToSchema;

    use common::access::{Plan, Role};

    use super::{Range, always_false, always_true};
    use common::access::ApiKeyPolicy;

    /// The error envelope.
    #[derive(ToSchema)]
    #[schema(as = Error)]
    pub struct ErrorEnvelope {
        #[schema(schema_with = always_false)]
        success: bool,
        error: ErrorBody,
    }

    #[derive(ToSchema)]
    pub struct ErrorBody {
        #[schema(value_type = super::ErrorCodeName)]
        code: String,
        /// Safe to show; names the field for a `VALIDATION_ERROR`.
        message: String,
        #[schema(format = DateTime)]
        timestamp: String,
    }

    /// Plausible's error body, under `/plausible`.
    #[derive(ToSchema)]
    pub struct PlausibleError {
        error: String,
    }

    /// The success envelope.
    #[derive(ToSchema)]
    pub struct Success<T> {
        #[schema(schema_with = always_true)]
        success: bool,
        data: T,
        /// When the answer was made (RFC 3339, UTC).
        #[schema(format = DateTime)]
        timestamp: String,
    }

    /// The success envelope of a paged list.
    #[derive(ToSchema)]
    pub struct Paged<T> {
        #[schema(schema_with = always_true)]
        success: bool,
        data: T,
        pagination: Pagination,
        /// When the answer was made (RFC 3339, UTC).
        #[schema(format = DateTime)]
        timestamp: String,
    }

    /// Where this page sits in the whole list.
    #[derive(ToSchema)]
    pub struct Pagination {
        /// From 1.
        page: u64,
        per_page: u64,
        /// Rows in the whole list.
        total: u64,
    }

    #[derive(ToSchema)]
    pub struct Website {
        id: String,
        team_id: String,
        domain: String,
        name: String,
        /// IANA time zone; days and hours of the statistics are local to it.
        timezone: String,
        /// Names the site to the tracker, as the domain does.
        tracking_code: String,
        #[schema(format = DateTime)]
        created_at: String,
    }

    /// A goal of a website.
    #[derive(ToSchema)]
    #[schema(as = Goal)]
    pub struct GoalView {
        id: String,
        website_id: String,
        /// How `event:goal` names it: the event's name, or `Visit <page_path>`.
        display_name: String,
        #[schema(pattern = "^(event|page)$")]
        goal_type: String,
        /// Set for an `event` goal.
        #[schema(required = true)]
        event_name: Option<String>,
        /// Set for a `page` goal; `*` stands for any characters.
        #[schema(required = true)]
        page_path: Option<String>,
        /// A revenue goal's currency (ISO 4217).
        #[schema(required = true)]
        currency: Option<String>,
        #[schema(format = DateTime)]
        created_at: String,
    }

    #[derive(ToSchema)]
    pub struct DeletedGoal {
        id: String,
        #[schema(schema_with = always_true)]
        deleted: bool,
    }

    /// Plausible's answer to a deletion.
    #[derive(ToSchema)]
    pub struct PlausibleDeleted {
        #[schema(schema_with = always_true)]
        deleted: bool,
    }

    #[derive(ToSchema)]
    pub struct DeletedWebsite {
        id: String,
        #[schema(schema_with = always_true)]
        deleted: bool,
    }

    #[derive(ToSchema)]
    pub struct Usage {
        plan: Plan,
        limits: UsageLimits,
        usage: UsageCounters,
    }

    /// The limits that apply to the key: those of its most generous team.
    #[derive(ToSchema)]
    pub struct UsageLimits {
        requests_per_minute: u32,
        requests_per_month: u64,
        mcp_calls_per_day: u32,
    }

    #[derive(ToSchema)]
    pub struct UsageCounters {
        /// This call included.
        requests_this_month: u64,
        requests_left_this_month: u64,
        requests_left_this_minute: u32,
        #[schema(format = DateTime)]
        month_resets_at: String,
    }

    #[derive(ToSchema)]
    pub struct Overview {
        website_id: String,
        range: Range,
        #[schema(format = DateTime)]
        from: String,
        /// Exclusive.
        #[schema(format = DateTime)]
        to: String,
        visitors: u64,
        visits: u64,
        pageviews: u64,
        /// Percent of visits with at most one pageview.
        bounce_rate: u64,
        /// Mean seconds from a visit's first to its last event.
        visit_duration: u64,
        /// Hourly for `24h`, else daily; zero-filled.
        series: Vec<SeriesPoint>,
        /// The top 10.
        top_countries: Vec<CountryVisitors>,
    }

    #[derive(ToSchema)]
    pub struct SeriesPoint {
        /// `YYYY-MM-DD`, or `YYYY-MM-DD HH:00:00` for hours, in the site's time zone.
        date: String,
        visitors: u64,
        pageviews: u64,
    }

    #[derive(ToSchema)]
    pub struct CountryVisitors {
        /// ISO 3166-1 alpha-2 code.
        country: String,
        visitors: u64,
    }

    #[derive(ToSchema)]
    pub struct PageStats {
        /// Path of the page.
        page: String,
        visitors: u64,
        pageviews: u64,
    }

    #[derive(ToSchema)]
    pub struct CountryStats {
        /// ISO 3166-1 alpha-2 code.
        country: String,
        visitors: u64,
        pageviews: u64,
    }

    #[derive(ToSchema)]
    pub struct Technology {
        browsers: Vec<BrowserVisitors>,
        operating_systems: Vec<OsVisitors>,
        devices: Vec<DeviceVisitors>,
    }

    #[derive(ToSchema)]
    pub struct BrowserVisitors {
        browser: String,
        visitors: u64,
    }

    #[derive(ToSchema)]
    pub struct OsVisitors {
        os: String,
        visitors: u64,
    }

    #[derive(ToSchema)]
    pub struct DeviceVisitors {
        device: String,
        visitors: u64,
    }

    #[derive(ToSchema)]
    pub struct Realtime {
        /// Of the last 5 minutes.
        visitors: u64,
        pageviews: u64,
        #[schema(format = DateTime)]
        from: String,
        #[schema(format = DateTime)]
        to: String,
        /// The top 10.
        top_pages: Vec<PageVisitors>,
    }

    #[derive(ToSchema)]
    pub struct PageVisitors {
        page: String,
        visitors: u64,
    }

    /// Plausible's aggregate body.
    #[derive(ToSchema)]
    pub struct AggregateResult {
        /// One entry per requested metric, named by it.
        results: BTreeMap<String, AggregateValue>,
    }

    #[derive(ToSchema)]
    pub struct AggregateValue {
        /// Null for `time_on_page` and `scroll_depth` without engagement.
        #[schema(schema_with = super::metric_figure)]
        value: f64,
        /// With `compare=previous_period`: percent change, or points for `bounce_rate`.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        change: Option<i64>,
    }

    /// Plausible's timeseries body.
    #[derive(ToSchema)]
    pub struct TimeseriesResult {
        /// One row per bucket, zero-filled: `date` and a number per requested metric.
        results: Vec<BTreeMap<String, Value>>,
    }

    /// Plausible's breakdown body.
    #[derive(ToSchema)]
    pub struct BreakdownResult {
        /// One row per value: the property's value under its short name (`visit:source` →
        /// `source`) and a number per requested metric.
        results: Vec<BTreeMap<String, Value>>,
    }

    /// Plausible's v2 query body.
    #[derive(ToSchema)]
    pub struct QueryResult {
        results: Vec<QueryRow>,
        meta: QueryMeta,
        /// The query as understood: `site_id` (the domain), `metrics`, `dimensions`, `date_range`
        /// (two RFC 3339 instants), `filters`, `order_by`, `pagination`.
        query: BTreeMap<String, Value>,
    }

    #[derive(ToSchema)]
    pub struct QueryRow {
        /// In the order of the requested metrics; null for `time_on_page` and `scroll_depth`
        /// without engagement.
        #[schema(schema_with = super::metric_figures)]
        metrics: Vec<f64>,
        /// In the order of the requested dimensions.
        dimensions: Vec<String>,
    }

    /// What `include` asked for.
    #[derive(ToSchema)]
    pub struct QueryMeta {
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        time_labels: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        total_rows: Option<u64>,
        /// Always false: there is no imported data.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        imports_included: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct Member {
        user_id: String,
        email: String,
        name: String,
        role: Role,
        #[schema(format = DateTime)]
        joined_at: String,
    }

    #[derive(ToSchema)]
    pub struct TeamSettings {
        team_id: String,
        plan: Plan,
        api_key_policy: ApiKeyPolicy,
        /// The plan's limits with the overrides applied.
        limits: TeamLimits,
        overrides: LimitOverrides,
    }

    #[derive(ToSchema)]
    pub struct TeamLimits {
        api_access: bool,
        requests_per_minute: u32,
        requests_per_month: u64,
        mcp_calls_per_day: u32,
    }

    /// An operator's overrides of the plan's limits; null keeps the plan's.
    #[derive(ToSchema)]
    pub struct LimitOverrides {
        #[schema(required = true)]
        requests_per_minute: Option<u32>,
        #[schema(required = true)]
        requests_per_month: Option<u64>,
        #[schema(required = true)]
        mcp_calls_per_day: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct AuditEntry {
        id: String,
        team_id: String,
        /// The user who acted.
        actor_id: String,
        /// `api_key.created|updated|revoked`, `member.added|removed|role_changed`,
        /// `team.api_key_policy_changed`, `team.plan_changed`.
        action: String,
        target: String,
        details: Value,
        #[schema(format = DateTime)]
        created_at: String,
    }
}

pub use shapes::*;

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

fn string_of(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values))
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// `date_range` of a query: a period, or two days.
pub fn date_range() -> AnyOfBuilder {
    let period = string_of(Period::VALUES.iter().copied().filter(|p| *p != "custom")).description(Some(
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
    let days = ArrayBuilder::new()
        .items(AnyOfBuilder::new().item(day).item(instant))
        .min_items(Some(2))
        .max_items(Some(2))
        .description(Some(
            "First and last day, `YYYY-MM-DD` (an RFC 3339 date-time stands for its day): the first not after \
             the last, at most 10 years (3,660 days) apart.",
        ));
    // Any of: `7d` is both a listed period and a `Nd`.
    AnyOfBuilder::new().item(period).item(last_n).item(days)
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
    ArrayBuilder::new()
        .items(schema_ref("Metric"))
        .min_items(Some(1))
        .unique_items(true)
        .description(Some("Each metric once."))
}

/// `dimensions` of a query.
pub fn query_dimensions() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(schema_ref("AnyDimension"))
        .max_items(Some(4))
        .unique_items(true)
        .description(Some("Each dimension once, at most one of them time (`time:*`)."))
}

/// `filters` of a query: `[operator, dimension, [values]]`, all of them applying.
pub fn filters() -> ArrayBuilder {
    let operator = string_of(["is", "is_not", "contains", "contains_not", "matches_wildcard", "matches_wildcard_not"]);
    let values = ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::rules::LINE)))
        .min_items(Some(1))
        .max_items(Some(crate::rules::FILTER_VALUES_MAX))
        .description(Some("Each at most 2,000 bytes of UTF-8."));
    let filter = ArrayBuilder::new()
        .prefix_items([Schema::from(operator.build()), AnyProperty::schema().into(), values.build().into()])
        .items(ArrayItems::False)
        .min_items(Some(3));
    ArrayBuilder::new().items(filter)
}

/// `order_by` of a query: `[metric or dimension, "asc" | "desc"]` pairs.
pub fn order_by() -> ArrayBuilder {
    let key = AnyOfBuilder::new()
        .item(string_of(Metric::VALUES.iter().chain(Dimension::VALUES).copied()))
        .item(custom_property())
        .description(Some("One of the query's `metrics` or `dimensions`."));
    let pair = ArrayBuilder::new()
        .prefix_items([Schema::from(key.build()), string_of(["asc", "desc"]).build().into()])
        .items(ArrayItems::False)
        .min_items(Some(2));
    ArrayBuilder::new().items(pair)
}
