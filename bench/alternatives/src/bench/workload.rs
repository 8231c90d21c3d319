//! The loopback upstream and the four actions, each with the check its results must pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::*;

// ---------------------------------------------------------------------------------------
// The loopback HTTP server: /item/{id} answers at once; /slow/{id} holds the request until
// the bench releases it (or hold_ms passes).

#[derive(Clone)]
pub(super) struct Upstream {
    pub(super) held: Arc<AtomicUsize>,
    pub(super) release: watch::Receiver<bool>,
    pub(super) hold: Duration,
}

pub(super) async fn item(UrlPath(id): UrlPath<String>) -> axum::Json<Value> {
    axum::Json(json!({"id": id, "inStock": true, "qty": 3}))
}

pub(super) async fn slow(
    State(up): State<Upstream>,
    UrlPath(id): UrlPath<String>,
) -> axum::Json<Value> {
    up.held.fetch_add(1, Ordering::SeqCst);
    let mut release = up.release.clone();
    let _ = tokio::time::timeout(up.hold, release.wait_for(|r| *r)).await;
    up.held.fetch_sub(1, Ordering::SeqCst);
    axum::Json(json!({"id": id, "inStock": true, "qty": 3}))
}

// ---------------------------------------------------------------------------------------
// The actions, each with the check its every result must pass.

type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

pub(super) struct Action {
    pub(super) key: &'static str,
    pub(super) label: &'static str,
    pub(super) definition: Value,
    pub(super) args: Value,
    pub(super) check: Check,
}

pub(super) fn actions(port: u16) -> Vec<Action> {
    let expected: u64 = (0..CPU_N).map(|i| i * i % 7).sum();
    vec![
        Action {
            key: "trivial",
            label: "trivial Python",
            definition: json!({"name": "trivial", "type": "python", "python": {"code":
                "def execute_action(c):\n    return {\"ok\": True}\n"}}),
            args: json!({}),
            check: Arc::new(|out| {
                (out == &json!({"ok": true}))
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "cpu",
            label: "CPU-bound Python",
            definition: json!({"name": "cpuBound", "type": "python", "python": {"code":
                "def execute_action(c):\n    total = 0\n    for i in range(c[\"args\"][\"n\"]):\n        total += i * i % 7\n    return {\"total\": total}\n"}}),
            args: json!({"n": CPU_N}),
            check: Arc::new(move |out| {
                (out["total"] == json!(expected))
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "http",
            label: "Python + requests.get",
            definition: json!({"name": "fetchItem", "type": "python", "python": {"code": format!(
                "import requests\n\ndef execute_action(c):\n    r = requests.get(\"http://127.0.0.1:{port}/item/\" + c[\"args\"][\"id\"], timeout=30)\n    r.raise_for_status()\n    return r.json()\n")}}),
            args: json!({"id": "SKU-1"}),
            check: Arc::new(|out| {
                (out["id"] == "SKU-1")
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "api",
            label: "API action",
            definition: json!({"name": "getItem", "type": "api", "api": {
                "base_url": format!("http://127.0.0.1:{port}"), "path": "/item/$id", "method": "GET"}}),
            args: json!({"id": "SKU-1"}),
            check: Arc::new(|out| {
                (out["id"] == "SKU-1")
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
    ]
}
