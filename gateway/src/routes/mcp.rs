//! The MCP endpoint (docs/behaviour.md#mcp): Model Context Protocol over Streamable HTTP (rmcp), stateless so
//! that any gateway replica serves any request. Every request carries an OAuth access token,
//! checked with identity each time, so a revoked connection stops at once. Tools reach only the
//! connection's team, by the categories the user granted; each `tools/call` counts against the
//! daily MCP quota of the team's plan.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::access::Role;
use common::secret::Digest;
use proto::analytics::v1 as anpb;
use proto::identity::v1 as idpb;
use proto::policy::v1 as popb;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientJsonRpcMessage, ClientRequest, ContentBlock,
    Implementation, InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::flows::stats::{self, short_name, top};
use crate::flows::{access, websites};
use crate::state::AppState;
use crate::vocabulary;
use anpb::{Interval, Metric, NamedPeriod};
use proto::vocabulary::TIME;

const ANALYTICS_READ: &str = "analytics:read";
const MANAGEMENT_READ: &str = "management:read";
const MANAGEMENT_WRITE: &str = "management:write";

/// The largest JSON-RPC message read. Every tool's arguments fit in well under a KiB; reading
/// (and checking against a tool's schema) a message of many arguments costs time in proportion,
/// and a refused call counts against no quota, so the bound is far below the API's 2 MiB.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Methods this server serves whose parameters rmcp checks by type.
const TYPED_METHODS: [&str; 4] = ["initialize", "ping", "tools/list", "tools/call"];

/// `WWW-Authenticate` for `/mcp`: where the metadata is, the scopes asked for, and the error.
fn challenge(state: &AppState, headers: &axum::http::HeaderMap, error: &str, scopes: &[&str]) -> HeaderValue {
    let origin = super::oauth::origin(state, headers);
    let mut value = format!("Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource\"");
    if !error.is_empty() {
        value.push_str(&format!(", error=\"{error}\""));
    }
    value.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

/// Checks the bearer token and hands the connection's grant to the MCP service; a missing or
/// dead token gets 401 pointing at the protected-resource metadata (RFC 9728) and naming every
/// scope, as the MCP authorization specification asks. A token bound to another resource
/// (RFC 8707) is not valid here.
pub async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = crate::session::bearer(req.headers()).map(str::to_owned);
    let unauthorized = |req: &Request, error: &str| {
        let description = match error {
            "" => "an OAuth access token is required",
            _ => "the access token is invalid, expired or revoked",
        };
        let body = axum::Json(json!({ "error": "invalid_token", "error_description": description }));
        let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
        let all = [ANALYTICS_READ, MANAGEMENT_READ, MANAGEMENT_WRITE];
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge(&state, req.headers(), error, &all));
        response
    };
    let Some(token) = token else { return unauthorized(&req, "") };
    let request = idpb::VerifyMcpTokenRequest { token_digest: Digest::of(&token).as_bytes().to_vec() };
    let grant = match common::transport::checked(state.identity.clone().verify_mcp_token(request)).await {
        Ok(grant) => grant.into_inner(),
        Err(status) if status.code() == tonic::Code::Unauthenticated => {
            return unauthorized(&req, "invalid_token");
        }
        Err(status) => return crate::error::ApiError::from(status).into_response(),
    };
    if !grant.resource.is_empty() && grant.resource != super::oauth::resource_url(&state, req.headers()) {
        return unauthorized(&req, "invalid_token");
    }
    if req.method() == axum::http::Method::POST {
        req = match check_message(&state, &grant, req).await {
            Ok(req) => req,
            Err(response) => return *response,
        };
    }
    req.extensions_mut().insert(grant);
    let outage = Outage::default();
    req.extensions_mut().insert(outage.clone());
    let response = next.run(req).await;
    if outage.0.load(Ordering::Relaxed) {
        // Not "not counted": policy may have counted it just before it stopped answering.
        let message = "a service this tool call needs is unavailable; the call was not made";
        return ApiError::new(common::ErrorCode::ServiceUnavailable, message).into_response();
    }
    response
}

/// Set by a tool call that could not be made because a service it needed was unavailable: the
/// request is then answered 503, as any route of the product answers when a call may not have
/// completed, rather than with the JSON-RPC answer rmcp wrote.
#[derive(Clone, Default)]
struct Outage(Arc<AtomicBool>);

/// A JSON-RPC error answer (JSON-RPC 2.0 §5.1).
fn rpc_error(status: StatusCode, id: Value, code: i32, message: &str) -> Box<Response> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    Box::new((status, axum::Json(body)).into_response())
}

/// Reads a posted message before rmcp does, for the answers rmcp gets wrong: malformed JSON is
/// a parse error (-32700), not a 415 with text; a message that is not JSON-RPC is -32600;
/// parameters that do not fit a known method are -32602; and a tool outside the grant's scopes
/// is a 403 `insufficient_scope` challenge, so that the client can ask the user for more (the
/// MCP authorization specification's step-up), not a tool error. Gives back the request with the
/// message as read here.
async fn check_message(state: &AppState, grant: &idpb::McpGrant, req: Request) -> Result<Request, Box<Response>> {
    let (parts, body) = req.into_parts();
    let bytes =
        axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await.map_err(|e| match crate::envelope::timed_out(&e) {
            true => rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                Value::Null,
                -32600,
                "Invalid Request: the message did not arrive in time",
            ),
            false => rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                "Invalid Request: the message is too large",
            ),
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32700, &format!("Parse error: {e}")))?;
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    let method = value.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
    // rmcp reads a known method with parameters that do not fit as a method it does not know,
    // or (parameters not an object) as no message at all.
    let invalid_params = || {
        let text = format!("Invalid params: the parameters of {method} do not match its schema");
        rpc_error(StatusCode::OK, id.clone(), -32602, &text)
    };
    let known = TYPED_METHODS.contains(&method.as_str()) && !id.is_null() && value["jsonrpc"] == "2.0";
    // Every tool is listed at once, so no cursor this server gave exists (the MCP specification:
    // an invalid cursor should be -32602).
    if known && method == "tools/list" && !value["params"]["cursor"].is_null() {
        let text = "Invalid params: cursor: this server lists every tool at once, and gave no cursor";
        return Err(rpc_error(StatusCode::OK, id, -32602, text));
    }
    // rmcp is handed the message as read here (a key given twice: its last value), so that it
    // runs what was checked.
    let checked = serde_json::to_vec(&value).unwrap_or_default();
    let message = match serde_json::from_value::<ClientJsonRpcMessage>(value) {
        Ok(message) => message,
        Err(_) if known => return Err(invalid_params()),
        Err(_) => {
            let text = "Invalid Request: not a JSON-RPC 2.0 message";
            return Err(rpc_error(StatusCode::BAD_REQUEST, id, -32600, text));
        }
    };
    if let ClientJsonRpcMessage::Request(request) = &message {
        match &request.request {
            ClientRequest::CustomRequest(_) if known => return Err(invalid_params()),
            // rmcp answers a method it does not know, or one of the protocol's that this server
            // does not offer (resources, prompts, logging), with the method's name as the whole
            // message, which may be a secret a client sent in the wrong place.
            _ if !TYPED_METHODS.contains(&method.as_str()) => {
                let text = format!("Method not found: {}", common::secret::redact_secrets(&method));
                return Err(rpc_error(StatusCode::OK, id, -32601, &text));
            }
            ClientRequest::CallToolRequest(call) => {
                let needed = tools().into_iter().find(|(t, _)| t.name == call.params.name).map(|(_, c)| c);
                if let Some(categories) = needed.filter(|c| !allowed(grant, c)) {
                    return Err(insufficient_scope(state, &parts.headers, grant, categories));
                }
            }
            _ => {}
        }
    }
    let mut parts = parts;
    // The message written again may be shorter than the one sent (a key given twice).
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, axum::body::Body::from(checked)))
}

/// 403 with the scopes to ask for: those granted plus the first category that allows the tool,
/// so that a client that replaces its scopes with the challenge's keeps what it had.
fn insufficient_scope(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    grant: &idpb::McpGrant,
    categories: &[&str],
) -> Box<Response> {
    let mut scopes: Vec<&str> = grant.scopes.iter().map(String::as_str).collect();
    scopes.extend(categories.first());
    scopes.sort_unstable();
    scopes.dedup();
    let description = format!("this tool needs {}", categories.join(" or "));
    let body = axum::Json(json!({ "error": "insufficient_scope", "error_description": description }));
    let mut response = (StatusCode::FORBIDDEN, body).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge(state, headers, "insufficient_scope", &scopes));
    Box::new(response)
}

/// The MCP service behind `/mcp`.
pub fn service(state: AppState) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default().with_legacy_session_mode(false).disable_allowed_hosts();
    // Tokens, not cookies, authorize requests, so a rebound DNS name gains nothing; plain JSON
    // answers suit tools that reply once.
    config.json_response = true;
    StreamableHttpService::new(
        move || Ok(McpServer { state: state.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

#[derive(Clone)]
pub struct McpServer {
    state: AppState,
}

fn schema(properties: Value, required: &[&str]) -> Arc<JsonObject> {
    let schema =
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false });
    Arc::new(schema.as_object().cloned().unwrap_or_default())
}

/// Every tool, with the categories that allow it.
fn tools() -> Vec<(Tool, &'static [&'static str])> {
    let site = json!({ "type": "string", "description": "Website id" });
    let period = json!({ "type": "string", "enum": *vocabulary::PERIODS, "description": "Default 30d" });
    let date = json!({ "type": "string", "description": "YYYY-MM-DD the period ends on, or YYYY-MM-DD,YYYY-MM-DD for custom" });
    let metrics = json!({ "type": "array", "items": { "type": "string", "enum": *vocabulary::METRICS }, "uniqueItems": true,
        "description": "Default visitors and pageviews. Conversion rates and revenue need a goal, which these tools do \
            not filter by; percentage and group_conversion_rate need a breakdown; time_on_page a page" });
    let read: &[&str] = &[ANALYTICS_READ];
    let list_categories: &[&str] = &[ANALYTICS_READ, MANAGEMENT_READ];
    vec![
        (
            Tool::new("list_websites", "Websites of the connected team", schema(json!({}), &[])),
            list_categories,
        ),
        (
            Tool::new(
                "get_overview",
                "Visitors, pageviews, bounce rate, visit duration, a daily series and top countries",
                schema(
                    json!({ "website_id": site, "range": { "type": "string", "enum": *vocabulary::RANGES } }),
                    &["website_id"],
                ),
            ),
            read,
        ),
        (
            Tool::new(
                "get_aggregate",
                "Totals of metrics over a period",
                schema(
                    json!({ "website_id": site, "period": period, "date": date, "metrics": metrics }),
                    &["website_id"],
                ),
            ),
            read,
        ),
        (
            Tool::new(
                "get_timeseries",
                "Metrics per hour, day, week or month over a period",
                schema(
                    json!({ "website_id": site, "period": period, "date": date, "metrics": metrics,
                        "interval": { "type": "string", "enum": Interval::names().collect::<Vec<_>>(),
                            "description": "Default: hour for day and 24h, month for 6mo, 12mo and year, day otherwise" } }),
                    &["website_id"],
                ),
            ),
            read,
        ),
        (
            Tool::new(
                "get_breakdown",
                "Metrics per value of a property (event:page, visit:source, visit:country, visit:browser, event:goal, event:props:<name>, …)",
                schema(
                    json!({ "website_id": site, "property": { "type": "string" }, "period": period, "date": date,
                        "metrics": metrics, "limit": { "type": "integer", "minimum": 1, "maximum": 1000 } }),
                    &["website_id", "property"],
                ),
            ),
            read,
        ),
        (
            Tool::new(
                "get_realtime",
                "Visitors and pageviews of the last 5 minutes",
                schema(json!({ "website_id": site }), &["website_id"]),
            ),
            read,
        ),
    ]
    .into_iter()
    .chain(management_tools(&site))
    .collect()
}

/// The tools that change the team's websites.
fn management_tools(site: &Value) -> Vec<(Tool, &'static [&'static str])> {
    vec![
        (
            Tool::new(
                "create_website",
                "Add a website to the connected team",
                schema(
                    json!({ "domain": { "type": "string" }, "name": { "type": "string" }, "timezone": { "type": "string" } }),
                    &["domain", "name"],
                ),
            ),
            &[MANAGEMENT_WRITE],
        ),
        (
            Tool::new(
                "update_website",
                "Rename a website or change its time zone",
                schema(
                    json!({ "website_id": site, "name": { "type": "string" }, "timezone": { "type": "string" } }),
                    &["website_id"],
                ),
            ),
            &[MANAGEMENT_WRITE],
        ),
    ]
}

fn grant_of(context: &RequestContext<RoleServer>) -> Result<idpb::McpGrant, McpError> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<idpb::McpGrant>())
        .cloned()
        .ok_or_else(|| McpError::invalid_request("an OAuth access token is required", None))
}

/// Marks the request for a 503 (see [`Outage`]); the JSON-RPC error returned is not sent.
fn unavailable(context: &RequestContext<RoleServer>, error: ApiError) -> McpError {
    error.error.log_cause();
    let outage = context.extensions.get::<axum::http::request::Parts>().and_then(|p| p.extensions.get::<Outage>());
    if let Some(outage) = outage {
        outage.0.store(true, Ordering::Relaxed);
    }
    McpError::internal_error("a service this tool call needs is unavailable", None)
}

fn allowed(grant: &idpb::McpGrant, categories: &[&str]) -> bool {
    grant.scopes.iter().any(|s| categories.contains(&s.as_str()))
}

fn text(value: &Value) -> ContentBlock {
    ContentBlock::text(value.to_string())
}

type ToolResult = Result<Value, ToolError>;

/// Why a tool call failed: a refusal the tool shows the user, or a service it needed that was
/// unavailable, which the request answers with a 503.
enum ToolError {
    Refused(String),
    Unavailable(ApiError),
}

impl From<String> for ToolError {
    fn from(message: String) -> Self {
        ToolError::Refused(message)
    }
}

impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        ToolError::Refused(message.to_owned())
    }
}

/// A failed call as a tool shows it: the message without the field, as analytics words it, a
/// key among what it quotes cut to its hint (docs/behaviour.md#api-keys). Every service call's
/// error goes through here (by `?`), so that an outage is a 503 and never a refusal.
impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        if e.error.code == common::ErrorCode::ServiceUnavailable {
            return ToolError::Unavailable(e);
        }
        e.error.log_cause();
        // Without the service's field, which may not be the tool's argument (`dimensions` for
        // `property`).
        ToolError::Refused(common::secret::redact_secrets(&e.error.message).into_owned())
    }
}

/// Checks a call's arguments against its tool's input schema before anything runs or is
/// counted, as the MCP specification asks of servers: a wrong type, a value outside its `enum`
/// or range, an item given twice, a missing or unknown argument is refused, naming the argument,
/// rather than read as the default. The tools' schemas use only `type` (string, integer,
/// array), `enum`, `items`, `uniqueItems`, `minimum`, `maximum`, `required` and
/// `additionalProperties: false`, which is what is checked here.
fn check_arguments(schema: &JsonObject, args: &JsonObject) -> Result<(), String> {
    let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
    if let Some(missing) = required.filter_map(Value::as_str).find(|name| !args.contains_key(*name)) {
        return Err(format!("{missing} is required"));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, value) in args {
        let Some(rule) = properties.and_then(|p| p.get(name)) else {
            return Err(format!("{} is not an argument of this tool", common::secret::redact_secrets(name)));
        };
        check_value(name, rule, value)?;
    }
    Ok(())
}

fn check_value(name: &str, rule: &Value, value: &Value) -> Result<(), String> {
    let kind = rule.get("type").and_then(Value::as_str);
    let fits = match kind {
        Some("string") => value.is_string(),
        // JSON Schema's integers are numbers without a fraction, `2.0` among them.
        Some("integer") => value.as_f64().is_some_and(|n| n.fract() == 0.0),
        Some("array") => value.is_array(),
        _ => true,
    };
    if !fits {
        return Err(format!("{name} must be of type {}", kind.unwrap_or_default()));
    }
    if let Some(allowed) = rule.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        return Err(format!("{name} must be one of {}", names.join(", ")));
    }
    let (min, max) = (rule.get("minimum").and_then(Value::as_f64), rule.get("maximum").and_then(Value::as_f64));
    if let Some(n) = value.as_f64()
        && (min.is_some_and(|min| n < min) || max.is_some_and(|max| n > max))
    {
        return Err(format!("{name} must be {} to {}", min.unwrap_or(f64::MIN), max.unwrap_or(f64::MAX)));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check_value(&format!("{name}[{i}]"), rule.get("items").unwrap_or(&Value::Null), item)?;
        }
        let twice = items.iter().enumerate().any(|(i, item)| items[..i].contains(item));
        if rule.get("uniqueItems") == Some(&Value::Bool(true)) && twice {
            return Err(format!("{name} lists an item twice"));
        }
    }
    Ok(())
}

fn arg<'a>(args: &'a JsonObject, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn metrics_arg(args: &JsonObject, default: &[Metric]) -> Vec<String> {
    match args.get("metrics").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        None => default.iter().map(|m| m.name().to_owned()).collect(),
    }
}

impl McpServer {
    /// A website of the connection's team; another team's is "not found", as if it did not exist.
    async fn website(&self, grant: &idpb::McpGrant, args: &JsonObject) -> Result<anpb::Website, ToolError> {
        let id = arg(args, "website_id").ok_or("website_id is required")?.to_owned();
        Ok(access::team_website(&self.state, &grant.team_id, id).await?)
    }

    async fn run(&self, grant: &idpb::McpGrant, name: &str, args: &JsonObject) -> ToolResult {
        match name {
            "list_websites" => {
                let sites = websites::of_teams(&self.state, vec![grant.team_id.clone()]).await?;
                Ok(json!(sites))
            }
            "get_overview" => {
                let website = self.website(grant, args).await?;
                let range = arg(args, "range").unwrap_or(NamedPeriod::NamedPeriod30d.name());
                let Some(range) = vocabulary::range(range) else {
                    return Err(format!("range must be one of {}", vocabulary::RANGES.join(", ")).into());
                };
                let overview = stats::overview(&self.state, &website.id, range, 10).await?;
                // The tool answers the figures alone: the caller named the site and range.
                let mut overview = json!(overview);
                if let Some(fields) = overview.as_object_mut() {
                    for named in ["website_id", "range", "from", "to"] {
                        fields.remove(named);
                    }
                }
                Ok(overview)
            }
            "get_aggregate" | "get_timeseries" | "get_breakdown" => self.query_tool(grant, name, args).await,
            "get_realtime" => {
                let website = self.website(grant, args).await?;
                let totals = stats::realtime_totals(&self.state, &website.id).await?;
                Ok(json!({ "visitors": totals.visitors, "pageviews": totals.pageviews }))
            }
            "create_website" | "update_website" => self.write_website(grant, name, args).await,
            _ => Err(format!("unknown tool {name}").into()),
        }
    }

    /// `get_aggregate`, `get_timeseries` and `get_breakdown`: one query each.
    async fn query_tool(&self, grant: &idpb::McpGrant, name: &str, args: &JsonObject) -> ToolResult {
        let period_name = arg(args, "period").unwrap_or(NamedPeriod::NamedPeriod30d.name());
        let date = arg(args, "date").unwrap_or_default();
        let website = self.website(grant, args).await?;
        let metrics = metrics_arg(args, &[Metric::Visitors, Metric::Pageviews]);
        // As analytics' own errors reach the tool: the message without the field.
        let (period, end_day) =
            vocabulary::period(period_name, date, anpb::PeriodMeaning::Ours).map_err(|e| e.message)?;
        let mut request = anpb::QueryRequest {
            website_id: website.id,
            metrics: metrics.clone(),
            period: Some(period),
            end_day,
            ..Default::default()
        };
        // What a breakdown's rows name their value by (`page`, `country`, …).
        let key = match name {
            "get_aggregate" => "",
            "get_timeseries" => {
                let time = arg(args, "interval").map(|interval| format!("{TIME}{interval}"));
                request.dimensions = vec![time.unwrap_or_else(|| stats::default_time(period_name).to_owned())];
                request.fill_time = true;
                // A bucket without visitors has no averages (see `timeseries_rows`).
                if !metrics.iter().any(|m| m == Metric::Visitors.name()) {
                    request.metrics.push(Metric::Visitors.name().to_owned());
                }
                ""
            }
            _ => {
                let property = arg(args, "property").ok_or("property is required")?;
                request.dimensions = vec![property.to_owned()];
                // Checked against the schema already: a whole number from 1 to 1000.
                request.limit = args.get("limit").and_then(Value::as_f64).map_or(10, |n| n as u32);
                short_name(property)
            }
        };
        let answer = stats::run(&self.state, request).await?;
        Ok(match name {
            "get_aggregate" => Value::Object(top(&answer, "", &metrics).into_iter().next().unwrap_or_default()),
            "get_timeseries" => json!(stats::timeseries_rows(&answer, &metrics)),
            _ => json!(top(&answer, key, &metrics)),
        })
    }

    /// `create_website` and `update_website`, for owners and admins of the team.
    async fn write_website(&self, grant: &idpb::McpGrant, name: &str, args: &JsonObject) -> ToolResult {
        // The role is the user's now: a demoted admin's connection stops writing.
        if !Role::from_proto(grant.role).is_ok_and(Role::is_admin) {
            return Err("only owners and admins of the team may change websites".into());
        }
        let website = if name == "create_website" {
            let request = anpb::CreateWebsiteRequest {
                team_id: grant.team_id.clone(),
                domain: arg(args, "domain").unwrap_or_default().into(),
                name: arg(args, "name").unwrap_or_default().into(),
                timezone: arg(args, "timezone").map(str::to_owned),
            };
            websites::check_fields(Some(&request.domain), Some(&request.name), request.timezone.as_deref())?;
            websites::create(&self.state, request).await
        } else {
            let website = self.website(grant, args).await?;
            let (name, timezone) = (arg(args, "name").map(str::to_owned), arg(args, "timezone").map(str::to_owned));
            websites::check_fields(None, name.as_deref(), timezone.as_deref())?;
            websites::update(&self.state, &website, name, timezone).await
        };
        let website = website?;
        Ok(json!(crate::views::website(&website)))
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = InitializeResult::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("zenovay", env!("CARGO_PKG_VERSION"));
        info.instructions = Some("Web analytics of the team you connected: websites, visitors, pages, sources.".into());
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let grant = grant_of(&context)?;
        let tools = tools().into_iter().filter(|(_, categories)| allowed(&grant, categories)).map(|(t, _)| t).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let grant = grant_of(&context)?;
        let Some((tool, categories)) = tools().into_iter().find(|(t, _)| t.name == request.name) else {
            let name = common::secret::redact_secrets(&request.name);
            return Err(McpError::invalid_params(format!("unknown tool {name}"), None));
        };
        // `check_message` answers this with a step-up challenge before rmcp sees the call.
        if !allowed(&grant, categories) {
            let message = format!("this connection was not granted {}", categories.join(" or "));
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let args = request.arguments.unwrap_or_default();
        if let Err(message) = check_arguments(&tool.input_schema, &args) {
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let charge = popb::ChargeMcpCallRequest { user_id: grant.user_id.clone(), team_id: grant.team_id.clone() };
        let charge = match self.state.policy.clone().charge_mcp_call(charge).await {
            Ok(charge) => charge.into_inner(),
            Err(status) => {
                let error = ApiError::from(status);
                if error.error.code == common::ErrorCode::ServiceUnavailable {
                    return Err(unavailable(&context, error));
                }
                return Err(McpError::internal_error(error.error.message, None));
            }
        };
        if !charge.allowed {
            let message = format!(
                "daily MCP quota of {} calls reached; it resets at {}",
                charge.limit,
                crate::time::rfc3339(charge.reset_at_unix_ms)
            );
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let outcome = self.run(&grant, &request.name, &args).await;
        if outcome.is_err() {
            // Refused for its arguments (a date, a website out of reach, a taken domain) or not
            // run at all: it does not count. (REST gives back 400, 401, 403 and 429 answers; a
            // tool's refusals all come back as tool errors, which tell those apart no further.)
            self.give_back(grant.user_id, charge.reset_at_unix_ms).await;
        }
        Ok(match outcome {
            Ok(value) => CallToolResult::success(vec![text(&value)]),
            Err(ToolError::Refused(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
            Err(ToolError::Unavailable(error)) => return Err(unavailable(&context, error)),
        }
        .into())
    }
}

impl McpServer {
    async fn give_back(&self, user_id: String, reset_at_unix_ms: i64) {
        let give_back = popb::GiveBackMcpCallRequest { user_id, reset_at_unix_ms };
        if let Err(status) = self.state.policy.clone().give_back_mcp_call(give_back).await {
            ApiError::from(status).error.log_cause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Error;

    #[test]
    fn a_service_outage_is_no_refusal_but_a_503() {
        let outage = ApiError::from(Error::unavailable("analytics"));
        assert!(matches!(ToolError::from(outage), ToolError::Unavailable(_)));
        let refusal = ApiError::from(Error::not_found("website"));
        assert!(matches!(ToolError::from(refusal), ToolError::Refused(message) if message == "website not found"));
    }
}
