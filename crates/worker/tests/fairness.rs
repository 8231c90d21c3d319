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

/// When each job of `results` started (its output), in order; each must have ended ok.
fn starts(results: &[Value]) -> Vec<f64> {
    let mut starts: Vec<f64> = results
        .iter()
        .map(|result| {
            assert_eq!(result["status"], "ok", "{result}");
            result["output"].as_f64().unwrap()
        })
        .collect();
    starts.sort_by(f64::total_cmp);
    starts
}

/// [`starts`] of the results whose job id starts with `prefix`.
fn starts_of(by_id: &std::collections::HashMap<String, Value>, prefix: &str) -> Vec<f64> {
    let results: Vec<Value> = by_id
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .map(|(_, result)| result.clone())
        .collect();
    starts(&results)
}

/// Every job of the `waiting` tenant started before half of the `flood` that came before it.
/// (Shown with --nocapture: when each started, in seconds after the flood's first.)
fn assert_started_before_most(flood: &[f64], waiting: &[f64], who: &str, what: &str) {
    let first = flood[0];
    let relative = |starts: &[f64]| starts.iter().map(|t| t - first).collect::<Vec<_>>();
    eprintln!(
        "{what} starts: {:?}\n{who} starts: {:?}",
        relative(flood),
        relative(waiting)
    );
    let median = flood[flood.len() / 2];
    let last = waiting[waiting.len() - 1];
    assert!(
        last < median,
        "the {who} tenant's last job started at {last}, after half the {what} ({median})"
    );
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
    let mut quiet = vec![];
    for i in 0..8 {
        quiet.push(run_json(&client, &timed_job(&format!("quiet-{i}"), "quiet", 1)).await);
    }
    let mut flood_results = vec![];
    for job in flood {
        // Every flood job is answered too (`starts` checks each is ok).
        flood_results.push(job.await.unwrap());
    }
    // Served in turn, not in order of arrival: every quiet job started before most of the
    // flood that came before it (in arrival order, all 48 would have gone first).
    assert_started_before_most(&starts(&flood_results), &starts(&quiet), "quiet", "flood");
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

/// Submits `job` durably with its results sent to `inbox`.
async fn submit_to(js: &async_nats::jetstream::Context, inbox: &str, mut job: Value) {
    job["reply_to"] = json!(inbox);
    let tenant = job["tenant"].as_str().unwrap().to_string();
    submit_json(js, &format!("actions.jobs.{tenant}"), &job).await;
}

/// The next `n` results on `results`, by job id.
async fn collect(
    results: &mut async_nats::Subscriber,
    n: usize,
) -> std::collections::HashMap<String, Value> {
    let mut by_id = std::collections::HashMap::new();
    while by_id.len() < n {
        let next = tokio::time::timeout(
            Duration::from_secs(60),
            futures_util::StreamExt::next(results),
        )
        .await
        .expect("every job answered within 60 s")
        .unwrap();
        let result: Value = serde_json::from_slice(&next.payload).unwrap();
        by_id.insert(result["job_id"].as_str().unwrap().to_string(), result);
    }
    by_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_backlog_does_not_stand_in_front_of_another_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!(
        "[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 4\n[limits.max]\nfuel = 100000000000\n"
    );
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut results = client.subscribe(inbox.clone()).await.unwrap();

    // The backlog: 40 jobs of 100 ms in the stream, ten times what the worker runs at once.
    for i in 0..40 {
        submit_to(&js, &inbox, timed_job(&format!("bulk-{i}"), "bulk", 100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Then the live tenant's jobs, behind all of it in the stream.
    for i in 0..4 {
        submit_to(&js, &inbox, timed_job(&format!("live-{i}"), "live", 1)).await;
    }
    let by_id = collect(&mut results, 44).await;
    // In stream order all 40 would have started first; in turns, the live jobs start before
    // most of the backlog.
    let (bulk, live) = (starts_of(&by_id, "bulk-"), starts_of(&by_id, "live-"));
    assert_started_before_most(&bulk, &live, "live", "backlog");
    worker.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_jobs_over_quota_stay_in_the_stream_until_their_turn() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    let extra = format!(
        "[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 8\n[limits.max]\nfuel = 100000000000\n\
         [tenants.overrides.capped]\nmax_in_flight = 1\n\
         [tenants.overrides.slow]\njobs_per_second = 2.0\n\
         [tenants.actions.\"acts.busy\"]\nmax_in_flight = 1\n"
    );
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut results = client.subscribe(inbox.clone()).await.unwrap();

    for i in 0..3 {
        submit_to(&js, &inbox, timed_job(&format!("acts-{i}"), "acts", 300)).await;
    }
    for i in 0..3 {
        submit_to(
            &js,
            &inbox,
            timed_job(&format!("capped-{i}"), "capped", 400),
        )
        .await;
    }
    for i in 0..5 {
        submit_to(&js, &inbox, timed_job(&format!("slow-{i}"), "slow", 1)).await;
    }
    // While the first capped job runs, the others wait in the stream, not in the worker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream = js.get_stream("ACTIONS_JOBS").await.unwrap();
    let mut lane: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("action-workers-capped").await.unwrap();
    let info = lane.info().await.unwrap();
    assert_eq!(
        (info.num_ack_pending, info.num_pending),
        (1, 2),
        "one capped job in hand, two in the stream"
    );

    // Over quota is later, not refused: every job ends ok (`starts_of` checks).
    let by_id = collect(&mut results, 11).await;
    let starts = |prefix: &str| starts_of(&by_id, prefix);
    // One at a time: each capped job starts after the one before it ended.
    let capped = starts("capped-");
    for pair in capped.windows(2) {
        assert!(pair[1] - pair[0] >= 0.39, "{capped:?}");
    }
    // An action's quota, known once the job is pulled: its jobs wait in hand, one at a time.
    let acts = starts("acts-");
    for pair in acts.windows(2) {
        assert!(pair[1] - pair[0] >= 0.29, "{acts:?}");
    }
    // Two a second, after a burst of one second's worth: the fifth starts 1.5 s after the first.
    let slow = starts("slow-");
    assert!(slow[4] - slow[0] >= 1.3, "{slow:?}");
    worker.terminate().await;
}

/// A job of `tenant` that notes when it started, then sleeps `ms` (an I/O-bound job).
fn napping_job(id: &str, tenant: &str, ms: u64) -> Value {
    let code = format!(
        "import time\ndef execute_action(c):\n    start = time.time()\n    time.sleep({})\n    return start\n",
        ms as f64 / 1000.0
    );
    json!({"id": id, "tenant": tenant,
           "action": {"name": "nap", "type": "python", "python": {"code": code}}})
}

/// How many of `results` started within 150 ms of the first.
fn started_together(results: &[Value]) -> usize {
    let starts = starts(results);
    starts.iter().filter(|&&t| t - starts[0] < 0.15).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_tenant_runs_on_all_its_share_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let url = nats.url.clone();
    // 8 slots: one tenant holds up to 7 (max_share 0.875), the eighth is headroom.
    let extra = format!("[nats]\nurl = \"{url}\"\nmax_concurrent_jobs = 8\n");
    let worker = Worker::start(dir.path(), &extra).await;
    let client = async_nats::connect(&url).await.unwrap();

    let jobs: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                run_json(&client, &napping_job(&format!("rr-{i}"), "lone", 500)).await
            })
        })
        .collect();
    let mut results = vec![];
    for job in jobs {
        results.push(job.await.unwrap());
    }
    assert_eq!(started_together(&results), 7, "request-reply");

    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    for i in 0..10 {
        submit_to(&js, &inbox, napping_job(&format!("d-{i}"), "lone", 500)).await;
    }
    let by_id = collect(&mut replies, 10).await;
    let results: Vec<Value> = by_id.into_values().collect();
    assert_eq!(started_together(&results), 7, "durable");
    worker.terminate().await;
}
