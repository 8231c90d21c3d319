//! Request-reply jobs on `<prefix>.run` and `<prefix>.test` (SPEC §6): the path an AI waits
//! on. One request is decoded, given to the [pipeline](crate::pipeline), and answered in its
//! own encoding; whatever it held, it gets an answer.

use std::sync::Arc;

use action_protocol::{Job, JobResult};
use async_nats::HeaderMap;
use async_nats::service::Request;
use tracing::Instrument;

use crate::pipeline::{Arrival, Path, Refusal, Unrun};
use crate::wire::{self, Undecoded};
use crate::worker::Worker;

/// Answers one request; `force_test`: it came on `<prefix>.test`. The job waits for its slot
/// in the pipeline, in its tenant's turn.
pub async fn handle(worker: Arc<Worker>, request: Request, force_test: bool) {
    let arrival = Arrival::new(Path::RequestReply, 1);
    let (encoding, job) = wire::decode(&request.message.payload, request.message.headers.as_ref());
    let (job_id, action) = match &job {
        Ok(job) => (job.id.clone(), job.action.name().to_string()),
        Err(_) => (String::new(), String::new()),
    };
    let headers = request.message.headers.as_ref();
    let span = crate::telemetry::job_span(&job_id, &action, "request_reply", headers);
    let result = answer(&worker, job, force_test, arrival)
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
    arrival: Arrival,
) -> JobResult {
    let pipeline = &worker.pipeline;
    let mut job = match job {
        Ok(job) => job,
        Err(Undecoded::Rejected(message)) => {
            return pipeline.refuse(Unrun::default(), Refusal::Rejected(message), arrival);
        }
        Err(Undecoded::Panicked(panicked)) => {
            return pipeline.refuse(Unrun::default(), Refusal::Panicked(panicked), arrival);
        }
    };
    job.test |= force_test;
    match job.validate() {
        Err(e) => pipeline.refuse(Unrun::of(&job), Refusal::Rejected(e.to_string()), arrival),
        Ok(()) if job.replay.is_some() => {
            job.test = true;
            crate::replay::answer(pipeline, &job, arrival).await
        }
        Ok(()) => pipeline.run(&job, arrival).await,
    }
}
