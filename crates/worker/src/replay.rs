//! A journaled job run again, offline: its input and every answer from its journal, nothing
//! sent (a call the journal lacks is refused), and the new result compared with the stored
//! one. With another action, what a fix would have returned on the recorded traffic.
//! `action-worker replay JOB_ID [--action FILE]`, or a test job with `replay` over NATS.

use action_protocol::{ActionDefinition, ActionRef, Encoding, Job, JobResult};
use serde::Serialize;
use serde_json::{Value, json};

use crate::conversations::Conversations;
use crate::journal::{JobJournal, JournalStore};
use crate::pipeline::{Arrival, Pipeline};

/// A replay's outcome: the new result, the stored one, and where they differ.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub replay_of: String,
    /// The new result is the stored one, in everything a run decides (timings, the worker
    /// and the journal's notes aside).
    pub same: bool,
    pub differences: Vec<Difference>,
    pub result: JobResult,
    pub stored: Option<JobResult>,
}

/// One place where the new result differs from the stored one (a JSON pointer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub path: String,
    pub stored: Value,
    pub now: Value,
}

/// Which action a replay runs.
pub enum Version {
    /// The action as the job ran it (recorded in its journal).
    Recorded,
    /// Another definition, against the recorded answers.
    New(Box<ActionDefinition>),
}

/// Replays job `job_id`, seen by `tenant` (`None`: any, for the operator's CLI); an error
/// names why it cannot be replayed.
pub async fn replay(
    pipeline: &Pipeline,
    store: &JournalStore,
    job_id: &str,
    tenant: Option<Option<&str>>,
    version: Version,
) -> Result<Replayed, String> {
    let (record, _) = store.read(job_id).await.map_err(|e| e.to_string())?;
    let not_found = || {
        format!(
            "replay: no journal for job {job_id:?} (journals are kept nats.results_max_age_s; \
             request-reply jobs have one only when recorded)"
        )
    };
    let (job, action, attempt) = record.input.clone().ok_or_else(not_found)?;
    let job: Job =
        serde_json::from_value(job).map_err(|e| format!("replay: the journaled job: {e}"))?;
    if tenant.is_some_and(|tenant| tenant != job.tenant.as_deref()) {
        return Err(not_found());
    }
    let action = match version {
        Version::Recorded => serde_json::from_value(action)
            .map_err(|e| format!("replay: the journaled action: {e}"))?,
        Version::New(action) => *action,
    };
    let stored = stored_result(store, job_id).await;
    let attempt = stored.as_ref().map_or(attempt, |stored| stored.attempt);
    let journal = JobJournal::offline(record);
    let result = match Conversations::fill(None, &job, Some(&journal)).await {
        Ok(filled) => {
            let job = filled.as_ref().unwrap_or(&job);
            let journal = Some(std::sync::Arc::new(journal));
            pipeline.execute(job, &action, attempt, journal).await
        }
        Err(message) => JobResult::rejected(&job.id, &action.name, message),
    };
    let mut result = result;
    result.test = true;
    result.attempt = attempt;
    result.worker = pipeline.worker_id.clone();
    let differences = stored
        .as_ref()
        .map(|stored| differences(&decided(stored), &decided(&result)))
        .unwrap_or_default();
    Ok(Replayed {
        replay_of: job_id.to_string(),
        same: stored.is_some() && differences.is_empty(),
        differences,
        result,
        stored,
    })
}

/// The result of a replay job (over NATS): the new result, with the comparison in its
/// `replay`; `rejected` when the job cannot be replayed (no journal for its tenant, or a
/// reference to another action than the recorded one).
pub async fn answer(pipeline: &Pipeline, job: &Job, arrival: Arrival) -> JobResult {
    let _slot = match pipeline.admit_request(job, arrival).await {
        Ok(slot) => slot,
        Err(refused) => return refused,
    };
    let Some(of) = job.replay.as_deref() else {
        return JobResult::rejected(&job.id, job.action.name(), "replay: missing");
    };
    let Some(store) = &pipeline.journal else {
        let message = "replay: this worker has no journal (JetStream is not enabled)";
        return JobResult::rejected(&job.id, job.action.name(), message);
    };
    let tenant = Some(job.tenant.as_deref());
    match replay(pipeline, store, of, tenant, version_of(job)).await {
        Ok(replayed) if named_otherwise(job, &replayed.result.action) => JobResult::rejected(
            &job.id,
            job.action.name(),
            format!(
                "replay: job {of:?} ran the action {:?}; name it, or give a new definition",
                replayed.result.action
            ),
        ),
        Ok(replayed) => {
            let mut result = replayed.result.clone();
            result.job_id = job.id.clone();
            result.replay = Some(json!({
                "replay_of": replayed.replay_of, "same": replayed.same,
                "differences": replayed.differences,
            }));
            result
        }
        Err(message) => JobResult::rejected(&job.id, job.action.name(), message),
    }
}

/// Whether a replay job names another action than the one its job ran.
fn named_otherwise(job: &Job, ran: &str) -> bool {
    matches!(&job.action, ActionRef::Named { name, .. } if name != ran)
}

/// The version a replay job asks for: a definition is a new version; a reference names the
/// recorded action (by its name: checked once the journal is read).
pub fn version_of(job: &Job) -> Version {
    match &job.action {
        ActionRef::Inline(action) => Version::New(action.clone()),
        ActionRef::Named { .. } => Version::Recorded,
    }
}

/// What a run decides of a result: all but its timings, its worker and the journal's notes.
fn decided(result: &JobResult) -> Value {
    let trace: Vec<Value> = result
        .trace
        .iter()
        .map(|entry| {
            let mut entry = serde_json::to_value(entry).unwrap_or_default();
            if let Some(entry) = entry.as_object_mut() {
                entry.remove("ms");
                entry.remove("journal");
            }
            entry
        })
        .collect();
    json!({
        "status": result.status, "output": result.output, "error": result.error,
        "effects": result.effects, "logs": result.logs, "trace": trace,
        "http_calls": result.stats.http_calls,
    })
}

/// Where `now` differs from `stored`, as JSON pointers, leaves first met first.
fn differences(stored: &Value, now: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    walk("", stored, now, &mut found);
    found
}

fn walk(path: &str, stored: &Value, now: &Value, found: &mut Vec<Difference>) {
    match (stored, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                walk(&format!("{path}/{}", pointer_token(key)), x, y, found);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(&format!("{path}/{i}"), x, y, found);
            }
        }
        _ if stored != now => found.push(Difference {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            stored: stored.clone(),
            now: now.clone(),
        }),
        _ => {}
    }
}

/// A key as a JSON pointer token (RFC 6901).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The stored result of a job (stream `ACTIONS_RESULTS`), if there is one, decoded by its
/// `Content-Type`.
async fn stored_result(store: &JournalStore, job_id: &str) -> Option<JobResult> {
    let js = store.jetstream();
    let results = js.get_stream(crate::durable::RESULTS_STREAM).await.ok()?;
    let subject = crate::durable::results_subject(store.prefix(), Some(job_id), 0);
    let message = results.direct_get_last_for_subject(subject).await.ok()?;
    let content_type = message.headers.get("Content-Type").map(|v| v.as_str());
    let encoding = Encoding::from_content_type(content_type).unwrap_or(Encoding::Json);
    encoding.decode(&message.payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_json_pointers_to_the_leaves_that_changed() {
        let stored = json!({"output": {"a": 1, "b/c": [1, 2]}, "status": "ok"});
        let now = json!({"output": {"a": 2, "b/c": [1, 3], "d": true}, "status": "ok"});
        let found = differences(&stored, &now);
        let paths: Vec<&str> = found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["/output/a", "/output/b~1c/1", "/output/d"]);
        assert_eq!(found[0].stored, json!(1));
        assert_eq!(found[0].now, json!(2));
        assert!(differences(&stored, &stored).is_empty());
        let grown = differences(&json!([1]), &json!([1, 2]));
        assert_eq!(grown[0].path, "/");
    }
}
