//! The sandbox's own test support: one sandbox per test process, and fake hosts (the
//! repository lookup is the shared one, `action_worker_tests`).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(dead_code)] // each test file uses a different part of this module
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use action_sandbox::{
    ActionHost, HttpError, HttpRequest, HttpResponse, JobLimits, NoNetwork, PythonJob, RunOutcome,
    Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

pub use action_worker_tests::repo_root;

pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let root = repo_root();
        let mut config = SandboxConfig::new(root.join("build/action-runtime.wasm"));
        config.cache_dir = Some(root.join("build/cache"));
        Sandbox::new(config).expect("the runtime component (run `make runtime`)")
    })
}

pub fn context(args: Value) -> Value {
    json!({"args": args, "conversation": null, "action": {"name": "test"},
           "job": {"id": "j1", "attempt": 1, "test": false}})
}

pub async fn run_with(
    source: &str,
    args: Value,
    limits: JobLimits,
    host: Box<dyn ActionHost>,
) -> RunOutcome {
    let ctx = context(args);
    let job = PythonJob {
        action: "testAction",
        source,
        context: &ctx,
        limits,
        runtime: "default",
    };
    sandbox().run(job, host).await.0
}

pub async fn run(source: &str) -> RunOutcome {
    run_with(source, json!({}), JobLimits::default(), Box::new(NoNetwork)).await
}

/// Answers every request at once with 200 and the request's URL in a JSON body.
#[derive(Debug, Default)]
pub struct EchoHost;

impl ActionHost for EchoHost {
    fn http_send(
        &mut self,
        request: HttpRequest,
        _deadline: Instant,
    ) -> action_sandbox::BoxFuture<'_, Result<HttpResponse, HttpError>> {
        Box::pin(async move {
            let body = json!({"method": request.method, "url": request.url,
                              "headers": request.headers, "body": request.body.map(|b| String::from_utf8_lossy(&b).into_owned())});
            Ok(HttpResponse {
                status: 200,
                reason: "OK".into(),
                url: request.url,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: serde_json::to_vec(&body).unwrap(),
                elapsed: Duration::from_millis(1),
                secrets: vec![],
            })
        })
    }
}

/// Never answers.
#[derive(Debug, Default)]
pub struct HangingHost;

impl ActionHost for HangingHost {
    fn http_send(
        &mut self,
        _request: HttpRequest,
        _deadline: Instant,
    ) -> action_sandbox::BoxFuture<'_, Result<HttpResponse, HttpError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!("the sandbox's deadline ends this wait first")
        })
    }
}
