//! `action-worker serve` against a real nats-server: request-reply on `actions.run` and
//! `actions.test`, JSON and MessagePack, bad jobs rejected, the micro service visible.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker, decode_reply, nats_server_binary, run_json};

/// Sends `job` as JSON on `actions.run` and decodes the result.
fn python_job(id: &str, code: &str) -> Value {
    json!({"id": id, "action": {"name": "echo", "type": "python", "python": {"code": code}}, "args": {"x": 2}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_over_nats_request_reply() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!("[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 4\n");
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();
    let code = "def execute_action(c):\n    return {'double': c['args']['x'] * 2, 'test': c['job']['test']}\n";

    // JSON, the default.
    let result = run_json(&client, &python_job("j1", code)).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"double": 4, "test": false}));
    assert_eq!(result["job_id"], "j1");

    // actions.test forces test; MessagePack in, MessagePack out.
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "application/msgpack");
    let job: Value = python_job("j2", code);
    let payload = rmp_serde::to_vec_named(&job).unwrap();
    let reply = client
        .request_with_headers("actions.test", headers, payload.into())
        .await
        .unwrap();
    let (content_type, result) = decode_reply(&reply);
    assert_eq!(content_type, "application/msgpack");
    assert_eq!(result["output"], json!({"double": 4, "test": true}));
    assert_eq!(result["test"], true);

    // Bad input gets a rejected result, and the worker keeps serving.
    let reply = client
        .request("actions.run", "{not json".into())
        .await
        .unwrap();
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot decode the job"),
        "{result}"
    );
    let bad_name =
        json!({"id": "j3", "action": {"name": "Bad", "type": "python", "python": {"code": "x"}}});
    let result = run_json(&client, &bad_name).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("action.name"),
        "{result}"
    );
    let hostile = python_job(
        "j4",
        "def execute_action(c):\n    while True:\n        pass\n",
    );
    let mut hostile = hostile;
    hostile["action"]["limits"] = json!({"fuel": 20_000_000});
    let result = run_json(&client, &hostile).await;
    assert_eq!(result["error"]["limit"], "fuel", "{result}");
    let result = run_json(&client, &python_job("j5", code)).await;
    assert_eq!(result["status"], "ok");

    // An API action over request-reply, against a real upstream on loopback.
    let upstream = common::serve(
        axum::Router::new().route(
            "/stock/{sku}",
            axum::routing::get(
                |axum::extract::Path(sku): axum::extract::Path<String>| async move {
                    axum::Json(json!({"sku": sku, "inStock": true}))
                },
            ),
        ),
        "127.0.0.1:0",
    )
    .await;
    let api = json!({"id": "a1", "action": {"name": "stock", "type": "api",
        "api": {"base_url": format!("http://{upstream}"), "path": "/stock/$sku"}},
        "args": {"sku": "X-9"}});
    let result = run_json(&client, &api).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"sku": "X-9", "inStock": true}));
    assert_eq!(result["trace"][0]["status"], 200);

    // `submit` sends a job the way the engine would.
    let script = dir.path().join("submitted.py");
    std::fs::write(&script, code).unwrap();
    let config = dir.path().join("worker.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_action-worker"))
            .arg("--config")
            .arg(&config)
            .args([
                "submit",
                script.to_str().unwrap(),
                "--args-json",
                r#"{"x": 21}"#,
                "--test",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{result}");
    assert_eq!(result["output"], json!({"double": 42, "test": true}));

    // The micro service answers $SRV.PING.
    let ping = client
        .request("$SRV.PING.action-worker", "".into())
        .await
        .unwrap();
    let ping: Value = serde_json::from_slice(&ping.payload).unwrap();
    assert_eq!(ping["name"], "action-worker");
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_url_serve_starts_its_own_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[nats]\nserver_binary = \"{}\"\ndata_dir = \"{}\"\nembedded_port = 0\n",
        nats_server_binary().display(),
        dir.path().join("nats").display()
    );
    let worker = Worker::start(dir.path(), &extra).await;
    let url = worker
        .embedded
        .clone()
        .expect("the worker names its nats-server");
    assert!(url.starts_with("nats://127.0.0.1:"), "{url}");
    let client = async_nats::connect(&url).await.unwrap();
    let code = "def execute_action(c):\n    return 'embedded'\n";
    let result = run_json(&client, &python_job("e1", code)).await;
    assert_eq!(result["output"], "embedded");
    assert!(
        dir.path().join("nats/jetstream").exists(),
        "JetStream stores under nats.data_dir"
    );
    // SIGTERM stops the worker and its nats-server with it.
    let status = worker.terminate().await;
    assert!(status.success(), "{status}");
    let mut gone = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(url.trim_start_matches("nats://"))
            .await
            .is_err()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the embedded nats-server outlived the worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_big_for_a_nats_message_is_a_limit_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_with_config(&dir.path().join("nats"), "max_payload: 65536").await;
    let extra = format!("[nats]\nurl = \"{}\"\n", nats.url);
    let worker = Worker::start(&dir.path().join("w"), &extra).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let big = "def execute_action(c):\n    return 'x' * 100000\n";

    // Request-reply: an answer within the server's limit, saying why.
    let result = run_json(&client, &python_job("big1", big)).await;
    assert_eq!(result["status"], "limit_exceeded", "{result}");
    assert_eq!(result["error"]["limit"], "output");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_payload is 65536"), "{message}");

    // Durable: stored (so acked), not retried forever.
    let js = async_nats::jetstream::new(client.clone());
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "big2");
    js.publish_with_headers(
        "actions.jobs.default",
        headers,
        python_job("big2", big).to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let results = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    let mut stored = None;
    for _ in 0..300 {
        if let Ok(m) = results
            .direct_get_last_for_subject("actions.results.big2")
            .await
        {
            stored = Some(serde_json::from_slice::<Value>(&m.payload).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = stored.expect("a stored result for the durable job");
    assert_eq!(stored["error"]["limit"], "output", "{stored}");

    // Small results still go through.
    let result = run_json(
        &client,
        &python_job("small", "def execute_action(c):\n    return 1\n"),
    )
    .await;
    assert_eq!(result["output"], 1);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_already_delivered_are_answered_when_the_worker_stops() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let upstream = common::serve(
        axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }
            }),
        ),
        "127.0.0.1:0",
    )
    .await;
    // One slot: the other requests wait in this worker's subscription.
    let extra = format!("[nats]\nurl = \"{}\"\nmax_concurrent_jobs = 1\n", nats.url);
    let worker = Worker::start(&dir.path().join("w"), &extra).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let code = format!(
        "import requests\ndef execute_action(c):\n    return requests.get('http://{upstream}/slow').text\n"
    );
    let mut tasks = vec![];
    for i in 0..4 {
        let client = client.clone();
        let job = python_job(&format!("s{i}"), &code);
        tasks.push(tokio::spawn(async move { run_json(&client, &job).await }));
    }
    while hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = worker.terminate().await;
    assert!(status.success(), "{status}");
    for task in tasks {
        let result = task.await.unwrap();
        assert_eq!(result["status"], "ok", "{result}");
        assert_eq!(result["output"], "done");
    }
}
