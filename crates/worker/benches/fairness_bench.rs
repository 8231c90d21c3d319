//! Fair shares of one worker, side by side in one run (docs/benchmarks.md, "Fair shares"):
//! - a quiet tenant's request-reply latency alone, and beside another tenant keeping 64 jobs
//!   of `while True: pass` (2 s timeout each) in flight;
//! - a durable job's latency alone, and behind another tenant's backlog of CPU-heavy jobs;
//! - one tenant's throughput alone (trivial jobs, 64 in flight), to compare builds.
//!
//!     make build && cargo bench -p action-worker --bench fairness_bench
//!
//! Env: `N` quiet jobs per row (default 200), `BACKLOG` durable backlog (default 1500),
//! `WORKER_BIN` another build of the worker (before/after in one sitting), `ONLY` a row's
//! name part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use action_worker_tests::bench::ReleaseWorker;
use action_worker_tests::nats::submit_json;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn python(id: &str, tenant: &str, code: &str, timeout_ms: u64) -> Value {
    json!({"id": id, "tenant": tenant, "timeout_ms": timeout_ms,
           "action": {"name": "bench", "type": "python", "python": {"code": code}}})
}

const TRIVIAL: &str = "def execute_action(context):\n    return {'ok': True}\n";
const SPIN: &str = "def execute_action(context):\n    while True:\n        pass\n";
/// About 40 ms of CPU.
const HEAVY: &str = "def execute_action(context):\n    x = 0\n    for i in range(600000):\n        x += i\n    return x\n";

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// `n` jobs of the quiet tenant, one at a time: p50 and p99 in ms, and how many were ok.
async fn quiet(client: &async_nats::Client, n: usize) -> (f64, f64, usize) {
    let mut times = vec![];
    let mut ok = 0;
    for i in 0..n {
        let job = python(&format!("quiet-{i}"), "quiet", TRIVIAL, 30_000);
        let started = Instant::now();
        let reply = client
            .request("actions.run", job.to_string().into())
            .await
            .unwrap();
        times.push(started.elapsed());
        let result: Value = serde_json::from_slice(&reply.payload).unwrap();
        ok += usize::from(result["status"] == "ok");
    }
    let (p50, p99) = percentiles(times);
    (p50, p99, ok)
}

/// Keeps `in_flight` spinning jobs of the noisy tenant going until `stop`; how many answered.
fn flood(
    client: &async_nats::Client,
    in_flight: usize,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..in_flight)
        .map(|k| {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = 0;
                let mut i = 0;
                while !stop.is_cancelled() {
                    let job = python(&format!("noisy-{k}-{i}"), "noisy", SPIN, 2000);
                    if client
                        .request("actions.run", job.to_string().into())
                        .await
                        .is_ok()
                    {
                        answered += 1;
                    }
                    i += 1;
                }
                answered
            })
        })
        .collect()
}

/// Publishes a durable job of `tenant` with its result to `reply_to`.
async fn submit(
    js: &async_nats::jetstream::Context,
    id: &str,
    tenant: &str,
    code: &str,
    reply_to: &str,
) {
    let mut job = python(id, tenant, code, 30_000);
    job["reply_to"] = json!(reply_to);
    submit_json(js, &format!("actions.jobs.{tenant}"), &job).await;
}

/// `n` durable jobs of tenant live published at once, behind what is in the stream: p50 and
/// p99 from publish to result, in ms.
async fn live(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    n: usize,
    tag: &str,
) -> (f64, f64) {
    let inbox = client.new_inbox();
    let mut results = client.subscribe(format!("{inbox}.*")).await.unwrap();
    let started = Instant::now();
    for i in 0..n {
        submit(
            js,
            &format!("live-{tag}-{i}"),
            "live",
            TRIVIAL,
            &format!("{inbox}.{i}"),
        )
        .await;
    }
    let mut times = vec![];
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(600), results.next())
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    percentiles(times)
}

/// One tenant's trivial jobs, 64 in flight: jobs per second.
async fn lone_rate(client: &async_nats::Client, n: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|k| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..n / 64 {
                    let job = python(&format!("lone-{k}-{i}"), "lone", TRIVIAL, 30_000);
                    client
                        .request("actions.run", job.to_string().into())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (n / 64 * 64) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, backlog) = (env("N", 200), env("BACKLOG", 1500));
    let only = std::env::var("ONLY").unwrap_or_default();
    let row = |name: &str| only.is_empty() || name.contains(only.as_str());
    let dir = tempfile::tempdir().unwrap();
    // The default configuration, as a new user runs it; limits.max lets the spinning jobs
    // ask for their 2 s.
    let worker = ReleaseWorker::start(dir.path(), "", "").await;
    let client = async_nats::connect(&worker.url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    println!("worker: {}", ReleaseWorker::binary().display());
    quiet(&client, 20).await; // warm-up

    if row("quiet") {
        let (p50, p99, _) = quiet(&client, n).await;
        println!("quiet tenant alone:                       p50 {p50:8.2} ms  p99 {p99:8.2} ms");
        let stop = CancellationToken::new();
        let noisy = flood(&client, 64, &stop);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (p50, p99, ok) = quiet(&client, n).await;
        stop.cancel();
        let mut answered = 0;
        for task in noisy {
            answered += task.await.unwrap();
        }
        println!(
            "quiet tenant beside 64 spinning jobs:     p50 {p50:8.2} ms  p99 {p99:8.2} ms  ({ok}/{n} ok; {answered} noisy jobs answered meanwhile)"
        );
    }
    if row("heavy") {
        let mut times = vec![];
        for i in 0..n / 4 {
            let job = python(&format!("heavy-{i}"), "heavy", HEAVY, 30_000);
            let started = Instant::now();
            client
                .request("actions.run", job.to_string().into())
                .await
                .unwrap();
            times.push(started.elapsed());
        }
        let (p50, p99) = percentiles(times);
        println!("CPU-heavy job alone (~40 ms of CPU):      p50 {p50:8.2} ms  p99 {p99:8.2} ms");
    }
    if row("lone") {
        let rate = lone_rate(&client, 64 * 40).await;
        println!("one tenant alone, 64 in flight:           {rate:8.0} jobs/s");
    }
    if row("durable") {
        live(&client, &js, 10, "warm-up").await;
        let (p50, p99) = live(&client, &js, 10, "alone").await;
        println!("durable job alone:                        p50 {p50:8.2} ms  p99 {p99:8.2} ms");
        let sink = client.new_inbox();
        let started = Instant::now();
        for i in 0..backlog {
            submit(&js, &format!("bulk-{i}"), "bulk", HEAVY, &sink).await;
        }
        let published = started.elapsed().as_secs_f64();
        let (p50, p99) = live(&client, &js, 10, "behind").await;
        println!(
            "durable job behind {backlog} heavy jobs:   p50 {p50:8.2} ms  p99 {p99:8.2} ms  (backlog published in {published:.1} s)"
        );
    }
    worker.stop().await;
}
