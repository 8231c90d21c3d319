//! Jobs over NATS request-reply through a running `action-worker serve` (the release binary),
//! against a real nats-server on loopback: latency at one client and throughput with 16 in
//! flight, for a trivial Python action and an API action.
//!
//!     make build && cargo bench -p action-worker --bench nats_bench    # env N (default 1000)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

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
            for _ in 0..n / in_flight {
                let t = Instant::now();
                let reply = client
                    .request("actions.run", payload.clone())
                    .await
                    .unwrap();
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let root = root();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let binary = target.join("release/action-worker");
    assert!(
        binary.exists(),
        "{} is missing: run `make build`",
        binary.display()
    );

    let app = Router::new().route(
        "/stock/{id}",
        get(|| async { axum::Json(json!({"inStock": true})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\ncomponent = \"{}\"\ncache_dir = \"{}\"\n[egress]\nallow_private_cidrs = [\"127.0.0.1/32\"]\n\
             [nats]\nserver_binary = \"{}\"\ndata_dir = \"{}\"\nembedded_port = 0\nmax_concurrent_jobs = 16\n",
            root.join("build/action-runtime.wasm").display(),
            root.join("data/cache").display(),
            root.join(".venv/bin/nats-server").display(),
            dir.path().join("nats").display()
        ),
    )
    .unwrap();
    let mut worker = Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(worker.stdout.take().unwrap()).lines();
    let mut url = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("action-worker: started a local nats-server at ") {
            url = rest.split_whitespace().next().unwrap().to_string();
        }
        if line.contains("serving actions.run") {
            break;
        }
    }
    let client = async_nats::connect(&url).await.unwrap();
    let python = json!({"id": "b", "action": {"name": "trivial", "type": "python",
        "python": {"code": "def execute_action(context):\n    return {'ok': True}\n"}}});
    let api = json!({"id": "b", "action": {"name": "stock", "type": "api",
        "api": {"base_url": format!("http://{upstream}"), "path": "/stock/$id"}}, "args": {"id": "SKU-1"}});
    for (label, job) in [("trivial Python action", &python), ("API action", &api)] {
        measure(&client, job, n / 4, 1).await; // warm-up
        let (_, p50, p99) = measure(&client, job, n, 1).await;
        let (rate16, _, _) = measure(&client, job, n, 16).await;
        println!(
            "{label:<22} 1 client: p50 {:.3} ms  p99 {:.3} ms   16 in flight: {rate16:.0} jobs/s",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let pid = worker.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(5), worker.wait()).await;
}
