//! OAuth 2.1 for MCP clients (docs/behaviour.md#mcp): protected-resource and authorization-server metadata,
//! dynamic client registration, the consent page (authorization code + PKCE S256), the token
//! endpoint, and the dashboard's list and revocation of connections. No API key is involved.
//! README.md ("MCP") says what a client and a user can count on: code and refresh-token replay,
//! resource binding (RFC 8707), and the consent form's CSRF and Origin checks.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::ErrorCode;
use proto::identity::v1 as idpb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::envelope::parse;
use crate::state::AppState;

mod authorize;
mod connections;
mod params;

pub use authorize::{authorize_page, authorize_submit};
pub use connections::{list_connections, revoke_connection};
use params::{AuthorizeParams, SCOPES, bound_resource, control_field};
pub(crate) use params::{origin, resource_url};

/// RFC 9728: where `/mcp`'s tokens come from.
pub async fn protected_resource(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = origin(&state, &headers);
    Json(json!({
        "resource": resource_url(&state, &headers),
        "authorization_servers": [origin],
        "scopes_supported": SCOPES.map(|s| s.0),
        "bearer_methods_supported": ["header"],
        "resource_name": "Zenovay MCP",
    }))
}

/// RFC 8414.
pub async fn authorization_server(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = origin(&state, &headers);
    Json(json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "scopes_supported": SCOPES.map(|s| s.0),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}

/// An OAuth error body (RFC 6749 §5.2), with the status it goes with.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    // The description may quote what the client sent, where a key never shows whole, and no
    // more of it than any refusal quotes.
    let description = common::error::bounded(common::secret::redact_secrets(description).into_owned());
    let mut response = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A body the endpoint could not read whole (over the 2 MiB bound, or not in time), refused in
/// RFC 6749's shape like the endpoint's other refusals.
fn unreadable(rejection: &BytesRejection) -> Response {
    let description = if crate::envelope::timed_out(rejection) {
        "the request body did not arrive in time"
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "the request body is too large"
    } else {
        "the request body could not be read"
    };
    oauth_error(rejection.status(), "invalid_request", description)
}

#[derive(Deserialize)]
pub struct RegistrationBody {
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

/// RFC 7591 §3.2.2 names a bad redirect URI apart from other bad metadata.
fn names_redirect_uris(error: &common::Error) -> bool {
    error.field.as_deref().is_some_and(|field| field.split(['[', '.']).next() == Some("redirect_uris"))
}

/// RFC 7591 dynamic registration of a public client. Other metadata fields are ignored, as the
/// RFC allows.
pub async fn register(
    State(state): State<AppState>,
    client: crate::session::SigningIn,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(&rejection),
    };
    let body: RegistrationBody = match parse(&body) {
        Ok(body) => body,
        Err(e) if names_redirect_uris(&e.error) => {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &e.error.text());
        }
        Err(e) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", &e.error.text()),
    };
    if body.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "only public clients (none) are supported",
        );
    }
    // Every client gets the code flow and refresh tokens: a list without the code grant cannot be
    // served, and one without refresh tokens is answered with the grants the client will get
    // (RFC 7591 §3.2.1 lets a server replace what it will not honour as asked).
    let grants = body.grant_types.unwrap_or_else(|| vec!["authorization_code".into()]);
    if grants.iter().any(|g| g != "authorization_code" && g != "refresh_token")
        || !grants.iter().any(|g| g == "authorization_code")
        || body.response_types.as_ref().is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", "only the code flow is supported");
    }
    let grants = ["authorization_code", "refresh_token"];
    let request = idpb::RegisterMcpClientRequest {
        client_name: body.client_name.unwrap_or_default(),
        redirect_uris: body.redirect_uris,
        client_address: client.address,
    };
    match state.identity.clone().register_mcp_client(request).await {
        Ok(client) => {
            let client = client.into_inner();
            let body = json!({
                "client_id": client.client_id,
                "client_id_issued_at": client.created_at_unix_ms / 1000,
                "client_name": client.client_name,
                "redirect_uris": client.redirect_uris,
                "grant_types": grants,
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        // Too many registrations from the address: the API's 429, with `Retry-After`.
        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
            crate::routes::account::refused(status).into_response()
        }
        Err(status) => {
            let error = common::Error::from(status);
            match error.code {
                ErrorCode::Validation if names_redirect_uris(&error) => {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &error.text())
                }
                ErrorCode::Validation => oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", &error.text()),
                _ => crate::error::ApiError::from(error).into_response(),
            }
        }
    }
}

/// The token endpoint: `authorization_code` with the PKCE verifier, or `refresh_token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return unreadable(&rejection),
    };
    let form = AuthorizeParams::parse(&String::from_utf8_lossy(&body));
    if let Some(field) = control_field(&form.all) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{field} holds a control character"));
    }
    // RFC 6749 §5.2: a parameter given twice, or one the grant needs left out, is invalid_request.
    const PARAMETERS: [&str; 7] =
        ["grant_type", "client_id", "code", "code_verifier", "redirect_uri", "refresh_token", "scope"];
    if let Some(name) = form.repeated(&PARAMETERS) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{name} is given more than once"));
    }
    let needed: &[&str] = match form.get("grant_type") {
        "authorization_code" => &["code", "code_verifier"],
        "refresh_token" => &["refresh_token"],
        _ => &["grant_type"],
    };
    if let Some(name) = needed.iter().find(|name| form.get(name).is_empty()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("{name} is required"));
    }
    // RFC 7636 §4.1: a verifier is 43 to 128 unreserved characters.
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let verifier = form.get("code_verifier");
    if form.get("grant_type") == "authorization_code"
        && (!(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved))
    {
        let message = "code_verifier must be 43 to 128 unreserved characters";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", message);
    }
    let client_id = form.get("client_id").to_owned();
    if client_id.is_empty() {
        let mut refused = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client_id is required");
        // A client that authenticated with the Authorization header is told which scheme the
        // server takes (RFC 6749 §5.2); public clients send their id in the form.
        if headers.contains_key(header::AUTHORIZATION) {
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"zenovay\""));
        }
        return refused;
    }
    let ours = resource_url(&state, &headers);
    if bound_resource(&form, &ours).is_none() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", &format!("resource must be {ours}"));
    }
    let result = match form.get("grant_type") {
        "authorization_code" => {
            let request = idpb::ExchangeMcpCodeRequest {
                code: form.get("code").into(),
                client_id,
                redirect_uri: form.get("redirect_uri").into(),
                code_verifier: form.get("code_verifier").into(),
            };
            state.identity.clone().exchange_mcp_code(request).await
        }
        "refresh_token" => {
            let scopes = form.get("scope").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            let request =
                idpb::RefreshMcpTokenRequest { refresh_token: form.get("refresh_token").into(), client_id, scopes };
            state.identity.clone().refresh_mcp_token(request).await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    match result {
        Ok(tokens) => {
            let t = tokens.into_inner();
            let mut response = Json(json!({
                "access_token": t.access_token,
                "token_type": "Bearer",
                "expires_in": t.expires_in_seconds,
                "refresh_token": t.refresh_token,
                "scope": t.scopes.join(" "),
            }))
            .into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            // A client this server does not know is told so (RFC 6749 §5.2); what else was wrong
            // stays one answer, so that a caller learns nothing about which part it was.
            let known = idpb::GetMcpClientRequest { client_id: form.get("client_id").into() };
            match state.identity.clone().get_mcp_client(known).await {
                Err(lookup) if lookup.code() == tonic::Code::NotFound => {
                    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the client is not registered")
                }
                _ => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", status.message()),
            }
        }
        // A refresh asking for more than was granted (RFC 6749 §5.2).
        Err(status) if status.code() == tonic::Code::InvalidArgument && form.get("grant_type") == "refresh_token" => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", status.message())
        }
        Err(status) => crate::error::ApiError::from(status).into_response(),
    }
}
