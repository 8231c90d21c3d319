//! A worker on a three-node JetStream cluster of real nats-servers (routes on loopback), with
//! its streams and bucket at three replicas, losing a node under durable load: first the node
//! it is connected to, then (that one back) the node leading `ACTIONS_JOBS`. Every durable job
//! ends with one stored result and is answered on its `reply_to`; request-reply goes on
//! through the other nodes. The test prints how many request-reply jobs failed during each
//! loss and how long the worker took to serve again.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::{Value, json};

use action_worker_tests::nats::{Cluster, Worker, submit_json};

/// One request-reply job of a [`Prober`]: when it was sent, when it ended, whether `ok`.
type Outcome = (Instant, Instant, bool);

/// Request-reply jobs sent one after the other through node `url`, until stopped, each
/// answered `ok` within 500 ms or failed.
struct Prober {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

impl Prober {
    async fn start(url: &str) -> Self {
        let client = async_nats::connect(url).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (done, seen) = (stop.clone(), outcomes.clone());
        tokio::spawn(async move {
            let job = json!({"id": "probe", "action": {"name": "probe", "type": "python",
                "python": {"code": "def execute_action(context):\n    return 1\n"}}});
            while !done.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let asked = client.request("actions.run", job.to_string().into());
                let ok = match tokio::time::timeout(Duration::from_millis(500), asked).await {
                    Ok(Ok(reply)) => serde_json::from_slice::<Value>(&reply.payload)
                        .is_ok_and(|r| r["status"] == "ok"),
                    _ => false,
                };
                seen.lock().unwrap().push((sent, Instant::now(), ok));
                if !ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self { stop, outcomes }
    }

    /// Requests that failed after `from` (the loss), and how long after it the first request
    /// sent after it was answered.
    async fn after(&self, from: Instant) -> (usize, Duration) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let outcomes = self.outcomes.lock().unwrap().clone();
            let back = outcomes.iter().find(|(sent, _, ok)| *ok && *sent >= from);
            if let Some((_, answered, _)) = back {
                let failed = outcomes
                    .iter()
                    .filter(|(_, ended, ok)| !ok && *ended >= from && ended <= answered)
                    .count();
                return (failed, answered.duration_since(from));
            }
            assert!(Instant::now() < deadline, "request-reply never came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn stored_count(js: &jetstream::Context) -> u64 {
    match js.get_stream("ACTIONS_RESULTS").await {
        Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
        Err(_) => 0,
    }
}

async fn wait_stored(js: &jetstream::Context, at_least: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while stored_count(js).await < at_least {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} results stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The index of the node leading `stream` (named `n<i>`), asked until the cluster answers
/// (a node that just came back makes it busy for a moment).
async fn leader_of(js: &jetstream::Context, stream: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut handle) = js.get_stream(stream).await
            && let Ok(info) = handle.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader.trim_start_matches('n').parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no leader for {stream}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every stream and consumer has a leader and every replica is current: a node
/// that came back has caught up, so losing another leaves two that can elect. (Without it,
/// on a loaded machine, the next loss can leave a group with one current replica and no
/// leader for longer than the test waits.)
async fn wait_caught_up(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !caught_up(js).await {
        assert!(Instant::now() < deadline, "the cluster did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn caught_up(js: &jetstream::Context) -> bool {
    let Ok(names) = js
        .stream_names()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
    else {
        return false;
    };
    for name in names {
        let Ok(mut stream) = js.get_stream(&name).await else {
            return false;
        };
        let Ok(info) = stream.info().await else {
            return false;
        };
        if !current(info.cluster.as_ref()) {
            return false;
        }
        let consumers: Vec<_> = stream.consumers().collect().await;
        for consumer in consumers {
            let Ok(consumer) = consumer else {
                return false;
            };
            if !current(consumer.cluster.as_ref()) {
                return false;
            }
        }
    }
    true
}

fn current(cluster: Option<&jetstream::stream::ClusterInfo>) -> bool {
    cluster.is_some_and(|c| {
        c.leader.is_some() && c.replicas.iter().all(|peer| peer.current && !peer.offline)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_a_cluster_that_loses_nodes_answers_every_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&dir.path().join("cluster"), 3).await;
    let config = format!(
        "[nats]\nurl = \"{}\"\nstream_replicas = 3\nack_wait_ms = 3000\nmax_concurrent_jobs = 8\n",
        cluster.urls()
    );
    let _worker = Worker::start(&dir.path().join("w"), &config).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let client = async_nats::connect(urls.as_slice()).await.unwrap();
    let js = jetstream::new(client.clone());
    for stream in [
        "ACTIONS_JOBS",
        "ACTIONS_RESULTS",
        "ACTIONS_JOURNAL",
        "KV_ACTIONS",
    ] {
        let mut stream = js.get_stream(stream).await.unwrap();
        assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);
    }

    let total = 300;
    // The answers on reply_to, heard through every node (a client on a node that is lost
    // misses what is published while it reconnects; core NATS keeps nothing for it).
    let inbox = client.new_inbox();
    let answered = Arc::new(Mutex::new(HashSet::new()));
    for url in &urls {
        let listener = async_nats::connect(url.as_str()).await.unwrap();
        let mut replies = listener.subscribe(inbox.clone()).await.unwrap();
        listener.flush().await.unwrap();
        let seen = answered.clone();
        tokio::spawn(async move {
            let _listener = listener;
            while let Some(reply) = replies.next().await {
                let result: Value = serde_json::from_slice(&reply.payload).unwrap();
                assert_eq!(result["status"], "ok", "{result}");
                let id = result["job_id"].as_str().unwrap().to_string();
                seen.lock().unwrap().insert(id);
            }
        });
    }
    let code = "import time\ndef execute_action(context):\n    time.sleep(0.03)\n    return context['job']['id']\n";
    for n in 0..total {
        let id = format!("c-{n}");
        let job = json!({"id": id, "reply_to": inbox, "action": {"name": "slow", "type": "python", "python": {"code": code}}});
        submit_json(&js, "actions.jobs.default", &job).await;
    }
    wait_stored(&js, 40, Duration::from_secs(60)).await;

    // The node the worker is connected to.
    let served_by = cluster.node_serving("action-worker").await.unwrap();
    let prober = Prober::start(&urls[(served_by + 1) % 3]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lost = Instant::now();
    cluster.nodes[served_by].kill().await;
    let (failed_first, back_first) = prober.after(lost).await;
    prober.stop();
    let so_far = stored_count(&js).await;
    wait_stored(&js, so_far + 40, Duration::from_secs(60)).await;
    cluster.nodes[served_by].start_again().await;
    cluster.wait_for_jetstream(served_by).await;
    wait_caught_up(&js).await;

    // The node leading the jobs stream.
    let leader = leader_of(&js, "ACTIONS_JOBS").await;
    let prober = Prober::start(&urls[(leader + 1) % 3]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lost = Instant::now();
    cluster.nodes[leader].kill().await;
    let (failed_second, back_second) = prober.after(lost).await;
    prober.stop();

    wait_stored(&js, total, Duration::from_secs(120)).await;
    let results = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    for n in 0..total {
        let message = results
            .direct_get_last_for_subject(format!("actions.results.c-{n}"))
            .await
            .unwrap();
        let result: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(result["output"], format!("c-{n}"));
    }
    assert_eq!(stored_count(&js).await, total, "one result per job");
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < total as usize {
        let missing = total as usize - answered.lock().unwrap().len();
        assert!(
            Instant::now() < deadline,
            "{missing} jobs were not answered on reply_to"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    action_worker_tests::report(&format!(
        "cluster: loss of n{served_by} (the worker's node): {failed_first} request-reply jobs \
         failed, served again after {:.2} s; loss of n{leader} (leader of ACTIONS_JOBS): \
         {failed_second} failed, served again after {:.2} s; {total} durable jobs, one result \
         each, all answered on reply_to",
        back_first.as_secs_f64(),
        back_second.as_secs_f64()
    ));
}
