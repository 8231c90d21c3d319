//! Every job is answered (issue 13): a panic injected at each stage of a job's path, over
//! request-reply and durable, for Python and API actions, gives that job a `failed` result
//! naming the stage, while the worker keeps serving and releases the job's slot. The worker
//! binary of these tests has the `fault-injection` feature (a dev-dependency turns it on); a
//! job asks for a panic with `panic-at-<point>` in its id, and only the points listed in
//! `ACTION_WORKER_INJECT_PANIC` can fire.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use action_worker_tests as common;
use common::nats::{Nats, Worker, run_json};

fn python(id: &str, code: &str) -> Value {
    json!({"id": id, "action": {"name": "probe", "type": "python", "python": {"code": code}}})
}

const TRIVIAL: &str = "def execute_action(c):\n    return 'fine'\n";
const CALLS_OUT: &str = "import requests\ndef execute_action(c):\n    return requests.get('http://127.0.0.1:9/x').status_code\n";
const TAGS: &str = "def execute_action(c):\n    return add_conversation_tag(c, 'vip')\n";

fn api(id: &str) -> Value {
    json!({"id": id, "action": {"name": "lookup", "type": "api",
        "api": {"base_url": "http://127.0.0.1:9", "path": "/orders/$id", "method": "GET"}},
        "args": {"id": "Ζωή"}})
}

/// What a job whose path panicked at a stage must be answered with.
fn assert_failed_at(result: &Value, doing: &str) {
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "internal", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("internal error of the worker while {doing}")),
        "{message}"
    );
    assert!(
        !message.contains("injected"),
        "the panic's own text: {message}"
    );
    assert_eq!(result["output"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_at_any_stage_of_a_request_reply_job_is_a_failed_answer() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let config = common::write_config(
        dir.path(),
        &format!(
            "[nats]\nurl = \"{}\"\nmax_concurrent_jobs = 2\n[log]\nformat = \"json\"\n",
            nats.url
        ),
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_action-worker"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env(
            "ACTION_WORKER_INJECT_PANIC",
            "decode,resolve,run,http_send,conversation,encode",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Read stderr as it comes: a worker blocked on a full pipe would stop answering.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).await.unwrap();
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = String::new();
    while let Some(line) = stdout.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("action-worker: admin on ") {
            admin = rest.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("serving actions.run") {
            break;
        }
    }
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut with_conversation = python("rr-panic-at-conversation", TAGS);
    with_conversation["conversation"] = json!({"id": "c1", "tags": []});
    let cases = [
        (python("rr-panic-at-decode", TRIVIAL), "decoding the job"),
        (
            python("rr-panic-at-resolve", TRIVIAL),
            "resolving the action",
        ),
        (python("rr-panic-at-run", TRIVIAL), "running the action"),
        (
            python("rr-py-panic-at-http_send", CALLS_OUT),
            "answering the host call http.send",
        ),
        (
            api("rr-api-panic-at-http_send"),
            "answering the host call http.send",
        ),
        (with_conversation, "answering the host call conversation"),
        (python("rr-panic-at-encode", TRIVIAL), "encoding the result"),
    ];
    for (i, (job, doing)) in cases.iter().enumerate() {
        let result = run_json(&client, job).await;
        assert_failed_at(&result, doing);
        if !doing.starts_with("decoding") {
            assert_eq!(result["job_id"], job["id"], "{result}");
        }
        // The worker carries on: the next job is served as ever.
        let ok = run_json(&client, &python(&format!("ok-{i}"), TRIVIAL)).await;
        assert_eq!(ok["status"], "ok", "{ok}");
    }
    // No slot was lost to the seven panics: four jobs at once on two slots all finish.
    let sleepy = "import time\ndef execute_action(c):\n    time.sleep(0.2)\n    return 1\n";
    let jobs = (0..4).map(|i| {
        let client = client.clone();
        async move { run_json(&client, &python(&format!("after-{i}"), sleepy)).await }
    });
    for result in futures_util::future::join_all(jobs).await {
        assert_eq!(result["status"], "ok", "{result}");
    }
    let scrape = common::scrape(&admin).await;
    for (stage, n) in [
        ("decode", 1),
        ("resolve", 1),
        ("run", 1),
        ("host_call", 3),
        ("encode", 1),
    ] {
        let series = format!("action_worker_job_panics_total{{stage=\"{stage}\"}} {n}");
        assert!(scrape.contains(&series), "no {series} in\n{scrape}");
    }

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    child.wait().await.unwrap();
    let stderr = stderr_text.await.unwrap();
    assert!(
        !stderr.contains("injected"),
        "a panic's message in the logs"
    );
    // Each panic is logged at error level, within its job's span (in the line's span list)
    // where the job decoded.
    let errors: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["level"] == "ERROR")
        .collect();
    for id in [
        "rr-panic-at-resolve",
        "rr-panic-at-run",
        "rr-py-panic-at-http_send",
        "rr-api-panic-at-http_send",
        "rr-panic-at-conversation",
        "rr-panic-at-encode",
    ] {
        let in_job = |e: &&Value| {
            let spans = e["spans"].as_array().cloned().unwrap_or_default();
            spans.iter().any(|span| span["job_id"] == id)
        };
        let lines = errors.iter().filter(in_job).count();
        assert!(lines >= 2, "{id}: {lines} error lines in\n{stderr}");
    }
}

async fn next_reply(replies: &mut async_nats::Subscriber) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("a reply within 30 s")
        .unwrap();
    serde_json::from_slice(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_a_durable_job_is_retried_then_stored_failed() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!(
        "[nats]\nurl = \"{}\"\nack_wait_ms = 2000\nmax_attempts = 2\nmax_concurrent_jobs = 4\n",
        nats.url
    );
    let _worker = Worker::start_with_env(
        dir.path(),
        &extra,
        &[("ACTION_WORKER_INJECT_PANIC", "decode,http_send,store")],
    )
    .await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut replies = client.subscribe("durable.replies").await.unwrap();
    let cases = [
        (
            python("dur-py-panic-at-http_send", CALLS_OUT),
            "answering the host call http.send",
        ),
        (
            api("dur-api-panic-at-http_send"),
            "answering the host call http.send",
        ),
        (python("dur-panic-at-store", TRIVIAL), "storing the result"),
    ];
    for (mut job, doing) in cases {
        job["reply_to"] = json!("durable.replies");
        let id = job["id"].as_str().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        js.publish_with_headers("actions.jobs.default", headers, job.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
        let result = next_reply(&mut replies).await;
        assert_eq!(result["job_id"], id.as_str());
        assert_failed_at(&result, doing);
        // Handed back after the first attempt, answered on the last.
        assert_eq!(result["attempt"], 2, "{result}");
        let stream = js.get_stream("ACTIONS_RESULTS").await.unwrap();
        let stored = stream
            .direct_get_last_for_subject(format!("actions.results.{id}"))
            .await
            .unwrap();
        let stored: Value = serde_json::from_slice(&stored.payload).unwrap();
        assert_eq!(stored, result);
    }
    // A payload whose decoder panics: no reply_to is known, the failed result is stored
    // under the message id after the last attempt.
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "dur-decode");
    let job = python("dur-panic-at-decode", TRIVIAL);
    js.publish_with_headers("actions.jobs.default", headers, job.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let stream = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    let mut stored = None;
    for _ in 0..300 {
        if let Ok(message) = stream
            .direct_get_last_for_subject("actions.results.dur-decode")
            .await
        {
            stored = Some(serde_json::from_slice::<Value>(&message.payload).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = stored.expect("a stored result for the job whose decoder panicked");
    assert_failed_at(&stored, "decoding the job");
    assert_eq!(stored["attempt"], 2, "{stored}");
    // And the worker goes on serving durable jobs.
    let mut ok = python("dur-ok", TRIVIAL);
    ok["reply_to"] = json!("durable.replies");
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "dur-ok");
    js.publish_with_headers("actions.jobs.default", headers, ok.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(next_reply(&mut replies).await["status"], "ok");
}
