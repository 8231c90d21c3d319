//! Runs one job of any kind and always answers with a `JobResult`.

use action_protocol::{
    ActionDefinition, ActionKind, ErrorInfo, ErrorKind, Job, JobResult, Status, build_context,
};
use action_sandbox::{ActionHost, PythonJob, Sandbox};

use crate::config::LimitsConfig;
use crate::limits::effective_limits;

/// Everything a job needs besides itself.
pub struct Executor {
    pub sandbox: Sandbox,
    pub limits: LimitsConfig,
    pub worker_id: String,
}

impl Executor {
    pub async fn run(
        &self,
        job: &Job,
        action: &ActionDefinition,
        attempt: u32,
        host: Box<dyn ActionHost>,
    ) -> JobResult {
        let mut result = match action.kind {
            ActionKind::Python => self.run_python(job, action, attempt, host).await,
            ActionKind::Api => JobResult::empty(
                &job.id,
                &action.name,
                Status::Rejected,
                Some(ErrorInfo::new(
                    ErrorKind::Rejected,
                    "API actions are not served by this build yet",
                )),
            ),
        };
        result.test = job.test;
        result.attempt = attempt;
        result.worker = self.worker_id.clone();
        result
    }

    async fn run_python(
        &self,
        job: &Job,
        action: &ActionDefinition,
        attempt: u32,
        host: Box<dyn ActionHost>,
    ) -> JobResult {
        let Some(source) = action.python_code() else {
            return JobResult::rejected(&job.id, &action.name, "python.code: missing");
        };
        let limits = effective_limits(&self.limits, action, job.timeout_ms);
        let context = build_context(job, &action.name, attempt);
        let outcome = self
            .sandbox
            .run(
                PythonJob {
                    action: &action.name,
                    source,
                    context: &context,
                    limits,
                },
                host,
            )
            .await;
        let mut result = JobResult::empty(&job.id, &action.name, outcome.status, outcome.error);
        result.output = outcome.output;
        result.logs = outcome.logs;
        result.stats = outcome.stats;
        result
    }
}
