//! The bench driver: a nats-server and a loopback HTTP server of its own, then each runner
//! in turn (one at a time, so they never compete for the cores), the same four actions
//! through each, and the worker's extra figures (memory per waiting job, start-up).
//!
//! `ROUNDS` (default 2) passes over the runners, in alternating order (A B C, then C B A, ...):
//! a machine whose speed drifts during the run (these shared machines do, by a factor of two
//! within minutes) then shifts every runner's mean alike, and the ratios are taken between
//! the means over the rounds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::sync::watch;

use crate::mem;

mod client;
mod per_runner;
mod report;
mod runners;
mod workload;

use client::*;
use per_runner::*;
use report::*;
use runners::*;
use workload::*;

const MIB: f64 = 1024.0 * 1024.0;
const CPU_N: u64 = 200_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Settings {
    n: usize,
    rounds: usize,
    n_process: usize,
    waiting: usize,
    hold_ms: u64,
    starts: usize,
    max_in_flight: usize,
    runners: String,
    bench_dir: PathBuf,
    root: PathBuf,
    worker_bin: PathBuf,
    venv_python: PathBuf,
    tmp: PathBuf,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The tree's memory, the median of `k` samples 50 ms apart, field by field.
async fn settled(pid: u32, k: usize) -> mem::Usage {
    let mut v = vec![];
    for _ in 0..k {
        v.push(mem::tree_usage(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mem::Usage {
        rss: median(v.iter().map(|u| u.rss).collect()),
        pss: median(v.iter().map(|u| u.pss).collect()),
        anon: median(v.iter().map(|u| u.anon).collect()),
    }
}

// ---------------------------------------------------------------------------------------

fn target(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

pub async fn run() {
    let bench_dir = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    );
    let root = bench_dir
        .join("../..")
        .canonicalize()
        .expect("the repository root");
    let home = std::env::var("HOME").unwrap_or_default();
    let n = env_usize("N", 500);
    let tmp = std::env::temp_dir().join(format!("alternatives-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("cannot create a temporary directory");
    let s = Settings {
        n,
        rounds: env_usize("ROUNDS", 2).max(1),
        n_process: env_usize("N_PROCESS", (n / 5).max(20)),
        waiting: env_usize("WAITING", 500),
        hold_ms: env_usize("HOLD_MS", 20_000) as u64,
        starts: env_usize("STARTS", 5).max(1),
        max_in_flight: env_usize("MAX_IN_FLIGHT", 64),
        runners: std::env::var("RUNNERS")
            .unwrap_or_else(|_| "ABC".into())
            .to_uppercase(),
        worker_bin: std::env::var("WORKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(home).join(".cache/action-worker/target/release/action-worker")
            }),
        venv_python: ensure_venv(&bench_dir),
        bench_dir,
        root,
        tmp,
    };
    assert!(
        s.worker_bin.exists(),
        "{} is missing: run `make build`",
        s.worker_bin.display()
    );
    compile_python(&s.venv_python, &s.bench_dir.join("python"));
    let python_version = std::process::Command::new(&s.venv_python)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let (release, release_rx) = watch::channel(false);
    let up = Upstream {
        held: Arc::default(),
        release: release_rx,
        hold: Duration::from_millis(s.hold_ms),
    };
    let app = Router::new()
        .route("/item/{id}", get(item))
        .route("/slow/{id}", get(slow))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the upstream failed")
    });

    let (mut nats, url) = start_nats(&s).await;
    let nats_pid = nats.id().unwrap_or(0);
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(120)))
        .connect(&url)
        .await
        .expect("cannot connect to the bench's nats-server");
    let actions = actions(port);
    println!(
        "alternatives-bench: {} cores, N = {} jobs per measurement (B: N_PROCESS = {}), runners {}, at most {} jobs in flight in each runner",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.n,
        s.n_process,
        s.runners,
        s.max_in_flight
    );
    let built = std::process::Command::new("date")
        .arg("-r")
        .arg(&s.worker_bin)
        .arg("+%Y-%m-%d %H:%M:%S")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "worker: {} (built {built}); B and C: {} ({}); nats-server {url}; upstream http://127.0.0.1:{port}",
        s.worker_bin.display(),
        s.venv_python.display(),
        python_version
    );

    let load_before = loadavg();
    let mut results: Vec<RunnerResult> = vec![];
    let mut waiting = None;
    let mut starts = vec![];
    let mut first_reply = Duration::ZERO;
    for round in 0..s.rounds {
        let mut order: Vec<char> = s.runners.chars().collect();
        if round % 2 == 1 {
            order.reverse();
        }
        println!(
            "\n==== round {} of {}: {}",
            round + 1,
            s.rounds,
            order.iter().collect::<String>()
        );
        for letter in order {
            match letter {
                'A' => {
                    let config =
                        worker_config(&s, &url, "worker", s.max_in_flight, s.max_in_flight.max(64));
                    let running = start_worker(&s, &config).await;
                    results.push(
                        bench_runner(
                            &client,
                            &running,
                            &actions,
                            'A',
                            "action-worker (wasmtime sandbox)",
                            s.n,
                            nats_pid,
                        )
                        .await,
                    );
                    running.stop().await;
                    if round > 0 {
                        continue;
                    }
                    let mut replies = vec![];
                    for _ in 0..s.starts {
                        let running = start_worker(&s, &config).await;
                        starts.push(running.ready);
                        replies.push(answering(&client, &running).await);
                        running.stop().await;
                    }
                    starts.sort();
                    replies.sort();
                    println!(
                        "\n== A. start-up with a warm compile cache, {} starts: \"serving\" after median {:.0} ms (min {:.0}, max {:.0}); first reply after median {:.0} ms (min {:.0}, max {:.0})",
                        starts.len(),
                        ms(starts[starts.len() / 2]),
                        ms(starts[0]),
                        ms(starts[starts.len() - 1]),
                        ms(replies[replies.len() / 2]),
                        ms(replies[0]),
                        ms(replies[replies.len() - 1])
                    );
                    first_reply = replies[replies.len() / 2];
                    waiting =
                        memory_per_waiting_job(&s, &client, &url, port, &up, &release, &actions[2])
                            .await;
                }
                'B' => {
                    let running = start_front(&s, &url, "process", "alt_b.run").await;
                    results.push(
                        bench_runner(
                            &client,
                            &running,
                            &actions,
                            'B',
                            "process per job (python3, no sandbox)",
                            s.n_process,
                            nats_pid,
                        )
                        .await,
                    );
                    running.stop().await;
                }
                'C' => {
                    let running = start_front(&s, &url, "inprocess", "alt_c.run").await;
                    results.push(
                        bench_runner(
                            &client,
                            &running,
                            &actions,
                            'C',
                            "in-process, unisolated (one python3)",
                            s.n,
                            nats_pid,
                        )
                        .await,
                    );
                    running.stop().await;
                }
                other => println!("unknown runner {other:?} in RUNNERS, skipped"),
            }
        }
    }
    println!(
        "\nload average (1, 5, 15 min) at the start: {load_before}; at the end: {} (other work on the machine shows here)",
        loadavg()
    );
    let _ = nats.kill().await;
    let _ = std::fs::remove_dir_all(&s.tmp);
    report(&s, &actions, &results, waiting, &starts, first_reply);
}
