//! Runs one job of any kind and always answers with a `JobResult`.

use std::sync::Arc;

use action_egress::{Egress, SecretStore};
use std::time::Instant;

use action_protocol::{
    ActionDefinition, ActionKind, ErrorInfo, ErrorKind, Job, JobResult, Status, build_context,
    render,
};
use action_sandbox::{ActionHost, HostError, HttpRequest, PythonJob, Sandbox};
use serde_json::{Value, json};

use crate::config::LimitsConfig;
use crate::guard::{self, Stage};
use crate::host::{JobHost, Services, SharedConversation, Trace};
use crate::limits::effective_limits;

/// Everything a job needs besides itself.
pub struct Executor {
    pub sandbox: Sandbox,
    pub egress: Arc<Egress>,
    pub secrets: Arc<SecretStore>,
    /// The LLM client of `llm_classify_*`, when `[llm]` is configured.
    pub llm: Option<Arc<action_helpers::LlmClient>>,
    /// The Google Sheets client of `add_google_sheets_row`, when `[sheets]` is configured.
    pub sheets: Option<Arc<action_helpers::SheetsClient>>,
    pub limits: LimitsConfig,
    pub worker_id: String,
}

impl Executor {
    /// Everything from the configuration: the sandbox (runtime loaded, from the compile
    /// cache when it can be), egress, secrets, and the helpers' clients.
    pub fn from_config(
        config: &crate::config::WorkerConfig,
        warm_instances: Option<u32>,
    ) -> anyhow::Result<Self> {
        let mut sandbox_config = config.sandbox_config();
        if let Some(warm) = warm_instances {
            sandbox_config.warm_instances = warm;
        }
        let egress_config = config.egress.egress_config()?;
        Ok(Self {
            sandbox: Sandbox::new(sandbox_config)?,
            egress: Arc::new(Egress::new(
                egress_config,
                Arc::new(action_egress::SystemResolver),
            )?),
            secrets: Arc::new(crate::secrets::load(&config.secrets)?),
            llm: config
                .llm
                .llm_config()?
                .map(|config| Arc::new(action_helpers::LlmClient { config })),
            sheets: config.sheets.client()?.map(Arc::new),
            limits: config.limits.clone(),
            worker_id: worker_id(),
        })
    }

    fn services(&self) -> Services {
        Services {
            egress: self.egress.clone(),
            secrets: self.secrets.clone(),
            llm: self.llm.clone(),
            sheets: self.sheets.clone(),
        }
    }

    pub async fn run(&self, job: &Job, action: &ActionDefinition, attempt: u32) -> JobResult {
        let result = match action.kind {
            ActionKind::Python => self.run_python(job, action, attempt).await,
            ActionKind::Api => self.run_api(job, action).await,
        };
        self.stamp(result, job, attempt)
    }

    /// `result` with what every result of `job` carries: `test`, `attempt`, `worker`.
    pub fn stamp(&self, mut result: JobResult, job: &Job, attempt: u32) -> JobResult {
        result.test = job.test;
        result.attempt = attempt;
        result.worker = self.worker_id.clone();
        result
    }

    fn host(&self, job: &Job, action: &ActionDefinition, trace: Trace) -> JobHost {
        JobHost::new(
            self.services(),
            job.tenant.clone(),
            action.allowed_hosts.clone(),
            &job.id,
            trace,
            self.limits.max_trace_entries as usize,
        )
    }

    async fn run_python(&self, job: &Job, action: &ActionDefinition, attempt: u32) -> JobResult {
        let Some(source) = action.python_code() else {
            return JobResult::rejected(&job.id, &action.name, "python.code: missing");
        };
        let limits = effective_limits(&self.limits, action, job.timeout_ms);
        let context = build_context(job, &action.name, attempt);
        let trace = Trace::default();
        let max_effects = self.limits.max_effects as usize;
        let conversation: SharedConversation =
            Arc::new(std::sync::Mutex::new(job.conversation.as_ref().map(|c| {
                action_helpers::Conversation::from_snapshot(c, &job.id, job.test)
                    .limit_effects(max_effects)
            })));
        let host = self
            .host(job, action, trace.clone())
            .with_conversation(conversation.clone());
        let job_spec = PythonJob {
            action: &action.name,
            source,
            context: &context,
            limits,
        };
        let outcome = self.sandbox.run(job_spec, Box::new(host)).await;
        if let Some(call) = outcome.host_panic {
            // Caught by the sandbox at the call; counted and logged as every panic is.
            guard::note(Stage::HostCall(call));
        }
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

    /// One templated request through the same host (egress, secrets, trace, idempotency)
    /// that Python actions use.
    async fn run_api(&self, job: &Job, action: &ActionDefinition) -> JobResult {
        let started = Instant::now();
        let Some(api) = &action.api else {
            return JobResult::rejected(&job.id, &action.name, "api: missing");
        };
        let rendered = match render(api, &job.args) {
            Ok(rendered) => rendered,
            Err(e) => return JobResult::rejected(&job.id, &action.name, e.to_string()),
        };
        let mut limits = effective_limits(&self.limits, action, job.timeout_ms);
        if let Some(ms) = api.timeout_ms {
            limits.timeout = limits.timeout.min(std::time::Duration::from_millis(ms));
        }
        let mut headers = rendered.headers;
        let body = rendered.body.map(|value| {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            serde_json::to_vec(&value).unwrap_or_default()
        });
        let trace = Trace::default();
        let mut host = self.host(job, action, trace.clone());
        let request = HttpRequest {
            method: rendered.method,
            url: rendered.url,
            headers,
            body,
            timeout_ms: None,
            follow_redirects: true,
        };
        let answer = guard::guarded(
            Stage::HostCall("http.send"),
            host.http_send(request, started + limits.timeout),
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(panicked) => return guard::failed(&job.id, &action.name, panicked),
        };
        let mut result = match answer {
            Ok(response) => {
                let body = parse_body(&response.body);
                if (200..300).contains(&response.status) {
                    let mut r = JobResult::empty(&job.id, &action.name, Status::Ok, None);
                    r.output = body;
                    r
                } else {
                    let message = format!("HTTP {} {}", response.status, response.reason)
                        .trim_end()
                        .to_string();
                    let mut r = JobResult::empty(
                        &job.id,
                        &action.name,
                        Status::ActionError,
                        Some(ErrorInfo::new(ErrorKind::HttpStatus, &message)),
                    );
                    r.output = json!({"error": message, "status": response.status, "body": body});
                    r
                }
            }
            Err(HostError::Call(e)) => JobResult::empty(
                &job.id,
                &action.name,
                Status::ActionError,
                Some(ErrorInfo::new(ErrorKind::Transport, e.to_string())),
            ),
            Err(HostError::Limit(kind, message)) => JobResult::empty(
                &job.id,
                &action.name,
                Status::LimitExceeded,
                Some(ErrorInfo::limit(kind, message)),
            ),
        };
        result.stats.wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        result.stats.http_calls = 1;
        result.trace = trace
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        result
    }
}

/// A response body as the action's output: JSON where it parses, else text.
fn parse_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
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
