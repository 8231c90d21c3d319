//! `action-worker serve`: a [`Server`] that takes jobs from NATS (SPEC §6) and answers them.
//! - Request-reply on `<prefix>.run` and `<prefix>.test` ([`crate::request_reply`]), as a NATS
//!   micro service in queue group `action-workers`.
//! - Durable jobs from stream `ACTIONS_JOBS` ([`crate::durable`]).
//! - Actions by name from the registry, KV bucket `ACTIONS` ([`crate::registry`]).
//!
//! Both transports share one [`Pipeline`], whose scheduler holds the `nats.max_concurrent_jobs`
//! slots and shares them fairly among tenants ([`crate::scheduler`]). A request-reply job
//! waits there for its slot up to `tenants.queue_deadline_ms`; the durable path pulls only as
//! many jobs as slots are free.
//!
//! [`Server::start`] sets everything up; [`Server::run`] takes jobs until its one
//! cancellation token is cancelled (SIGTERM, SIGINT, or a child's parent gone: one listener,
//! [`listen_for_stop`]); [`Server::stop`] is the one drain: no new jobs, in-flight ones get
//! `nats.shutdown_grace_ms` to finish, the rest are left to redelivery, the embedded
//! nats-server stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use action_protocol::{ActionRef, Job, Status as JobStatus};
use anyhow::Context;
use async_nats::service::{Request, Service, ServiceExt};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Status;
use crate::config::{NatsAccess, NatsSection, Settings};
use crate::conversations::Conversations;
use crate::durable::{Durable, pull_loop};
use crate::embedded::EmbeddedServer;
use crate::execute::Executor;
use crate::journal::JournalStore;
use crate::pipeline::{Arrival, Path, Pipeline};
use crate::registry::Registry;
use crate::request_reply;
use crate::scheduler::Scheduler;
use crate::worker::Worker;

/// A request and whether it came on `<prefix>.test`.
type Requests = BoxStream<'static, (Request, bool)>;

/// `action-worker serve`: start, run until told to stop, drain.
pub async fn serve(config: &Settings, config_path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut server = Server::start(config, config_path).await?;
    server.run().await?;
    server.stop().await;
    Ok(())
}

pub struct Server {
    nats: NatsSection,
    status: Arc<Status>,
    worker: Arc<Worker>,
    /// Taken when the endpoints are unsubscribed.
    service: Option<Service>,
    requests: Requests,
    durable: Option<Arc<Durable>>,
    puller: Option<JoinHandle<()>>,
    /// The one cancellation source: cancelled by [`listen_for_stop`].
    stop: CancellationToken,
    embedded: Option<EmbeddedServer>,
}

impl Server {
    /// Everything up to the "serving" line: the admin port, the runtime (and a warm-up job),
    /// NATS (embedded when no URL is set), the registry, the durable streams, the service's
    /// endpoints, the other processes, and the listener for the signals to stop.
    pub async fn start(
        config: &Settings,
        config_path: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let status = Arc::new(Status::default());
        start_admin(config, &status).await?;
        let executor = load_executor(config).await?;
        warm_up(&Pipeline::local(executor.clone())).await?;
        status.warm.store(true, Ordering::Relaxed);
        let (embedded, url) = start_nats(&config.nats).await?;
        let client = connect(&url, &config.nats_access).await?;
        let _ = status.client.set(client.clone());
        let js = async_nats::jetstream::new(client.clone());
        let registry = open_registry(&js, &config.nats).await?;
        let scheduler = Scheduler::new(config.nats.max_concurrent_jobs, config.tenants.clone());
        let _ = status.scheduler.set(scheduler.clone());
        let stop = CancellationToken::new();
        let has_jetstream = registry.is_some();
        let mut pipeline = Pipeline::new(executor, registry, scheduler);
        pipeline.stop = stop.clone();
        connect_pipeline(&mut pipeline, config, &client, has_jetstream).await?;
        let durable = match config.nats.durable {
            true => Some(Arc::new(Durable::setup(&js, &config.nats).await?)),
            false => None,
        };
        if let Some(durable) = &durable {
            let _ = status.durable.set(durable.clone());
        }
        let worker = Arc::new(Worker {
            pipeline: Arc::new(pipeline),
            client: client.clone(),
            jobs: TaskTracker::new(),
        });
        let (service, requests) = start_service(&client, &config.nats.subject_prefix).await?;
        let others = spawn_children(config, config_path, &url, &status).await?;
        listen_for_stop(stop.clone())?;
        // The endpoints' subscriptions reach the server before anyone is told to send: a
        // client that starts on the "serving" line must not meet "no responders".
        client
            .flush()
            .await
            .context("cannot reach NATS to register the endpoints")?;
        say(serving_line(&config.nats, &url, durable.is_some(), others));
        Ok(Self {
            nats: config.nats.clone(),
            status,
            worker,
            service: Some(service),
            requests,
            durable,
            puller: None,
            stop,
            embedded,
        })
    }

    /// Takes jobs until the stop. Each request is handed to its own task at once: it waits
    /// for its slot in the pipeline, in its tenant's turn, so that a flood of one tenant's
    /// requests does not stand in front of another's.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        self.puller = self.durable.as_ref().map(|durable| {
            let pull = pull_loop(self.worker.clone(), durable.clone(), self.stop.clone());
            tokio::spawn(pull)
        });
        loop {
            let next = tokio::select! {
                next = self.requests.next() => next,
                _ = self.stop.cancelled() => return Ok(()),
            };
            let Some((request, force_test)) = next else {
                return Ok(());
            };
            let worker = self.worker.clone();
            let job = request_reply::handle(worker, request, force_test);
            self.worker.jobs.spawn(job);
        }
    }

    /// The drain: no new jobs; the requests already delivered to this worker run (their
    /// callers wait, and the queue group will not give them to another); in-flight jobs get
    /// the grace; then the other processes, NATS and the embedded server stop.
    pub async fn stop(mut self) {
        say("action-worker: stopping: no new jobs; waiting for the running ones".to_string());
        self.status.stopping.store(true, Ordering::Relaxed);
        self.stop.cancel();
        let grace = Duration::from_millis(self.nats.shutdown_grace_ms);
        // The other processes stop at the same time and get the same grace, plus a little.
        let children_deadline = tokio::time::Instant::now() + grace + Duration::from_secs(5);
        if let Some(children) = self.status.children.get() {
            children.signal_stop().await;
        }
        if let Some(service) = self.service.take()
            && let Err(error) = service.stop().await
        {
            tracing::warn!(%error, "cannot stop the NATS service cleanly");
        }
        self.run_delivered(tokio::time::Instant::now() + grace)
            .await;
        self.wait_for_running(grace).await;
        if let Some(puller) = self.puller.take() {
            puller.abort();
        }
        let _ = self.worker.client.flush().await;
        if let Some(children) = self.status.children.get() {
            let left = children_deadline.saturating_duration_since(tokio::time::Instant::now());
            children.wait(left).await;
        }
        crate::connect::closing();
        drop(self.embedded.take());
    }

    /// Runs the requests delivered before the endpoints were unsubscribed, until `until`.
    async fn run_delivered(&mut self, until: tokio::time::Instant) {
        while let Ok(Some((request, force_test))) =
            tokio::time::timeout_at(until, self.requests.next()).await
        {
            let worker = self.worker.clone();
            let job = request_reply::handle(worker, request, force_test);
            self.worker.jobs.spawn(job);
        }
    }

    /// Waits up to `grace` for every job in hand to be answered (a durable one stored and
    /// acked).
    async fn wait_for_running(&mut self, grace: Duration) {
        self.requests = futures_util::stream::empty().boxed();
        let jobs = &self.worker.jobs;
        jobs.close();
        match tokio::time::timeout(grace, jobs.wait()).await {
            Ok(()) => say("action-worker: stopped".to_string()),
            Err(_) => say(format!(
                "action-worker: stopped after {} ms with {} jobs still running; durable ones will be redelivered",
                grace.as_millis(),
                jobs.len()
            )),
        }
    }
}

/// The one place that listens for the signals to stop: SIGTERM, SIGINT, and, in a child
/// process, its parent closing its stdin (or dying). Listening starts before this returns.
fn listen_for_stop(stop: CancellationToken) -> anyhow::Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let child = crate::processes::is_child();
    tokio::spawn(async move {
        // One future for the whole wait: a read of stdin occupies a blocking thread until it
        // returns.
        let parent_gone = crate::processes::stdin_closed();
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
            _ = parent_gone, if child => {}
            _ = stop.cancelled() => return,
        }
        stop.cancel();
    });
    Ok(())
}

async fn start_admin(config: &Settings, status: &Arc<Status>) -> anyhow::Result<()> {
    if let Some(listen) = config.admin {
        let bound = crate::admin::start(listen, status.clone()).await?;
        say(format!(
            "action-worker: admin on http://{bound} (/healthz, /readyz, /metrics)"
        ));
    }
    Ok(())
}

/// Loading the runtime may compile it (seconds on a cold cache): off the async threads, so
/// that the admin port answers meanwhile.
async fn load_executor(config: &Settings) -> anyhow::Result<Arc<Executor>> {
    let config = config.clone();
    let executor = tokio::task::spawn_blocking(move || Executor::from_config(&config, None))
        .await
        .context("the runtime loader stopped")??;
    Ok(Arc::new(executor))
}

/// Runs one trivial Python job, so that a worker reports ready only with a runtime that runs.
async fn warm_up(pipeline: &Pipeline) -> anyhow::Result<()> {
    let job: Job = serde_json::from_value(serde_json::json!({
        "id": "warm-up",
        "action": {"name": "warmUp", "type": "python",
                   "python": {"code": "def execute_action(context):\n    return 'ready'\n"}},
    }))?;
    if !matches!(job.action, ActionRef::Inline(_)) {
        anyhow::bail!("the warm-up job is not inline");
    }
    let result = pipeline.run(&job, Arrival::new(Path::Local, 1)).await;
    if result.status != JobStatus::Ok {
        anyhow::bail!(
            "the Python runtime failed its warm-up job: {:?} {}",
            result.status,
            result.error.map(|e| e.message).unwrap_or_default()
        );
    }
    Ok(())
}

/// The embedded nats-server when no URL is set, and the URL to connect to.
async fn start_nats(nats: &NatsSection) -> anyhow::Result<(Option<EmbeddedServer>, String)> {
    if let Some(url) = &nats.url {
        return Ok((None, url.clone()));
    }
    let embedded = EmbeddedServer::start(nats).await?;
    let url = embedded.url.clone();
    say(format!(
        "action-worker: started a local nats-server at {url} (data in {})",
        nats.data_dir.display()
    ));
    Ok((Some(embedded), url))
}

/// What the pipeline reaches through NATS: the workflow engine's conversations, and the
/// journals when the server has JetStream.
async fn connect_pipeline(
    pipeline: &mut Pipeline,
    config: &Settings,
    client: &async_nats::Client,
    has_jetstream: bool,
) -> anyhow::Result<()> {
    pipeline.conversations = Some(Conversations {
        client: client.clone(),
        subject: config.nats.conversation_subject(),
        timeout: Duration::from_millis(config.nats.conversation_timeout_ms),
    });
    if has_jetstream {
        let js = async_nats::jetstream::new(client.clone());
        let max_payload = client.server_info().max_payload;
        let store = JournalStore::setup(&js, &config.nats, max_payload).await?;
        pipeline.journal = Some(Arc::new(store));
        pipeline.journal_durable = config.nats.journal;
    }
    Ok(())
}

/// Connects as `nats` says (credentials, TLS: [`crate::connect`]), logging disconnections and
/// reconnections; the client reconnects on its own for as long as the worker runs.
pub async fn connect(url: &str, access: &NatsAccess) -> anyhow::Result<async_nats::Client> {
    let options = async_nats::ConnectOptions::new().name("action-worker");
    Ok(crate::connect::connect(url, access, options).await?)
}

/// The registry, following its bucket; none without JetStream when no durable jobs are asked.
async fn open_registry(
    js: &async_nats::jetstream::Context,
    nats: &NatsSection,
) -> anyhow::Result<Option<Arc<Registry>>> {
    match Registry::open(js, nats.stream_replicas).await {
        Ok(registry) => {
            registry.follow();
            Ok(Some(registry))
        }
        Err(error) if !nats.durable => {
            tracing::warn!(
                error = format!("{error:#}"),
                "no registry: jobs must carry their action"
            );
            Ok(None)
        }
        Err(error) => Err(error.context(
            "the registry and durable jobs need JetStream: enable it on the server, or set \
             nats.durable = false to serve request-reply alone",
        )),
    }
}

/// The NATS micro service with its endpoints `<prefix>.run` and `<prefix>.test`.
async fn start_service(
    client: &async_nats::Client,
    prefix: &str,
) -> anyhow::Result<(Service, Requests)> {
    let service = client
        .service_builder()
        .description("Runs chatbot custom actions: API requests and sandboxed Python")
        .queue_group("action-workers")
        .start("action-worker", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the NATS service: {e}"))?;
    let mut endpoints = Vec::new();
    for (name, test) in [("run", false), ("test", true)] {
        let endpoint = service
            .endpoint_builder()
            .name(name)
            .add(format!("{prefix}.{name}"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot add endpoint {name}: {e}"))?;
        endpoints.push(endpoint.map(move |request| (request, test)));
    }
    Ok((service, futures_util::stream::select_all(endpoints).boxed()))
}

/// The other worker processes (`runtime.processes`); how many.
async fn spawn_children(
    config: &Settings,
    config_path: Option<&std::path::Path>,
    url: &str,
    status: &Status,
) -> anyhow::Result<usize> {
    if crate::processes::is_child() {
        return Ok(0);
    }
    let others = crate::processes::count(config.runtime.processes) - 1;
    if others > 0 {
        let children = crate::processes::Children::spawn(others, config_path, url).await?;
        let _ = status.children.set(Arc::new(children));
    }
    Ok(others)
}

fn serving_line(nats: &NatsSection, url: &str, durable: bool, others: usize) -> String {
    let prefix = &nats.subject_prefix;
    let durable_note = match durable {
        true => format!(", durable jobs from {prefix}.jobs.>"),
        false => String::new(),
    };
    let processes = match others {
        0 => String::new(),
        n => format!(" in {} processes", n + 1),
    };
    format!(
        "action-worker: serving {prefix}.run and {prefix}.test on {url} (queue group action-workers){durable_note}{processes}"
    )
}

/// A status line on stdout; a closed stdout (a supervisor that stopped reading) is no error.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
