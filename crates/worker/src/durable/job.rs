//! One delivery of a durable job: the steps of [`rules::next`] carried out against NATS, and
//! the pipeline for the result.

use std::time::Duration;

use crate::scheduler::Reserved;
use action_protocol::{Encoding, Job, JobResult, Status};
use async_nats::HeaderMap;
use async_nats::jetstream::Message;
use async_nats::jetstream::message::AckKind;

use super::lanes::InHand;
use super::rules::{self, Facts, Intake, Lookup, Outcome, Step, Storing};
use super::{Durable, Stored, id_names_a_result, results_subject};
use crate::guard::{self, Panicked, Stage};
use crate::pipeline::{Arrival, Path, Refusal, Unrun, is_over_capacity};
use crate::wire::{self, Undecoded};
use crate::worker::Worker;

/// A delivery in hand: the message, what it held, where its result goes, and the result
/// once there is one.
struct Delivery<'a> {
    worker: &'a Worker,
    durable: &'a Durable,
    message: &'a Message,
    arrival: Arrival,
    encoding: Encoding,
    /// The job, or why it cannot be run.
    job: Result<Job, Undecoded>,
    /// Its `reply_to`, when it decoded (even if it is not runnable).
    reply_to: Option<String>,
    /// Its `Nats-Msg-Id`, which names a job that did not decode.
    msg_id: String,
    /// The result's subject in `ACTIONS_RESULTS`.
    subject: String,
    result: Option<JobResult>,
    stored: Option<Stored>,
    /// The panic of the last store, for the stand-in's message.
    panicked: Option<Panicked>,
    /// The slot taken for the message as it arrived, if one was free.
    slot: Option<Reserved>,
    /// The runs its lane allows a job.
    max_attempts: u32,
    /// Counts the job against its lane until its run is over.
    in_hand: Option<InHand>,
}

/// What the puller hands over with a message: the slot taken for it as it arrived (if one
/// was free), the runs its lane allows, and its count in the lane.
pub(super) struct Taken {
    pub slot: Option<Reserved>,
    pub max_attempts: u32,
    pub in_hand: InHand,
}

pub(super) async fn handle_job(
    worker: &Worker,
    durable: &Durable,
    message: &Message,
    taken: Taken,
) {
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
    let _progress = super::pull::Progress::start(message, durable.ack_wait);
    let mut delivery = Delivery::open(worker, durable, message, delivered, sequence, taken);
    let intake = match delivery.job {
        Ok(_) => Intake::Runnable,
        Err(_) => Intake::Unrunnable,
    };
    if intake == Intake::Runnable && delivered > 1 {
        crate::metrics::global().redelivered();
    }
    let mut facts = Facts::new(delivered, delivery.max_attempts, intake);
    loop {
        match rules::next(&facts) {
            Step::Reject => facts.outcome = Some(delivery.reject()),
            Step::LookUp => facts.lookup = Some(delivery.look_up().await),
            Step::ReAnnounce => return delivery.reannounce().await,
            Step::GiveUp => facts.outcome = Some(delivery.give_up()),
            Step::Run => facts.outcome = Some(delivery.run().await),
            Step::Store => facts.storing = Some(delivery.store().await),
            Step::StandIn => {
                delivery.stand_in();
                facts.stand_in = true;
                facts.outcome = Some(Outcome::Failed);
                facts.storing = None;
            }
            Step::Finish { terminate } => return delivery.finish(terminate).await,
            Step::HandBack(after) => return nak(message, after).await,
            Step::LetGo => {
                tracing::warn!(
                    delivered,
                    "another delivery of the job overtook this one; let go"
                );
                return;
            }
        }
    }
}

impl<'a> Delivery<'a> {
    fn open(
        worker: &'a Worker,
        durable: &'a Durable,
        message: &'a Message,
        delivered: u32,
        sequence: u64,
        taken: Taken,
    ) -> Self {
        let arrival = Arrival::new(Path::Durable, delivered);
        let msg_id = msg_id(message);
        let (encoding, decoded) = wire::decode(&message.payload, message.headers.as_ref());
        let reply_to = decoded.as_ref().ok().and_then(|job| job.reply_to.clone());
        let job = decoded.and_then(|job| checked(job, &durable.prefix));
        let id = job.as_ref().map_or(msg_id.as_str(), |job| job.id.as_str());
        let subject = results_subject(&durable.prefix, Some(id), sequence);
        Self {
            worker,
            durable,
            message,
            arrival,
            encoding,
            job,
            reply_to,
            msg_id,
            subject,
            result: None,
            stored: None,
            panicked: None,
            slot: taken.slot,
            max_attempts: taken.max_attempts,
            in_hand: Some(taken.in_hand),
        }
    }

    fn outcome(&mut self, result: JobResult) -> Outcome {
        let outcome = match result.status {
            _ if is_over_capacity(&result) => Outcome::Deferred,
            Status::Failed => Outcome::Failed,
            _ => Outcome::Other,
        };
        self.result = Some(result);
        outcome
    }

    /// The result of a message that is not a runnable job. A decoder's panic is the worker's
    /// fault: tried again while attempts remain, like a failed run, and not sent to
    /// `reply_to` (what the payload says cannot be trusted).
    fn reject(&mut self) -> Outcome {
        let refusal = match &self.job {
            Ok(_) => return Outcome::Other,
            Err(Undecoded::Rejected(problem)) => Refusal::Rejected(problem.clone()),
            Err(Undecoded::Panicked(panicked)) => {
                self.reply_to = None;
                Refusal::Panicked(*panicked)
            }
        };
        let unrun = Unrun {
            job_id: &self.msg_id,
            ..Unrun::default()
        };
        let result = self.worker.pipeline.refuse(unrun, refusal, self.arrival);
        self.outcome(result)
    }

    async fn look_up(&mut self) -> Lookup {
        match self.durable.stored(&self.subject).await {
            Ok(Some(stored)) => {
                self.stored = Some(stored);
                Lookup::Found
            }
            Ok(None) => Lookup::Absent,
            Err(error) => {
                // Without knowing, running could yield a second result: leave it for later.
                tracing::warn!(subject = %self.subject, %error, "cannot check for a stored result; handed back");
                Lookup::Unreadable
            }
        }
    }

    async fn reannounce(mut self) {
        crate::metrics::global().reannounced();
        tracing::info!(subject = %self.subject, delivered = self.arrival.attempt, "the job has a stored result; announced again, not run");
        if let Some(stored) = self.stored.take() {
            self.announce(stored).await;
        }
        let _ = self.message.double_ack().await;
    }

    fn give_up(&mut self) -> Outcome {
        let Ok(job) = &self.job else {
            return Outcome::Failed;
        };
        tracing::warn!(
            delivered = self.arrival.attempt,
            "no attempt finished; the job ends failed"
        );
        let refusal = Refusal::OutOfAttempts {
            max_attempts: self.max_attempts,
        };
        let result = self
            .worker
            .pipeline
            .refuse(Unrun::of(job), refusal, self.arrival);
        self.outcome(result)
    }

    async fn run(&mut self) -> Outcome {
        let Ok(job) = &self.job else {
            return Outcome::Failed;
        };
        let slot = self.slot.take();
        let result = self.worker.pipeline.run_in(job, self.arrival, slot).await;
        // Its slot is free again: its lane may have another job while this one is stored.
        self.in_hand = None;
        match result {
            Some(result) => self.outcome(result),
            None => Outcome::Superseded,
        }
    }

    /// Stores the result in hand; the first stored result of the job wins. A panic while
    /// storing is caught here.
    async fn store(&mut self) -> Storing {
        let Some(result) = &self.result else {
            return Storing::Unavailable;
        };
        let tenant = match &self.job {
            Ok(job) => job.tenant.clone().unwrap_or_default(),
            Err(_) => String::new(),
        };
        let (durable, subject, encoding) = (self.durable, &self.subject, self.encoding);
        let max_payload = self.worker.max_payload();
        let stored = guard::guarded(Stage::Store, async {
            // Injected only for a result that is not `failed`: a panic caused by what the
            // result holds, which the failed stand-in does not.
            if result.status != Status::Failed {
                guard::inject("store", result.job_id.as_bytes());
            }
            let stored = durable.store(subject, encoding, result, &tenant, max_payload);
            stored.await
        })
        .await;
        match stored {
            Ok(Some(stored)) => {
                self.stored = Some(stored);
                Storing::Stored
            }
            Ok(None) => Storing::Unavailable,
            Err(panicked) => {
                self.panicked = Some(panicked);
                Storing::Panicked
            }
        }
    }

    /// The job's `failed` result in place of the one whose store panicked.
    fn stand_in(&mut self) {
        let (Some(result), Some(panicked)) = (&self.result, self.panicked.take()) else {
            return;
        };
        let failed = guard::failed(&result.job_id, &result.action, panicked).stamped_like(result);
        self.result = Some(failed);
    }

    /// Sends the stored result to `reply_to`, then acks (terminates past `max_attempts`),
    /// retrying the ack a few times (and then sending the result again).
    async fn finish(mut self, terminate: bool) {
        let stored = self.stored.take();
        if let Some(stored) = &stored {
            self.announce(stored.clone()).await;
        }
        let done = if terminate {
            AckKind::Term
        } else {
            AckKind::Ack
        };
        let mut troubled = false;
        for _ in 0..5 {
            match self.message.double_ack_with(done).await {
                Ok(()) => break,
                Err(error) => {
                    troubled = true;
                    tracing::warn!(subject = %self.subject, %error, "cannot ack the job yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // An ack that had to be retried: the connection, or the node it reached, failed
        // around the job's end, and the announcement may have been lost with it (a server
        // that confirmed it can die before routing it on). It goes out again.
        if troubled && let Some(stored) = stored {
            self.announce(stored).await;
        }
    }

    /// Sends `stored` to the job's `reply_to` — unless it is the result of another tenant's
    /// job that used the same id: then the job is told its id is taken, and nothing of the
    /// other job is shown.
    async fn announce(&self, stored: Stored) {
        let Some(reply_to) = self.reply_to.as_deref() else {
            return;
        };
        let stored = match &self.job {
            Ok(job) if stored.tenant != job.tenant.clone().unwrap_or_default() => {
                tracing::warn!(job_id = %job.id, "a job id of another tenant's job: rejected");
                let refusal = Refusal::Rejected(format!(
                    "id: {:?} is the id of another tenant's job; job ids must be unique across tenants",
                    job.id
                ));
                let result = self
                    .worker
                    .pipeline
                    .refuse(Unrun::of(job), refusal, self.arrival);
                Stored {
                    encoding: self.encoding,
                    payload: self.encoding.encode(&result).into(),
                    tenant: String::new(),
                }
            }
            _ => stored,
        };
        let payload = stored.payload_in(self.encoding);
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", self.encoding.content_type());
        // Confirmed by a flush (the server has it once its PONG is back): a reply written
        // into a connection that dies (its node lost) is sent again on the next. A reply may
        // so arrive twice, never not at all while the worker lives.
        let client = &self.worker.client;
        for _ in 0..ANNOUNCE_TRIES {
            let sent = client
                .publish_with_headers(reply_to.to_string(), headers.clone(), payload.clone())
                .await;
            let confirmed = match sent {
                Ok(()) => tokio::time::timeout(Duration::from_secs(2), client.flush())
                    .await
                    .map_err(|_| "no answer from the server within 2 s".to_string())
                    .and_then(|flushed| flushed.map_err(|e| e.to_string())),
                Err(error) => Err(error.to_string()),
            };
            match confirmed {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(subject = %self.subject, %error, "cannot send the result to reply_to yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Sends of a result to `reply_to` before giving up (the result stays stored).
const ANNOUNCE_TRIES: usize = 5;

/// A decoded job that the durable path can run: valid, with an id that can name its result.
fn checked(job: Job, prefix: &str) -> Result<Job, Undecoded> {
    let problem = match job.validate() {
        Err(e) => e.to_string(),
        Ok(()) if job.replay.is_some() => {
            "replay: a replay is a test job on request-reply (<prefix>.test), not a durable job"
                .to_string()
        }
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

/// The message's `Nats-Msg-Id` (empty without one): the job id its publisher gave.
pub(super) fn msg_id(message: &Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// Gives a job back to JetStream for a later delivery (here or on another replica).
async fn nak(message: &Message, after: Duration) {
    let _ = message.ack_with(AckKind::Nak(Some(after))).await;
}

/// Gives a job back after trouble outside the rules (a panic in the glue between steps).
pub(super) async fn hand_back(message: &Message) {
    nak(message, rules::AFTER_STORE_TROUBLE).await;
}
