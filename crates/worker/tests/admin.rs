//! The admin port (`/healthz`, `/readyz`, `/metrics`) and the logs, against a real
//! nats-server and real jobs.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use action_worker_tests as common;
use common::nats::{Nats, Worker, run_json};

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn run(client: &async_nats::Client, job: Value) -> Value {
    run_json(client, &job).await
}

fn python(id: &str, code: &str) -> Value {
    json!({"id": id, "action": {"name": "probe", "type": "python", "python": {"code": code}}})
}

/// The value of the series `line_start` (name and labels) in a scrape.
fn value(scrape: &str, line_start: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(line_start)
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {line_start} in\n{scrape}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_follow_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&dir.path().join("nats")).await;
    let upstream = common::serve(
        Router::new().route("/ok", get(|| async { axum::Json(json!({"fine": true})) })),
        "127.0.0.1:0",
    )
    .await;
    let extra = format!("[nats]\nurl = \"{}\"\nmax_concurrent_jobs = 8\n", nats.url);
    let worker = Worker::start(dir.path(), &extra).await;
    let admin = worker.admin.clone().expect("the admin address is printed");
    assert_eq!(
        get_text(&format!("{admin}/healthz")).await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get_text(&format!("{admin}/readyz")).await,
        (200, "ready\n".into())
    );

    let client = async_nats::connect(&nats.url).await.unwrap();
    let result = run(
        &client,
        python("m1", "def execute_action(c):\n    return 1\n"),
    )
    .await;
    assert_eq!(result["status"], "ok");
    let mut hog = python(
        "m2",
        "def execute_action(c):\n    while True:\n        pass\n",
    );
    hog["action"]["limits"] = json!({"fuel": 20_000_000});
    assert_eq!(run(&client, hog).await["error"]["limit"], "fuel");
    let call = format!(
        "import requests\ndef execute_action(c):\n    a = requests.get('http://{upstream}/ok').status_code\n    \
         try:\n        requests.get('http://169.254.169.254/latest/meta-data/')\n    except requests.ConnectionError:\n        return a\n"
    );
    let result = run(&client, python("m3", &call)).await;
    assert_eq!(result["output"], 200, "{result}");
    let result = run(&client, json!({"id": "m4", "action": {"name": "nowhere"}})).await;
    assert_eq!(result["status"], "rejected");

    // A job's slot is given back just after its reply is sent: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(5);
    let scrape = loop {
        let (status, scrape) = get_text(&format!("{admin}/metrics")).await;
        assert_eq!(status, 200);
        if value(&scrape, "action_worker_job_slots_free ") == 8.0 || Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let jobs = |action: &str, status: &str| {
        value(
            &scrape,
            &format!(
                "action_worker_jobs_total{{action=\"{action}\",status=\"{status}\",path=\"request_reply\"}} "
            ),
        )
    };
    assert_eq!(jobs("probe", "ok"), 2.0);
    assert_eq!(jobs("probe", "limit_exceeded"), 1.0);
    assert_eq!(jobs("nowhere", "rejected"), 1.0);
    assert_eq!(
        value(&scrape, "action_worker_limit_trips_total{limit=\"fuel\"} "),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "action_worker_egress_requests_total{host=\"127.0.0.1\",outcome=\"2xx\"} "
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "action_worker_egress_requests_total{host=\"169.254.169.254\",outcome=\"denied\"} "
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "action_worker_egress_denials_total{rule=\"link-local\"} "
        ),
        1.0
    );
    // Three Python jobs ran (the warm-up job is not counted): fuel and memory observed.
    assert_eq!(
        value(
            &scrape,
            "action_worker_job_duration_seconds_count{kind=\"python\"} "
        ),
        3.0
    );
    assert_eq!(value(&scrape, "action_worker_job_fuel_count "), 3.0);
    assert!(value(&scrape, "action_worker_job_memory_peak_bytes_sum ") > 50.0 * 1048576.0);
    assert_eq!(value(&scrape, "action_worker_job_slots_free "), 8.0);
    assert_eq!(value(&scrape, "action_worker_jobs_in_flight "), 0.0);
    assert!(scrape.contains("# TYPE action_worker_job_duration_seconds histogram"));

    // NATS gone: not ready (but alive); back: ready again.
    nats.restart(Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = get_text(&format!("{admin}/readyz")).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_nats_and_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!("[nats]\nurl = \"{}\"\n", nats.url);
    let worker = Worker::start(dir.path(), &extra).await;
    let admin = worker.admin.clone().unwrap();
    // Kill the server and keep it down long enough to look.
    let restart = tokio::spawn(async move {
        nats.restart(Duration::from_secs(3)).await;
        nats
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = None;
    while Instant::now() < deadline {
        let (status, body) = get_text(&format!("{admin}/readyz")).await;
        if status == 503 {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = seen.expect("/readyz said 503 while NATS was down");
    assert!(body.contains("NATS is disconnected"), "{body}");
    assert_eq!(get_text(&format!("{admin}/healthz")).await.0, 200);
    let _nats = restart.await.unwrap();
    assert!(worker.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_job_id_and_never_the_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let config = common::write_config(
        dir.path(),
        &format!(
            "[nats]\nurl = \"{}\"\n[log]\nformat = \"json\"\nlevel = \"action_worker=debug,info\"\n",
            nats.url
        ),
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_action-worker"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = stdout.next_line().await.unwrap() {
        if line.contains("serving actions.run") {
            break;
        }
    }
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut job = python(
        "log-job-1",
        "def execute_action(c):\n    print(c['args']['card'])\n    return 'done'\n",
    );
    job["args"] = json!({"card": "4111-SECRET-ARG"});
    assert_eq!(run(&client, job).await["status"], "ok");
    let rejected = json!({"id": "log-job-2", "action": {"name": "absent"}, "args": {"card": "4111-SECRET-ARG"}});
    assert_eq!(run(&client, rejected).await["status"], "rejected");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut job_lines = 0;
    for line in stderr.lines() {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(
            !line.contains("4111-SECRET-ARG"),
            "an argument value in the logs: {line}"
        );
        if entry["span"]["name"] == "action.run" {
            let id = entry["span"]["job_id"].as_str().unwrap();
            assert!(id.starts_with("log-job-"), "{line}");
            job_lines += 1;
        }
    }
    assert!(job_lines >= 2, "a line per job at debug: {stderr}");
}
