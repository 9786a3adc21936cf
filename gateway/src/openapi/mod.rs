//! `GET /api/external/v1/openapi.json`: the OpenAPI 3.1 document of docs/behaviour.md#external-rest-api.
//!
//! Operations come from the `#[utoipa::path]` attributes on the handlers, registered with their
//! routes (`utoipa_axum::routes!`), so a route and its description are one declaration. This
//! module adds what every operation shares: the standard error responses, the security schemes and
//! the rate-limit headers (all in docs/behaviour.md).

mod headers;
mod responses;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::schema::{
    AnyDimension, AnyProperty, Compare, Dimension, Interval, Metric, Period, Property, QueryFilter, Range, TimeZone,
    schema_ref,
};
pub use responses::*;

use crate::error::{ErrorEnvelope, PlausibleError};
use headers::add_headers;

/// The document, published once the router that declares its operations is built.
static DOCUMENT: OnceLock<String> = OnceLock::new();

/// Completes the document of the external router with what its operations share and publishes it
/// for [`serve`]. Every router build makes the same document, so the first one stays.
pub fn publish(mut api: utoipa::openapi::OpenApi) {
    Conventions.modify(&mut api);
    DOCUMENT.get_or_init(|| api.to_json().expect("the OpenAPI document serialises"));
}

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
    let document = DOCUMENT.get().map_or("{}", String::as_str);
    ([(header::CONTENT_TYPE, "application/json")], document)
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

/// The document's frame: what the operations' attributes do not say.
#[derive(OpenApi)]
#[openapi(
    info(title = "Zenovay external API", version = env!("CARGO_PKG_VERSION"), description = DESCRIPTION),
    servers((url = "/api/external/v1", description = "This gateway")),
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
            QueryFilter,
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
            PayloadTooLarge,
            PlausibleValidationError,
            PlausibleUnauthorized,
            PlausibleForbidden,
            PlausibleNotFound,
            PlausibleConflict,
            PlausibleTooManyRequests,
            PlausibleServiceUnavailable,
            PlausiblePayloadTooLarge,
        ),
    ),
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
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    one_line(parameter);
                }
                add_standard_errors(path, operation);
                // An operation without its own requirement takes the document's: a key.
                let keyed = operation.security.is_none();
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        // A body too large is refused before the key is verified: no limit
                        // was counted.
                        add_headers(response, keyed && status != "401" && status != "413");
                    }
                }
            }
        }
    }
}

/// The errors any keyed operation may answer, in the body of its mount: 400 (a credential header
/// given twice, or bad input), 401, 403, 429 and 503, and 413 when it takes a body. An operation
/// states the others it has (404, 409).
fn add_standard_errors(path: &str, operation: &mut Operation) {
    if operation.security.is_some() {
        return; // keyless: it states its own
    }
    let takes_body = operation.request_body.is_some();
    let plausible = path.starts_with("/plausible/");
    let standard = [
        ("400", true, "ValidationError"),
        ("413", takes_body, "PayloadTooLarge"),
        ("401", true, "Unauthorized"),
        ("403", true, "Forbidden"),
        ("429", true, "TooManyRequests"),
        ("503", true, "ServiceUnavailable"),
    ];
    for (status, applies, name) in standard {
        let name = if plausible { format!("Plausible{name}") } else { name.to_owned() };
        if applies {
            operation.responses.responses.entry(status.to_owned()).or_insert(RefOr::Ref(Ref::from_response_name(name)));
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
