//! The headers the document declares on responses (docs/behaviour.md#plans-limits-and-quotas),
//! shared by the conventions applied to every operation and by the standard error responses.

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::schema::date_time;

/// `x-request-id` on every response, and on decided requests the headers of docs/behaviour.md#plans-limits-and-quotas.
pub(super) fn add_headers(response: &mut Response, rate_limited: bool) {
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

pub(super) fn string_header(description: &str) -> Header {
    HeaderBuilder::new().schema(ObjectBuilder::new().schema_type(Type::String)).description(Some(description)).build()
}
