//! Tracing end to end against a loopback OTLP/HTTP receiver that decodes the real protobuf
//! messages (`ExportTraceServiceRequest`): a job's W3C `traceparent` (a NATS header) is the
//! parent of its spans, the tree is job → instantiate, run → host call, the upstream gets a
//! `traceparent` of the same trace, and no span holds an argument, a path or a secret.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker};

/// A span as the receiver decoded it: ids in hex, name, attributes as text.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    attributes: Vec<(String, String)>,
}

type Spans = Arc<Mutex<Vec<Span>>>;

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP/HTTP trace receiver: `POST /v1/traces`, protobuf in, an empty
/// `ExportTraceServiceResponse` out.
async fn receiver() -> (SocketAddr, Spans) {
    let spans = Spans::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(spans): State<Spans>, headers: HeaderMap, body: Bytes| async move {
                    assert_eq!(
                        headers.get("content-type").unwrap(),
                        "application/x-protobuf"
                    );
                    let request = ExportTraceServiceRequest::decode(body).unwrap();
                    let mut spans = spans.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                spans.push(Span {
                                    trace_id: hex(&span.trace_id),
                                    span_id: hex(&span.span_id),
                                    parent: hex(&span.parent_span_id),
                                    name: span.name,
                                    attributes: span
                                        .attributes
                                        .iter()
                                        .map(|kv| {
                                            let value =
                                                kv.value.as_ref().and_then(|v| v.value.as_ref());
                                            (kv.key.clone(), text(value))
                                        })
                                        .collect(),
                                });
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(spans.clone());
    (common::serve(app, "127.0.0.1:0").await, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An upstream that answers with the `traceparent` it received.
async fn upstream() -> SocketAddr {
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        let traceparent = headers
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_string());
        axum::Json(json!({"traceparent": traceparent}))
    });
    common::serve(app, "127.0.0.1:0").await
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_traced_from_the_engine_through_the_worker_to_the_upstream() {
    let (otlp, spans) = receiver().await;
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"ERP_KEY\"\ntenant = \"acme\"\nhosts = [\"127.0.0.1\"]\nvalue = \"erp-secret-value-8472\"\n",
    )
    .unwrap();
    let config = format!(
        "[nats]\nurl = \"{}\"\n[secrets]\nfile = \"{}\"\n[telemetry]\notlp_endpoint = \"http://{otlp}/v1/traces\"\npropagate = true\n",
        nats.url,
        secrets.display()
    );
    let _worker = Worker::start_with_env(
        &dir.path().join("w"),
        &config,
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let code = format!(
        "import requests\ndef execute_action(context):\n    r = requests.get('http://{upstream}/orders/' + context['args']['orderId'], headers={{'X-Api-Key': '{{{{secrets.ERP_KEY}}}}'}})\n    return r.json()\n"
    );
    let job = json!({"id": "traced-1", "tenant": "acme", "args": {"orderId": "arg-value-5512"},
        "action": {"name": "getOrder", "type": "python", "python": {"code": code}}});
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{PARENT}-01").as_str());
    let reply = client
        .request_with_headers("actions.run", headers, job.to_string().into())
        .await
        .unwrap();
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(result["status"], "ok", "{result}");

    // The spans of the trace, once the job's span (the last to end) is exported.
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let trace: Vec<Span> = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == TRACE)
            .cloned()
            .collect();
        if trace.iter().any(|s| s.name == "action.run") {
            break trace;
        }
        assert!(Instant::now() < deadline, "no job span exported: {trace:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let named = |name: &str| {
        trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {trace:?}"))
    };
    let job_span = named("action.run");
    assert_eq!(
        job_span.parent, PARENT,
        "the engine's span is the job's parent"
    );
    assert_eq!(named("instantiate").parent, job_span.span_id);
    let run = named("run");
    assert_eq!(run.parent, job_span.span_id);
    let http = named("host.http");
    assert_eq!(http.parent, run.span_id);
    let attribute = |span: &Span, key: &str| {
        span.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attribute(job_span, "job_id").as_deref(), Some("traced-1"));
    assert_eq!(attribute(job_span, "status").as_deref(), Some("ok"));
    assert!(
        attribute(job_span, "queue_wait_ms").is_some(),
        "{job_span:?}"
    );
    assert_eq!(
        attribute(http, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(http, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attribute(http, "http.response.status_code").as_deref(),
        Some("200")
    );

    // The upstream was called as a child of the host call's span.
    let sent = result["output"]["traceparent"].as_str().unwrap();
    assert_eq!(sent, format!("00-{TRACE}-{}-01", http.span_id));

    // Nothing of the job's data in any span of any trace.
    let everything = format!("{:?}", spans.lock().unwrap());
    for secret in [
        "arg-value-5512",
        "erp-secret-value-8472",
        "/orders",
        "execute_action",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} in a span: {everything}"
        );
    }
}
