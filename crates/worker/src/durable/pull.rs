//! Taking durable jobs: pulls only as many messages as the worker has free slots, keeps each
//! in hand (progress acks) while it waits for a slot or runs, and hands what it holds back
//! when the worker stops.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::message::AckKind;
use futures_util::StreamExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Durable, PULL_EXPIRES};
use crate::guard::{self, Stage};
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
        // and a message that finds no slot waits for one (at most `wanted` of them).
        tokio::select! {
            permit = worker.slots.acquire() => match permit {
                Ok(permit) => drop(permit),
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
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
    stop: CancellationToken,
) {
    let progress = Progress::start(&message, durable.ack_wait);
    let permit = tokio::select! {
        permit = worker.slots.clone().acquire_owned() => permit.ok(),
        _ = stop.cancelled() => None,
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
