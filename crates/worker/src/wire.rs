//! Jobs off the wire and results onto it (SPEC §5): a job decoded by its message's
//! `Content-Type`, a result encoded in the job's encoding within one NATS message. Both
//! transports use these; each step is guarded ([`crate::guard`]), so a panic in a decoder or an
//! encoder still gives the job an answer.

use action_protocol::{Encoding, ErrorInfo, Job, JobResult, LimitKind, Status};
use async_nats::HeaderMap;

use crate::guard::{self, Panicked, Stage};

/// Room kept in a NATS message for its subject and headers.
const ENVELOPE_BYTES: usize = 4096;

/// Why a payload did not become a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecoded {
    /// Not a job: the job is `rejected` with this reason.
    Rejected(String),
    /// The decoder panicked: the job is `failed`.
    Panicked(Panicked),
}

/// The job of a message, and the encoding its answer takes (JSON for an unknown
/// `Content-Type`, which is itself a rejection).
pub fn decode(payload: &[u8], headers: Option<&HeaderMap>) -> (Encoding, Result<Job, Undecoded>) {
    let content_type = headers
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.as_str().to_string());
    let encoding = match Encoding::from_content_type(content_type.as_deref()) {
        Ok(encoding) => encoding,
        Err(e) => return (Encoding::Json, Err(Undecoded::Rejected(e.to_string()))),
    };
    let job = guard::guarded_sync(Stage::Decode, || {
        guard::inject("decode", payload);
        encoding.decode::<Job>(payload)
    });
    let job = match job {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(e)) => Err(Undecoded::Rejected(format!("cannot decode the job: {e}"))),
        Err(panicked) => Err(Undecoded::Panicked(panicked)),
    };
    (encoding, job)
}

/// `result` encoded, or, when that would not fit in one NATS message of `max_payload`
/// bytes, a `limit_exceeded` result (`error.limit = "output"`) in its place that says so: an
/// answer that cannot be sent is never attempted (it would leave the requester waiting, or a
/// durable job unacked forever). A panic while encoding gives the job's `failed` result.
pub fn encode(result: &JobResult, encoding: Encoding, max_payload: usize) -> Vec<u8> {
    let encoded = guard::guarded_sync(Stage::Encode, || {
        guard::inject("encode", result.job_id.as_bytes());
        encode_within(result, encoding, max_payload)
    });
    encoded.unwrap_or_else(|panicked| {
        let failed = guard::failed(&result.job_id, &result.action, panicked);
        encoding.encode(&failed.stamped_like(result))
    })
}

fn encode_within(result: &JobResult, encoding: Encoding, max_payload: usize) -> Vec<u8> {
    let bytes = encoding.encode(result);
    let room = max_payload.saturating_sub(ENVELOPE_BYTES);
    if bytes.len() <= room {
        return bytes;
    }
    let mut smaller = JobResult::empty(
        &result.job_id,
        &result.action,
        Status::LimitExceeded,
        Some(ErrorInfo::limit(
            LimitKind::Output,
            format!(
                "the result is {} bytes encoded, over the {room} bytes a NATS message can carry here \
                 (the server's max_payload is {max_payload}); lower limits.output_bytes or \
                 limits.log_bytes, or raise max_payload",
                bytes.len()
            ),
        )),
    );
    smaller.stats = result.stats.clone();
    smaller.logs.truncated = true;
    encoding.encode(&smaller.stamped_like(result))
}

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
