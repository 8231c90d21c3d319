//! One job's way to its result, whichever transport brought it: **resolve** (its own action,
//! or the registry's under its tenant) → **limits** → **run** ([`Executor`]) → **stamp**
//! (`test`, `attempt`, `worker`) → **count** (metrics and the log line). Request-reply
//! ([`crate::serve`]) and durable jobs ([`crate::durable`]) are thin transports over it; so are
//! `action-worker run` and the warm-up job. A job that is not run (it did not decode, is
//! invalid, or ran out of attempts) gets its result from [`Pipeline::refuse`], stamped and
//! counted the same way. Each step is guarded: a panic is the job's `failed` result.

use std::sync::Arc;
use std::time::Instant;

use action_protocol::{
    ActionDefinition, ActionKind, ActionRef, ErrorInfo, ErrorKind, Job, JobResult, Status,
};

use crate::execute::Executor;
use crate::guard::{self, Panicked, Stage};
use crate::limits::effective_limits;
use crate::registry::{Registry, ResolveError};

/// The transport a job came by: the `path` label of its metrics. A local job (the CLI's
/// `run`, the warm-up) is not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    RequestReply,
    Durable,
    Local,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestReply => "request_reply",
            Self::Durable => "durable",
            Self::Local => "local",
        }
    }
}

/// How a job arrived: by which path, its delivery (the first is 1), and when.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub path: Path,
    pub attempt: u32,
    pub started: Instant,
}

impl Arrival {
    pub fn new(path: Path, attempt: u32) -> Self {
        Self {
            path,
            attempt,
            started: Instant::now(),
        }
    }
}

/// Why a job gets a result without being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a job, or not one this path can run: `rejected` with this reason.
    Rejected(String),
    /// A panic before the job could be read: `failed`.
    Panicked(Panicked),
    /// Delivered past `max_attempts` times without a run that finished: `failed`.
    OutOfAttempts { max_attempts: u32 },
}

/// What a result without a job to stamp it from is stamped with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unrun<'a> {
    pub job_id: &'a str,
    pub action: &'a str,
    pub test: bool,
}

impl<'a> Unrun<'a> {
    pub fn of(job: &'a Job) -> Self {
        Self {
            job_id: &job.id,
            action: job.action.name(),
            test: job.test,
        }
    }
}

pub struct Pipeline {
    pub executor: Arc<Executor>,
    /// The actions by name (KV bucket `ACTIONS`), when the worker has JetStream.
    pub registry: Option<Arc<Registry>>,
    /// `hostname:pid`, so a result says which replica ran it.
    pub worker_id: String,
}

impl Pipeline {
    pub fn new(executor: Arc<Executor>, registry: Option<Arc<Registry>>) -> Self {
        Self {
            executor,
            registry,
            worker_id: worker_id(),
        }
    }

    /// The result of a decoded, valid job: resolve → limits → run → stamp → count.
    pub async fn run(&self, job: &Job, arrival: Arrival) -> JobResult {
        let (kind, result) = self.resolve_and_run(job, arrival.attempt).await;
        let result = self.stamp(result, job.test, arrival.attempt);
        self.count(kind, &result, arrival);
        result
    }

    /// The result of a job that is not run: built, stamped and counted as a run's is.
    pub fn refuse(&self, job: Unrun<'_>, refusal: Refusal, arrival: Arrival) -> JobResult {
        let result = match refusal {
            Refusal::Rejected(message) => JobResult::rejected(job.job_id, job.action, message),
            Refusal::Panicked(panicked) => guard::failed(job.job_id, job.action, panicked),
            Refusal::OutOfAttempts { max_attempts } => JobResult::empty(
                job.job_id,
                job.action,
                Status::Failed,
                Some(ErrorInfo::new(
                    ErrorKind::Internal,
                    format!(
                        "delivered {} times and no run finished: the worker running it \
                         stopped or lost NATS each time (nats.max_attempts = {max_attempts})",
                        arrival.attempt
                    ),
                )),
            ),
        };
        let result = self.stamp(result, job.test, arrival.attempt);
        tracing::info!(
            path = arrival.path.as_str(),
            status = ?result.status,
            error = result.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default(),
            "job not run"
        );
        self.count("none", &result, arrival);
        result
    }

    /// `result` with what every result carries: `test`, `attempt`, `worker`.
    fn stamp(&self, mut result: JobResult, test: bool, attempt: u32) -> JobResult {
        result.test = test;
        result.attempt = attempt;
        result.worker = self.worker_id.clone();
        result
    }

    /// The job in the metrics (`kind`: `python`, `api`, or `none` when nothing ran).
    fn count(&self, kind: &'static str, result: &JobResult, arrival: Arrival) {
        tracing::debug!(
            status = ?result.status,
            wall_ms = result.stats.wall_ms,
            fuel = result.stats.fuel_used,
            "job finished"
        );
        if arrival.path != Path::Local {
            let elapsed = arrival.started.elapsed();
            crate::metrics::global().job(arrival.path.as_str(), kind, result, elapsed);
        }
    }

    /// The job's action and its unstamped result, each step guarded: a panic while
    /// resolving or running is the job's `failed` result, never a job left unanswered.
    async fn resolve_and_run(&self, job: &Job, attempt: u32) -> (&'static str, JobResult) {
        let resolved = guard::guarded(Stage::Resolve, async {
            guard::inject("resolve", job.id.as_bytes());
            self.resolve(job).await
        })
        .await;
        let action = match resolved {
            Ok(Ok(action)) => action,
            Ok(Err(result)) => return ("none", result),
            Err(panicked) => return ("none", guard::failed(&job.id, job.action.name(), panicked)),
        };
        let ran = guard::guarded(Stage::Run, async {
            guard::inject("run", job.id.as_bytes());
            self.execute(job, &action, attempt).await
        })
        .await;
        let kind = match action.kind {
            ActionKind::Python => "python",
            ActionKind::Api => "api",
        };
        let result = ran.unwrap_or_else(|panicked| guard::failed(&job.id, &action.name, panicked));
        (kind, result)
    }

    /// The limits and run steps.
    async fn execute(&self, job: &Job, action: &ActionDefinition, attempt: u32) -> JobResult {
        let limits = effective_limits(&self.executor.limits, action, job.timeout_ms);
        match action.kind {
            ActionKind::Python => {
                let executor = &self.executor;
                executor.run_python(job, action, limits, attempt).await
            }
            ActionKind::Api => self.executor.run_api(job, action, limits).await,
        }
    }

    /// The job's own definition, or the registry's under its tenant; a job that cannot have
    /// one gets its result here (`rejected`, or `failed` when the registry cannot be read).
    async fn resolve<'a>(&self, job: &'a Job) -> Result<Resolved<'a>, JobResult> {
        let (name, revision) = match &job.action {
            ActionRef::Inline(action) => return Ok(Resolved::Inline(action)),
            ActionRef::Named { name, revision } => (name, *revision),
        };
        let Some(registry) = &self.registry else {
            return Err(JobResult::rejected(
                &job.id,
                name,
                "actions by name need the registry (KV bucket ACTIONS), and this NATS server has no JetStream",
            ));
        };
        match registry
            .resolve(job.tenant.as_deref(), name, revision)
            .await
        {
            Ok((_, action)) => Ok(Resolved::Stored(action)),
            Err(ResolveError::Rejected(message)) => {
                Err(JobResult::rejected(&job.id, name, message))
            }
            Err(ResolveError::Unavailable(message)) => Err(JobResult::empty(
                &job.id,
                name,
                Status::Failed,
                Some(ErrorInfo::new(ErrorKind::Internal, message)),
            )),
        }
    }
}

/// A job's action: carried by the job, or from the registry.
enum Resolved<'a> {
    Inline(&'a ActionDefinition),
    Stored(Arc<ActionDefinition>),
}

impl std::ops::Deref for Resolved<'_> {
    type Target = ActionDefinition;

    fn deref(&self) -> &ActionDefinition {
        match self {
            Self::Inline(action) => action,
            Self::Stored(action) => action,
        }
    }
}

/// `hostname:pid`, so a result says which replica ran it.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!(
        "{}:{}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}
