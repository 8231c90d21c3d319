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
//!
//! The rules of that life are one pure function ([`rules::next`]); [`job`] carries out its
//! steps for one delivery, [`pull`] takes deliveries as slots free up, and this module holds
//! the streams.

mod job;
mod pull;
pub mod rules;

pub use pull::pull_loop;

use std::collections::BTreeMap;
use std::time::Duration;

use action_protocol::{Encoding, JobResult};
use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};

use crate::config::NatsSection;
use crate::wire;

pub const JOBS_STREAM: &str = "ACTIONS_JOBS";
pub const RESULTS_STREAM: &str = "ACTIONS_RESULTS";
pub const CONSUMER: &str = "action-workers";
/// How long a pull request waits for messages before the worker asks again.
/// No idle heartbeat: async-nats 0.51's `Batch` stops polling its subscription after one
/// (it returns `Pending` without a wake-up), which held jobs back for seconds; the batch's own
/// timer covers a pull lost to a server restart instead.
pub(crate) const PULL_EXPIRES: Duration = Duration::from_secs(3);
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
    /// `ACTIONS_JOBS`.
    pub stream: stream::Stream,
    pub jobs: PullConsumer,
    pub results: stream::Stream,
    pub js: jetstream::Context,
    pub prefix: String,
    pub ack_wait: Duration,
    /// Deliveries that are run (the consumer's `max_deliver` minus one).
    pub max_attempts: u32,
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
                async_nats::jetstream::consumer::pull::Config {
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
            stream: jobs_stream,
            jobs,
            results,
            js: js.clone(),
            prefix: prefix.clone(),
            ack_wait,
            max_attempts,
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
            let tenant = subject
                .strip_prefix(&head)
                .and_then(|rest| rest.split('.').next())
                .unwrap_or("-");
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

/// A stored result: how it is encoded, and the tenant of the job that produced it.
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
