//! The journal: for every durable job (and a request-reply job that asks to be recorded),
//! the answer of each outside call, the clock readings and the random bytes it drew, and its
//! input, in stream `ACTIONS_JOURNAL` on `<prefix>.journal.<job id>`.
//!
//! A call's `sending` entry is written before the call is sent and its answer after, each
//! before the job sees anything; clock readings and random draws wait for the next write
//! (they leave the sandbox only inside a call, which writes them first) or the job's end. A
//! redelivered job runs again from the top, and [`JobJournal`] answers every call the
//! journal holds from it, in order: nothing journaled is sent twice. The same job with the
//! same journal gives the same result (`action-worker replay`).
//!
//! Every write names the last sequence of the job's subject it knows
//! (`Nats-Expected-Last-Subject-Sequence`): a delivery that another one has overtaken (it
//! was cut off past `ack_wait`) cannot write, makes no further call, and stores no result.

mod entry;
mod recorder;

pub use entry::{CallKey, Entry, Record, RecordedCall, http_answer, http_answer_of};
pub use entry::{text_answer, text_answer_of};
pub use recorder::{CallPlan, JobJournal, Mode};

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DirectGetErrorKind, RetentionPolicy};
use async_nats::jetstream::{self};
use sha2::{Digest, Sha256};

use crate::config::NatsSection;

pub const JOURNAL_STREAM: &str = "ACTIONS_JOURNAL";

/// The header of a message that holds part `k/m` of a batch too large for one message.
const PART_HEADER: &str = "Action-Worker-Part";
/// Room left in a message for its headers.
const HEADER_ROOM: usize = 1024;

/// Why a write to the journal did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Another delivery of the job has written since this one last did.
    #[error("another delivery of this job has taken it over (its journal moved on)")]
    Superseded,
    #[error("the journal cannot be written: {0}")]
    Unavailable(String),
}

/// The journal stream, created if absent.
pub struct JournalStore {
    stream: stream::Stream,
    js: jetstream::Context,
    prefix: String,
    /// The most one message may carry (the server's `max_payload`, less header room).
    part_bytes: usize,
    pub max_job_bytes: usize,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl JournalStore {
    pub async fn setup(
        js: &jetstream::Context,
        config: &NatsSection,
        max_payload: usize,
    ) -> anyhow::Result<Self> {
        let prefix = &config.subject_prefix;
        let stream = js
            .get_or_create_stream(stream::Config {
                name: JOURNAL_STREAM.into(),
                description: Some(
                    "action-worker: each job's outside calls, clock readings and random draws"
                        .into(),
                ),
                subjects: vec![format!("{prefix}.journal.>")],
                retention: RetentionPolicy::Limits,
                max_age: Duration::from_secs(config.results_max_age_s),
                allow_direct: true,
                num_replicas: config.stream_replicas,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create or open the stream {JOURNAL_STREAM}"))?;
        Ok(Self {
            stream,
            js: js.clone(),
            prefix: prefix.clone(),
            part_bytes: max_payload.saturating_sub(HEADER_ROOM).max(1024),
            max_job_bytes: usize::try_from(config.journal_max_job_bytes).unwrap_or(usize::MAX),
        })
    }

    /// The JetStream context the journal is written through.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The subject prefix (`nats.subject_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subject of a job's journal: `<prefix>.journal.<id>` for an id that can name a
    /// result, else `<prefix>.journal._h.<SHA-256 of the id>`.
    pub fn subject(&self, job_id: &str) -> String {
        if crate::wire::id_names_a_result(job_id) && !job_id.starts_with("_h.") {
            return format!("{}.journal.{job_id}", self.prefix);
        }
        let digest = hex::encode(Sha256::digest(job_id.as_bytes()));
        format!("{}.journal._h.{digest}", self.prefix)
    }

    /// The record of a job's journal and the last sequence of its subject (0: empty).
    pub async fn read(&self, job_id: &str) -> anyhow::Result<(Record, u64)> {
        let subject = self.subject(job_id);
        let mut record = Record::default();
        let mut last = 0;
        let mut batch = Vec::new();
        loop {
            let message = match self
                .stream
                .direct_get_next_for_subject(&subject, Some(last + 1))
                .await
            {
                Ok(message) => message,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => anyhow::bail!("cannot read {subject} from {JOURNAL_STREAM}: {e}"),
            };
            last = message.sequence;
            batch.extend_from_slice(&message.payload);
            let part = message.headers.get(PART_HEADER).map(|v| v.as_str());
            if part.is_some_and(|part| !is_last_part(part)) {
                continue;
            }
            // A batch this worker did not write, or cut short, is skipped, not fatal.
            if let Ok(entries) = serde_json::from_slice::<Vec<Entry>>(&batch) {
                entries.into_iter().for_each(|entry| record.apply(entry));
            }
            batch.clear();
        }
        Ok((record, last))
    }

    /// Appends `entries` to the job's subject after sequence `last` (in parts if they are
    /// larger than a message); the new last sequence.
    pub async fn append(
        &self,
        subject: &str,
        last: u64,
        entries: &[Entry],
    ) -> Result<u64, WriteError> {
        let bytes = serde_json::to_vec(entries)
            .map_err(|e| WriteError::Unavailable(format!("cannot encode an entry: {e}")))?;
        let parts: Vec<&[u8]> = bytes.chunks(self.part_bytes).collect();
        let mut last = last;
        for (k, part) in parts.iter().enumerate() {
            let mut message = PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(part))
                .expected_last_subject_sequence(last);
            if parts.len() > 1 {
                message = message.header(PART_HEADER, format!("{}/{}", k + 1, parts.len()));
            }
            last = self.publish(subject, message).await?;
        }
        Ok(last)
    }

    async fn publish(&self, subject: &str, message: PublishMessage) -> Result<u64, WriteError> {
        let unavailable = |e: &dyn std::fmt::Display| WriteError::Unavailable(e.to_string());
        let ack = self
            .js
            .send_publish(subject.to_string(), message)
            .await
            .map_err(|e| unavailable(&e))?;
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(WriteError::Superseded)
            }
            Err(e) => Err(unavailable(&e)),
        }
    }
}

/// Whether a part header `k/m` names the last part.
fn is_last_part(part: &str) -> bool {
    match part.split_once('/') {
        Some((k, m)) => k == m,
        None => true,
    }
}
