//! The run step of the [pipeline](crate::pipeline): one job of a resolved action, within its
//! limits, to an unstamped `JobResult`. A Python action runs in the sandbox with a
//! [`JobHost`]; an API action is one request through the same host, no sandbox involved.

use std::sync::Arc;
use std::time::Instant;

use action_egress::{Egress, SecretStore};
use action_protocol::{
    ActionDefinition, ErrorInfo, ErrorKind, HttpErrorKind, HttpRequest, Job, JobResult, LimitKind,
    Status, build_context, render,
};
use action_sandbox::{ActionHost, JobLimits, PythonJob, Sandbox};
use serde_json::{Value, json};

use crate::config::LimitsConfig;
use crate::cpu::CpuGate;
use crate::guard::{self, Stage};
use crate::host::{JobHost, JobScope, Services};
use crate::journal::JobJournal;

/// Everything a job needs besides itself.
pub struct Executor {
    pub sandbox: Sandbox,
    pub services: Services,
    pub limits: LimitsConfig,
    /// Turns on the CPU for computing jobs, fair among tenants.
    pub cpu: Arc<CpuGate>,
}

impl Executor {
    /// Everything from the configuration: the sandbox (runtime loaded, from the compile
    /// cache when it can be), egress, secrets, and the helpers' clients.
    pub fn from_config(
        settings: &crate::config::Settings,
        warm_instances: Option<u32>,
    ) -> anyhow::Result<Self> {
        let mut sandbox_config = settings.sandbox.clone();
        if let Some(warm) = warm_instances {
            sandbox_config.warm_instances = warm;
        }
        let services = Services {
            egress: Arc::new(Egress::new(
                settings.egress.clone(),
                Arc::new(action_egress::SystemResolver),
            )?),
            secrets: Arc::new(crate::secrets::load(&settings.secrets)?),
            llm: settings
                .llm
                .clone()
                .map(|config| Arc::new(action_helpers::LlmClient { config })),
            sheets: settings.sheets.client()?.map(Arc::new),
        };
        Ok(Self {
            sandbox: Sandbox::new(sandbox_config)?,
            services,
            limits: settings.limits.clone(),
            cpu: CpuGate::new(cpu_turns(settings.runtime.processes)),
        })
    }

    /// An executor over `sandbox` that sends through `egress`, with no secrets and no
    /// helpers' clients (benchmarks and tests).
    pub fn new(sandbox: Sandbox, egress: Egress, limits: LimitsConfig) -> Self {
        Self {
            sandbox,
            services: Services {
                egress: Arc::new(egress),
                secrets: Arc::new(SecretStore::default()),
                llm: None,
                sheets: None,
            },
            limits,
            cpu: CpuGate::new(cpu_turns(1)),
        }
    }

    fn host(
        &self,
        job: &Job,
        action: &ActionDefinition,
        journal: Option<Arc<JobJournal>>,
    ) -> JobHost {
        let scope = JobScope {
            job_id: job.id.clone(),
            tenant: job.tenant.clone(),
            allowed_hosts: action.allowed_hosts.clone(),
        };
        JobHost::new(
            self.services.clone(),
            scope,
            self.limits.max_trace_entries as usize,
        )
        .with_journal(journal)
    }

    /// A Python action in the sandbox; the host comes back with the trace and the effects.
    pub async fn run_python(
        &self,
        job: &Job,
        action: &ActionDefinition,
        limits: JobLimits,
        attempt: u32,
        journal: Option<Arc<JobJournal>>,
    ) -> JobResult {
        let Some(source) = action.python_code() else {
            return JobResult::rejected(&job.id, &action.name, "python.code: missing");
        };
        let context = build_context(job, &action.name, attempt);
        let max_effects = self.limits.max_effects as usize;
        let conversation = job.conversation.as_ref().map(|c| {
            action_helpers::Conversation::from_snapshot(c, &job.id, job.test)
                .limit_effects(max_effects)
        });
        let turns = self.cpu.turns(job.tenant.as_deref());
        let host = self
            .host(job, action, journal)
            .with_conversation(conversation)
            .with_turns(Some(turns.clone()));
        let job_spec = PythonJob {
            action: &action.name,
            source,
            context: &context,
            limits,
            runtime: action.python_runtime(),
        };
        let (outcome, mut host) = self.sandbox.run(job_spec, Box::new(host)).await;
        turns.finish();
        if let Some(call) = outcome.host_panic {
            // Caught by the sandbox at the call; counted and logged as every panic is.
            guard::note(Stage::HostCall(call));
        }
        let record = host.take_record();
        let mut result = JobResult::empty(&job.id, &action.name, outcome.status, outcome.error);
        result.output = outcome.output;
        result.logs = outcome.logs;
        result.stats = outcome.stats;
        result.effects = record.effects;
        result.trace = record.trace;
        result
    }

    /// One templated request through the same host (egress, secrets, trace, idempotency)
    /// that Python actions use.
    pub async fn run_api(
        &self,
        job: &Job,
        action: &ActionDefinition,
        limits: JobLimits,
        journal: Option<Arc<JobJournal>>,
    ) -> JobResult {
        let started = Instant::now();
        let Some(api) = &action.api else {
            return JobResult::rejected(&job.id, &action.name, "api: missing");
        };
        let rendered = match render(api, &job.args) {
            Ok(rendered) => rendered,
            Err(e) => return JobResult::rejected(&job.id, &action.name, e.to_string()),
        };
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
        let request = HttpRequest {
            headers,
            body,
            ..HttpRequest::new(rendered.method, rendered.url)
        };
        let mut host = self.host(job, action, journal);
        let answer = guard::guarded(
            Stage::HostCall("http.send"),
            host.http_send(request, started + limits.timeout),
        )
        .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(panicked) => return guard::failed(&job.id, &action.name, panicked),
        };
        let (status, error, output) = match answer {
            Ok(response) => {
                let body = parse_body(&response.body);
                if (200..300).contains(&response.status) {
                    (Status::Ok, None, body)
                } else {
                    let message = format!("HTTP {} {}", response.status, response.reason)
                        .trim_end()
                        .to_string();
                    let output = json!({"error": message, "status": response.status, "body": body});
                    let error = ErrorInfo::new(ErrorKind::HttpStatus, &message);
                    (Status::ActionError, Some(error), output)
                }
            }
            Err(e) if e.kind == HttpErrorKind::ResponseTooLarge => {
                let message = format!("response size limit: {}", e.message);
                let error = ErrorInfo::limit(LimitKind::ResponseSize, message);
                (Status::LimitExceeded, Some(error), Value::Null)
            }
            Err(e) => {
                let message = format!("{}: {}", e.kind.words(), e.message);
                let error = ErrorInfo::new(ErrorKind::Transport, message);
                (Status::ActionError, Some(error), Value::Null)
            }
        };
        let mut result = JobResult::empty(&job.id, &action.name, status, error);
        result.output = output;
        result.stats.wall_ms = action_protocol::millis(started.elapsed());
        result.stats.http_calls = 1;
        result.trace = host.take_record().trace;
        result
    }
}

/// Turns on the CPU of one process: its share of the machine's cores (`processes` worker
/// processes share them; 0 is one per core).
fn cpu_turns(processes: usize) -> usize {
    let processes = crate::processes::count(processes).max(1);
    (crate::processes::cores() / processes).max(1)
}

/// A response body as the action's output: JSON where it parses, else text.
fn parse_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
