//! One trace per external request across the four services (issue 6), received by a real OTLP
//! collector endpoint in the test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use reqwest::StatusCode;
use serde_json::json;
use tokio_stream::wrappers::TcpListenerStream;

use crate::harness::TestEnv;

/// An OTLP/gRPC trace receiver keeping (service name, span) pairs.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.as_ref()?.value.as_ref()).map(|v| match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    common::secret::to_hex(bytes)
}

impl Receiver {
    /// Serves OTLP/gRPC; returns the endpoint.
    async fn grpc(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        endpoint
    }

    /// Serves OTLP/HTTP with protobuf bodies (`POST /v1/traces`); returns the endpoint.
    async fn http(&self) -> String {
        use axum::routing::post;
        let receiver = self.clone();
        let traces = post(move |body: bytes::Bytes| async move {
            let request = <ExportTraceServiceRequest as prost::Message>::decode(body).expect("an OTLP protobuf body");
            receiver.export(tonic::Request::new(request)).await.unwrap();
            ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
        });
        let app = axum::Router::new().route("/v1/traces", traces).route("/v1/metrics", post(|| async { "" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        endpoint
    }
}

#[tokio::test]
async fn one_trace_spans_all_four_services_over_grpc() {
    let receiver = Receiver::default();
    let endpoint = receiver.grpc().await;
    one_trace(receiver, TestEnv::split_traced(1, &endpoint, "grpc").await).await;
}

#[tokio::test]
async fn one_trace_spans_all_four_services_over_http() {
    let receiver = Receiver::default();
    let endpoint = receiver.http().await;
    one_trace(receiver, TestEnv::split_traced(1, &endpoint, "http/protobuf").await).await;
}

async fn one_trace(receiver: Receiver, env: TestEnv) {
    let ann = env.user("traced").await;
    env.set_plan(&ann.team_id, "pro").await;
    let (key, _) = env.create_key(&ann, json!({ "name": "k", "permissions": "full", "teams": "all" })).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = env
        .http
        .get(format!("{}/api/external/v1/websites", env.base()))
        .bearer_auth(&key)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("tracestate", "zv=t1,other=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let wanted = ["zenovay-gateway", "zenovay-identity", "zenovay-policy", "zenovay-analytics"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace: Vec<(String, Span)> = loop {
        let trace: Vec<(String, Span)> =
            receiver.0.lock().unwrap().iter().filter(|(_, s)| hex(&s.trace_id) == trace_id).cloned().collect();
        let services: Vec<&str> = trace.iter().map(|(service, _)| service.as_str()).collect();
        let root_seen = trace.iter().any(|(_, s)| hex(&s.parent_span_id) == caller_span);
        if root_seen && wanted.iter().all(|w| services.contains(w)) {
            break trace;
        }
        assert!(Instant::now() < deadline, "incomplete trace, services seen: {services:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Parent links: the gateway's request span is the caller's child; every other span's parent
    // is a span of this same trace.
    let ids: HashMap<String, &Span> = trace.iter().map(|(_, s)| (hex(&s.span_id), s)).collect();
    let root = trace
        .iter()
        .find(|(service, s)| service == "zenovay-gateway" && hex(&s.parent_span_id) == caller_span)
        .map(|(_, s)| s)
        .unwrap_or_else(|| {
            let names: Vec<String> =
                trace.iter().map(|(svc, s)| format!("{svc}:{}:{:?}", s.name, attribute(s, "http.route"))).collect();
            panic!("the gateway's request span: {names:?}")
        });
    assert_eq!(hex(&root.parent_span_id), caller_span);
    assert_eq!(attribute(root, "http.route").as_deref(), Some("/api/external/v1/websites"));
    assert_eq!(attribute(root, "http.response.status_code").as_deref(), Some("200"));
    assert!(attribute(root, "zenovay.key_id").is_some(), "the key id, never the secret");
    for (service, span) in &trace {
        if span.span_id != root.span_id {
            assert!(
                ids.contains_key(&hex(&span.parent_span_id)),
                "{service} span {} has a parent outside the trace",
                span.name
            );
        }
    }
    // The caller's tracestate passes on unchanged, to the spans of every service.
    for (service, span) in &trace {
        assert_eq!(span.trace_state, "zv=t1,other=2", "{service} span {}", span.name);
    }
    // Each service's server span is the child of a gateway client span for the same method.
    for service in &wanted[1..] {
        let server = trace
            .iter()
            .find(|(s, span)| s == service && attribute(span, "rpc.system").as_deref() == Some("grpc"))
            .map(|(_, span)| span)
            .unwrap_or_else(|| panic!("no gRPC server span in {service}"));
        let parent = ids[&hex(&server.parent_span_id)];
        assert_eq!(attribute(parent, "rpc.method"), attribute(server, "rpc.method"));
        assert!(trace.iter().any(|(s, span)| s == "zenovay-gateway" && span.span_id == parent.span_id));
    }
    let systems: Vec<String> = trace.iter().filter_map(|(_, s)| attribute(s, "db.system")).collect();
    assert!(systems.contains(&"redis".to_owned()) && systems.contains(&"postgresql".to_owned()), "{systems:?}");

    // A tracker event travels to analytics in a batch call, a trace of its own linked to the
    // event's request span.
    let domain = format!("traced-{}.example", &ann.user_id[..8]);
    let site = json!({ "team_id": ann.team_id, "domain": domain, "name": "T" });
    assert_eq!(env.api(reqwest::Method::POST, "/websites", &key, Some(site)).await.0, StatusCode::CREATED);
    let event_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = env
        .http
        .post(format!("{}/api/event", env.base()))
        .header("traceparent", format!("00-{event_trace}-b7ad6b7169203331-01"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .json(&json!({ "domain": domain, "name": "pageview", "url": format!("https://{domain}/") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = receiver.0.lock().unwrap().clone();
        let request = spans
            .iter()
            .find(|(service, s)| service == "zenovay-gateway" && hex(&s.trace_id) == event_trace)
            .map(|(_, s)| s.span_id.clone());
        let batch = spans.iter().find(|(service, s)| {
            service == "zenovay-gateway"
                && s.name == "ingest.batch"
                && s.links.iter().any(|l| hex(&l.trace_id) == event_trace && Some(&l.span_id) == request.as_ref())
        });
        let stored = batch.and_then(|(_, b)| {
            spans.iter().find(|(service, s)| {
                service == "zenovay-analytics"
                    && s.trace_id == b.trace_id
                    && attribute(s, "rpc.method").as_deref() == Some("IngestEvents")
            })
        });
        if stored.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no linked batch span reaching analytics for the event's trace");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // No secret in any attribute.
    for (_, span) in &trace {
        for a in &span.attributes {
            let value = format!("{:?}", a.value);
            assert!(!value.contains(&key[3..]), "the key secret is in attribute {}", a.key);
            assert!(!value.contains(&ann.session[4..]), "the session token is in attribute {}", a.key);
        }
    }
}
