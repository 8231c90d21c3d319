//! The guest's `requests` behaves as a `requests` user expects, against a real loopback
//! server, through the binary and the egress policy.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, get};
use serde_json::{Value, json};

use action_worker_tests as common;

async fn server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/echo",
            any(
                |method: Method,
                 uri: Uri,
                 RawQuery(query): RawQuery,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let headers: serde_json::Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                        .collect();
                    axum::Json(
                        json!({"method": method.as_str(), "path": uri.path(), "query": query,
                                  "headers": headers, "body": String::from_utf8_lossy(&body)}),
                    )
                },
            ),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "nope") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/huge",
            get(|| async {
                let chunk = Bytes::from(vec![b'z'; 1 << 20]);
                let stream = futures_util::stream::iter(
                    (0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Response::new(Body::from_stream(stream))
            }),
        );
    common::serve(app, "127.0.0.1:0").await
}

async fn run(source: String) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "");
    let script = dir.path().join("shim.py");
    std::fs::write(&script, source).unwrap();
    common::run_script(&config, &script, &[], &[]).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_encodes_and_decodes_as_requests_does() {
    let addr = server().await;
    let source = format!(
        r#"import requests
BASE = "http://{addr}"
def execute_action(context):
    out = {{}}
    r = requests.get(BASE + "/echo?fixed=1", params={{"q": "a b&c", "many": ["x", "y"], "skip": None}})
    out["query"] = r.json()["query"]
    r = requests.post(BASE + "/echo", data={{"name": "Zoë", "n": 3}})
    out["form"] = [r.json()["body"], r.json()["headers"]["content-type"]]
    r = requests.put(BASE + "/echo", data="raw text")
    out["raw"] = r.json()["body"]
    r = requests.patch(BASE + "/echo", json={{"qty": 3, "ok": True}})
    out["json"] = [r.json()["body"], r.json()["headers"]["content-type"]]
    out["case"] = r.headers["Content-Type"] == r.headers["content-type"] == r.headers["CONTENT-TYPE"]
    out["ok"] = [r.ok, r.status_code, r.reason, r.elapsed.total_seconds() >= 0, r.url]
    s = requests.Session()
    s.headers.update({{"X-Team": "support"}})
    s.headers["Authorization"] = "Bearer abc"
    r = s.get(BASE + "/echo", headers={{"X-Extra": "1"}}, timeout=(2, 5))
    h = r.json()["headers"]
    out["session"] = [h.get("x-team"), h.get("authorization"), h.get("x-extra"), h.get("user-agent", "").startswith("python-requests/")]
    r = s.delete(BASE + "/echo", timeout=3)
    out["delete"] = [r.json()["method"], "idempotency-key" in r.json()["headers"]]
    r = requests.head(BASE + "/echo")
    out["head"] = r.status_code
    return out
"#
    );
    let result = run(source).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["query"], "fixed=1&q=a+b%26c&many=x&many=y");
    assert_eq!(
        o["form"],
        json!(["name=Zo%C3%AB&n=3", "application/x-www-form-urlencoded"])
    );
    assert_eq!(o["raw"], "raw text");
    assert_eq!(
        o["json"],
        json!(["{\"qty\": 3, \"ok\": true}", "application/json"])
    );
    assert_eq!(o["case"], true);
    assert_eq!(
        o["ok"],
        json!([true, 200, "OK", true, format!("http://{addr}/echo")])
    );
    assert_eq!(o["session"], json!(["support", "Bearer abc", "1", true]));
    assert_eq!(o["delete"], json!(["DELETE", true]));
    assert_eq!(o["head"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_raises_its_own_exceptions() {
    let addr = server().await;
    let source = format!(
        r#"import requests
from requests.exceptions import RequestException, HTTPError, Timeout, ConnectionError, TooManyRedirects
BASE = "http://{addr}"
def kind(fn):
    try:
        fn()
    except BaseException as exc:
        return type(exc).__name__
    return "none"
def execute_action(context):
    r = requests.get(BASE + "/missing")
    try:
        r.raise_for_status()
        status = None
    except HTTPError as exc:
        status = [exc.response.status_code, str(exc)]
    return {{
        "status": status,
        "timeout": kind(lambda: requests.get(BASE + "/slow", timeout=0.3)),
        "is_timeout": issubclass(requests.ReadTimeout, Timeout) and issubclass(requests.ConnectTimeout, ConnectionError),
        "hierarchy": all(issubclass(c, RequestException) for c in (HTTPError, Timeout, ConnectionError, TooManyRedirects)),
        "schema": kind(lambda: requests.get("example.com/x")),
        "bad_scheme": kind(lambda: requests.get("file:///etc/passwd")),
        "json_error": kind(lambda: requests.get(BASE + "/missing").json()),
        "refused": kind(lambda: requests.get("http://127.0.0.1:1/")),
    }}
"#
    );
    let result = run(source).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(
        o["status"],
        json!([
            404,
            format!("404 Client Error: Not Found for url: http://{addr}/missing")
        ])
    );
    assert_eq!(o["timeout"], "ReadTimeout");
    assert_eq!(o["is_timeout"], true);
    assert_eq!(o["hierarchy"], true);
    assert_eq!(o["schema"], "MissingSchema");
    assert_eq!(o["bad_scheme"], "InvalidSchema");
    assert_eq!(o["json_error"], "JSONDecodeError");
    assert_eq!(o["refused"], "ConnectionError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_response_stops_the_job_at_the_cap() {
    let addr = server().await;
    let source = format!(
        "import requests\ndef execute_action(c):\n    return len(requests.get('http://{addr}/huge').content)\n"
    );
    let result = run(source).await;
    assert_eq!(result["status"], "limit_exceeded", "{result}");
    assert_eq!(result["error"]["limit"], "response_size");
    assert!(
        result["trace"][0]["error"]
            .as_str()
            .unwrap()
            .contains("larger than the limit of 5242880 bytes")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_goes_through_egress_and_its_body_cap() {
    let addr = server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "max_request_bytes = 100000\n");
    let script = dir.path().join("upload.py");
    std::fs::write(
        &script,
        format!(
            r#"import requests
def execute_action(context):
    out = {{}}
    r = requests.post("http://{addr}/echo", files={{"f": ("a.bin", b"x" * 50000)}}, data={{"k": "v"}})
    out["small"] = [r.status_code, r.json()["headers"]["content-type"].startswith("multipart/form-data; boundary="), len(r.json()["body"]) > 50000]
    try:
        requests.post("http://{addr}/echo", files={{"f": ("b.bin", b"x" * 200000)}})
        out["large"] = "sent"
    except requests.ConnectionError as e:
        out["large"] = str(e)
    return out
"#
        ),
    )
    .unwrap();
    let (result, _) = common::run_script(&config, &script, &[], &[]).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["small"], json!([200, true, true]), "{o}");
    let large = o["large"].as_str().unwrap();
    assert!(
        large.contains("is 200") && large.contains("bytes, over egress.max_request_bytes = 100000"),
        "{large}"
    );
    // The refused call is traced with its rule, and nothing reached the server.
    let denied = result["trace"].as_array().unwrap().iter().find(|e| {
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("max_request_bytes"))
    });
    assert!(denied.is_some(), "{}", result["trace"]);
}
