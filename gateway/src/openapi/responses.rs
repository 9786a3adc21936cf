//! The error responses of the document (docs/behaviour.md#authorization-of-a-request and
//! #external-rest-api): each status with the codes it carries, in our envelope and in Plausible's
//! body under `/plausible`.

use common::ErrorCode;
use utoipa::ToResponse;
use utoipa::openapi::RefOr;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};

use super::headers::{add_headers, string_header};
use crate::schema::{error_code_schema, schema_ref};

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
    ValidationError => Envelope, "A parameter or the body is invalid, or a credential header is given twice; the message names the field", [Validation];
    Unauthorized => Envelope, "No key, or a malformed, unknown or revoked key; or an expired one", [Unauthorized, ApiKeyExpired];
    Forbidden => Envelope, "The key may not do this, or not from this address", [ApiPaidPlanRequired, InsufficientScope, Forbidden, KeyPolicyForbids, IpNotAllowed];
    NotFound => Envelope, "No such resource", [NotFound];
    Conflict => Envelope, "It conflicts with what exists: another website has this domain, the website has a goal of this name, or it has 100 goals already", [Conflict];
    TooManyRequests => Envelope, "Over the per-minute limit of the key or the monthly quota of its owner", [RateLimitExceeded, MonthlyLimitExceeded];
    ServiceUnavailable => Envelope, "A backend the answer needs is unavailable", [ServiceUnavailable];
    PayloadTooLarge => Envelope, "The body is over 2 MiB", [PayloadTooLarge];
    PlausibleValidationError => Plausible, "A parameter or the body is invalid, or a credential header is given twice", [Validation];
    PlausibleUnauthorized => Plausible, "No key, or a malformed, unknown or revoked key; or an expired one; for statistics, also a site unknown or out of the key's reach", [Unauthorized, ApiKeyExpired];
    PlausibleForbidden => Plausible, "The key may not do this, or not from this address", [ApiPaidPlanRequired, InsufficientScope, Forbidden, KeyPolicyForbids, IpNotAllowed];
    PlausibleNotFound => Plausible, "No such site", [NotFound];
    PlausibleConflict => Plausible, "The site has 100 goals already, the most it may have", [Conflict];
    PlausibleTooManyRequests => Plausible, "Over the per-minute limit of the key or the monthly quota of its owner", [RateLimitExceeded, MonthlyLimitExceeded];
    PlausibleServiceUnavailable => Plausible, "A backend the answer needs is unavailable", [ServiceUnavailable];
    PlausiblePayloadTooLarge => Plausible, "The body is over 2 MiB", [PayloadTooLarge];
}
