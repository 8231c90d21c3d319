//! Runs one job of any kind and always answers with a `JobResult`.

use std::sync::Arc;

use action_egress::{Egress, SecretStore};
use action_protocol::{
    ActionDefinition, ActionKind, ErrorInfo, ErrorKind, Job, JobResult, Status, build_context,
};
use action_sandbox::{PythonJob, Sandbox};

use crate::config::LimitsConfig;
use crate::host::{JobHost, SharedConversation, Trace};
use crate::limits::effective_limits;

/// Everything a job needs besides itself.
pub struct Executor {
    pub sandbox: Sandbox,
    pub egress: Arc<Egress>,
    pub secrets: Arc<SecretStore>,
    pub limits: LimitsConfig,
    pub worker_id: String,
}

impl Executor {
    pub async fn run(&self, job: &Job, action: &ActionDefinition, attempt: u32) -> JobResult {
        let mut result = match action.kind {
            ActionKind::Python => self.run_python(job, action, attempt).await,
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

    async fn run_python(&self, job: &Job, action: &ActionDefinition, attempt: u32) -> JobResult {
        let Some(source) = action.python_code() else {
            return JobResult::rejected(&job.id, &action.name, "python.code: missing");
        };
        let limits = effective_limits(&self.limits, action, job.timeout_ms);
        let context = build_context(job, &action.name, attempt);
        let trace = Trace::default();
        let conversation: SharedConversation =
            Arc::new(std::sync::Mutex::new(job.conversation.as_ref().map(|c| {
                action_helpers::Conversation::from_snapshot(c, &job.id, job.test)
            })));
        let host = JobHost::new(
            self.egress.clone(),
            self.secrets.clone(),
            job.tenant.clone(),
            action.allowed_hosts.clone(),
            &job.id,
            trace.clone(),
            conversation.clone(),
        );
        let job_spec = PythonJob {
            action: &action.name,
            source,
            context: &context,
            limits,
        };
        let outcome = self.sandbox.run(job_spec, Box::new(host)).await;
        let mut result = JobResult::empty(&job.id, &action.name, outcome.status, outcome.error);
        result.output = outcome.output;
        result.logs = outcome.logs;
        result.stats = outcome.stats;
        result.effects = conversation
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .map(action_helpers::Conversation::into_effects)
            .unwrap_or_default();
        result.trace = trace
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        result
    }
}
