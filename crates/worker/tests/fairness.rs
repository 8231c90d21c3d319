//! Tenants share a worker fairly, against a real nats-server: one tenant's flood does not
//! stand in front of another's jobs, and quotas refuse over capacity with the documented
//! error. (How fast, side by side, is the fairness benchmark's: docs/benchmarks.md.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use action_worker_tests as common;
use common::nats::{Nats, Worker, run_json, submit_json};
use serde_json::{Value, json};

/// A job of `tenant` that notes when it started, then computes for `busy_ms` of wall time.
fn timed_job(id: &str, tenant: &str, busy_ms: u64) -> Value {
    let code = format!(
        "import time\ndef execute_action(c):\n    start = time.time()\n    x = 0\n    while time.time() - start < {}:\n        x += 1\n    return start\n",
        busy_ms as f64 / 1000.0
    );
    json!({"id": id, "tenant": tenant, "timeout_ms": 20000,
           "action": {"name": "busy", "type": "python", "python": {"code": code},
                      "limits": {"timeout_ms": 20000, "fuel": 100_000_000_000u64}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_stand_in_front_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!(
        "[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 8\ndurable = false\n[limits.max]\nfuel = 100000000000\n"
    );
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();

    // The flood: 48 jobs of 300 ms each at once, six times what the worker runs at a time.
    let mut flood = vec![];
    for i in 0..48 {
        let client = client.clone();
        flood.push(tokio::spawn(async move {
            run_json(&client, &timed_job(&format!("flood-{i}"), "noisy", 300)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile the quiet tenant's jobs, one at a time.
    let mut quiet_starts = vec![];
    for i in 0..8 {
        let result = run_json(&client, &timed_job(&format!("quiet-{i}"), "quiet", 1)).await;
        assert_eq!(result["status"], "ok", "{result}");
        quiet_starts.push(result["output"].as_f64().unwrap());
    }
    let mut flood_starts = vec![];
    for job in flood {
        let result = job.await.unwrap();
        assert_eq!(
            result["status"], "ok",
            "every flood job is answered too: {result}"
        );
        flood_starts.push(result["output"].as_f64().unwrap());
    }
    flood_starts.sort_by(f64::total_cmp);
    // Served in turn, not in order of arrival: every quiet job started before most of the
    // flood that came before it (in arrival order, all 48 would have gone first).
    let median = flood_starts[flood_starts.len() / 2];
    let first = flood_starts[0];
    // Shown with --nocapture: when each started, in seconds after the flood's first.
    eprintln!(
        "flood starts: {:?}\nquiet starts: {:?}",
        flood_starts.iter().map(|t| t - first).collect::<Vec<_>>(),
        quiet_starts.iter().map(|t| t - first).collect::<Vec<_>>()
    );
    let last_quiet = quiet_starts.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        last_quiet < median,
        "the quiet tenant's last job started at {last_quiet}, after half the flood ({median})"
    );
    worker.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_over_capacity_with_the_documented_error() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!(
        "[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 8\ndurable = false\n[limits.max]\nfuel = 100000000000\n\
         [tenants]\nqueue_deadline_ms = 300\n\
         [tenants.overrides.capped]\nmax_in_flight = 1\n\
         [tenants.overrides.slow]\njobs_per_second = 1.0\n"
    );
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();

    // In flight: one runs, the others wait past the queue deadline and are refused.
    let mut jobs = vec![];
    for i in 0..3 {
        let client = client.clone();
        jobs.push(tokio::spawn(async move {
            run_json(&client, &timed_job(&format!("capped-{i}"), "capped", 1000)).await
        }));
    }
    let mut ok = 0;
    for job in jobs {
        let result = job.await.unwrap();
        match result["status"].as_str() {
            Some("ok") => ok += 1,
            Some("rejected") => {
                assert_eq!(result["error"]["kind"], "over_capacity", "{result}");
                let message = result["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("tenant capped has 1 jobs running"),
                    "{message}"
                );
            }
            _ => panic!("{result}"),
        }
    }
    assert_eq!(ok, 1);

    // Per second: the first starts, the second would wait a second: past the deadline.
    let first = run_json(&client, &timed_job("slow-1", "slow", 1)).await;
    assert_eq!(first["status"], "ok", "{first}");
    let second = run_json(&client, &timed_job("slow-2", "slow", 1)).await;
    assert_eq!(second["status"], "rejected", "{second}");
    assert_eq!(second["error"]["kind"], "over_capacity");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may start 1 jobs per second"),
        "{second}"
    );
    // Other tenants are not held back.
    let other = run_json(&client, &timed_job("free-1", "free", 1)).await;
    assert_eq!(other["status"], "ok", "{other}");

    // The refusals are counted per tenant.
    let metrics = common::scrape(&worker.admin.clone().unwrap()).await;
    assert!(
        metrics.contains("action_worker_tenant_over_capacity_total{tenant=\"capped\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("action_worker_tenant_jobs_total{tenant=\"free\",status=\"ok\"} 1"),
        "{metrics}"
    );
    worker.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_queue_depth_is_shown_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!("[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 1\n");
    let worker = Worker::start(dir.path(), &extra).await;
    let admin = worker.admin.clone().unwrap();
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut results =
        futures_util::StreamExt::boxed(client.subscribe(inbox.clone()).await.unwrap());
    let code = "import time\ndef execute_action(c):\n    time.sleep(0.3)\n    return 1\n";
    for (tenant, n) in [("bulk", 4), ("tiny", 1)] {
        for i in 0..n {
            let id = format!("{tenant}-{i}");
            let job = json!({"id": id, "tenant": tenant, "reply_to": inbox,
                "action": {"name": "nap", "type": "python", "python": {"code": code}}});
            submit_json(&js, &format!("actions.jobs.{tenant}"), &job).await;
        }
    }
    // One runs at a time: the backlog is there to see, by tenant.
    let metrics = common::scrape(&admin).await;
    let depth = |tenant: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "action_worker_durable_pending{{tenant=\"{tenant}\"}} "
                ))
            })
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert!(depth("bulk").is_some_and(|n| n >= 3), "{metrics}");
    assert_eq!(depth("tiny"), Some(1), "{metrics}");
    for _ in 0..5 {
        tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::StreamExt::next(&mut results),
        )
        .await
        .unwrap();
    }
    // Every job acked: nothing waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = common::scrape(&admin).await;
    assert!(
        !metrics.contains("action_worker_durable_pending{tenant=\"bulk\"}"),
        "{metrics}"
    );
    worker.terminate().await;
}
