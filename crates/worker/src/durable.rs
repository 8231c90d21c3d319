//! Durable jobs (SPEC §6): stream `ACTIONS_JOBS` on `<prefix>.jobs.>` (work-queue retention),
//! consumed through the durable pull consumer `action-workers` that every replica shares;
//! results to stream `ACTIONS_RESULTS` as `<prefix>.results.<job id>`.
//!
//! A job's life:
//! 1. The worker pulls only as many messages as it has free slots.
//! 2. If a result for the job id is already stored (a redelivery after the ack was lost, or
//!    the same id submitted again), the job is not run: the stored result is announced again
//!    to `reply_to` and the message acked.
//! 3. A delivery past `max_attempts` is not run: a `failed` result is stored and the message
//!    terminated. (The consumer's `max_deliver` is `max_attempts + 1` so that this last
//!    delivery exists: a job that kills every worker that runs it still gets a result.)
//! 4. Otherwise the job runs while a progress ack goes out every third of `ack_wait`.
//! 5. The result is stored with `Nats-Msg-Id` = job id. The results stream keeps one message
//!    per subject and refuses a second (`discard_new_per_subject`), so when two deliveries of
//!    one job both ran (a worker cut off from NATS past `ack_wait`), the first stored result is
//!    the result, and the later one is dropped in its favour: a job never yields two results.
//!    Storing is retried through NATS outages until it succeeds.
//! 6. The stored result goes to `reply_to`, then the job is acked (and the ack confirmed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use action_protocol::{Encoding, ErrorInfo, ErrorKind, Job, JobResult, Status};
use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, Message};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::Instrument;

use crate::config::NatsSection;
use crate::guard::{self, Stage};
use crate::serve::Worker;
use crate::wire::{self, Undecoded};

pub const JOBS_STREAM: &str = "ACTIONS_JOBS";
pub const RESULTS_STREAM: &str = "ACTIONS_RESULTS";
pub const CONSUMER: &str = "action-workers";
/// How long a pull request waits for messages before the worker asks again.
/// No idle heartbeat: async-nats 0.51's `Batch` stops polling its subscription after one
/// (it returns `Pending` without a wake-up), which held jobs back for seconds; the batch's own
/// timer covers a pull lost to a server restart instead.
const PULL_EXPIRES: Duration = Duration::from_secs(3);
/// The streams' duplicate window: a publisher's retry within it is dropped by `Nats-Msg-Id`.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Whether `id` can name a result, `<prefix>.results.<id>`: tokens of visible characters, no
/// wildcards, and not starting with the token `_seq`, which names the results of jobs without
/// such an id.
pub fn id_names_a_result(id: &str) -> bool {
    !id.is_empty()
        && !id.split('.').any(str::is_empty)
        && id.split('.').next() != Some("_seq")
        && !id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>')
}

/// The results stream's subject of a job id, or, for an id that cannot name a result, of the
/// stream sequence of the job's message.
pub fn results_subject(prefix: &str, id: Option<&str>, sequence: u64) -> String {
    match id {
        Some(id) if id_names_a_result(id) => format!("{prefix}.results.{id}"),
        _ => format!("{prefix}.results._seq.{sequence}"),
    }
}

/// The streams and the consumer, created if absent. What exists is used as it is.
pub struct Durable {
    pub jobs: PullConsumer,
    pub results: stream::Stream,
    pub js: jetstream::Context,
    pub prefix: String,
    pub ack_wait: Duration,
    /// Deliveries that are run (the consumer's `max_deliver` minus one).
    pub max_attempts: u32,
}

impl Durable {
    pub async fn setup(js: &jetstream::Context, config: &NatsSection) -> anyhow::Result<Self> {
        let prefix = &config.subject_prefix;
        let jobs_stream = js
            .get_or_create_stream(stream::Config {
                name: JOBS_STREAM.into(),
                description: Some("action-worker: durable action jobs".into()),
                subjects: vec![format!("{prefix}.jobs.>")],
                retention: RetentionPolicy::WorkQueue,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: config.stream_replicas,
                ..Default::default()
            })
            .await
            .with_context(|| {
                format!("cannot create or open the stream {JOBS_STREAM} (is JetStream enabled on the server?)")
            })?;
        let results = js
            .get_or_create_stream(stream::Config {
                name: RESULTS_STREAM.into(),
                description: Some("action-worker: one result per job id".into()),
                subjects: vec![format!("{prefix}.results.>")],
                retention: RetentionPolicy::Limits,
                max_messages_per_subject: 1,
                discard: DiscardPolicy::New,
                discard_new_per_subject: true,
                max_age: Duration::from_secs(config.results_max_age_s),
                duplicate_window: DUPLICATE_WINDOW,
                allow_direct: true,
                num_replicas: config.stream_replicas,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create or open the stream {RESULTS_STREAM}"))?;
        let ack_wait = Duration::from_millis(config.ack_wait_ms);
        let jobs: PullConsumer = jobs_stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    description: Some("action-worker replicas".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait,
                    max_deliver: i64::from(config.max_attempts) + 1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot create or open the consumer {CONSUMER}"))?;
        let info = jobs.cached_info();
        let max_deliver = info.config.max_deliver;
        let ack_wait = info.config.ack_wait;
        let max_attempts = if max_deliver > 1 {
            u32::try_from(max_deliver - 1).unwrap_or(u32::MAX)
        } else {
            config.max_attempts
        };
        if max_attempts != config.max_attempts {
            tracing::warn!(
                max_deliver,
                configured = config.max_attempts,
                "the existing consumer {CONSUMER} allows {max_attempts} runs of a job; it is used as it is"
            );
        }
        Ok(Self {
            jobs,
            results,
            js: js.clone(),
            prefix: prefix.clone(),
            ack_wait,
            max_attempts,
        })
    }

    /// The stored result of `subject`, if any, with its encoding.
    async fn stored(&self, subject: &str) -> anyhow::Result<Option<Stored>> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        match self.results.direct_get_last_for_subject(subject).await {
            Ok(message) => {
                let content_type = message.headers.get("Content-Type").map(|v| v.as_str());
                let encoding = Encoding::from_content_type(content_type).unwrap_or(Encoding::Json);
                let tenant = message
                    .headers
                    .get(TENANT_HEADER)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                Ok(Some(Stored {
                    encoding,
                    payload: message.payload,
                    tenant,
                }))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "cannot read {subject} from {RESULTS_STREAM}: {e}"
            )),
        }
    }

    /// Stores `result` unless a result of the job is stored already; returns the stored one.
    /// Retried with backoff through outages for up to [`STORE_PATIENCE`]; `None` after that
    /// (the job is then handed back, to be run again later or elsewhere).
    async fn store(
        &self,
        subject: &str,
        encoding: Encoding,
        result: &JobResult,
        tenant: &str,
        max_payload: usize,
    ) -> Option<Stored> {
        let payload = bytes::Bytes::from(wire::encode(result, encoding, max_payload));
        let mut pause = Duration::from_millis(50);
        let give_up = tokio::time::Instant::now() + STORE_PATIENCE;
        loop {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", result.job_id.as_str());
            headers.insert("Content-Type", encoding.content_type());
            headers.insert(TENANT_HEADER, tenant);
            let sent = match self
                .js
                .publish_with_headers(subject.to_string(), headers, payload.clone())
                .await
            {
                Ok(ack) => ack.await.map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            };
            match sent {
                Ok(ack) if !ack.duplicate => {
                    return Some(Stored {
                        encoding,
                        payload,
                        tenant: tenant.to_string(),
                    });
                }
                // Stored before (a duplicate within the window, or refused as a second
                // message of the subject): the stored one stands.
                outcome => match self.stored(subject).await {
                    Ok(Some(stored)) => return Some(stored),
                    Ok(None) | Err(_) => {
                        if let Err(error) = outcome {
                            tracing::warn!(job_id = %result.job_id, %error, "cannot store the result yet; retrying");
                        }
                    }
                },
            }
            if tokio::time::Instant::now() + pause > give_up {
                tracing::error!(job_id = %result.job_id, subject, "cannot store the result; the job is handed back");
                return None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// A stored result: how it is encoded, and the tenant of the job that produced it.
pub struct Stored {
    encoding: Encoding,
    payload: bytes::Bytes,
    tenant: String,
}

/// The header of a stored result that names its job's tenant (empty: none), so that a job of
/// another tenant reusing the id is not answered with it.
const TENANT_HEADER: &str = "Action-Worker-Tenant";

/// How long a result is retried before its job is handed back.
const STORE_PATIENCE: Duration = Duration::from_secs(300);

/// Sends progress acks for `message` every third of `ack_wait` until dropped (a panic or a
/// cancelled future included), so that a job being run, stored or waiting for a slot is not
/// given to another worker meanwhile.
struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    fn start(message: &Message, ack_wait: Duration) -> Self {
        let message = message.clone();
        let every = (ack_wait / 3).max(Duration::from_millis(100));
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pulls jobs while the worker has free slots, until `stop` turns true. Messages that arrive
/// for a pull after the stop are handed back at once (nak) for another replica.
pub async fn pull_loop(
    worker: Arc<Worker>,
    durable: Arc<Durable>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for a free slot without keeping it: request-reply jobs may take it meanwhile,
        // and a message that finds no slot waits for one (at most `wanted` of them).
        tokio::select! {
            permit = worker.slots.acquire() => match permit {
                Ok(permit) => drop(permit),
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let wanted = worker.slots.available_permits().clamp(1, 256);
        let batch = durable
            .jobs
            .batch()
            .max_messages(wanted)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot pull jobs; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        let mut stopping = false;
        loop {
            let next = tokio::select! {
                next = batch.next() => Pulled::Message(next),
                _ = stop.changed(), if !stopping => Pulled::Stop,
            };
            let next = match next {
                Pulled::Stop => {
                    stopping = true;
                    continue;
                }
                Pulled::Message(None) => break,
                Pulled::Message(Some(next)) => next,
            };
            let message = match next {
                Ok(message) => message,
                Err(error) => {
                    // A refused pull (no JetStream leader yet, the consumer gone) ends at
                    // once: back off rather than ask again in a tight loop.
                    tracing::warn!(%error, "the pull failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    break;
                }
            };
            if stopping {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            match worker.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(handle(worker.clone(), durable.clone(), message, permit));
                }
                // Request-reply jobs took the slots since the pull: wait for one in the
                // background, keeping the message ours, or hand it back if the worker stops.
                Err(_) => {
                    tokio::spawn(wait_for_slot(
                        worker.clone(),
                        durable.clone(),
                        message,
                        stop.clone(),
                    ));
                }
            }
        }
        if stopping {
            return;
        }
    }
}

async fn wait_for_slot(
    worker: Arc<Worker>,
    durable: Arc<Durable>,
    message: Message,
    mut stop: watch::Receiver<bool>,
) {
    let progress = Progress::start(&message, durable.ack_wait);
    let permit = tokio::select! {
        permit = worker.slots.clone().acquire_owned() => permit.ok(),
        _ = stop.wait_for(|stopped| *stopped) => None,
    };
    drop(progress);
    match permit {
        Some(permit) => handle(worker, durable, message, permit).await,
        None => {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
}

enum Pulled<T> {
    Message(Option<T>),
    Stop,
}

async fn handle(
    worker: Arc<Worker>,
    durable: Arc<Durable>,
    message: Message,
    slot: OwnedSemaphorePermit,
) {
    let msg_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("action.run", job_id = %msg_id, path = "durable");
    // The stages of the job are guarded one by one; this catches a panic in the glue between
    // them (reading, storing and announcing results), and hands the job back for another try.
    let handled = guard::guarded(
        Stage::Store,
        handle_job(worker, durable, message.clone(), msg_id, slot),
    )
    .instrument(span.clone())
    .await;
    if handled.is_err() {
        hand_back(&message).instrument(span).await;
    }
}

/// `msg_id`: the message's `Nats-Msg-Id` (empty without one).
async fn handle_job(
    worker: Arc<Worker>,
    durable: Arc<Durable>,
    message: Message,
    msg_id: String,
    _slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let (delivered, sequence) = match message.info() {
        Ok(info) => (
            u32::try_from(info.delivered).unwrap_or(u32::MAX),
            info.stream_sequence,
        ),
        Err(error) => {
            tracing::warn!(%error, "a job message without delivery information; terminated");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    // From here until the job is acked or handed back, JetStream hears that it is in hand.
    let _progress = Progress::start(&message, durable.ack_wait);
    let delivery = Delivery {
        message: &message,
        delivered,
    };
    let (encoding, decoded) = wire::decode(&message.payload, message.headers.as_ref());
    let reply_to = decoded.as_ref().ok().and_then(|job| job.reply_to.clone());
    let job = match decoded.and_then(|job| checked(job, &durable.prefix)) {
        Ok(job) => job,
        Err(Undecoded::Rejected(problem)) => {
            let subject = results_subject(&durable.prefix, Some(&msg_id), sequence);
            let mut result = JobResult::rejected(&msg_id, "", problem);
            result.attempt = delivered;
            result.worker = worker.executor.worker_id.clone();
            tracing::info!(%subject, error = %result.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default(), "durable job rejected");
            crate::metrics::global().job("durable", "none", &result, started.elapsed());
            let answer = Answer {
                subject: &subject,
                encoding,
                reply_to: reply_to.as_deref(),
                tenant: "",
                job: None,
            };
            return settle(&worker, &durable, &delivery, &answer, &result).await;
        }
        Err(Undecoded::Panicked(panicked)) => {
            // The worker's fault: tried again while attempts remain, like a failed run.
            let subject = results_subject(&durable.prefix, Some(&msg_id), sequence);
            let mut result = guard::failed(&msg_id, "", panicked);
            result.attempt = delivered;
            result.worker = worker.executor.worker_id.clone();
            crate::metrics::global().job("durable", "none", &result, started.elapsed());
            let answer = Answer {
                subject: &subject,
                encoding,
                reply_to: None,
                tenant: "",
                job: None,
            };
            return settle(&worker, &durable, &delivery, &answer, &result).await;
        }
    };
    if delivered > 1 {
        crate::metrics::global().redelivered();
    }
    let subject = results_subject(&durable.prefix, Some(&job.id), sequence);
    match durable.stored(&subject).await {
        Ok(Some(stored)) => {
            crate::metrics::global().reannounced();
            tracing::info!(job_id = %job.id, delivered, "the job has a stored result; announced again, not run");
            announce_to_job(&worker, &job, encoding, stored).await;
            let _ = message.double_ack().await;
            return;
        }
        Ok(None) => {}
        Err(error) => {
            // Without knowing, running could yield a second result: leave it for later.
            tracing::warn!(job_id = %job.id, %error, "cannot check for a stored result; handed back");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    }
    let result = if delivered > durable.max_attempts {
        let mut result = JobResult::empty(
            &job.id,
            job.action.name(),
            Status::Failed,
            Some(ErrorInfo::new(
                ErrorKind::Internal,
                format!(
                    "delivered {delivered} times and no run finished: the worker running it \
                     stopped or lost NATS each time (nats.max_attempts = {})",
                    durable.max_attempts
                ),
            )),
        );
        result.attempt = delivered;
        result.test = job.test;
        result.worker = worker.executor.worker_id.clone();
        tracing::warn!(delivered, "no attempt finished; the job ends failed");
        crate::metrics::global().job("durable", "none", &result, started.elapsed());
        result
    } else {
        worker.execute(&job, delivered, "durable", started).await
    };
    let tenant = job.tenant.clone().unwrap_or_default();
    let answer = Answer {
        subject: &subject,
        encoding,
        reply_to: job.reply_to.as_deref(),
        tenant: &tenant,
        job: Some(&job),
    };
    settle(&worker, &durable, &delivery, &answer, &result).await;
}

/// A decoded job that the durable path can run: valid, with an id that can name its result.
fn checked(job: Job, prefix: &str) -> Result<Job, Undecoded> {
    let problem = match job.validate() {
        Err(e) => e.to_string(),
        Ok(()) if id_names_a_result(&job.id) => return Ok(job),
        Ok(()) => format!(
            "id: {:?} cannot be used in the result's subject {prefix}.results.<id> (no spaces, \
             '*', '>' or empty tokens, and no first token _seq, which names the results \
             of jobs without such an id)",
            job.id
        ),
    };
    Err(Undecoded::Rejected(problem))
}

/// One delivery of a job message.
struct Delivery<'a> {
    message: &'a Message,
    delivered: u32,
}

/// Where a job's result goes: its subject in `ACTIONS_RESULTS`, its encoding, `reply_to`,
/// and the job (for the tenant check of a result stored before), when it decoded.
struct Answer<'a> {
    subject: &'a str,
    encoding: Encoding,
    reply_to: Option<&'a str>,
    tenant: &'a str,
    job: Option<&'a Job>,
}

/// The end of a delivery that has a result. A `failed` result (the worker's fault, not the
/// action's) is handed back while attempts remain; any other is stored, announced, and the
/// message acked (terminated after the last attempt).
async fn settle(
    worker: &Worker,
    durable: &Durable,
    delivery: &Delivery<'_>,
    answer: &Answer<'_>,
    result: &JobResult,
) {
    let Delivery { message, delivered } = *delivery;
    if result.status == Status::Failed && delivered < durable.max_attempts {
        tracing::warn!(job_id = %result.job_id, delivered, "the worker failed the job; handed back for another attempt");
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
            .await;
        return;
    }
    let Some(stored) = store_guarded(worker, durable, delivery, answer, result).await else {
        return;
    };
    match answer.job {
        Some(job) => announce_to_job(worker, job, answer.encoding, stored).await,
        None => {
            announce(
                worker,
                answer.reply_to,
                &result.job_id,
                answer.encoding,
                stored,
            )
            .await
        }
    }
    let done = if delivered > durable.max_attempts {
        AckKind::Term
    } else {
        AckKind::Ack
    };
    for _ in 0..5 {
        match message.double_ack_with(done).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(job_id = %result.job_id, %error, "cannot ack the job yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Stores `result`, the stored result of the job in hand (the first stored wins). A panic
/// while storing is the worker's fault: the job is handed back while attempts remain, and on
/// the last its `failed` result is stored in place of the one that could not be. `None`: the
/// job was handed back.
async fn store_guarded(
    worker: &Worker,
    durable: &Durable,
    delivery: &Delivery<'_>,
    answer: &Answer<'_>,
    result: &JobResult,
) -> Option<Stored> {
    let store = |result: JobResult| async move {
        guard::guarded(Stage::Store, async {
            // Injected only for a result that is not `failed`: a panic caused by what the
            // result holds, which the failed stand-in does not.
            if result.status != Status::Failed {
                guard::inject("store", result.job_id.as_bytes());
            }
            durable
                .store(
                    answer.subject,
                    answer.encoding,
                    &result,
                    answer.tenant,
                    worker.max_payload(),
                )
                .await
        })
        .await
    };
    let panicked = match store(result.clone()).await {
        Ok(Some(stored)) => return Some(stored),
        Ok(None) => {
            hand_back(delivery.message).await;
            return None;
        }
        Err(panicked) => panicked,
    };
    if delivery.delivered < durable.max_attempts {
        hand_back(delivery.message).await;
        return None;
    }
    let failed = guard::failed(&result.job_id, &result.action, panicked).stamped_like(result);
    match store(failed).await {
        Ok(Some(stored)) => Some(stored),
        _ => {
            hand_back(delivery.message).await;
            None
        }
    }
}

/// Gives a job back to JetStream for a later delivery (here or on another replica).
async fn hand_back(message: &Message) {
    let _ = message
        .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
        .await;
}

/// Sends the stored result to `job`'s `reply_to` — unless it is the result of another
/// tenant's job that used the same id: then `job` is told its id is taken, and nothing of the
/// other job is shown.
async fn announce_to_job(worker: &Worker, job: &Job, encoding: Encoding, stored: Stored) {
    if stored.tenant != job.tenant.clone().unwrap_or_default() {
        tracing::warn!(job_id = %job.id, "a job id of another tenant's job: rejected");
        let mut result = JobResult::rejected(
            &job.id,
            job.action.name(),
            format!(
                "id: {:?} is the id of another tenant's job; job ids must be unique across tenants",
                job.id
            ),
        );
        result.worker = worker.executor.worker_id.clone();
        let payload = bytes::Bytes::from(encoding.encode(&result));
        let own = Stored {
            encoding,
            payload,
            tenant: String::new(),
        };
        announce(worker, job.reply_to.as_deref(), &job.id, encoding, own).await;
        return;
    }
    announce(worker, job.reply_to.as_deref(), &job.id, encoding, stored).await;
}

/// Sends a stored result to `reply_to`, in the job's encoding.
async fn announce(
    worker: &Worker,
    reply_to: Option<&str>,
    job_id: &str,
    encoding: Encoding,
    stored: Stored,
) {
    let Some(reply_to) = reply_to else {
        return;
    };
    let Stored {
        encoding: stored_encoding,
        payload,
        ..
    } = stored;
    let payload = if stored_encoding == encoding {
        payload
    } else {
        match stored_encoding.decode::<JobResult>(&payload) {
            Ok(result) => encoding.encode(&result).into(),
            Err(_) => payload,
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", encoding.content_type());
    if let Err(error) = worker
        .client
        .publish_with_headers(reply_to.to_string(), headers, payload)
        .await
    {
        tracing::warn!(job_id, %error, "cannot send the result to reply_to");
    }
}
