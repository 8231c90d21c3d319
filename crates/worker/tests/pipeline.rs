//! The job pipeline in process: every result it gives, run or not, carries the stamp of its
//! job (`test`, `attempt`, `worker`) and is counted once under its path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use action_worker_tests as common;

use std::sync::Arc;

use action_egress::{Egress, EgressConfig, SystemResolver};
use action_protocol::{Job, JobResult, Status};
use action_sandbox::{Sandbox, SandboxConfig};
use action_worker::config::{LimitsConfig, TenantsSection};
use action_worker::execute::Executor;
use action_worker::guard::{Panicked, Stage};
use action_worker::pipeline::{Arrival, Path, Pipeline, Refusal, Unrun};
use action_worker::scheduler::Scheduler;
use serde_json::json;

fn pipeline() -> Pipeline {
    let root = common::repo_root();
    let mut config = SandboxConfig::new(root.join("build/action-runtime.wasm"));
    config.cache_dir = Some(root.join("build/cache"));
    config.warm_instances = 0;
    let egress = EgressConfig {
        allow_private_cidrs: vec!["127.0.0.0/8".parse().unwrap()],
        ..EgressConfig::default()
    };
    let executor = Executor::new(
        Sandbox::new(config).unwrap(),
        Egress::new(egress, Arc::new(SystemResolver)).unwrap(),
        LimitsConfig::default(),
    );
    let scheduler = Scheduler::new(4, TenantsSection::default());
    let mut pipeline = Pipeline::new(Arc::new(executor), None, scheduler);
    pipeline.worker_id = "stamp-test:1".into();
    pipeline
}

fn job(value: serde_json::Value) -> Job {
    let job: Job = serde_json::from_value(value).unwrap();
    job.validate().unwrap();
    job
}

/// The count of `action_worker_jobs_total` for `action`, `status` and `path`.
fn counted(action: &str, status: &str, path: &str) -> u64 {
    let text = action_worker::metrics::global().render(1, 1);
    let wanted = format!("action=\"{action}\",status=\"{status}\",path=\"{path}\"");
    text.lines()
        .filter(|l| l.starts_with("action_worker_jobs_total{") && l.contains(&wanted))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn assert_stamped(result: &JobResult, test: bool, attempt: u32) {
    assert_eq!(result.test, test, "{result:?}");
    assert_eq!(result.attempt, attempt, "{result:?}");
    assert_eq!(result.worker, "stamp-test:1", "{result:?}");
}

#[tokio::test]
async fn a_python_job_is_run_stamped_and_counted_once() {
    let pipeline = pipeline();
    let job = job(json!({
        "id": "p-1", "test": true,
        "action": {"name": "stampPython", "type": "python",
                   "python": {"code": "def execute_action(c):\n    return c['job']['attempt']\n"}},
    }));
    let result = pipeline.run(&job, Arrival::new(Path::Durable, 3)).await;
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(result.output, json!(3), "the context carries the attempt");
    assert_stamped(&result, true, 3);
    assert_eq!(counted("stampPython", "ok", "durable"), 1);
}

#[tokio::test]
async fn an_api_job_is_run_stamped_and_counted_once() {
    let app = axum::Router::new().route(
        "/item",
        axum::routing::get(|| async { axum::Json(json!({"inStock": true})) }),
    );
    let addr = common::serve(app, "127.0.0.1:0").await;
    let pipeline = pipeline();
    let job = job(json!({
        "id": "a-1",
        "action": {"name": "stampApi", "type": "api",
                   "api": {"base_url": format!("http://{addr}"), "path": "/item"}},
    }));
    let result = pipeline
        .run(&job, Arrival::new(Path::RequestReply, 1))
        .await;
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(result.output, json!({"inStock": true}));
    assert_eq!(
        result.trace.len(),
        1,
        "the host's trace comes back: {result:?}"
    );
    assert_stamped(&result, false, 1);
    assert_eq!(counted("stampApi", "ok", "request_reply"), 1);
}

#[tokio::test]
async fn a_job_that_cannot_be_resolved_is_stamped_and_counted() {
    let pipeline = pipeline();
    let job = job(json!({"id": "n-1", "test": true, "action": {"name": "stampNamed"}}));
    let result = pipeline
        .run(&job, Arrival::new(Path::RequestReply, 2))
        .await;
    assert_eq!(
        result.status,
        Status::Rejected,
        "no registry here: {result:?}"
    );
    assert_stamped(&result, true, 2);
    assert_eq!(counted("stampNamed", "rejected", "request_reply"), 1);
}

#[tokio::test]
async fn refusals_are_stamped_and_counted_like_runs() {
    let pipeline = pipeline();
    let unrun = Unrun {
        job_id: "r-1",
        action: "stampRefused",
        test: true,
    };
    let rejected = pipeline.refuse(
        unrun,
        Refusal::Rejected("args: bad".into()),
        Arrival::new(Path::Durable, 2),
    );
    assert_eq!(rejected.status, Status::Rejected);
    assert_eq!(rejected.error.as_ref().unwrap().message, "args: bad");
    assert_stamped(&rejected, true, 2);

    let panicked = Refusal::Panicked(Panicked(Stage::Decode));
    let failed = pipeline.refuse(unrun, panicked, Arrival::new(Path::Durable, 1));
    assert_eq!(failed.status, Status::Failed);
    assert_stamped(&failed, true, 1);

    let out = Refusal::OutOfAttempts { max_attempts: 3 };
    let gave_up = pipeline.refuse(unrun, out, Arrival::new(Path::Durable, 4));
    assert_eq!(gave_up.status, Status::Failed);
    let message = &gave_up.error.as_ref().unwrap().message;
    assert!(
        message.contains("delivered 4 times") && message.contains("max_attempts = 3"),
        "{message}"
    );
    assert_stamped(&gave_up, true, 4);

    assert_eq!(counted("stampRefused", "rejected", "durable"), 1);
    assert_eq!(counted("stampRefused", "failed", "durable"), 2);
}

#[tokio::test]
async fn local_jobs_are_stamped_and_not_counted() {
    let pipeline = pipeline();
    let job = job(json!({
        "id": "l-1",
        "action": {"name": "stampLocal", "type": "python",
                   "python": {"code": "def execute_action(c):\n    return 1\n"}},
    }));
    let result = pipeline.run(&job, Arrival::new(Path::Local, 1)).await;
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_stamped(&result, false, 1);
    let text = action_worker::metrics::global().render(1, 1);
    assert!(!text.contains("stampLocal"), "{text}");
}
