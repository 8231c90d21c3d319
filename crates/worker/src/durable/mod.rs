//! Durable jobs (SPEC §6): stream `ACTIONS_JOBS` on `<prefix>.jobs.>` (work-queue retention);
//! results to stream `ACTIONS_RESULTS` as `<prefix>.results.<job id>`.
//!
//! The stream is read in lanes, one per tenant: the jobs on `<prefix>.jobs.<tenant>` and
//! `<prefix>.jobs.<tenant>.>` (as `submit` publishes them) are taken through the durable pull
//! consumer `action-workers-<tenant>`, shared by every replica. (SPEC §6 names one consumer,
//! `action-workers`; one consumer per lane is what lets a tenant's job pass another's backlog,
//! and a work-queue stream allows no consumer beside them on the same subjects: a worker
//! deletes the old shared consumer when it starts, [`Durable::setup`].) The stream republishes
//! the headers of each stored job on `<prefix>.queued.<tenant>...`, the doorbell that tells
//! the workers which lanes have work.
//!
//! A job's life:
//! 1. The worker pulls only as many messages as it has free slots, from the lanes in turn
//!    ([`crate::scheduler::Scheduler::plan_pulls`]): never past a tenant's share or quotas.
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
//!
//! The rules of that life are one pure function ([`rules::next`]); [`job`] carries out its
//! steps for one delivery, [`pull`] takes deliveries as slots free up, [`lanes`] knows the
//! lanes, and this module holds the streams.

mod job;
pub mod lanes;
mod pull;
pub mod rules;

pub use crate::wire::id_names_a_result;
pub use pull::pull_loop;

use std::collections::BTreeMap;
use std::time::Duration;

use action_protocol::{Encoding, JobResult};
use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};

use crate::config::NatsSection;
use crate::wire;

pub const JOBS_STREAM: &str = "ACTIONS_JOBS";
pub const RESULTS_STREAM: &str = "ACTIONS_RESULTS";
/// The consumer every replica shared before lanes; deleted at start (a work-queue stream
/// allows no consumer beside the lanes' on the same subjects).
pub const SHARED_CONSUMER: &str = "action-workers";
/// The streams' duplicate window: a publisher's retry within it is dropped by `Nats-Msg-Id`.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

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
    /// `ACTIONS_JOBS`.
    pub stream: stream::Stream,
    pub results: stream::Stream,
    pub js: jetstream::Context,
    pub prefix: String,
    pub ack_wait: Duration,
    /// Deliveries that are run (a lane consumer's `max_deliver` is one more).
    pub max_attempts: u32,
    /// Whether the stream rings the doorbell (`<prefix>.queued.>`) for each stored job.
    pub doorbell: bool,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("prefix", &self.prefix)
            .field("ack_wait", &self.ack_wait)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
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
                republish: Some(doorbell(prefix)),
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
        let doorbell = ring_doorbell(js, &jobs_stream, prefix).await;
        retire_shared_consumer(&jobs_stream).await;
        Ok(Self {
            stream: jobs_stream,
            results,
            js: js.clone(),
            prefix: prefix.clone(),
            ack_wait: Duration::from_millis(config.ack_wait_ms),
            max_attempts: config.max_attempts,
            doorbell,
        })
    }

    /// The jobs in `ACTIONS_JOBS` (waiting, or delivered and not yet acked) by tenant: the
    /// first token after `<prefix>.jobs.` of their subject (`default` is what `submit` uses
    /// for jobs without a tenant).
    pub async fn pending_by_tenant(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        use futures_util::TryStreamExt;
        let filter = format!("{}.jobs.>", self.prefix);
        let head = format!("{}.jobs.", self.prefix);
        let mut subjects = self.stream.info_with_subjects(&filter).await?;
        let mut pending = BTreeMap::new();
        while let Some((subject, count)) = subjects.try_next().await? {
            let tenant = lanes::lane_of(&subject, &head).unwrap_or("-");
            *pending.entry(tenant.to_string()).or_insert(0) += count as u64;
        }
        Ok(pending)
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

/// The stream's republishing of each stored job's headers on `<prefix>.queued.>`.
fn doorbell(prefix: &str) -> stream::Republish {
    stream::Republish {
        source: format!("{prefix}.jobs.>"),
        destination: format!("{prefix}.queued.>"),
        headers_only: true,
    }
}

/// Makes `stream` ring the doorbell if it does not (a stream created by an older worker);
/// whether it does. Without it the lanes are found by surveying the stream, a second later.
async fn ring_doorbell(js: &jetstream::Context, stream: &stream::Stream, prefix: &str) -> bool {
    let mut config = stream.cached_info().config.clone();
    if config.republish.as_ref() == Some(&doorbell(prefix)) {
        return true;
    }
    config.republish = Some(doorbell(prefix));
    match js.update_stream(config).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "cannot make {JOBS_STREAM} republish the headers of new jobs on {prefix}.queued.>; new lanes are found by surveying the stream each second");
            false
        }
    }
}

/// Deletes the consumer that every replica shared before lanes, if it is there: its jobs in
/// hand go back to the stream and are taken through the lanes (their delivery count starts
/// again). A replica of an older version still pulling from it stops getting jobs.
async fn retire_shared_consumer(stream: &stream::Stream) {
    if stream.consumer_info(SHARED_CONSUMER).await.is_err() {
        return;
    }
    match stream.delete_consumer(SHARED_CONSUMER).await {
        Ok(_) => tracing::warn!(
            "deleted the consumer {SHARED_CONSUMER} that every replica shared: jobs are now \
             taken through one consumer per tenant, {SHARED_CONSUMER}-<tenant>; upgrade every \
             replica"
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot delete the consumer {SHARED_CONSUMER}; the lanes' consumers cannot be created beside it")
        }
    }
}

/// A stored result: how it is encoded, and the tenant of the job that produced it.
#[derive(Clone)]
pub struct Stored {
    encoding: Encoding,
    payload: bytes::Bytes,
    tenant: String,
}

impl Stored {
    /// The payload in `encoding`: as stored, or re-encoded (as stored if it cannot be).
    fn payload_in(self, encoding: Encoding) -> bytes::Bytes {
        if self.encoding == encoding {
            return self.payload;
        }
        match self.encoding.decode::<JobResult>(&self.payload) {
            Ok(result) => encoding.encode(&result).into(),
            Err(_) => self.payload,
        }
    }
}

/// The header of a stored result that names its job's tenant (empty: none), so that a job of
/// another tenant reusing the id is not answered with it.
const TENANT_HEADER: &str = "Action-Worker-Tenant";

/// How long a result is retried before its job is handed back.
const STORE_PATIENCE: Duration = Duration::from_secs(300);
