//! The durable path against a real nats-server with JetStream and real worker processes:
//! stream ACTIONS_JOBS in, one result per job in ACTIONS_RESULTS, redelivery when a worker
//! dies, `failed` after the last attempt, reconnection after a server restart, a graceful stop.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use axum::Router;
use axum::routing::get;
use futures_util::StreamExt;
use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker, decode_reply};

/// Fast redelivery for the tests: a job without an ack for 2 s goes to another worker.
/// `extra` goes into `[nats]`.
fn worker_config(url: &str, extra: &str) -> String {
    let slots = if extra.contains("max_concurrent_jobs") {
        ""
    } else {
        "max_concurrent_jobs = 8\n"
    };
    format!("[nats]\nurl = \"{url}\"\nack_wait_ms = 2000\n{slots}{extra}")
}

fn python_job(id: &str, code: &str) -> Value {
    json!({"id": id, "action": {"name": "echo", "type": "python", "python": {"code": code}}, "args": {"x": 2}})
}

async fn publish(js: &jetstream::Context, id: &str, content_type: &str, payload: Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers.insert("Content-Type", content_type);
    js.publish_with_headers("actions.jobs.default", headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn publish_json(js: &jetstream::Context, job: &Value) {
    publish(
        js,
        job["id"].as_str().unwrap(),
        "application/json",
        job.to_string().into_bytes(),
    )
    .await;
}

/// The stored result of `id`, if any (decoded by its Content-Type).
async fn stored(js: &jetstream::Context, id: &str) -> Option<Value> {
    let stream = js.get_stream("ACTIONS_RESULTS").await.ok()?;
    let message = stream
        .direct_get_last_for_subject(format!("actions.results.{id}"))
        .await
        .ok()?;
    let content_type = message.headers.get("Content-Type").unwrap().as_str();
    Some(if content_type == "application/msgpack" {
        rmp_serde::from_slice(&message.payload).unwrap()
    } else {
        serde_json::from_slice(&message.payload).unwrap()
    })
}

async fn wait_stored(js: &jetstream::Context, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(result) = stored(js, id).await {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "no result for {id} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next message on `replies`, within 30 s.
async fn next_reply(replies: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("a reply within 30 s")
        .unwrap()
}

async fn results_count(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// The consumer of the lane `default` (the jobs published on `actions.jobs.default`).
async fn consumer_info(js: &jetstream::Context) -> jetstream::consumer::Info {
    lane_info(js, "default").await
}

async fn lane_info(js: &jetstream::Context, lane: &str) -> jetstream::consumer::Info {
    let stream = js.get_stream("ACTIONS_JOBS").await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer(&format!("action-workers-{lane}"))
        .await
        .unwrap();
    consumer.info().await.unwrap().clone()
}

/// A loopback server whose `/slow` counts its hits and answers after `delay`.
async fn slow_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/slow",
        get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                axum::Json(json!({"slow": true}))
            }
        }),
    );
    let addr = common::serve(app, "127.0.0.1:0").await;
    (format!("http://{addr}/slow"), hits)
}

fn slow_job(id: &str, url: &str) -> Value {
    let code = format!(
        "import requests\ndef execute_action(c):\n    return requests.get('{url}', timeout=60).json()\n"
    );
    python_job(id, &code)
}

async fn wait_hits(hits: &AtomicUsize, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while hits.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "the server saw {} requests, not {n}",
            hits.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_jobs_json_and_msgpack_api_and_python() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let app = Router::new().route(
        "/stock/{sku}",
        get(
            |axum::extract::Path(sku): axum::extract::Path<String>| async move {
                axum::Json(json!({"sku": sku, "qty": 7}))
            },
        ),
    );
    let upstream = common::serve(app, "127.0.0.1:0").await;
    let worker = Worker::start(dir.path(), &worker_config(&nats.url, "")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let mut replies = client.subscribe("replies.>").await.unwrap();

    // A Python action, JSON, with reply_to.
    let mut job = python_job(
        "p1",
        "def execute_action(c):\n    return {'double': c['args']['x'] * 2}\n",
    );
    job["reply_to"] = json!("replies.p1");
    publish_json(&js, &job).await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.subject.as_str(), "replies.p1");
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"double": 4}));
    assert_eq!(
        result,
        stored(&js, "p1").await.unwrap(),
        "the reply is the stored result"
    );

    // An API action, MessagePack in: MessagePack stored and replied.
    let job = json!({
        "id": "a1",
        "action": {"name": "stock", "type": "api", "api": {"method": "GET", "base_url": format!("http://{upstream}"), "path": "/stock/$sku"}},
        "args": {"sku": "X-1"},
        "reply_to": "replies.a1",
    });
    publish(
        &js,
        "a1",
        "application/msgpack",
        rmp_serde::to_vec_named(&job).unwrap(),
    )
    .await;
    let reply = next_reply(&mut replies).await;
    let (content_type, result) = decode_reply(&reply);
    assert_eq!(content_type, "application/msgpack");
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"sku": "X-1", "qty": 7}));
    assert_eq!(stored(&js, "a1").await.unwrap()["output"]["qty"], 7);

    // The same id again, now with another script: not run again; the stored result is
    // announced to the new reply_to, in the new request's encoding (JSON).
    let mut again = python_job("p1", "def execute_action(c):\n    return 'second run'\n");
    again["reply_to"] = json!("replies.p1again");
    // Past the jobs stream's duplicate window this would be a new message; inside it the
    // publish is dropped, so use a different Nats-Msg-Id to reach the worker.
    publish(
        &js,
        "p1-retry",
        "application/json",
        again.to_string().into_bytes(),
    )
    .await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.subject.as_str(), "replies.p1again");
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(result["output"], json!({"double": 4}), "{result}");
    assert_eq!(results_count(&js).await, 2);

    // Undecodable, invalid, and an id that cannot be a subject: rejected, stored, acked.
    publish(&js, "bad1", "application/json", b"{not json".to_vec()).await;
    let result = wait_stored(&js, "bad1", Duration::from_secs(30)).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot decode the job"),
        "{result}"
    );
    publish(&js, "bad2", "text/plain", b"{}".to_vec()).await;
    let result = wait_stored(&js, "bad2", Duration::from_secs(30)).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{result}"
    );
    let spaced = python_job("has space", "def execute_action(c):\n    return 1\n");
    publish(
        &js,
        "has space",
        "application/json",
        spaced.to_string().into_bytes(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while results_count(&js).await < 5 {
        assert!(Instant::now() < deadline, "the bad id got no result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let results = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    let mut found = None;
    for seq in 1..=5 {
        if let Ok(m) = results.direct_get(seq).await
            && m.subject.starts_with("actions.results._seq.")
        {
            found = Some(serde_json::from_slice::<Value>(&m.payload).unwrap());
        }
    }
    let found = found.expect("a result under actions.results._seq.<n>");
    assert_eq!(found["job_id"], "has space");
    assert!(
        found["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be used in the result's subject"),
        "{found}"
    );
    // A job that decodes but breaks a rule: its rejection goes to its reply_to as well.
    let mut bad_tenant = python_job("bad3", "def execute_action(c):\n    return 1\n");
    bad_tenant["tenant"] = json!("no.dots");
    bad_tenant["reply_to"] = json!("replies.bad3");
    publish_json(&js, &bad_tenant).await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.subject.as_str(), "replies.bad3");
    let (_, result) = decode_reply(&reply);
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tenant:")
    );
    // `_seq` is reserved for results of jobs without a usable id.
    let mut reserved = python_job("_seq.1", "def execute_action(c):\n    return 1\n");
    reserved["reply_to"] = json!("replies.reserved");
    publish_json(&js, &reserved).await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.subject.as_str(), "replies.reserved");
    let (_, result) = decode_reply(&reply);
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("_seq"),
        "{result}"
    );

    // A job id is never a way into another tenant's result.
    let mut acme = python_job(
        "shared-1",
        "def execute_action(c):\n    return 'acme secret'\n",
    );
    acme["tenant"] = json!("acme");
    acme["reply_to"] = json!("replies.acme");
    publish_json(&js, &acme).await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(decode_reply(&reply).1["output"], "acme secret");
    let mut globex = python_job("shared-1", "def execute_action(c):\n    return 'mine'\n");
    globex["tenant"] = json!("globex");
    globex["reply_to"] = json!("replies.globex");
    publish(
        &js,
        "shared-1-globex",
        "application/json",
        globex.to_string().into_bytes(),
    )
    .await;
    let reply = next_reply(&mut replies).await;
    assert_eq!(reply.subject.as_str(), "replies.globex");
    let (_, result) = decode_reply(&reply);
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(!result.to_string().contains("acme secret"), "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another tenant's job"),
        "{result}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let info = consumer_info(&js).await;
    assert_eq!(info.num_ack_pending, 0, "every job acked");
    assert_eq!(info.num_pending, 0);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_burst_of_1000_jobs_each_with_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let config = worker_config(&nats.url, "");
    let a = Worker::start(&dir.path().join("a"), &config).await;
    let b = Worker::start(&dir.path().join("b"), &config).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let mut replies = client.subscribe("burst").await.unwrap();
    let code = "def execute_action(c):\n    return c['args']['n']\n";
    let mut acks = vec![];
    for n in 0..1000 {
        let mut job = python_job(&format!("burst-{n}"), code);
        job["args"] = json!({"n": n});
        job["reply_to"] = json!("burst");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("burst-{n}").as_str());
        acks.push(
            js.publish_with_headers("actions.jobs.burst", headers, job.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    while seen.len() < 1000 {
        let reply = tokio::time::timeout(Duration::from_secs(60), replies.next())
            .await
            .expect("a result for every job within a minute of the last")
            .unwrap();
        let result: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(result["status"], "ok", "{result}");
        let id = result["job_id"].as_str().unwrap().to_string();
        assert_eq!(
            format!("burst-{}", result["output"]),
            id,
            "the output is the job's own"
        );
        assert!(seen.insert(id.clone()), "a second result for {id}");
        *by_worker
            .entry(result["worker"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(results_count(&js).await, 1000);
    assert_eq!(by_worker.len(), 2, "both workers took jobs: {by_worker:?}");
    // No further announcements: each job had exactly one.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), replies.next())
            .await
            .is_err()
    );
    let info = lane_info(&js, "burst").await;
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    assert!(a.terminate().await.success());
    assert!(b.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_worker_is_redelivered_and_has_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let (url, hits) = slow_server(Duration::from_secs(1)).await;
    let config = worker_config(&nats.url, "");
    let first = Worker::start(&dir.path().join("a"), &config).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    publish_json(&js, &slow_job("k1", &url)).await;
    wait_hits(&hits, 1, Duration::from_secs(30)).await;
    let first_pid = first.pid();
    first.kill().await;
    let second = Worker::start(&dir.path().join("b"), &config).await;
    let result = wait_stored(&js, "k1", Duration::from_secs(30)).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"slow": true}));
    assert_eq!(result["attempt"], 2);
    assert!(
        result["worker"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", second.pid())),
        "{result}"
    );
    assert_ne!(second.pid(), first_pid);
    let scrape = common::scrape(&second.admin.clone().unwrap()).await;
    assert!(
        scrape.contains("\naction_worker_redeliveries_total 1\n"),
        "{scrape}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(results_count(&js).await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(consumer_info(&js).await.num_ack_pending, 0);
    assert!(second.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuel_limit_is_one_result_and_never_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let worker = Worker::start(dir.path(), &worker_config(&nats.url, "")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let mut job = python_job(
        "f1",
        "def execute_action(c):\n    while True:\n        pass\n",
    );
    job["action"]["limits"] = json!({"fuel": 20_000_000});
    publish_json(&js, &job).await;
    let result = wait_stored(&js, "f1", Duration::from_secs(30)).await;
    assert_eq!(result["status"], "limit_exceeded");
    assert_eq!(result["error"]["limit"], "fuel");
    // Well past ack_wait: acked once, never delivered again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let info = consumer_info(&js).await;
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.delivered.consumer_sequence, 1, "delivered once");
    assert_eq!(results_count(&js).await, 1);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_every_worker_ends_failed_after_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let (url, hits) = slow_server(Duration::from_secs(30)).await;
    let config = worker_config(&nats.url, "max_attempts = 2\n");
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let mut replies = client.subscribe("doomed").await.unwrap();
    let mut job = slow_job("d1", &url);
    job["reply_to"] = json!("doomed");
    for attempt in 1..=2 {
        let worker = Worker::start(&dir.path().join(format!("w{attempt}")), &config).await;
        if attempt == 1 {
            publish_json(&js, &job).await;
        }
        wait_hits(&hits, attempt, Duration::from_secs(30)).await;
        worker.kill().await;
    }
    let last = Worker::start(&dir.path().join("w3"), &config).await;
    let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
        .await
        .expect("a result after the last attempt")
        .unwrap();
    let result: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(result["status"], "failed", "{result}");
    assert_eq!(result["attempt"], 3);
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delivered 3 times"),
        "{result}"
    );
    assert_eq!(stored(&js, "d1").await.unwrap(), result);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the third delivery is not run"
    );
    // Terminated: not delivered again, nothing pending.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let info = consumer_info(&js).await;
    assert_eq!((info.num_ack_pending, info.num_pending), (0, 0));
    assert_eq!(info.delivered.consumer_sequence, 3);
    assert!(last.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_gets_its_result_across_a_nats_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&dir.path().join("nats")).await;
    let (url, _hits) = slow_server(Duration::from_millis(200)).await;
    let worker = Worker::start(dir.path(), &worker_config(&nats.url, "")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let total = 200;
    for n in 0..total {
        publish_json(&js, &slow_job(&format!("r{n}"), &url)).await;
    }
    // Under load (8 at a time, 200 ms each): restart the server mid-way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while results_count(&js).await < 40 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nats.restart(Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(mut stream) = js.get_stream("ACTIONS_RESULTS").await
            && let Ok(info) = stream.info().await
            && info.state.messages >= total
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every job got a result after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in 0..total {
        let result = stored(&js, &format!("r{n}"))
            .await
            .expect("a stored result");
        assert_eq!(result["status"], "ok", "{result}");
    }
    assert_eq!(results_count(&js).await, total);
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_and_takes_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let (url, hits) = slow_server(Duration::from_millis(1500)).await;
    let worker = Worker::start(
        dir.path(),
        &worker_config(&nats.url, "max_concurrent_jobs = 1\n"),
    )
    .await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    publish_json(&js, &slow_job("g1", &url)).await;
    wait_hits(&hits, 1, Duration::from_secs(30)).await;
    publish_json(&js, &slow_job("g2", &url)).await;
    let status = worker.terminate().await;
    assert!(status.success(), "{status}");
    let result = stored(&js, "g1")
        .await
        .expect("the running job finished and was stored");
    assert_eq!(result["status"], "ok", "{result}");
    assert!(
        stored(&js, "g2").await.is_none(),
        "no new job after SIGTERM"
    );
    let info = consumer_info(&js).await;
    assert_eq!(
        info.num_pending + info.num_ack_pending as u64,
        1,
        "g2 is left for another worker"
    );
    // Another worker takes it.
    let next = Worker::start(dir.path(), &worker_config(&nats.url, "")).await;
    let result = wait_stored(&js, "g2", Duration::from_secs(30)).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert!(next.terminate().await.success());
}

/// A stream and shared consumer as a worker before lanes left them: the consumer is deleted,
/// the job an old replica held goes back to the stream, and every job is taken through the
/// lanes (found by the survey: they were stored before the worker started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_replaces_the_consumer_that_older_versions_shared() {
    use jetstream::consumer::{AckPolicy, pull};
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "ACTIONS_JOBS".into(),
            subjects: vec!["actions.jobs.>".into()],
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    let shared: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("action-workers".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    let code = "def execute_action(c):\n    return c['args']['x'] * 2\n";
    for id in ["old-1", "old-2"] {
        publish_json(&js, &python_job(id, code)).await;
    }
    // An old replica holds the first job, unacked, when the new worker starts.
    let mut held = shared.fetch().max_messages(1).messages().await.unwrap();
    let held = held.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&held.payload).contains("old-1"));

    let worker = Worker::start(dir.path(), &worker_config(&nats.url, "")).await;
    for id in ["old-1", "old-2"] {
        let result = wait_stored(&js, id, Duration::from_secs(30)).await;
        assert_eq!(result["status"], "ok", "{result}");
        assert_eq!(result["output"], 4);
    }
    let mut stream = js.get_stream("ACTIONS_JOBS").await.unwrap();
    assert!(
        stream.consumer_info("action-workers").await.is_err(),
        "the shared consumer is gone"
    );
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 0, "both jobs acked");
    let republish = info.config.republish.clone().expect("the doorbell is set");
    assert_eq!(
        (republish.destination.as_str(), republish.headers_only),
        ("actions.queued.>", true)
    );
    // A new job rings the doorbell: its headers, without its payload, on actions.queued.
    let mut doorbell = client.subscribe("actions.queued.>").await.unwrap();
    publish_json(&js, &python_job("new-1", code)).await;
    let rung = tokio::time::timeout(Duration::from_secs(5), doorbell.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rung.subject.as_str(), "actions.queued.default");
    assert!(rung.payload.is_empty());
    let headers = rung.headers.unwrap();
    assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str(), "new-1");
    let result = wait_stored(&js, "new-1", Duration::from_secs(5)).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert!(worker.terminate().await.success());
}
