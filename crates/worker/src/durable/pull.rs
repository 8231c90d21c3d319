//! Taking durable jobs: pulls only as many messages as the worker has free slots, keeps each
//! in hand (progress acks) while it waits for a slot or runs, and hands what it holds back
//! when the worker stops.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::message::AckKind;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Durable, PULL_EXPIRES};
use crate::guard::{self, Stage};
use crate::scheduler::Reserved;
use crate::worker::Worker;

/// Sends progress acks for `message` every third of `ack_wait` until dropped (a panic or a
/// cancelled future included), so that a job being run, stored or waiting for a slot is not
/// given to another worker meanwhile.
pub(super) struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    pub(super) fn start(message: &Message, ack_wait: Duration) -> Self {
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

/// Pulls jobs while the worker has free slots, until `stop` is cancelled. Messages that
/// arrive for a pull after the stop are handed back at once (nak) for another replica.
pub async fn pull_loop(worker: Arc<Worker>, durable: Arc<Durable>, stop: CancellationToken) {
    let mut pause = Duration::from_millis(100);
    loop {
        if stop.is_cancelled() {
            return;
        }
        // Wait for a free slot without keeping it: request-reply jobs may take it meanwhile,
        // and a message that finds no slot waits for one in the pipeline (at most `wanted`).
        let scheduler = &worker.pipeline.scheduler;
        if !scheduler.wait_free(&stop).await {
            return;
        }
        let wanted = scheduler.free().clamp(1, 256);
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
                _ = stop.cancelled(), if !stopping => Pulled::Stop,
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
            // The slot is taken as the message arrives; without one (request-reply jobs took
            // them since the pull), the job waits for one in the pipeline, in its turn.
            let slot = worker.pipeline.scheduler.reserve();
            let job = handle(worker.clone(), durable.clone(), message, slot);
            worker.jobs.spawn(job);
        }
        if stopping {
            return;
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
    slot: Option<Reserved>,
) {
    let msg_id = super::job::msg_id(&message);
    let span = tracing::info_span!("action.run", job_id = %msg_id, path = "durable");
    // The stages of the job are guarded one by one; this catches a panic in the glue between
    // them (reading, storing and announcing results), and hands the job back for another try.
    let handled = guard::guarded(
        Stage::Store,
        super::job::handle_job(&worker, &durable, &message, slot),
    )
    .instrument(span.clone())
    .await;
    if handled.is_err() {
        super::job::hand_back(&message).instrument(span).await;
    }
}
