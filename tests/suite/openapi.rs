//! The OpenAPI document (docs/behaviour.md#external-rest-api) describes the router as it is: each
//! documented operation reaches a handler that asks for the key and the scope the document names,
//! its enumerations are the values the API accepts, and real answers have the documented shapes.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{TestEnv, TestUser};

/// The error codes by status (docs/behaviour.md#authorization-of-a-request, #external-rest-api).
const ERRORS: &[(&str, &str)] = &[
    ("400", "VALIDATION_ERROR"),
    ("401", "UNAUTHORIZED"),
    ("403", "API_PAID_PLAN_REQUIRED"),
    ("403", "INSUFFICIENT_SCOPE"),
    ("403", "FORBIDDEN"),
    ("403", "KEY_POLICY_FORBIDS"),
    ("404", "NOT_FOUND"),
    ("429", "RATE_LIMIT_EXCEEDED"),
    ("429", "MONTHLY_LIMIT_EXCEEDED"),
    ("503", "SERVICE_UNAVAILABLE"),
];

const RATE_LIMIT_HEADERS: &[&str] = &[
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Usage-Monthly",
    "X-Usage-Limit",
    "X-Usage-Reset",
];

async fn document(env: &TestEnv) -> Value {
    let response = env.request(Method::GET, "/api/external/v1/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type}");
    response.json().await.unwrap()
}

/// The target of a local `$ref`, or the value itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {reference}"));
            let target = doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}"));
            resolve(doc, target)
        }
        None => value,
    }
}

/// Every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(object) => {
            if object.contains_key("$ref") {
                found.push(value.clone());
            }
            object.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The values of an enumerated component schema.
fn enumeration(doc: &Value, name: &str) -> Vec<String> {
    strings(&doc["components"]["schemas"][name]["enum"])
}

/// Whether an operation needs no key: it says so with an empty `security`.
fn keyless(operation: &Value) -> bool {
    operation["security"] == json!([])
}

/// The scope an operation's description names: "Scope: `read`".
fn scope_of(operation: &Value) -> Option<String> {
    let description = operation["description"].as_str()?;
    let (_, rest) = description.split_once("Scope: `")?;
    rest.split_once('`').map(|(scope, _)| scope.to_owned())
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                all.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    all
}

#[tokio::test]
async fn document_describes_the_router() {
    let env = TestEnv::all_in_one().await;
    let doc = document(&env).await;

    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert_eq!(doc["servers"][0]["url"], "/api/external/v1");
    // A schema used only by reference must still be registered.
    let mut found = vec![];
    references(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        resolve(&doc, reference);
    }

    // A bearer key, required everywhere but on the document itself.
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!((bearer["type"].as_str(), bearer["scheme"].as_str()), (Some("http"), Some("bearer")), "{bearer}");
    assert!(doc["security"].as_array().unwrap().contains(&json!({ "bearer": [] })), "{}", doc["security"]);

    let mut operation_ids = BTreeSet::new();
    let mut codes_by_status = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let at = format!("{method} {path}");
        let scope = scope_of(operation);
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && operation_ids.insert(id.to_owned()), "{at}: operationId {id:?} missing or repeated");
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{at}: no summary");
        let responses = operation["responses"].as_object().unwrap();
        let success = responses.keys().find(|status| status.starts_with('2')).expect("a success response");
        let success = resolve(&doc, &responses[success]);
        assert!(success["content"]["application/json"]["schema"].is_object(), "{at}: no JSON body");
        assert!(success["headers"]["x-request-id"].is_object(), "{at}: no x-request-id");

        if keyless(operation) {
            continue;
        }
        assert!(operation.get("security").is_none(), "{at} takes the document's security");
        assert!(scope.is_some(), "{at}: no `Scope:` in {:?}", operation["description"]);
        for header in RATE_LIMIT_HEADERS {
            assert!(success["headers"][header].is_object(), "{at}: no {header}");
        }
        for status in ["401", "403", "429", "503"] {
            assert!(responses.contains_key(status), "{at}: no {status}");
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            let Some(examples) = response["content"]["application/json"]["examples"].as_object() else { continue };
            for example in examples.values() {
                let code = example["value"]["error"]["code"].as_str().unwrap().to_owned();
                codes_by_status.insert((status.clone(), code));
            }
        }
        let unauthorized = resolve(&doc, &responses["401"]);
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object(), "{at}");
        assert!(resolve(&doc, &responses["429"])["headers"]["Retry-After"].is_object(), "{at}");
    }
    for (status, code) in ERRORS {
        assert!(codes_by_status.contains(&((*status).to_owned(), (*code).to_owned())), "no {status} {code}");
    }
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["success", "error"]), "{error}");
    let error_codes = enumeration(&doc, "ErrorCode");
    assert!(ERRORS.iter().all(|(_, code)| error_codes.iter().any(|c| c == code)), "{error_codes:?}");

    // Enumerated parameters are enumerations.
    assert_eq!(enumeration(&doc, "Range"), ["24h", "7d", "30d", "90d", "1y"]);
    let metrics = enumeration(&doc, "Metric");
    for metric in ["visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events"] {
        assert!(metrics.iter().any(|m| m == metric), "{metric} in {metrics:?}");
    }
    let parameter = |path: &str, name: &str| {
        let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let found = parameters.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path}: no {name}"));
        resolve(&doc, &found["schema"]).clone()
    };
    for (path, name) in [
        ("/analytics/{websiteId}", "range"),
        ("/analytics/{websiteId}/pages", "range"),
        ("/stats/aggregate", "period"),
        ("/stats/timeseries", "interval"),
    ] {
        assert!(!strings(&parameter(path, name)["enum"]).is_empty(), "{path} {name}");
    }
    // A property is one of the enumeration, or a custom property by pattern.
    for path in ["/stats/breakdown", "/plausible/api/v1/stats/breakdown"] {
        let any = parameter(path, "property");
        assert!(!strings(&resolve(&doc, &any["anyOf"][0])["enum"]).is_empty(), "{path}: {any}");
        assert!(any["anyOf"][1]["pattern"].as_str().unwrap().starts_with("^event:props:"), "{path}: {any}");
    }
    // v1's metrics are the metrics but v2's `group_conversion_rate`.
    let metrics = strings(&resolve(&doc, &parameter("/stats/aggregate", "metrics")["items"])["enum"]);
    let mut all = strings(&doc["components"]["schemas"]["Metric"]["enum"]);
    all.retain(|m| m != "group_conversion_rate");
    assert_eq!(metrics, all);

    // The router agrees: each documented operation reaches its handler, which asks for a key, and
    // a key without the scope the document names is refused for that.
    let (_, read_only) = keyed_user_with(&env, json!(["read"])).await;
    for (method, path, operation) in operations(&doc) {
        let concrete = ["{id}", "{websiteId}", "{teamId}", "{goalId}", "{goal_id}", "{site_id}"]
            .iter()
            .fold(path.clone(), |path, parameter| path.replace(parameter, "dummy"));
        assert!(!concrete.contains('{'), "unfilled parameter in {path}");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let call = |key: Option<&str>| {
            let mut request = env.request(method.clone(), &format!("/api/external/v1{concrete}"));
            if [Method::POST, Method::PUT, Method::PATCH].contains(&method) {
                request = request.json(&json!({}));
            }
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            async move { crate::harness::into_json(request.send().await.unwrap()).await }
        };
        let (status, _) = call(None).await;
        let expected = if keyless(operation) { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        assert_eq!(status, expected, "{method} {concrete}");
        let Some(scope) = scope_of(operation) else { continue };
        let (status, answer) = call(Some(&read_only)).await;
        // Our envelope names the code; Plausible's body only the message.
        let message = answer["error"]["message"].as_str().or(answer["error"].as_str()).unwrap_or_default();
        let refused = status == StatusCode::FORBIDDEN && message.contains("lacks the `");
        assert_eq!(refused, scope != "read", "{method} {concrete} with a read key: {status} {answer}");
    }
    // The probe tells a missing route and a wrong method apart from a handler.
    let status = |method: Method, path: &'static str| {
        let request = env.request(method, path);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(Method::GET, "/api/external/v1/undocumented").await, StatusCode::NOT_FOUND);
    assert_eq!(status(Method::DELETE, "/api/external/v1/usage").await, StatusCode::METHOD_NOT_ALLOWED);
}

/// Whether `value` has the shape of `schema`: types, enumerations, and for objects exactly the
/// documented properties when `strict` (stricter than JSON Schema, whose objects allow undocumented
/// ones unless told otherwise: an undocumented field is drift). The parts of an `allOf` each
/// describe only some fields, so they are not strict.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, strict: bool) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        all.iter().try_for_each(|s| conforms(doc, s, value, at, false))?;
        let documented: BTreeSet<&String> =
            all.iter().filter_map(|s| resolve(doc, s)["properties"].as_object()).flat_map(|p| p.keys()).collect();
        match value.as_object().and_then(|o| o.keys().find(|k| !documented.contains(k))) {
            Some(extra) if strict => return Err(format!("{at}.{extra} is not documented")),
            _ => return Ok(()),
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = one.iter().filter(|s| conforms(doc, s, value, at, strict).is_ok()).count();
        return if matching == 1 { Ok(()) } else { Err(format!("{at}: {matching} oneOf branches match {value}")) };
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let type_matches = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown type {other}"),
    };
    if !types.iter().any(|t| type_matches(t)) {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                return Err(format!("{at}: no {name} in {value}"));
            }
        }
        for (name, field) in object {
            let here = format!("{at}.{name}");
            match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                (Some(property), _) => conforms(doc, property, field, &here, strict)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{here} is not documented")),
                (None, None) if strict && properties.is_some() => return Err(format!("{here} is not documented")),
                (None, Some(additional)) if additional.is_object() => conforms(doc, additional, field, &here, strict)?,
                _ => {}
            }
        }
    }
    if let Some(array) = value.as_array() {
        let prefix = schema["prefixItems"].as_array().map(Vec::as_slice).unwrap_or_default();
        for (i, item) in array.iter().enumerate() {
            let here = format!("{at}[{i}]");
            match (prefix.get(i), &schema["items"]) {
                (Some(s), _) => conforms(doc, s, item, &here, strict)?,
                (None, Value::Bool(false)) => return Err(format!("{here} is one item too many")),
                (None, items) if items.is_object() => conforms(doc, items, item, &here, strict)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks an answer against the documented response of `method path` with `status`.
fn check(doc: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let operation = &doc["paths"][path][method.to_lowercase()];
    let response = resolve(doc, &operation["responses"][status.as_str()]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path}: {status} is not documented");
    if let Err(problem) = conforms(doc, schema, body, "body", true) {
        panic!("{method} {path} ({status}) differs from the document: {problem}\n{body}");
    }
}

async fn pageview(env: &TestEnv, domain: &str, page: &str) {
    let event = json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}{page}") });
    let response = env
        .request(Method::POST, "/api/event")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .header(crate::harness::COUNTRY_HEADER, "DE")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

async fn keyed_user(env: &TestEnv) -> (TestUser, String) {
    keyed_user_with(env, json!("full")).await
}

/// A user on a paying team and a key with `permissions`.
async fn keyed_user_with(env: &TestEnv, permissions: Value) -> (TestUser, String) {
    let user = env.user("ada").await;
    // Enough requests per minute for one call per documented value.
    env.set_plan_with(&user.team_id, "enterprise", json!({ "requests_per_minute": 100000 })).await;
    let (key, _) =
        env.create_key(&user, json!({ "name": "openapi", "permissions": permissions, "teams": "all" })).await;
    (user, key)
}

#[tokio::test]
async fn answers_match_the_document() {
    let env = TestEnv::all_in_one().await;
    let doc = document(&env).await;
    let (user, key) = keyed_user(&env).await;
    let team = &user.team_id;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (env, key) = (&env, &key);
        async move {
            let (status, answer) =
                env.api(Method::from_bytes(method.as_bytes()).unwrap(), &path, key, body.clone()).await;
            assert!(status.is_success(), "{method} {path} {body:?}: {status} {answer}");
            (status, answer)
        }
    };

    let domain = format!("openapi-{}.example", &user.user_id[..8]);
    let (status, created) =
        call("POST", "/websites".into(), Some(json!({ "team_id": team, "domain": domain, "name": "Docs" }))).await;
    check(&doc, "POST", "/websites", status, &created);
    let site = created["data"]["id"].as_str().unwrap().to_owned();
    pageview(&env, &domain, "/").await;
    pageview(&env, &domain, "/pricing").await;

    // (method, documented path, concrete path and query, body)
    let calls: Vec<(&str, &str, String, Option<Value>)> = vec![
        ("GET", "/websites", "/websites".into(), None),
        ("GET", "/websites/{id}", format!("/websites/{site}"), None),
        ("PATCH", "/websites/{id}", format!("/websites/{site}"), Some(json!({ "timezone": "Europe/Paris" }))),
        ("GET", "/usage", "/usage".into(), None),
        ("GET", "/analytics/{websiteId}", format!("/analytics/{site}?range=7d"), None),
        ("GET", "/analytics/{websiteId}/pages", format!("/analytics/{site}/pages?limit=5"), None),
        ("GET", "/analytics/{websiteId}/countries", format!("/analytics/{site}/countries"), None),
        ("GET", "/analytics/{websiteId}/technology", format!("/analytics/{site}/technology"), None),
        ("GET", "/realtime/{websiteId}", format!("/realtime/{site}"), None),
        (
            "GET",
            "/stats/aggregate",
            format!("/stats/aggregate?site_id={site}&metrics=visitors,views_per_visit&compare=previous_period"),
            None,
        ),
        ("GET", "/stats/timeseries", format!("/stats/timeseries?site_id={site}&period=7d&metrics=visitors"), None),
        ("GET", "/stats/breakdown", format!("/stats/breakdown?site_id={domain}&property=event:page"), None),
        (
            "POST",
            "/query/{websiteId}",
            format!("/query/{site}"),
            Some(json!({
                "metrics": ["visitors", "pageviews"],
                "date_range": "7d",
                "dimensions": ["time:day", "event:page"],
                "filters": [["contains", "event:page", ["/"]]],
                "order_by": [["visitors", "desc"]],
                "include": { "total_rows": true, "time_labels": true },
            })),
        ),
        (
            "GET",
            "/plausible/api/v1/stats/aggregate",
            format!("/plausible/api/v1/stats/aggregate?site_id={domain}"),
            None,
        ),
        (
            "GET",
            "/plausible/api/v1/stats/timeseries",
            format!("/plausible/api/v1/stats/timeseries?site_id={domain}&period=day"),
            None,
        ),
        (
            "GET",
            "/plausible/api/v1/stats/breakdown",
            format!(
                "/plausible/api/v1/stats/breakdown?site_id={domain}&property=visit:country&metrics=visitors,bounce_rate"
            ),
            None,
        ),
        (
            "GET",
            "/plausible/api/v1/stats/realtime/visitors",
            format!("/plausible/api/v1/stats/realtime/visitors?site_id={domain}"),
            None,
        ),
        (
            "POST",
            "/plausible/api/v2/query",
            "/plausible/api/v2/query".into(),
            Some(json!({ "site_id": domain, "metrics": ["visitors"], "date_range": ["2026-01-01", "2026-01-31"] })),
        ),
        ("GET", "/teams/{teamId}/members", format!("/teams/{team}/members"), None),
        (
            "PUT",
            "/teams/{teamId}/api-key-policy",
            format!("/teams/{team}/api-key-policy"),
            Some(json!({ "policy": "all_members" })),
        ),
        ("GET", "/teams/{teamId}/audit-log", format!("/teams/{team}/audit-log?limit=10"), None),
    ];
    for (method, path, concrete, body) in calls {
        let (status, answer) = call(method, concrete, body).await;
        check(&doc, method, path, status, &answer);
    }
    // The lists above had rows, so the rows' shapes were checked too.
    let (_, pages) = call("GET", format!("/analytics/{site}/pages"), None).await;
    assert_eq!(pages["data"].as_array().map(Vec::len), Some(2), "{pages}");

    // Every documented value of an enumerated parameter is accepted, and an undocumented one is not.
    let mut probes: Vec<(String, Option<Value>)> = vec![];
    for range in enumeration(&doc, "Range") {
        probes.push((format!("/analytics/{site}?range={range}"), None));
    }
    for period in enumeration(&doc, "Period") {
        let date = if period == "custom" { "&date=2026-01-01,2026-01-31" } else { "" };
        probes.push((format!("/stats/aggregate?site_id={site}&period={period}{date}"), None));
    }
    // Shares need a dimension (percentage) or a goal (conversion_rate): asked with both.
    let shares = ["conversion_rate", "percentage", "total_revenue", "average_revenue"];
    // v1's metrics, as its `metrics` parameter lists them.
    let parameters = doc["paths"]["/stats/aggregate"]["get"]["parameters"].as_array().expect("parameters");
    let metrics = parameters.iter().find(|p| p["name"] == "metrics").expect("a metrics parameter");
    let metrics = strings(&metrics["schema"]["items"]["enum"]);
    assert!(!metrics.contains(&"group_conversion_rate".to_owned()), "{metrics:?}");
    // As in Plausible, `time_on_page` is of pages, and a visit's metrics are not of goals
    // (docs/behaviour.md, "Plausible fidelity").
    let of_pages = ["time_on_page"];
    let of_visits = ["visits", "bounce_rate", "visit_duration", "views_per_visit", "time_on_page"];
    let plain: Vec<&str> =
        metrics.iter().map(String::as_str).filter(|m| !shares.contains(m) && !of_pages.contains(m)).collect();
    probes.push((format!("/stats/aggregate?site_id={site}&metrics={}", plain.join(",")), None));
    probes.push((format!("/stats/aggregate?site_id={site}&metrics=time_on_page&filters=event:page%3D%3D/"), None));
    let by_goal: Vec<&str> = metrics.iter().map(String::as_str).filter(|m| !of_visits.contains(m)).collect();
    probes.push((format!("/stats/breakdown?site_id={site}&property=event:goal&metrics={}", by_goal.join(",")), None));
    for interval in enumeration(&doc, "Interval") {
        probes.push((format!("/stats/timeseries?site_id={site}&period=7d&interval={interval}"), None));
    }
    for property in enumeration(&doc, "Property") {
        probes.push((format!("/stats/breakdown?site_id={site}&property={property}"), None));
    }
    for dimension in enumeration(&doc, "Dimension") {
        probes.push((
            format!("/query/{site}"),
            Some(json!({ "metrics": ["visitors"], "date_range": "7d", "dimensions": [dimension] })),
        ));
    }
    let query = &doc["components"]["schemas"]["QueryBody"]["properties"];
    let forms = &resolve(&doc, &query["filters"]["items"])["oneOf"];
    let operators = strings(&forms[0]["prefixItems"][0]["enum"]);
    assert!(operators.len() >= 6, "{operators:?}");
    let mut filters: Vec<Value> = operators.iter().map(|op| json!([op, "event:page", ["/pri*"]])).collect();
    // Each group of the document, of conditions that come to ones that all hold.
    let condition = json!(["contains", "event:page", ["pri"]]);
    for group in strings(&forms[1]["prefixItems"][0]["enum"]) {
        filters.push(json!([group, [condition, ["contains", "event:page", ["ing"]]]]));
    }
    filters.push(json!([strings(&forms[2]["prefixItems"][0]["enum"])[0], condition]));
    for filter in filters {
        probes.push((
            format!("/query/{site}"),
            Some(json!({ "metrics": ["visitors"], "date_range": "30d", "filters": [filter] })),
        ));
    }
    for (path, body) in probes {
        let method = if body.is_some() { Method::POST } else { Method::GET };
        let (status, answer) = env.api(method, &path, &key, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{path} {body:?}: {answer}");
    }
    for path in [
        format!("/analytics/{site}?range=2d"),
        format!("/stats/aggregate?site_id={site}&period=2d"),
        format!("/stats/aggregate?site_id={site}&metrics=sessions"),
        format!("/stats/timeseries?site_id={site}&interval=minute"),
        format!("/stats/breakdown?site_id={site}&property=visit:city"),
    ] {
        let (status, answer) = env.api(Method::GET, &path, &key, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        check(&doc, "GET", path.split('?').next().unwrap().replace(&site, "{websiteId}").as_str(), status, &answer);
    }

    let (status, deleted) = env.api(Method::DELETE, &format!("/websites/{site}"), &key, None).await;
    check(&doc, "DELETE", "/websites/{id}", status, &deleted);
    let (status, missing) = env.api(Method::GET, &format!("/websites/{site}"), &key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    check(&doc, "GET", "/websites/{id}", status, &missing);
    let response = env.request(Method::GET, "/api/external/v1/usage").bearer_auth("zv_nope").send().await.unwrap();
    let (status, unauthorized) = crate::harness::into_json(response).await;
    check(&doc, "GET", "/usage", status, &unauthorized);
}

// ---- The document states what the server enforces, and the server enforces what it states ----

both_modes!(
    an_empty_metrics_list_is_outside_the_document_and_refused,
    a_metric_given_twice_is_outside_the_document_and_refused,
    the_plausible_query_body_requires_site_id_in_the_document_too,
    the_ten_year_cap_of_a_custom_range_is_documented_and_enforced,
    the_domain_format_is_documented_and_enforced,
    integers_beyond_int32_are_refused_naming_the_field,
    an_integral_float_is_an_integer_as_the_document_counts_them,
    a_body_that_is_an_array_is_refused,
    an_object_in_a_body_given_as_an_array_is_refused
);

/// A key on a paying team and a website of that team with one pageview: (key, website id).
async fn keyed_site(env: &TestEnv) -> (String, String, String) {
    let (user, key) = keyed_user(env).await;
    let domain = format!("rules-{}.example", &user.user_id[..8]);
    let body = json!({ "team_id": user.team_id, "domain": domain, "name": "Rules" });
    let (status, created) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    pageview(env, &domain, "/").await;
    (key, created["data"]["id"].as_str().unwrap().to_owned(), domain)
}

/// The schema of parameter `name` of `GET path`.
fn parameter_schema(doc: &Value, path: &str, name: &str) -> Value {
    let parameters = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
    let found = parameters.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path}: no {name}"));
    resolve(doc, &found["schema"]).clone()
}

fn assert_refused(status: StatusCode, answer: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "VALIDATION_ERROR", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(&format!("{field}: ")), "{message:?} does not name {field}");
}

async fn an_empty_metrics_list_is_outside_the_document_and_refused(env: &TestEnv) {
    let doc = document(env).await;
    for path in ["/stats/aggregate", "/plausible/api/v1/stats/aggregate"] {
        assert_eq!(parameter_schema(&doc, path, "metrics")["minItems"], 1, "{path}");
    }
    let (key, site, _) = keyed_site(env).await;
    let (status, answer) = env.api(Method::GET, &format!("/stats/aggregate?site_id={site}&metrics="), &key, None).await;
    assert_refused(status, &answer, "metrics");
}

async fn a_metric_given_twice_is_outside_the_document_and_refused(env: &TestEnv) {
    let doc = document(env).await;
    assert_eq!(parameter_schema(&doc, "/stats/aggregate", "metrics")["uniqueItems"], true);
    assert_eq!(doc["components"]["schemas"]["QueryBody"]["properties"]["metrics"]["uniqueItems"], true);
    let (key, site, _) = keyed_site(env).await;
    let path = format!("/stats/aggregate?site_id={site}&metrics=visitors,pageviews,visitors");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_refused(status, &answer, "metrics");
    let body = json!({ "metrics": ["visits", "visits"], "date_range": "7d" });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_refused(status, &answer, "metrics");
}

async fn the_plausible_query_body_requires_site_id_in_the_document_too(env: &TestEnv) {
    let doc = document(env).await;
    let operation = &doc["paths"]["/plausible/api/v2/query"]["post"];
    let body = resolve(&doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
    assert!(strings(&body["required"]).contains(&"site_id".to_owned()), "{body}");
    assert_eq!(body["properties"]["site_id"]["type"], "string", "not nullable: {body}");
    // `/query/{websiteId}` keeps it optional: the path names the site.
    let ours = &doc["components"]["schemas"]["QueryBody"];
    assert!(!strings(&ours["required"]).contains(&"site_id".to_owned()), "{ours}");

    let (key, _, _) = keyed_site(env).await;
    for body in [
        json!({ "metrics": ["visitors"], "date_range": "7d" }),
        json!({ "site_id": null, "metrics": ["visitors"], "date_range": "7d" }),
    ] {
        let (status, answer) = env.api(Method::POST, "/plausible/api/v2/query", &key, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        // In Plausible's words (docs/behaviour.md, "Plausible fidelity").
        assert!(answer["error"].as_str().is_some_and(|e| e.starts_with("Missing site ID.")), "{answer}");
    }
}

async fn the_ten_year_cap_of_a_custom_range_is_documented_and_enforced(env: &TestEnv) {
    let doc = document(env).await;
    let date = &doc["paths"]["/stats/aggregate"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "date")
        .unwrap()
        .clone();
    assert!(date["description"].as_str().is_some_and(|d| d.contains("10 years")), "{date}");
    assert!(date["schema"]["pattern"].is_string(), "{date}");
    let range = doc["components"]["schemas"]["QueryBody"]["properties"]["date_range"].to_string();
    assert!(range.contains("10 years"), "{range}");

    let (key, site, _) = keyed_site(env).await;
    let path = format!("/stats/aggregate?site_id={site}&period=custom&date=2010-01-01,2020-12-31");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_refused(status, &answer, "date");
    let body = json!({ "metrics": ["visitors"], "date_range": ["2010-01-01", "2020-12-31"] });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_refused(status, &answer, "date_range");
    // A day that does not exist is outside the documented pattern and refused.
    let path = format!("/stats/aggregate?site_id={site}&date=2023-02-29");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_refused(status, &answer, "date");
}

async fn the_domain_format_is_documented_and_enforced(env: &TestEnv) {
    let doc = document(env).await;
    let domain = &doc["components"]["schemas"]["CreateWebsiteBody"]["properties"]["domain"];
    assert!(domain["pattern"].is_string(), "{domain}");
    assert_eq!(domain["maxLength"], 253, "{domain}");
    assert!(domain["description"].as_str().is_some_and(|d| d.contains("two labels")), "{domain}");

    let (user, key) = keyed_user(env).await;
    let long = format!("{}.example", ["a"; 124].join("."));
    for bad in ["localhost", "exa mple.com", "example.com?x=1", long.as_str()] {
        let body = json!({ "team_id": user.team_id, "domain": bad, "name": "Bad" });
        let (status, answer) = env.api(Method::POST, "/websites", &key, Some(body)).await;
        assert_refused(status, &answer, "domain");
    }
    let body = json!({ "team_id": user.team_id, "domain": "HTTPS://Docs.Example.org:8443/x", "name": "Good" });
    let (status, answer) = env.api(Method::POST, "/websites", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["data"]["domain"], "docs.example.org");
}

async fn integers_beyond_int32_are_refused_naming_the_field(env: &TestEnv) {
    let doc = document(env).await;
    let offset = &doc["components"]["schemas"]["QueryPagination"]["properties"]["offset"];
    assert_eq!(offset["maximum"], 2147483647, "{offset}");
    assert_eq!(parameter_schema(&doc, "/stats/breakdown", "page")["maximum"], 2147483647);

    let (key, site, _) = keyed_site(env).await;
    let body =
        json!({ "metrics": ["visitors"], "date_range": "7d", "pagination": { "limit": 1, "offset": 2147483648u64 } });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_refused(status, &answer, "pagination.offset");
    let path = format!("/stats/breakdown?site_id={site}&property=event:page&page=2147483648");
    let (status, answer) = env.api(Method::GET, &path, &key, None).await;
    assert_refused(status, &answer, "page");
}

async fn an_integral_float_is_an_integer_as_the_document_counts_them(env: &TestEnv) {
    let (key, site, _) = keyed_site(env).await;
    let body = json!({ "metrics": ["visitors"], "date_range": "7d", "pagination": { "limit": 10.0, "offset": 0.0 } });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["query"]["pagination"], json!({ "limit": 10, "offset": 0 }));
    let body = json!({ "metrics": ["visitors"], "date_range": "7d", "pagination": { "limit": 10.5 } });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_refused(status, &answer, "pagination.limit");
}

async fn a_body_that_is_an_array_is_refused(env: &TestEnv) {
    let (key, site, _) = keyed_site(env).await;
    let (status, answer) = env.api(Method::PATCH, &format!("/websites/{site}"), &key, Some(json!([null, null]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let body = json!([null, ["visitors"], "7d"]);
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// A nested object given as an array of its fields is refused naming the field, where serde
/// would read it by position.
async fn an_object_in_a_body_given_as_an_array_is_refused(env: &TestEnv) {
    let (key, site, _) = keyed_site(env).await;
    for (field, value) in [("pagination", json!([5, 3])), ("pagination", json!([])), ("include", json!([true, true]))] {
        let body = json!({ "metrics": ["visitors"], "date_range": "7d", field: value });
        let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
        assert_refused(status, &answer, field);
        assert!(answer["error"]["message"].as_str().unwrap().ends_with("expected an object"), "{answer}");
    }
    let body = json!({ "metrics": ["visitors"], "date_range": "7d", "pagination": { "limit": 5, "offset": 3 } });
    let (status, answer) = env.api(Method::POST, &format!("/query/{site}"), &key, Some(body)).await;
    assert_eq!((status, &answer["data"]["query"]["pagination"]), (StatusCode::OK, &json!({ "limit": 5, "offset": 3 })));
}
