//! Jobs over NATS through a running `action-worker serve` (the release binary, on its
//! embedded nats-server): request-reply latency at one client and throughput with 16 and 64 in
//! flight, and durable-path throughput (a burst published to ACTIONS_JOBS, every result
//! awaited), for a trivial Python action and an API action. The worker's CPU time per job is
//! read from /proc.
//!
//!     make build && cargo bench -p action-worker --bench nats_bench    # env N (default 1000)
//!
//! `ONLY=<part of a row's name>` runs that row alone; `WORKER_BIN=<path>` runs another build
//! of the worker (with `ACTION_WORKER__RUNTIME__COMPONENT` for its runtime), for before/after
//! comparisons in one sitting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use action_worker_tests::bench::ReleaseWorker;

async fn measure(
    client: &async_nats::Client,
    job: &Value,
    n: usize,
    in_flight: usize,
) -> (f64, Duration, Duration) {
    let payload: bytes::Bytes = job.to_string().into();
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight {
        let client = client.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            for i in 0..n / in_flight {
                let t = Instant::now();
                let reply = client.request("actions.run", payload.clone()).await;
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(e) => panic!("request {i}: {e}"),
                };
                let result: Value = serde_json::from_slice(&reply.payload).unwrap();
                assert_eq!(result["status"], "ok", "{result}");
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut times = vec![];
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    times.sort();
    (
        times.len() as f64 / wall.as_secs_f64(),
        times[times.len() / 2],
        times[times.len() * 99 / 100],
    )
}

/// Seconds the worker's processes spent from a job's arrival to its result, summed over all
/// jobs so far (`action_worker_job_duration_seconds_sum` on the admin port, every kind).
async fn worker_seconds(admin: &str) -> f64 {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("action_worker_job_duration_seconds_sum"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

/// User plus system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Publishes `n` copies of `job` (fresh ids) to ACTIONS_JOBS with a reply subject, and
/// returns jobs per second until the last result arrived.
async fn durable_rate(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    job: &Value,
    n: usize,
) -> f64 {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let start = Instant::now();
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let mut job = job.clone();
        let id = format!(
            "bench-{tag}-{}-{i}",
            job["action"]["name"].as_str().unwrap()
        );
        job["id"] = json!(id);
        job["reply_to"] = json!(inbox);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        acks.push(
            js.publish_with_headers("actions.jobs.bench", headers, job.to_string().into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    for _ in 0..n {
        let reply = tokio::time::timeout(Duration::from_secs(60), replies.next())
            .await
            .unwrap()
            .unwrap();
        let result: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(result["status"], "ok", "{result}");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Durable jobs one at a time (each published, its result awaited on `reply_to`): the
/// median time from publishing to the result.
async fn durable_p50(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    job: &Value,
    n: usize,
) -> Duration {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let mut job = job.clone();
        let id = format!("lat-{}", client.new_inbox().replace('.', "-"));
        job["id"] = json!(id);
        job["reply_to"] = json!(inbox);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let t = Instant::now();
        js.publish_with_headers("actions.jobs.bench", headers, job.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .unwrap()
            .unwrap();
        times.push(t.elapsed());
        let result: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert_eq!(result["status"], "ok", "{result}");
    }
    times.sort();
    times[n / 2]
}

/// The journal's cost on the durable path: the median durable job with 0 and with 4 HTTP
/// calls, on a worker with `nats.journal` on and one with it off, in alternating rounds.
/// Per call: (on − off with 4 calls − (on − off with none)) / 4; per job: on − off with none
/// (the read at open and the input written at the end).
async fn journal_cost(upstream: std::net::SocketAddr, n: usize) {
    let calls = |k: usize| {
        json!({"id": "b", "action": {"name": "calls", "type": "python", "python": {"code": format!(
            "import requests\ndef execute_action(context):\n    return [requests.get('http://{upstream}/stock/1').json() for _ in range({k})]\n")}}})
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let on = ReleaseWorker::start(dirs[0].path(), "max_concurrent_jobs = 16", "").await;
    let off = ReleaseWorker::start(
        dirs[1].path(),
        "max_concurrent_jobs = 16\njournal = false",
        "",
    )
    .await;
    let mut sides = vec![];
    for worker in [&on, &off] {
        let client = async_nats::connect(&worker.url).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        durable_p50(&client, &js, &calls(4), 50).await; // warm-up
        sides.push((client, js));
    }
    let (mut none, mut four) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 0..4 {
        for side in [round % 2, 1 - round % 2] {
            let (client, js) = &sides[side];
            none[side].push(
                durable_p50(client, js, &calls(0), n / 4)
                    .await
                    .as_secs_f64()
                    * 1e3,
            );
            four[side].push(
                durable_p50(client, js, &calls(4), n / 4)
                    .await
                    .as_secs_f64()
                    * 1e3,
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (none_on, none_off) = (median(&mut none[0]), median(&mut none[1]));
    let (four_on, four_off) = (median(&mut four[0]), median(&mut four[1]));
    println!(
        "journal (durable, one at a time): no calls p50 {none_on:.3} ms on / {none_off:.3} ms off | \
         4 HTTP calls p50 {four_on:.3} ms on / {four_off:.3} ms off | per job {:.3} ms, per call {:.3} ms",
        none_on - none_off,
        ((four_on - four_off) - (none_on - none_off)) / 4.0
    );
    on.stop().await;
    off.stop().await;
}

/// Tracing's cost: request-reply on a worker exporting every span (`[telemetry]` at a
/// loopback OTLP sink, sampled at 100 %) beside one that does not, in alternating rounds.
async fn tracing_cost(n: usize) {
    let sink = Router::new().route(
        "/v1/traces",
        axum::routing::post(|| async {
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sink).await.unwrap() });
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let traced =
        format!("[telemetry]\notlp_endpoint = \"http://{otlp}/v1/traces\"\nsample_ratio = 1.0");
    let workers = [
        ReleaseWorker::start(dirs[0].path(), "max_concurrent_jobs = 64", "").await,
        ReleaseWorker::start(dirs[1].path(), "max_concurrent_jobs = 64", &traced).await,
    ];
    let job = json!({"id": "b", "action": {"name": "trivial", "type": "python",
        "python": {"code": "def execute_action(context):\n    return {'ok': True}\n"}}});
    let mut clients = vec![];
    for worker in &workers {
        let client = async_nats::connect(&worker.url).await.unwrap();
        measure(&client, &job, n / 4, 1).await; // warm-up
        clients.push(client);
    }
    let (mut p50, mut rate) = ([vec![], vec![]], [vec![], vec![]]);
    for round in 0..4 {
        for side in [round % 2, 1 - round % 2] {
            let (_, median, _) = measure(&clients[side], &job, n / 2, 1).await;
            p50[side].push(median.as_secs_f64() * 1e3);
            rate[side].push(measure(&clients[side], &job, n, 16).await.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    println!(
        "tracing (trivial Python, request-reply): off p50 {:.3} ms, 16 in flight {:.0} jobs/s | \
         on (100 %, OTLP to loopback) p50 {:.3} ms, 16 in flight {:.0} jobs/s",
        median(&mut p50[0]),
        median(&mut rate[0]),
        median(&mut p50[1]),
        median(&mut rate[1]),
    );
    for worker in workers {
        worker.stop().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let app = Router::new().route(
        "/stock/{id}",
        get(|| async { axum::Json(json!({"inStock": true})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || "journal".contains(only.as_str()) {
        journal_cost(upstream, n).await;
    }
    if only.is_empty() || "tracing".contains(only.as_str()) {
        tracing_cost(n).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let worker = ReleaseWorker::start(dir.path(), "max_concurrent_jobs = 64", "").await;
    let (url, admin) = (worker.url.clone(), worker.admin.clone());
    let client = async_nats::connect(&url).await.unwrap();
    let python = json!({"id": "b", "action": {"name": "trivial", "type": "python",
        "python": {"code": "def execute_action(context):\n    return {'ok': True}\n"}}});
    let api = json!({"id": "b", "action": {"name": "stock", "type": "api",
        "api": {"base_url": format!("http://{upstream}"), "path": "/stock/$id"}}, "args": {"id": "SKU-1"}});
    let http = json!({"id": "b", "action": {"name": "fetch", "type": "python",
        "python": {"code": format!("import requests\ndef execute_action(context):\n    return requests.get('http://{upstream}/stock/1').json()\n")}}});
    let pid = worker.pid();
    let js = async_nats::jetstream::new(client.clone());
    for (label, job) in [
        ("trivial Python action", &python),
        ("Python + requests.get", &http),
        ("API action", &api),
    ] {
        if !only.is_empty() && !label.contains(only.as_str()) {
            continue;
        }
        measure(&client, job, n / 4, 1).await; // warm-up
        let cpu = cpu_seconds(pid);
        let inside = worker_seconds(&admin).await;
        let (_, p50, p99) = measure(&client, job, n, 1).await;
        let cpu1 = (cpu_seconds(pid) - cpu) / n as f64;
        let inside = (worker_seconds(&admin).await - inside) / n as f64;
        let (rate16, _, _) = measure(&client, job, n, 16).await;
        let cpu = cpu_seconds(pid);
        let (rate64, _, _) = measure(&client, job, n, 64).await;
        let cpu64 = (cpu_seconds(pid) - cpu) / n as f64;
        let durable = durable_rate(&client, &js, job, n).await;
        println!(
            "{label:<22} 1 client: p50 {:.3} ms  p99 {:.3} ms  (mean in the worker {:.3} ms)  worker CPU {:.2} ms/job | \
             16 in flight: {rate16:.0} jobs/s | 64 in flight: {rate64:.0} jobs/s, worker CPU {:.2} ms/job | \
             durable burst: {durable:.0} jobs/s",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            inside * 1e3,
            cpu1 * 1e3,
            cpu64 * 1e3,
        );
    }
    worker.stop().await;
}
