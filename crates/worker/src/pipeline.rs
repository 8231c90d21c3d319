//! One job's way to its result, whichever transport brought it: **resolve** (its own action,
//! or the registry's under its tenant) → **admit** (a slot, in its tenant's turn:
//! [`Scheduler`]) → **limits** → **run** ([`Executor`]) → **stamp** (`test`, `attempt`,
//! `worker`) → **count** (metrics, per tenant too, and the log line). Request-reply
//! ([`crate::serve`]) and durable jobs ([`crate::durable`]) are thin transports over it; so are
//! `action-worker run` and the warm-up job. A job that is not run (it did not decode, is
//! invalid, or ran out of attempts) gets its result from [`Pipeline::refuse`], stamped and
//! counted the same way. Each step is guarded: a panic is the job's `failed` result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use action_protocol::{
    ActionDefinition, ActionKind, ActionRef, ErrorInfo, ErrorKind, Job, JobResult, Status,
};

use crate::conversations::Conversations;
use crate::execute::Executor;
use crate::guard::{self, Panicked, Stage};
use crate::journal::{JobJournal, JournalStore};
use crate::limits::effective_limits;
use crate::registry::{Registry, ResolveError};
use crate::scheduler::{Refused, Reserved, Scheduler, Slot, Wait};
use tokio_util::sync::CancellationToken;

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

/// How a job arrived: by which path, its delivery (the first is 1), and when. A
/// request-reply job waits for its slot up to `tenants.queue_deadline_ms` from `started`; a
/// durable one as long as it takes (it is in the stream), a local one not at all.
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
    /// The process's job slots, shared fairly among tenants.
    pub scheduler: Arc<Scheduler>,
    /// The server's one cancellation token: a durable job waiting for a slot is handed back
    /// when it is cancelled.
    pub stop: CancellationToken,
    /// `hostname:pid`, so a result says which replica ran it.
    pub worker_id: String,
    /// The journals (stream `ACTIONS_JOURNAL`), when the worker has JetStream: every durable
    /// job has one, and a request-reply job that asks (`record`).
    pub journal: Option<Arc<JournalStore>>,
    /// Whether durable jobs are journaled (`nats.journal`).
    pub journal_durable: bool,
    /// Where a job's `conversation_id` is looked up, when the worker has NATS.
    pub conversations: Option<Conversations>,
}

/// What the run step gave: the kind of action (`none` when nothing ran), the result, and the
/// time the job waited for its slot when it got one.
struct Ran {
    kind: &'static str,
    /// None when another delivery of the job overtook this one (its journal moved on).
    result: Option<JobResult>,
    waited: Option<Duration>,
}

impl Ran {
    fn unrun(result: JobResult) -> Self {
        Self {
            kind: "none",
            result: Some(result),
            waited: None,
        }
    }
}

impl Pipeline {
    pub fn new(
        executor: Arc<Executor>,
        registry: Option<Arc<Registry>>,
        scheduler: Arc<Scheduler>,
    ) -> Self {
        Self {
            executor,
            registry,
            scheduler,
            stop: CancellationToken::new(),
            worker_id: worker_id(),
            journal: None,
            journal_durable: true,
            conversations: None,
        }
    }

    /// A pipeline for local jobs (the CLI's `run`, the warm-up): no registry, one slot.
    pub fn local(executor: Arc<Executor>) -> Self {
        let scheduler = Scheduler::new(1, crate::config::TenantsSection::default());
        Self::new(executor, None, scheduler)
    }

    /// The result of a decoded, valid job: resolve → admit → limits → run → stamp → count.
    pub async fn run(&self, job: &Job, arrival: Arrival) -> JobResult {
        let result = self.run_in(job, arrival, None).await;
        result.unwrap_or_else(|| {
            let message = "another run of this job id is being recorded: job ids must be unique";
            let error = ErrorInfo::new(ErrorKind::Internal, message);
            let result = JobResult::empty(&job.id, job.action.name(), Status::Failed, Some(error));
            self.stamp(result, job.test, arrival.attempt)
        })
    }

    /// [`Self::run`] in a slot reserved for the job before it was known (the durable path);
    /// no result when another delivery of the job has overtaken this one (it was cut off
    /// past `ack_wait`, and the job's journal moved on without it).
    pub async fn run_in(
        &self,
        job: &Job,
        arrival: Arrival,
        reserved: Option<Reserved>,
    ) -> Option<JobResult> {
        let ran = self.resolve_and_run(job, arrival, reserved).await;
        let result = self.stamp(ran.result?, job.test, arrival.attempt);
        self.count(
            ran.kind,
            &result,
            job.tenant.as_deref(),
            ran.waited,
            arrival,
        );
        Some(result)
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
        self.count("none", &result, None, None, arrival);
        result
    }

    /// `result` with what every result carries: `test`, `attempt`, `worker`.
    fn stamp(&self, mut result: JobResult, test: bool, attempt: u32) -> JobResult {
        result.test = test;
        result.attempt = attempt;
        result.worker = self.worker_id.clone();
        result
    }

    /// The job in the metrics (`kind`: `python`, `api`, or `none` when nothing ran), by
    /// path and by tenant. A durable job refused over capacity is not counted as a job: it
    /// stays in the stream, to be run later.
    fn count(
        &self,
        kind: &'static str,
        result: &JobResult,
        tenant: Option<&str>,
        waited: Option<Duration>,
        arrival: Arrival,
    ) {
        tracing::debug!(
            status = ?result.status,
            wall_ms = result.stats.wall_ms,
            fuel = result.stats.fuel_used,
            "job finished"
        );
        let status = crate::metrics::status_label(result.status);
        tracing::Span::current().record("status", status);
        let metrics = crate::metrics::global();
        if is_over_capacity(result) {
            metrics.over_capacity(tenant);
            if arrival.path == Path::Durable {
                return;
            }
        }
        if arrival.path != Path::Local {
            let elapsed = arrival.started.elapsed();
            metrics.job(arrival.path.as_str(), kind, result, elapsed);
            metrics.tenant_job(tenant, result, waited);
        }
    }

    /// The job's action and its unstamped result, each step guarded: a panic while
    /// resolving or running is the job's `failed` result, never a job left unanswered.
    async fn resolve_and_run(
        &self,
        job: &Job,
        arrival: Arrival,
        reserved: Option<Reserved>,
    ) -> Ran {
        let resolved = guard::guarded(Stage::Resolve, async {
            guard::inject("resolve", job.id.as_bytes());
            self.resolve(job).await
        })
        .await;
        let action = match resolved {
            Ok(Ok(action)) => action,
            Ok(Err(result)) => return Ran::unrun(result),
            Err(panicked) => {
                return Ran::unrun(guard::failed(&job.id, job.action.name(), panicked));
            }
        };
        let slot = match self.admit(job, &action.name, arrival, reserved).await {
            Ok(slot) => slot,
            Err(refused) => return Ran::unrun(over_capacity(job, &action.name, refused)),
        };
        if let Some(slot) = &slot {
            let waited = u64::try_from(slot.waited.as_millis()).unwrap_or(u64::MAX);
            tracing::Span::current().record("queue_wait_ms", waited);
        }
        let ran = guard::guarded(Stage::Run, async {
            guard::inject("run", job.id.as_bytes());
            self.run_step(job, &action, arrival).await
        })
        .await;
        let waited = slot.as_ref().map(|slot| slot.waited);
        drop(slot);
        let kind = match action.kind {
            ActionKind::Python => "python",
            ActionKind::Api => "api",
        };
        // The journal's end is written with the slot free again: a JetStream that is electing
        // a leader holds up this job's result, not the next job.
        let result = match ran {
            Ok((result, journal)) => finish_journal(result, journal).await,
            Err(panicked) => Some(guard::failed(&job.id, &action.name, panicked)),
        };
        Ran {
            kind,
            result,
            waited,
        }
    }

    /// A slot for a request-reply job that the pipeline does not run (a replay), in its
    /// tenant's turn; its `rejected` result over capacity.
    pub(crate) async fn admit_request(
        &self,
        job: &Job,
        arrival: Arrival,
    ) -> Result<Option<Slot>, JobResult> {
        let action = job.action.name();
        let admitted = self.admit(job, action, arrival, None).await;
        admitted.map_err(|refused| self.stamp(over_capacity(job, action, refused), true, 1))
    }

    /// The admit step: a slot in the job's tenant's turn (none for a local job), or the one
    /// reserved for it.
    async fn admit(
        &self,
        job: &Job,
        action: &str,
        arrival: Arrival,
        reserved: Option<Reserved>,
    ) -> Result<Option<Slot>, Refused> {
        let tenant = job.tenant.as_deref();
        // A job whose action has a quota of its own waits for its room in turn; the slot
        // reserved for it goes to whom it is due meanwhile.
        if let Some(reserved) = reserved
            && !self.scheduler.has_action_quota(tenant, action)
        {
            return Ok(Some(self.scheduler.claim(reserved, tenant, action)));
        }
        let (wait, stop) = match arrival.path {
            Path::Local => return Ok(None),
            Path::RequestReply => {
                let wait = Duration::from_millis(self.scheduler.config().queue_deadline_ms);
                (
                    Wait::Until(arrival.started + wait),
                    CancellationToken::new(),
                )
            }
            Path::Durable => (Wait::InHand, self.stop.clone()),
        };
        let slot = self.scheduler.admit(tenant, action, wait, &stop).await?;
        Ok(Some(slot))
    }

    /// The run step: the job's journal opened, its conversation by id fetched, then the
    /// limits and the run; the result, and the journal to finish ([`finish_journal`]).
    async fn run_step(
        &self,
        job: &Job,
        action: &ActionDefinition,
        arrival: Arrival,
    ) -> (JobResult, Option<Arc<JobJournal>>) {
        let journal = match self.open_journal(job, action, arrival).await {
            Ok(journal) => journal,
            Err(result) => return (result, None),
        };
        let conversations = self.conversations.as_ref();
        let result = match Conversations::fill(conversations, job, journal.as_deref()).await {
            Ok(filled) => {
                let job = filled.as_ref().unwrap_or(job);
                let journal = journal.clone();
                self.execute(job, action, arrival.attempt, journal).await
            }
            Err(message) => JobResult::rejected(&job.id, &action.name, message),
        };
        (result, journal)
    }

    /// The journal of a job that has one: a durable job, or a request-reply job that asks
    /// to be recorded (the job's `record`, or its action's), with what earlier deliveries
    /// wrote. A durable job whose journal cannot be read is not run (`failed`, tried again):
    /// an earlier delivery may have made calls that it must not make twice.
    async fn open_journal(
        &self,
        job: &Job,
        action: &ActionDefinition,
        arrival: Arrival,
    ) -> Result<Option<Arc<JobJournal>>, JobResult> {
        let wanted = match arrival.path {
            Path::Durable => self.journal_durable,
            Path::RequestReply => job.record || action.record,
            Path::Local => false,
        };
        let Some(store) = self.journal.as_ref().filter(|_| wanted) else {
            return Ok(None);
        };
        let input = (
            serde_json::to_value(job).unwrap_or_default(),
            serde_json::to_value(action).unwrap_or_default(),
            arrival.attempt,
        );
        // Bounded: a job holds its slot while it waits, and JetStream can be electing a
        // leader (a node lost); past it the job is handed back, as on any read error.
        let read = tokio::time::timeout(JOURNAL_READ_PATIENCE, store.read(&job.id)).await;
        let read = read.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the job's journal could not be read within {} s",
                JOURNAL_READ_PATIENCE.as_secs()
            ))
        });
        match read {
            Ok(read) => {
                let journal = JobJournal::record(store.clone(), &job.id, read, input);
                Ok(Some(Arc::new(journal)))
            }
            Err(error) if arrival.path == Path::Durable => Err(JobResult::empty(
                &job.id,
                &action.name,
                Status::Failed,
                Some(ErrorInfo::new(
                    ErrorKind::Internal,
                    format!("{error}: the job is not run without its journal"),
                )),
            )),
            Err(error) => {
                tracing::warn!(%error, "the job asked to be recorded; it runs unrecorded");
                Ok(None)
            }
        }
    }

    /// The limits and run steps.
    pub(crate) async fn execute(
        &self,
        job: &Job,
        action: &ActionDefinition,
        attempt: u32,
        journal: Option<Arc<JobJournal>>,
    ) -> JobResult {
        let limits = effective_limits(&self.executor.limits, action, job.timeout_ms);
        let executor = &self.executor;
        match action.kind {
            ActionKind::Python => {
                executor
                    .run_python(job, action, limits, attempt, journal)
                    .await
            }
            ActionKind::Api => executor.run_api(job, action, limits, journal).await,
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

/// `result` once its journal's end is written (what is pending: the input, the last clock
/// readings and draws); none when another delivery of the job overtook this one.
async fn finish_journal(result: JobResult, journal: Option<Arc<JobJournal>>) -> Option<JobResult> {
    let Some(journal) = journal else {
        return Some(result);
    };
    if let Err(error) = journal.finish().await {
        tracing::warn!(%error, "the end of the job's journal was not written");
    }
    (!journal.superseded()).then_some(result)
}

/// How long a job waits for its journal to be read before it is handed back.
const JOURNAL_READ_PATIENCE: Duration = Duration::from_secs(2);

/// The result of a job refused a slot: `rejected`, `error.kind = "over_capacity"`.
fn over_capacity(job: &Job, action: &str, refused: Refused) -> JobResult {
    let message = match refused {
        Refused::OverCapacity { message, .. } => message,
        Refused::Stopping => "over capacity: the worker is stopping".to_string(),
    };
    JobResult::empty(
        &job.id,
        action,
        Status::Rejected,
        Some(ErrorInfo::new(ErrorKind::OverCapacity, message)),
    )
}

/// Whether `result` is a refusal over capacity.
pub fn is_over_capacity(result: &JobResult) -> bool {
    result.status == Status::Rejected
        && result
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::OverCapacity)
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
