//! `action-worker serve`: jobs from NATS (SPEC §6), results back.
//! - Request-reply on `<prefix>.run` and `<prefix>.test`, as a NATS micro service in queue group
//!   `action-workers`, the reply in the request's encoding: the path an AI waits on.
//! - Durable jobs from stream `ACTIONS_JOBS` ([`crate::durable`]).
//! - Actions by name from the registry, KV bucket `ACTIONS` ([`crate::registry`]).
//!
//! Both paths share `nats.max_concurrent_jobs` slots. Request-reply requests beyond them wait
//! in the client library's buffer; the durable path pulls only as many jobs as slots are free.
//! SIGTERM or SIGINT: stop taking jobs, give in-flight ones `nats.shutdown_grace_ms` to finish,
//! leave the rest to redelivery, stop the embedded nats-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use action_protocol::{ActionDefinition, ActionKind, ActionRef, Job, JobResult};
use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::service::{Request, ServiceExt};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::config::{NatsSection, WorkerConfig};
use crate::durable::{Durable, pull_loop};
use crate::embedded::EmbeddedServer;
use crate::execute::Executor;
use crate::guard::{self, Stage};
use crate::registry::{Registry, ResolveError};
use crate::wire::{self, Undecoded};

/// What every job handler shares.
pub struct Worker {
    pub executor: Arc<Executor>,
    pub registry: Option<Arc<Registry>>,
    pub client: async_nats::Client,
    pub slots: Arc<Semaphore>,
}

impl Worker {
    /// The largest message the connected server takes.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Runs a decoded, valid job (its own definition, or the registry's under its tenant) and
    /// counts it in the metrics; `path` is `request_reply` or `durable`.
    pub async fn execute(
        &self,
        job: &Job,
        attempt: u32,
        path: &'static str,
        started: Instant,
    ) -> JobResult {
        let (kind, result) = self.resolve_and_run(job, attempt).await;
        tracing::debug!(
            status = ?result.status,
            wall_ms = result.stats.wall_ms,
            fuel = result.stats.fuel_used,
            "job finished"
        );
        crate::metrics::global().job(path, kind, &result, started.elapsed());
        result
    }

    /// The job's action and its result, each step guarded: a panic while resolving or
    /// running is the job's `failed` result, never a job left unanswered.
    async fn resolve_and_run(&self, job: &Job, attempt: u32) -> (&'static str, JobResult) {
        let resolved = guard::guarded(Stage::Resolve, async {
            guard::inject("resolve", job.id.as_bytes());
            self.resolve(job).await
        })
        .await;
        let action = match resolved {
            Ok(Ok(action)) => action,
            Ok(Err(result)) => return ("none", self.executor.stamp(result, job, attempt)),
            Err(panicked) => {
                let failed = guard::failed(&job.id, job.action.name(), panicked);
                return ("none", self.executor.stamp(failed, job, attempt));
            }
        };
        let kind = match action.kind {
            ActionKind::Python => "python",
            ActionKind::Api => "api",
        };
        let ran = guard::guarded(Stage::Run, async {
            guard::inject("run", job.id.as_bytes());
            self.executor.run(job, &action, attempt).await
        })
        .await;
        let result = ran.unwrap_or_else(|panicked| {
            let failed = guard::failed(&job.id, &action.name, panicked);
            self.executor.stamp(failed, job, attempt)
        });
        (kind, result)
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
                action_protocol::Status::Failed,
                Some(action_protocol::ErrorInfo::new(
                    action_protocol::ErrorKind::Internal,
                    message,
                )),
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

/// Connects as `nats` says (credentials, TLS: [`crate::connect`]), logging disconnections and
/// reconnections; the client reconnects on its own for as long as the worker runs.
pub async fn connect(url: &str, nats: &NatsSection) -> anyhow::Result<async_nats::Client> {
    let options = async_nats::ConnectOptions::new().name("action-worker");
    Ok(crate::connect::connect(url, nats, options).await?)
}

/// Runs one trivial Python job, so that a worker reports ready only with a runtime that runs.
async fn warm_up(executor: &Executor) -> anyhow::Result<()> {
    let job: Job = serde_json::from_value(serde_json::json!({
        "id": "warm-up",
        "action": {"name": "warmUp", "type": "python",
                   "python": {"code": "def execute_action(context):\n    return 'ready'\n"}},
    }))?;
    let ActionRef::Inline(action) = &job.action else {
        anyhow::bail!("the warm-up job is not inline");
    };
    let result = executor.run(&job, action, 1).await;
    if result.status != action_protocol::Status::Ok {
        anyhow::bail!(
            "the Python runtime failed its warm-up job: {:?} {}",
            result.status,
            result.error.map(|e| e.message).unwrap_or_default()
        );
    }
    Ok(())
}

/// `config_path`: the configuration file, when there is one, for the other worker
/// processes (`runtime.processes`) to read.
pub async fn serve(
    config: &WorkerConfig,
    config_path: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let status = Arc::new(crate::admin::Status::default());
    if let Some(listen) = config.admin.address()? {
        let bound = crate::admin::start(listen, status.clone()).await?;
        say(format!(
            "action-worker: admin on http://{bound} (/healthz, /readyz, /metrics)"
        ));
    }
    // Loading the runtime may compile it (seconds on a cold cache): off the async threads,
    // so that the admin port answers meanwhile.
    let executor = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Executor::from_config(&config, None))
            .await
            .context("the runtime loader stopped")??
    };
    let executor = Arc::new(executor);
    warm_up(&executor).await?;
    status
        .warm
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let embedded = match &config.nats.url {
        Some(_) => None,
        None => Some(EmbeddedServer::start(&config.nats).await?),
    };
    let url = config
        .nats
        .url
        .clone()
        .or_else(|| embedded.as_ref().map(|e| e.url.clone()))
        .unwrap_or_default();
    if embedded.is_some() {
        say(format!(
            "action-worker: started a local nats-server at {url} (data in {})",
            config.nats.data_dir.display()
        ));
    }
    let client = connect(&url, &config.nats).await?;
    let _ = status.client.set(client.clone());
    let js = async_nats::jetstream::new(client.clone());
    let registry = match Registry::open(&js, config.nats.stream_replicas).await {
        Ok(registry) => {
            registry.follow();
            Some(registry)
        }
        Err(error) if !config.nats.durable => {
            tracing::warn!(
                error = format!("{error:#}"),
                "no registry: jobs must carry their action"
            );
            None
        }
        Err(error) => {
            return Err(error.context(
                "the registry and durable jobs need JetStream: enable it on the server, or set \
                 nats.durable = false to serve request-reply alone",
            ));
        }
    };
    let durable = if config.nats.durable {
        Some(Arc::new(Durable::setup(&js, &config.nats).await?))
    } else {
        None
    };
    let slots = Arc::new(Semaphore::new(config.nats.max_concurrent_jobs));
    let _ = status
        .slots
        .set((slots.clone(), config.nats.max_concurrent_jobs));
    let worker = Arc::new(Worker {
        executor,
        registry,
        client: client.clone(),
        slots: slots.clone(),
    });
    let service = client
        .service_builder()
        .description("Runs chatbot custom actions: API requests and sandboxed Python")
        .queue_group("action-workers")
        .start("action-worker", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the NATS service: {e}"))?;
    let prefix = &config.nats.subject_prefix;
    let add = |name: &'static str| {
        let subject = format!("{prefix}.{name}");
        let builder = service.endpoint_builder().name(name);
        async move {
            builder
                .add(subject)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add endpoint {name}: {e}"))
        }
    };
    let run = add("run").await?.map(|r| (r, false));
    let test = add("test").await?.map(|r| (r, true));
    let mut requests = futures_util::stream::select(run, test);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let puller = durable
        .as_ref()
        .map(|durable| tokio::spawn(pull_loop(worker.clone(), durable.clone(), stopped)));
    let child = crate::processes::is_child();
    let others = if child {
        0
    } else {
        crate::processes::count(config.runtime.processes) - 1
    };
    if others > 0 {
        let children = crate::processes::Children::spawn(others, config_path, &url).await?;
        let _ = status.children.set(Arc::new(children));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    // The endpoints' subscriptions reach the server before anyone is told to send: a client
    // that starts on the "serving" line must not meet "no responders".
    client
        .flush()
        .await
        .context("cannot reach NATS to register the endpoints")?;
    let durable_note = if durable.is_some() {
        format!(", durable jobs from {prefix}.jobs.>")
    } else {
        String::new()
    };
    let processes = if others > 0 {
        format!(" in {} processes", others + 1)
    } else {
        String::new()
    };
    say(format!(
        "action-worker: serving {prefix}.run and {prefix}.test on {url} (queue group action-workers){durable_note}{processes}"
    ));
    // One future for the whole loop: a read of stdin occupies a blocking thread until it
    // returns, so making a new one per iteration would leak a thread per request.
    let mut parent_gone = Box::pin(crate::processes::stdin_closed());
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    // A request taken from the subscription when the signal came, still to be run.
    let mut in_hand = None;
    loop {
        // Every wait, for a request or for a slot, also listens for the signals to stop.
        tokio::select! {
            next = requests.next() => {
                let Some((request, force_test)) = next else { break };
                let permit = tokio::select! {
                    permit = slots.clone().acquire_owned() => permit.context("the job slots closed")?,
                    _ = interrupt.recv() => { in_hand = Some((request, force_test)); break }
                    _ = terminate.recv() => { in_hand = Some((request, force_test)); break }
                    _ = &mut parent_gone, if child => { in_hand = Some((request, force_test)); break }
                };
                tokio::spawn(handle(worker.clone(), request, force_test, permit));
            }
            // Each ends the loop, so that the embedded nats-server is stopped with the worker.
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            // A child stops when its parent closes its stdin (or dies).
            _ = &mut parent_gone, if child => break,
        }
    }
    say("action-worker: stopping: no new jobs; waiting for the running ones".to_string());
    status
        .stopping
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = stop.send(true);
    let grace = Duration::from_millis(config.nats.shutdown_grace_ms);
    // The other processes stop at the same time and get the same grace, plus a little.
    let children_deadline = tokio::time::Instant::now() + grace + Duration::from_secs(5);
    if let Some(children) = status.children.get() {
        children.signal_stop().await;
    }
    // Unsubscribe the endpoints, then run the requests already delivered to this worker
    // (the queue group will not give them to another): their callers are waiting.
    if let Err(error) = service.stop().await {
        tracing::warn!(%error, "cannot stop the NATS service cleanly");
    }
    let drain_until = tokio::time::Instant::now() + grace;
    loop {
        let next = match in_hand.take() {
            Some(request) => Some(request),
            None => tokio::time::timeout_at(drain_until, requests.next())
                .await
                .ok()
                .flatten(),
        };
        let Some((request, force_test)) = next else {
            break;
        };
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(drain_until, slots.clone().acquire_owned()).await
        else {
            break;
        };
        tokio::spawn(handle(worker.clone(), request, force_test, permit));
    }
    drop(requests);
    let everything = u32::try_from(config.nats.max_concurrent_jobs).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, slots.acquire_many(everything)).await {
        Ok(_) => say("action-worker: stopped".to_string()),
        Err(_) => say(format!(
            "action-worker: stopped after {} ms with {} jobs still running; durable ones will be redelivered",
            grace.as_millis(),
            everything as usize - slots.available_permits()
        )),
    }
    if let Some(puller) = puller {
        puller.abort();
    }
    let _ = client.flush().await;
    if let Some(children) = status.children.get() {
        children
            .wait(children_deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
    }
    crate::connect::closing();
    drop(embedded);
    Ok(())
}

/// A status line on stdout; a closed stdout (a supervisor that stopped reading) is no error.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

async fn handle(
    worker: Arc<Worker>,
    request: Request,
    force_test: bool,
    _slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let (encoding, job) = wire::decode(&request.message.payload, request.message.headers.as_ref());
    let (job_id, action) = match &job {
        Ok(job) => (job.id.clone(), job.action.name().to_string()),
        Err(_) => (String::new(), String::new()),
    };
    let span = tracing::info_span!("action.run", job_id = %job_id, action = %action, path = "request_reply");
    let result = answer(&worker, job, force_test, started)
        .instrument(span.clone())
        .await;
    let payload = span.in_scope(|| wire::encode(&result, encoding, worker.max_payload()));
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", encoding.content_type());
    if let Err(error) = request
        .respond_with_headers(Ok(payload.into()), headers)
        .await
    {
        span.in_scope(|| tracing::warn!(%error, "could not send the result"));
    }
}

/// The result of a request-reply job, whatever its payload held.
async fn answer(
    worker: &Worker,
    job: Result<Job, Undecoded>,
    force_test: bool,
    started: Instant,
) -> JobResult {
    let never_ran = |result: JobResult| {
        tracing::info!(error = ?result.error.as_ref().map(|e| &e.message), "job rejected");
        crate::metrics::global().job("request_reply", "none", &result, started.elapsed());
        result
    };
    let mut job = match job {
        Ok(job) => job,
        Err(Undecoded::Rejected(message)) => {
            return never_ran(JobResult::rejected("", "", message));
        }
        Err(Undecoded::Panicked(panicked)) => return never_ran(guard::failed("", "", panicked)),
    };
    job.test |= force_test;
    match job.validate() {
        Err(e) => never_ran(JobResult::rejected(
            &job.id,
            job.action.name(),
            e.to_string(),
        )),
        Ok(()) => worker.execute(&job, 1, "request_reply", started).await,
    }
}
