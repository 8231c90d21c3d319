//! Non-ASCII text on every path of a job (issue 13): a script's `requests` with a non-ASCII
//! URL path, query value, header value and raw body, and an API action with non-ASCII
//! arguments, each get a result, over NATS (request-reply and durable) and through `run`; a
//! loopback server that records the bytes of each request sees them as Python's `requests`
//! 2.32 sends them (checked against it: the path and query percent-encoded as UTF-8, a `str`
//! body as UTF-8, a Latin-1 header value as one byte per character).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use action_worker_tests as common;
use common::nats::{Nats, Worker, run_json};

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A plain HTTP/1.1 server on loopback that keeps the raw bytes of every request (head and
/// body) and answers 200 with a Latin-1 header `X-Echo: Jürgen` and body `ok`.
async fn recording_server() -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buffer).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    bytes.extend_from_slice(&buffer[..n]);
                    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if bytes.len() >= end + 4 + length {
                        break;
                    }
                }
                keep.lock().unwrap().push(bytes);
                let answer: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Echo: J\xfcrgen\r\nConnection: close\r\n\r\nok";
                let _ = socket.write_all(answer).await;
            });
        }
    });
    (addr, seen)
}

/// The request whose first line starts with `start`.
fn request<'a>(seen: &'a [Vec<u8>], start: &str) -> &'a [u8] {
    seen.iter()
        .find(|r| r.starts_with(start.as_bytes()))
        .unwrap_or_else(|| {
            let all: Vec<String> = seen
                .iter()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .collect();
            panic!("no request {start:?} among {all:#?}")
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A script that sends a non-ASCII path, query, header and body, and tries a header value
/// that is not Latin-1.
fn script(addr: SocketAddr) -> String {
    format!(
        r#"import requests

def execute_action(context):
    base = "http://{addr}"
    r = requests.get(base + "/search/café", params={{"q": "Jürgen Ζωή"}},
                     headers={{"X-Name": "Jürgen"}})
    requests.post(base + "/raw", data="Jürgen Ζωή")
    requests.post(base + "/form", data={{"name": "Ζωή"}})
    requests.put(base + "/json", json={{"name": "Ζωή"}})
    # Escapes: kept, or (after a '%' that starts no escape) the '%' itself encoded.
    requests.get(base + "/ok/%41%2F ü")
    requests.get(base + "/odd/%41%zz%2F ü")
    try:
        requests.get(base + "/never", headers={{"X-Name": "Ζωή"}})
        refused = None
    except UnicodeEncodeError as e:
        refused = str(e)
    return {{"url": r.url, "echo": r.headers["X-Echo"], "refused": refused,
             "name": context["args"].get("name")}}
"#
    )
}

/// What the server must have seen, and what the script must have returned.
fn check(addr: SocketAddr, seen: &Seen, result: &Value) {
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"]["url"],
        format!("http://{addr}/search/caf%C3%A9?q=J%C3%BCrgen+%CE%96%CF%89%CE%AE")
    );
    assert_eq!(result["output"]["echo"], "Jürgen");
    assert_eq!(
        result["output"]["refused"],
        "'latin-1' codec can't encode characters in position 0-2: ordinal not in range(256)"
    );
    let seen = seen.lock().unwrap();
    let get = request(
        &seen,
        "GET /search/caf%C3%A9?q=J%C3%BCrgen+%CE%96%CF%89%CE%AE HTTP/1.1\r\n",
    );
    assert!(contains(get, b"\r\nx-name: J\xfcrgen\r\n"), "{get:?}");
    let raw = request(&seen, "POST /raw HTTP/1.1\r\n");
    assert!(raw.ends_with("\r\n\r\nJürgen Ζωή".as_bytes()), "{raw:?}");
    let form = request(&seen, "POST /form HTTP/1.1\r\n");
    assert!(
        form.ends_with(b"\r\n\r\nname=%CE%96%CF%89%CE%AE"),
        "{form:?}"
    );
    let json = request(&seen, "PUT /json HTTP/1.1\r\n");
    assert!(
        json.ends_with(br#"{"name": "\u0396\u03c9\u03ae"}"#),
        "{json:?}"
    );
    request(&seen, "GET /ok/A%2F%20%C3%BC HTTP/1.1\r\n");
    request(&seen, "GET /odd/%2541%25zz%252F%20%C3%BC HTTP/1.1\r\n");
    assert!(
        !seen.iter().any(|r| r.starts_with(b"GET /never")),
        "a header value that is not Latin-1 was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sends_non_ascii_as_requests_does_through_run() {
    let (addr, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "");
    let path = dir.path().join("unicode.py");
    std::fs::write(&path, script(addr)).unwrap();
    let (result, _) = common::run_script(&config, &path, &["--arg", "name=Γιώργος"], &[]).await;
    check(addr, &seen, &result);
    assert_eq!(result["output"]["name"], "Γιώργος");
}

fn python_job(id: &str, code: String) -> Value {
    json!({"id": id, "action": {"name": "unicode", "type": "python", "python": {"code": code}},
           "args": {"name": "Ζωή"}})
}

fn api_job(id: &str, addr: SocketAddr, name: &str) -> Value {
    json!({"id": id, "action": {"name": "customer", "type": "api", "api": {
            "base_url": format!("http://{addr}"), "path": "/customers/$name", "method": "POST",
            "query": {"city": "$city"}, "headers": {"X-Customer": "$name"},
            "body": {"who": "$name", "note": "für $name aus $city"}}},
           "args": {"name": name, "city": "Αθήνα"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_jobs_are_answered_over_nats_request_reply_and_durable() {
    let (addr, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!("[nats]\nurl = \"{}\"\nack_wait_ms = 2000\n", nats.url);
    let _worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&nats.url).await.unwrap();

    let result = run_json(&client, &python_job("uni-1", script(addr))).await;
    check(addr, &seen, &result);
    assert_eq!(result["output"]["name"], "Ζωή");

    // An API action: the path segment and the query value percent-encoded as UTF-8, the
    // header value as Latin-1 bytes, the body as UTF-8 JSON.
    let result = run_json(&client, &api_job("uni-2", addr, "Jürgen")).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], "ok");
    {
        let seen = seen.lock().unwrap();
        let post = request(
            &seen,
            "POST /customers/J%C3%BCrgen?city=%CE%91%CE%B8%CE%AE%CE%BD%CE%B1 HTTP/1.1\r\n",
        );
        assert!(contains(post, b"\r\nx-customer: J\xfcrgen\r\n"), "{post:?}");
        assert!(
            post.ends_with(r#"{"who":"Jürgen","note":"für Jürgen aus Αθήνα"}"#.as_bytes()),
            "{post:?}"
        );
    }
    // A header argument beyond Latin-1 is a rejection that names it, not a lost job.
    let result = run_json(&client, &api_job("uni-3", addr, "Ζωή")).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("argument name: contains 'Ζ' (U+0396), which is not Latin-1"),
        "{message}"
    );
    assert!(message.contains("header X-Customer"), "{message}");

    // The same script as a durable job: one result, announced on reply_to.
    let js = async_nats::jetstream::new(client.clone());
    let mut replies = client.subscribe("uni.replies").await.unwrap();
    let mut job = python_job("uni-durable", script(addr));
    job["reply_to"] = json!("uni.replies");
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "uni-durable");
    js.publish_with_headers("actions.jobs.default", headers, job.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("a durable reply within 30 s")
        .unwrap();
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    check(addr, &seen, &result);
    assert_eq!(result["attempt"], 1, "run once, not retried: {result}");
}
