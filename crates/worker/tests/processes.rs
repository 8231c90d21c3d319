//! `runtime.processes`: `serve` runs copies of itself that share the work, answers for all of
//! them on its admin port, and never leaves one behind.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker};

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn share_jobs(client: &async_nats::Client, n: usize) -> HashSet<String> {
    let code = "def execute_action(c):\n    return c['args']['n']\n";
    let mut tasks = vec![];
    for i in 0..n {
        let client = client.clone();
        let job = json!({"id": format!("p{i}"), "action": {"name": "spread", "type": "python",
            "python": {"code": code}}, "args": {"n": i}});
        tasks.push(tokio::spawn(async move {
            let reply = client
                .request("actions.run", job.to_string().into())
                .await
                .unwrap();
            let result: Value = serde_json::from_slice(&reply.payload).unwrap();
            assert_eq!(result["output"], i, "{result}");
            result["worker"].as_str().unwrap().to_string()
        }));
    }
    let mut workers = HashSet::new();
    for task in tasks {
        workers.insert(task.await.unwrap());
    }
    workers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_jobs_and_the_parent_answers_for_both() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    // `processes = 1` from the common config is overridden by the environment rule.
    let extra = format!("[nats]\nurl = \"{}\"\nmax_concurrent_jobs = 4\n", nats.url);
    let config = common::write_config(dir.path(), &extra);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_action-worker"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("ACTION_WORKER__RUNTIME__PROCESSES", "2")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("action-worker: admin on ") {
            admin = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("serving actions.run") {
            assert!(line.ends_with("in 2 processes"), "{line}");
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let admin = admin.unwrap();
    let client = async_nats::connect(&nats.url).await.unwrap();
    let workers = share_jobs(&client, 200).await;
    assert_eq!(workers.len(), 2, "both processes ran jobs: {workers:?}");
    let parent = child.id().unwrap();
    let pids: Vec<u32> = workers
        .iter()
        .map(|w| w.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(pids.contains(&parent), "{pids:?}");
    let other = *pids.iter().find(|p| **p != parent).unwrap();
    // A child watches its stdin with one blocking read; a read per request once leaked a
    // thread per job until the blocking pool (512) was full and jobs hung.
    let threads: usize = std::fs::read_to_string(format!("/proc/{other}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        threads < 64,
        "process {other} has {threads} threads after 200 jobs"
    );

    let (ready, scrape) = (
        reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status(),
        reqwest::get(format!("{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(ready, 200);
    let total: f64 = scrape
        .lines()
        .filter(|l| l.starts_with("action_worker_jobs_total{action=\"spread\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        total, 200.0,
        "the parent's /metrics adds both processes:\n{scrape}"
    );
    assert!(
        scrape.contains("\naction_worker_job_slots_free 8\n"),
        "4 slots in each of 2 processes:\n{scrape}"
    );

    // A copy that dies (a crash, an OOM kill) is started again.
    std::process::Command::new("kill")
        .args(["-KILL", &other.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut replaced = None;
    while replaced.is_none() {
        assert!(
            Instant::now() < deadline,
            "the killed process was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready = reqwest::get(format!("{admin}/readyz"))
            .await
            .unwrap()
            .status();
        if ready == 200 {
            let workers = share_jobs(&client, 40).await;
            replaced = workers
                .iter()
                .map(|w| w.rsplit(':').next().unwrap().parse::<u32>().unwrap())
                .find(|p| *p != parent && *p != other);
        }
    }
    let other = replaced.unwrap();

    // SIGTERM stops both.
    std::process::Command::new("kill")
        .args(["-TERM", &parent.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(other) {
        assert!(
            Instant::now() < deadline,
            "process {other} outlived its parent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_killed_outright_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!("[nats]\nurl = \"{}\"\n", nats.url);
    let worker = Worker::start_with_env(
        dir.path(),
        &extra,
        &[("ACTION_WORKER__RUNTIME__PROCESSES", "2")],
    )
    .await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let workers = share_jobs(&client, 100).await;
    let parent: u32 = worker.pid().parse().unwrap();
    let others: Vec<u32> = workers
        .iter()
        .map(|w| w.rsplit(':').next().unwrap().parse().unwrap())
        .filter(|p| *p != parent)
        .collect();
    assert_eq!(others.len(), 1, "{workers:?}");
    worker.kill().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(others[0]) {
        assert!(
            Instant::now() < deadline,
            "process {} outlived its parent's SIGKILL",
            others[0]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
