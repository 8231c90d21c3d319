//! API actions end to end: the seed's examples and the template's guarantees, against a real
//! loopback server, through the binary and the egress policy.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{any, get};
use serde_json::{Value, json};

use action_worker_tests as common;

const STOCK_KEY: &str = "stock-key-7f3a";

async fn server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/stock/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>, headers: HeaderMap| async move {
                if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(STOCK_KEY) {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "bad key"})));
                }
                (StatusCode::OK, axum::Json(json!({"productId": id, "inStock": true, "quantity": 12})))
            }),
        )
        .route("/gone", any(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such thing"}))) }))
        .route(
            "/{*rest}",
            any(|method: Method, uri: Uri, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes| async move {
                let headers: serde_json::Map<String, Value> =
                    headers.iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("")))).collect();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                axum::Json(json!({"method": method.as_str(), "path": uri.path(), "query": query, "headers": headers, "body": body}))
            }),
        );
    common::serve(app, "127.0.0.1:0").await
}

/// Writes `definition` (JSON) and a config with a secrets file; runs the action.
async fn run(dir: &Path, definition: Value, args: &[&str]) -> Value {
    let secrets = dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        format!("[[secret]]\nname = \"STOCK_API_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"{STOCK_KEY}\"\n"),
    )
    .unwrap();
    let config = common::write_config(
        dir,
        &format!("[secrets]\nfile = \"{}\"\n", secrets.display()),
    );
    let path = dir.join(format!("{}.json", definition["name"].as_str().unwrap()));
    std::fs::write(&path, definition.to_string()).unwrap();
    common::run_script(&config, &path, args, &[]).await.0
}

/// The shipped example, pointed at the loopback server.
fn example(name: &str, addr: SocketAddr) -> Value {
    let path = common::repo_root().join(format!("examples/actions/{name}.toml"));
    let mut value: Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    value["api"]["base_url"] = json!(format!("http://{addr}"));
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_product_stock_end_to_end_with_its_secret() {
    let addr = server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut definition = example("checkProductStock", addr);
    definition["api"]["query"] = json!({"key_echo": "{{secrets.STOCK_API_KEY}}"});
    let result = run(dir.path(), definition, &["--arg", "productId=SKU-1"]).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"],
        json!({"productId": "SKU-1", "inStock": true, "quantity": 12})
    );
    let trace = &result["trace"][0];
    assert_eq!(trace["status"], 200);
    assert_eq!(
        trace["secrets"],
        json!(["[secret:STOCK_API_KEY]"]),
        "{trace}"
    );
    assert_eq!(
        trace["url"],
        format!("http://{addr}/stock/SKU-1?key_echo=[secret:STOCK_API_KEY]")
    );
    assert!(!result.to_string().contains(STOCK_KEY), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_keeps_types_and_shape() {
    let addr = server().await;
    let dir = tempfile::tempdir().unwrap();
    let definition = json!({
        "name": "placeOrder", "type": "api", "description": "Places an order.",
        "api": {"base_url": format!("http://{addr}"), "path": "/files/$name", "method": "POST",
                "query": {"lang": "$lang"}, "headers": {"X-Customer": "$customer"},
                "body": {"qty": "$qty", "gift": "$gift", "note": "for $customer, qty $qty"}}
    });
    let args = r#"{"name": "../admin", "lang": "en&admin=1", "customer": "Maria", "qty": 3, "gift": false}"#;
    let result = run(dir.path(), definition.clone(), &["--args-json", args]).await;
    assert_eq!(result["status"], "ok", "{result}");
    let seen = &result["output"];
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/files/..%2Fadmin");
    assert_eq!(seen["query"], "lang=en%26admin%3D1");
    assert_eq!(
        seen["body"],
        json!({"qty": 3, "gift": false, "note": "for Maria, qty 3"})
    );
    assert_eq!(seen["headers"]["x-customer"], "Maria");
    assert_eq!(seen["headers"]["content-type"], "application/json");
    assert!(
        seen["headers"]["idempotency-key"]
            .as_str()
            .unwrap()
            .ends_with(":0")
    );

    let crlf = r#"{"name": "a", "lang": "en", "customer": "Maria\r\nX-Admin: yes", "qty": 3, "gift": false}"#;
    let result = run(dir.path(), definition.clone(), &["--args-json", crlf]).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("argument customer: contains CR, LF or NUL")
    );
    assert_eq!(result["trace"], json!([]), "nothing was sent");

    let result = run(dir.path(), definition, &["--arg", "name=x"]).await;
    assert_eq!(result["status"], "rejected");
    assert_eq!(
        result["error"]["message"],
        "missing required arguments: lang, customer, qty, gift"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_2xx_answer_is_an_action_error_with_status_and_body() {
    let addr = server().await;
    let dir = tempfile::tempdir().unwrap();
    let definition = json!({"name": "lookup", "type": "api", "api": {"base_url": format!("http://{addr}"), "path": "/gone"}});
    let result = run(dir.path(), definition, &[]).await;
    assert_eq!(result["status"], "action_error", "{result}");
    assert_eq!(result["error"]["kind"], "http_status");
    assert_eq!(
        result["output"],
        json!({"error": "HTTP 404 Not Found", "status": 404, "body": {"error": "no such thing"}})
    );
    let denied = json!({"name": "metadata", "type": "api", "api": {"base_url": "http://169.254.169.254", "path": "/latest"}});
    let result = run(dir.path(), denied, &[]).await;
    assert_eq!(result["status"], "action_error");
    assert_eq!(result["error"]["kind"], "transport");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("link-local"),
        "{result}"
    );
}
