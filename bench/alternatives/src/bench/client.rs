//! Sending jobs and timing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

// ---------------------------------------------------------------------------------------
// Sending jobs.

#[derive(Default, Clone)]
pub(super) struct Phase {
    pub(super) jobs: usize,
    pub(super) rate: f64,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) failures: usize,
    pub(super) first_failure: Option<String>,
}

/// `n` jobs over `subject`, `in_flight` at a time; every result is checked.
pub(super) async fn measure(
    client: &async_nats::Client,
    subject: &str,
    action: &Action,
    n: usize,
    in_flight: usize,
    tag: &str,
) -> Phase {
    let (definition, args, check) = (&action.definition, &action.args, &action.check);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight.min(n) {
        let (client, next, check) = (client.clone(), next.clone(), check.clone());
        let (subject, definition, args, tag) = (
            subject.to_string(),
            definition.clone(),
            args.clone(),
            tag.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            let mut failures = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let id = format!("{tag}-{i}");
                let job = json!({"id": id, "action": definition, "args": args});
                let t = Instant::now();
                let outcome = match client
                    .request(subject.clone(), job.to_string().into())
                    .await
                {
                    Err(e) => Err(format!("request: {e}")),
                    Ok(reply) => match serde_json::from_slice::<Value>(&reply.payload) {
                        Err(e) => Err(format!("undecodable result: {e}")),
                        Ok(r) if r["status"] != "ok" || r["job_id"] != id.as_str() => {
                            Err(format!("result {r}"))
                        }
                        Ok(r) => check(&r["output"]),
                    },
                };
                times.push(t.elapsed());
                if let Err(e) = outcome {
                    failures.push(e);
                }
            }
            (times, failures)
        }));
    }
    let mut times = vec![];
    let mut failures = vec![];
    for t in tasks {
        let (a, b) = t.await.expect("a client task panicked");
        times.extend(a);
        failures.extend(b);
    }
    let wall = start.elapsed();
    times.sort();
    Phase {
        jobs: times.len(),
        rate: times.len() as f64 / wall.as_secs_f64(),
        p50: times[times.len() / 2],
        p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
        failures: failures.len(),
        first_failure: failures.into_iter().next(),
    }
}
