//! The durable path's rules, as one pure function: from what is known of a delivery so far
//! ([`Facts`]), the next [`Step`]. The NATS code ([`super::job`]) only carries the steps out
//! and records what each found, until a step ends the delivery.
//!
//! The rules, in the order a delivery meets them:
//! - A message that is not a runnable job gets its result without a run (`rejected`, or
//!   `failed` when the decoder panicked).
//! - A job whose result is stored already is not run again: the stored result is announced
//!   again. If the store cannot be read, the job is handed back (running it could make a
//!   second result).
//! - A delivery past `max_attempts` is not run: the job ends `failed` (the consumer's
//!   `max_deliver` is `max_attempts + 1`, so that this last delivery exists).
//! - A `failed` result (the worker's fault, not the action's) is handed back while attempts
//!   remain; a job refused a slot (the worker stopping) is handed back; any other result is
//!   stored.
//! - A run overtaken by another delivery of the job (its journal moved on: this one was cut
//!   off past `ack_wait`) has no result: the delivery is let go, neither stored nor acked,
//!   and the other delivery answers the job.
//! - A stored result is announced and the message acked (terminated past `max_attempts`).
//!   A store that stays unavailable hands the job back. A store that panics hands it back
//!   while attempts remain; on the last, the `failed` stand-in is stored in its place.

use std::time::Duration;

/// After a failed run, before the next attempt.
pub const AFTER_FAILED_RUN: Duration = Duration::from_millis(500);
/// When the results stream cannot be read.
pub const AFTER_UNREADABLE_STORE: Duration = Duration::from_secs(1);
/// When a job got no slot (the worker is stopping).
pub const AFTER_DEFERRED: Duration = Duration::from_secs(1);
/// When a result cannot be stored.
pub const AFTER_STORE_TROUBLE: Duration = Duration::from_secs(5);

/// What the message held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// A valid job with an id that can name its result.
    Runnable,
    /// Not a job this path can run (or its decoder panicked): it gets a result unrun.
    Unrunnable,
}

/// What the results stream holds for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found,
    Absent,
    Unreadable,
}

/// The result in hand: `failed` (the worker's fault), no run for want of a slot, or any
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Deferred,
    /// No result: another delivery of the job overtook this one.
    Superseded,
    Other,
}

/// How storing the result in hand went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storing {
    Stored,
    /// Not stored within the store's patience.
    Unavailable,
    Panicked,
}

/// Everything the rules look at; the transport fills it in step by step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// This delivery's number (the first is 1).
    pub delivered: u32,
    pub max_attempts: u32,
    pub intake: Intake,
    pub lookup: Option<Lookup>,
    pub outcome: Option<Outcome>,
    pub storing: Option<Storing>,
    /// The result in hand is the `failed` stand-in of one whose store panicked.
    pub stand_in: bool,
}

impl Facts {
    pub fn new(delivered: u32, max_attempts: u32, intake: Intake) -> Self {
        Self {
            delivered,
            max_attempts,
            intake,
            lookup: None,
            outcome: None,
            storing: None,
            stand_in: false,
        }
    }

    fn attempts_remain(&self) -> bool {
        self.delivered < self.max_attempts
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Give the unrunnable message its result (then an [`Outcome`]).
    Reject,
    /// Read the results stream for a stored result (then a [`Lookup`]).
    LookUp,
    /// Announce the stored result again to `reply_to` and ack. Ends the delivery.
    ReAnnounce,
    /// No attempt is left: the job's result is `failed` (then an [`Outcome`]).
    GiveUp,
    /// Run the job (then an [`Outcome`]).
    Run,
    /// Store the result in hand (then a [`Storing`]).
    Store,
    /// Put the `failed` stand-in in place of the result whose store panicked.
    StandIn,
    /// Announce the stored result and ack, terminating past `max_attempts`. Ends the delivery.
    Finish { terminate: bool },
    /// Nak with this delay, for a later delivery here or elsewhere. Ends the delivery.
    HandBack(Duration),
    /// Neither store nor ack: another delivery holds the job. Ends the delivery.
    LetGo,
}

/// The next step of a delivery.
pub fn next(facts: &Facts) -> Step {
    if let Some(storing) = facts.storing {
        return match storing {
            Storing::Stored => Step::Finish {
                terminate: facts.delivered > facts.max_attempts,
            },
            Storing::Unavailable => Step::HandBack(AFTER_STORE_TROUBLE),
            Storing::Panicked if facts.stand_in || facts.attempts_remain() => {
                Step::HandBack(AFTER_STORE_TROUBLE)
            }
            Storing::Panicked => Step::StandIn,
        };
    }
    if let Some(outcome) = facts.outcome {
        return match outcome {
            Outcome::Failed if !facts.stand_in && facts.attempts_remain() => {
                Step::HandBack(AFTER_FAILED_RUN)
            }
            Outcome::Deferred => Step::HandBack(AFTER_DEFERRED),
            Outcome::Superseded => Step::LetGo,
            _ => Step::Store,
        };
    }
    if facts.intake == Intake::Unrunnable {
        return Step::Reject;
    }
    match facts.lookup {
        None => Step::LookUp,
        Some(Lookup::Found) => Step::ReAnnounce,
        Some(Lookup::Unreadable) => Step::HandBack(AFTER_UNREADABLE_STORE),
        Some(Lookup::Absent) if facts.delivered > facts.max_attempts => Step::GiveUp,
        Some(Lookup::Absent) => Step::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Intake::{Runnable, Unrunnable};
    use Outcome::{Deferred, Failed, Other, Superseded};
    use Step::*;

    const MAX: u32 = 3;

    /// One row: delivery, intake, lookup, outcome, storing, and the step the rules must take.
    type Row = (
        u32,
        Intake,
        Option<Lookup>,
        Option<Outcome>,
        Option<Storing>,
        Step,
    );

    fn check(rows: &[Row]) {
        for (i, &(delivered, intake, lookup, outcome, storing, step)) in rows.iter().enumerate() {
            let facts = Facts {
                lookup,
                outcome,
                storing,
                ..Facts::new(delivered, MAX, intake)
            };
            assert_eq!(next(&facts), step, "row {i}: {facts:?}");
        }
    }

    const ABSENT: Option<Lookup> = Some(Lookup::Absent);
    const FAILED: Option<Outcome> = Some(Failed);
    const OTHER: Option<Outcome> = Some(Other);

    #[test]
    fn before_a_run() {
        use Lookup::{Found, Unreadable};
        check(&[
            // An unrunnable message: a result unrun, stored; its decoder's panic is retried.
            (1, Unrunnable, None, None, None, Reject),
            (1, Unrunnable, None, OTHER, None, Store),
            (
                1,
                Unrunnable,
                None,
                FAILED,
                None,
                HandBack(AFTER_FAILED_RUN),
            ),
            (MAX, Unrunnable, None, FAILED, None, Store),
            // A runnable job: look for a stored result first.
            (1, Runnable, None, None, None, LookUp),
            (2, Runnable, Some(Found), None, None, ReAnnounce),
            (MAX + 1, Runnable, Some(Found), None, None, ReAnnounce),
            (
                1,
                Runnable,
                Some(Unreadable),
                None,
                None,
                HandBack(AFTER_UNREADABLE_STORE),
            ),
            (1, Runnable, ABSENT, None, None, Run),
            (MAX, Runnable, ABSENT, None, None, Run),
            (MAX + 1, Runnable, ABSENT, None, None, GiveUp),
        ]);
    }

    #[test]
    fn the_result_of_a_run() {
        check(&[
            // Failed is retried while attempts remain.
            (1, Runnable, ABSENT, OTHER, None, Store),
            (
                1,
                Runnable,
                ABSENT,
                FAILED,
                None,
                HandBack(AFTER_FAILED_RUN),
            ),
            (
                MAX - 1,
                Runnable,
                ABSENT,
                FAILED,
                None,
                HandBack(AFTER_FAILED_RUN),
            ),
            (MAX, Runnable, ABSENT, FAILED, None, Store),
            (MAX + 1, Runnable, ABSENT, FAILED, None, Store),
            // No slot (the worker stopping): back to the stream, never stored.
            (
                1,
                Runnable,
                ABSENT,
                Some(Deferred),
                None,
                HandBack(AFTER_DEFERRED),
            ),
            (
                MAX,
                Runnable,
                ABSENT,
                Some(Deferred),
                None,
                HandBack(AFTER_DEFERRED),
            ),
            // Overtaken by another delivery: let go, on any delivery.
            (1, Runnable, ABSENT, Some(Superseded), None, LetGo),
            (MAX + 1, Runnable, ABSENT, Some(Superseded), None, LetGo),
        ]);
    }

    #[test]
    fn storing_the_result() {
        use Storing::{Panicked, Stored, Unavailable};
        let finish = Finish { terminate: false };
        check(&[
            (1, Runnable, ABSENT, OTHER, Some(Stored), finish),
            (MAX, Runnable, ABSENT, FAILED, Some(Stored), finish),
            (
                MAX + 1,
                Runnable,
                ABSENT,
                FAILED,
                Some(Stored),
                Finish { terminate: true },
            ),
            (
                1,
                Runnable,
                ABSENT,
                OTHER,
                Some(Unavailable),
                HandBack(AFTER_STORE_TROUBLE),
            ),
            (
                1,
                Runnable,
                ABSENT,
                OTHER,
                Some(Panicked),
                HandBack(AFTER_STORE_TROUBLE),
            ),
            (MAX, Runnable, ABSENT, OTHER, Some(Panicked), StandIn),
            (1, Unrunnable, None, OTHER, Some(Stored), finish),
        ]);
    }

    #[test]
    fn a_stand_in_is_stored_once_and_never_retried() {
        let mut facts = Facts::new(MAX, MAX, Runnable);
        facts.lookup = Some(Lookup::Absent);
        facts.outcome = Some(Other);
        facts.storing = Some(Storing::Panicked);
        assert_eq!(next(&facts), StandIn);
        // The driver's part of StandIn: the stand-in is the result in hand, not yet stored.
        facts.stand_in = true;
        facts.outcome = Some(Failed);
        facts.storing = None;
        assert_eq!(next(&facts), Store);
        facts.storing = Some(Storing::Panicked);
        assert_eq!(next(&facts), HandBack(AFTER_STORE_TROUBLE));
        facts.storing = Some(Storing::Stored);
        assert_eq!(next(&facts), Finish { terminate: false });
    }

    /// Every delivery ends: driven with any answers, the rules reach an ending step within a
    /// few steps, never loop.
    #[test]
    fn every_delivery_ends() {
        let lookups = [Lookup::Found, Lookup::Absent, Lookup::Unreadable];
        let outcomes = [Failed, Deferred, Superseded, Other];
        let storings = [Storing::Stored, Storing::Unavailable, Storing::Panicked];
        for delivered in 1..=MAX + 1 {
            for intake in [Runnable, Unrunnable] {
                for lookup in lookups {
                    for outcome in outcomes {
                        for first in storings {
                            for second in storings {
                                let mut facts = Facts::new(delivered, MAX, intake);
                                let mut stores = [first, second].into_iter();
                                let mut steps = 0;
                                loop {
                                    steps += 1;
                                    assert!(steps < 10, "{facts:?} does not end");
                                    match next(&facts) {
                                        Reject | GiveUp | Run => facts.outcome = Some(outcome),
                                        LookUp => facts.lookup = Some(lookup),
                                        Store => facts.storing = stores.next(),
                                        StandIn => {
                                            facts.stand_in = true;
                                            facts.outcome = Some(Failed);
                                            facts.storing = None;
                                        }
                                        ReAnnounce | Finish { .. } | HandBack(_) | LetGo => break,
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
