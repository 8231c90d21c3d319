//! Taking durable jobs: pulls only as many messages as the worker has free slots, from the
//! lanes in turn, keeps each in hand (progress acks) while it waits for a slot or runs, and
//! hands what it holds back when the worker stops.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::message::AckKind;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Durable;
use super::job::Taken;
use super::lanes::{self, InHand, Lanes};
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

/// How often the stream is surveyed for lanes with work that no doorbell announced.
const SURVEY_EVERY: Duration = Duration::from_secs(1);

/// Pulls jobs while the worker has free slots, from the lanes in turn, until `stop` is
/// cancelled. Messages that arrive for a pull after the stop are handed back at once (nak)
/// for another replica.
pub async fn pull_loop(worker: Arc<Worker>, durable: Arc<Durable>, stop: CancellationToken) {
    let head = format!("{}.queued.", durable.prefix);
    let mut doorbell = match durable.doorbell {
        true => subscribe_doorbell(&worker, &head).await,
        false => None,
    };
    let mut lanes = Lanes::default();
    lanes.survey(&durable).await;
    let mut survey = tokio::time::interval(SURVEY_EVERY);
    survey.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let scheduler = worker.pipeline.scheduler.clone();
    loop {
        if stop.is_cancelled() {
            return;
        }
        hear(&mut doorbell, &mut lanes, &head);
        let freed = scheduler.freed();
        let free = scheduler.free();
        let (names, demand) = lanes.demand();
        let plan = scheduler.plan_pulls(&demand, free, lanes.turn);
        let pulls: Vec<(String, u32)> = names
            .iter()
            .zip(&plan.pulls)
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| (name.to_string(), *n))
            .collect();
        if pulls.is_empty() {
            // Nothing to pull now: wait for a slot, a doorbell, the survey, or a rate's room.
            let rate_wait = plan.rate_wait.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = freed => {}
                rung = next_ring(&mut doorbell) => ring(&mut lanes, &rung, &head),
                _ = survey.tick() => lanes.survey(&durable).await,
                _ = tokio::time::sleep(rate_wait) => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        lanes.turn = lanes.turn.wrapping_add(1);
        pull_planned(&worker, &durable, &mut lanes, &pulls, &stop).await;
    }
}

/// Pulls from each lane what the plan gave it, all at once; a lane that had fewer jobs than
/// asked for has no work until a doorbell or the survey says otherwise (a lane that failed
/// too: the survey's second is its backoff), and gives back the starts it did not use.
async fn pull_planned(
    worker: &Arc<Worker>,
    durable: &Arc<Durable>,
    lanes: &mut Lanes,
    pulls: &[(String, u32)],
    stop: &CancellationToken,
) {
    let scheduler = &worker.pipeline.scheduler;
    let mut fetches = Vec::new();
    for (name, asked) in pulls {
        let Some(lane) = lanes.by_name.get_mut(name) else {
            continue;
        };
        if lane.consumer.is_none() {
            match durable.lane_consumer(name).await {
                Ok(opened) => lane.consumer = Some(opened),
                Err(error) => {
                    tracing::warn!(lane = %name, error = format!("{error:#}"), "cannot open the lane; trying again after the next survey");
                    lane.has_work = false;
                    scheduler.refund_starts(lanes::lane_tenant(name), *asked);
                    continue;
                }
            }
        }
        let Some((consumer, max_attempts)) = lane.consumer.clone() else {
            continue;
        };
        let pull = Pull {
            consumer,
            max_attempts,
            in_hand: lane.in_hand.clone(),
            asked: *asked,
        };
        fetches.push(async move { (name, *asked, pull.run(worker, durable, stop).await) });
    }
    for (name, asked, pulled) in futures_util::future::join_all(fetches).await {
        let Some(lane) = lanes.by_name.get_mut(name) else {
            continue;
        };
        let got = pulled.unwrap_or_else(|got| {
            // The consumer may be gone (deleted while idle): opened again next time.
            lane.consumer = None;
            got
        });
        if got < asked {
            lane.has_work = false;
            scheduler.refund_starts(lanes::lane_tenant(name), asked - got);
        }
    }
}

/// One pull from one lane.
struct Pull {
    consumer: PullConsumer,
    max_attempts: u32,
    in_hand: Arc<AtomicU32>,
    asked: u32,
}

/// How long one pull may take before it is given up (a reply lost in a reconnection).
const PULL_PATIENCE: Duration = Duration::from_secs(5);

impl Pull {
    /// Takes up to `asked` jobs that are waiting now, each into a slot if one is free (else
    /// it waits for one in the pipeline, in its turn); how many came, or, on a failure, how
    /// many came before it.
    async fn run(
        self,
        worker: &Arc<Worker>,
        durable: &Arc<Durable>,
        stop: &CancellationToken,
    ) -> Result<u32, u32> {
        let mut got = 0;
        let pulled = tokio::time::timeout(PULL_PATIENCE, async {
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(self.asked as usize)
                .messages()
                .await
                .map_err(|error| tracing::warn!(%error, "cannot pull jobs; retrying"))?;
            while let Some(next) = batch.next().await {
                let message =
                    next.map_err(|error| tracing::warn!(%error, "the pull failed; retrying"))?;
                got += 1;
                if stop.is_cancelled() {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    continue;
                }
                // The slot is taken as the message arrives; without one (request-reply jobs
                // took them since the plan), the job waits for one in the pipeline.
                let scheduler = &worker.pipeline.scheduler;
                let taken = Taken {
                    slot: scheduler.reserve(),
                    max_attempts: self.max_attempts,
                    in_hand: InHand::new(&self.in_hand, scheduler),
                };
                let job = handle(worker.clone(), durable.clone(), message, taken);
                worker.jobs.spawn(job);
            }
            Ok::<(), ()>(())
        })
        .await;
        match pulled {
            Ok(Ok(())) => Ok(got),
            Ok(Err(())) | Err(_) => Err(got),
        }
    }
}

/// Subscribes to the doorbell; without it (no permission) the survey finds the lanes.
async fn subscribe_doorbell(worker: &Worker, head: &str) -> Option<async_nats::Subscriber> {
    match worker.client.subscribe(format!("{head}>")).await {
        Ok(subscriber) => Some(subscriber),
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to {head}>; new jobs are found by surveying the stream each second");
            None
        }
    }
}

/// The subject of the next doorbell, or never without one.
async fn next_ring(doorbell: &mut Option<async_nats::Subscriber>) -> String {
    if let Some(subscriber) = doorbell
        && let Some(message) = subscriber.next().await
    {
        return message.subject.to_string();
    }
    std::future::pending().await
}

fn ring(lanes: &mut Lanes, subject: &str, head: &str) {
    if let Some(lane) = lanes::lane_of(subject, head) {
        lanes.ring(lane);
    }
}

/// Takes the doorbells rung meanwhile, without waiting.
fn hear(doorbell: &mut Option<async_nats::Subscriber>, lanes: &mut Lanes, head: &str) {
    use futures_util::FutureExt;
    while let Some(subject) = next_ring(doorbell).now_or_never() {
        ring(lanes, &subject, head);
    }
}

async fn handle(worker: Arc<Worker>, durable: Arc<Durable>, message: Message, taken: Taken) {
    let msg_id = super::job::msg_id(&message);
    let headers = message.headers.as_ref();
    let span = crate::telemetry::job_span(&msg_id, "", "durable", headers);
    // The stages of the job are guarded one by one; this catches a panic in the glue between
    // them (reading, storing and announcing results), and hands the job back for another try.
    let handled = guard::guarded(
        Stage::Store,
        super::job::handle_job(&worker, &durable, &message, taken),
    )
    .instrument(span.clone())
    .await;
    if handled.is_err() {
        super::job::hand_back(&message).instrument(span).await;
    }
}
