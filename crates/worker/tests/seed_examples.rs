//! The shipped Python examples (the seed's, keys as secrets), their hosts pointed at a fake ERP and courier
//! on loopback, through the real binary and the egress policy.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use action_worker_tests as common;

#[derive(Default)]
struct Seen {
    posts: Vec<(Option<String>, Value)>,
}

type Shared = Arc<Mutex<Seen>>;

async fn fake_erp() -> (SocketAddr, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route(
            "/orders",
            get(|headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if q.get("id").map(String::as_str) == Some("R7") {
                    return (StatusCode::OK, axum::Json(json!({"isRefunded": false, "isCancellable": true})));
                }
                if q.get("id").map(String::as_str) != Some("A1") || auth != Some("Bearer ERP_KEY") {
                    return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such order"})));
                }
                (StatusCode::OK, axum::Json(json!({"status": "shipped", "trackingNumber": "TRK9", "estimatedDelivery": "2026-12-01"})))
            })
            .post(|State(seen): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(String::from);
                seen.lock().unwrap().posts.push((key, body.clone()));
                axum::Json(json!({"orderId": "N1", "total": 2 * body["items"].as_array().map_or(0, Vec::len),
                                  "confirmationUrl": "https://shop.example/confirm/N1"}))
            }),
        )
        .route(
            "/shipments",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                assert_eq!(q["tracking_number"], "TRK9");
                axum::Json(json!({"events": [{"status": "picked up"}, {"status": "in transit"}]}))
            }),
        )
        .route("/refund", post(|| async { axum::Json(json!({"amount": 42.5})) }))
        .with_state(seen.clone());
    (common::serve(app, "127.0.0.1:0").await, seen)
}

async fn run(dir: &Path, name: &str, source: String, args: &[&str]) -> Value {
    run_with(dir, name, source, args, None).await
}

async fn run_with(
    dir: &Path,
    name: &str,
    source: String,
    args: &[&str],
    conversation: Option<&Value>,
) -> Value {
    let script = dir.join(format!("{name}.py"));
    std::fs::write(&script, source).unwrap();
    // The examples' keys: {{secrets.ERP_KEY}} and {{secrets.SHOP_API_KEY}}, bound to loopback.
    let secrets = dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"ERP_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"ERP_KEY\"\n\
         [[secret]]\nname = \"SHOP_API_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"API_KEY\"\n",
    )
    .unwrap();
    let config = common::write_config(
        dir,
        &format!("[secrets]\nfile = \"{}\"\n", secrets.display()),
    );
    let mut args: Vec<&str> = args.to_vec();
    let file = dir.join("conversation.json");
    let file_arg = file.to_string_lossy().into_owned();
    if let Some(conversation) = conversation {
        std::fs::write(&file, conversation.to_string()).unwrap();
        args.extend(["--conversation", &file_arg]);
    }
    common::run_script(&config, &script, &args, &[]).await.0
}

/// The shipped example `examples/actions/NAME.py`, its hosts pointed at the fake servers.
fn local(name: &str, addr: SocketAddr) -> String {
    let path = common::repo_root().join(format!("examples/actions/{name}.py"));
    let source = std::fs::read_to_string(path).unwrap();
    let base = format!("http://{addr}");
    source
        .replace("https://erp.example.com", &base)
        .replace("https://tracking.example.com", &base)
        .replace("https://api.example.com", &base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_with_tracking_combines_erp_and_courier() {
    let (addr, _) = fake_erp().await;
    let dir = tempfile::tempdir().unwrap();
    let result = run(
        dir.path(),
        "orderTracking",
        local("orderTracking", addr),
        &["--arg", "orderId=A1", "--arg", "email=a@b.c"],
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"],
        json!({"orderId": "A1", "status": "shipped", "trackingNumber": "TRK9",
               "trackingEvents": [{"status": "picked up"}, {"status": "in transit"}], "estimatedDelivery": "2026-12-01"})
    );
    let trace = result["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 2);
    assert_eq!(trace[0]["method"], "GET");
    assert_eq!(trace[0]["status"], 200);
    assert!(
        trace[0]["url"]
            .as_str()
            .unwrap()
            .contains("/orders?id=A1&email=a%40b.c"),
        "{}",
        trace[0]
    );
    assert_eq!(result["stats"]["http_calls"], 2);

    let missing = run(
        dir.path(),
        "orderTracking",
        local("orderTracking", addr),
        &["--arg", "orderId=Z9", "--arg", "email=a@b.c"],
    )
    .await;
    assert_eq!(
        missing["output"],
        json!({"error": "Order not found. Please check the order ID."})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_validates_then_tags_the_conversation() {
    let (addr, _) = fake_erp().await;
    let dir = tempfile::tempdir().unwrap();
    let conversation = json!({"id": "c1", "publicId": "P1", "messages": [], "metadata": {"plan": "gold"}, "tags": ["vip"]});
    let args = ["--arg", "orderId=R7", "--arg", "reason=damaged", "--test"];
    let result = run_with(
        dir.path(),
        "processRefund",
        local("processRefund", addr),
        &args,
        Some(&conversation),
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"],
        json!({"success": true, "refundedAmount": 42.5})
    );
    let effects = result["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 2, "{result}");
    assert_eq!(effects[0]["type"], "add_tag");
    assert_eq!(effects[0]["tag"], "refunded");
    assert_eq!(
        effects[1],
        json!({"type": "set_metadata", "key": "refund_amount", "value": "42.5", "test": true})
    );
    assert_eq!(result["test"], true);
    // Without a conversation the helpers answer success False, and the action still completes.
    let result = run(
        dir.path(),
        "processRefund",
        local("processRefund", addr),
        &["--arg", "orderId=R7", "--arg", "reason=x"],
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["effects"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_creation_posts_json_with_an_idempotency_key() {
    let (addr, seen) = fake_erp().await;
    let dir = tempfile::tempdir().unwrap();
    let items = r#"{"customerName": "Eleni", "phone": "+306900000000", "items": "[{\"sku\": \"A\"}, {\"sku\": \"B\"}]"}"#;
    let result = run(
        dir.path(),
        "createOrder",
        local("createOrder", addr),
        &["--args-json", items],
    )
    .await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"],
        json!({"orderId": "N1", "total": 4, "confirmationUrl": "https://shop.example/confirm/N1"})
    );
    let posts = &seen.lock().unwrap().posts;
    assert_eq!(posts.len(), 1);
    let (key, body) = &posts[0];
    assert_eq!(
        body,
        &json!({"customerName": "Eleni", "phone": "6900000000", "items": [{"sku": "A"}, {"sku": "B"}]})
    );
    let job_id = result["job_id"].as_str().unwrap();
    assert_eq!(key.as_deref(), Some(format!("{job_id}:0").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_request_raises_connection_error_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"import requests
def execute_action(context):
    try:
        requests.get("http://169.254.169.254/latest/meta-data/", timeout=2)
    except requests.exceptions.ConnectionError as exc:
        return str(exc)
    return "reached"
"#;
    let result = run(dir.path(), "metadata", source.to_string(), &[]).await;
    let message = result["output"].as_str().unwrap_or_default();
    assert!(
        message.contains("rule `link-local`") && message.contains("egress.allow_private_cidrs"),
        "{result}"
    );
    assert!(
        result["trace"][0]["error"]
            .as_str()
            .unwrap()
            .contains("link-local")
    );
}
