//! One job's journal while it runs: the record it follows, what it has drawn, and the writes
//! that keep the journal ahead of what the job shows the outside world.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use action_sandbox::Entropy;
use serde_json::Value;

use super::entry::{CallKey, Entry, Record, encode_bytes};
use super::{JournalStore, WriteError};

/// How the job uses its journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A real run: answers from the journal while it holds them, then live, every live
    /// call journaled.
    Record,
    /// A replay: answers from the journal only; a call it lacks is refused, nothing written.
    Offline,
}

/// What to do with an outside call, by what the journal holds at its position.
#[derive(Debug, Clone, PartialEq)]
pub enum CallPlan {
    /// Answer it with this, as journaled; send nothing.
    Replay(Value),
    /// Send it. `resent`: an earlier delivery sent it and its answer was never journaled;
    /// `diverged`: the journal held another call here, and is not followed from here on.
    Send { resent: bool, diverged: bool },
    /// A replay, and the journal has no answer for it: refused.
    Refuse,
    /// The journal is past its size cap: sent, not journaled.
    Unjournaled,
}

impl CallPlan {
    /// The trace entry's `journal` note.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            Self::Replay(_) => Some("replayed"),
            Self::Send { resent: true, .. } => Some("re-sent"),
            Self::Send { diverged: true, .. } => Some("diverged"),
            Self::Send { .. } => None,
            Self::Refuse => Some("refused"),
            Self::Unjournaled => Some("not journaled: over nats.journal_max_job_bytes"),
        }
    }
}

/// A job's journal: the record it follows, and (in [`Mode::Record`]) its writer.
pub struct JobJournal {
    store: Option<Arc<JournalStore>>,
    subject: String,
    mode: Mode,
    state: Mutex<State>,
}

struct State {
    record: Record,
    /// Still answering from the record (false once the run diverged).
    following: bool,
    next_call: u32,
    wall_drawn: usize,
    monotonic_drawn: usize,
    random_drawn: usize,
    /// The last monotonic reading and when it was made: a live reading goes on from it.
    monotonic_origin: (u64, Instant),
    /// Entries not written yet (clock readings, an input, a divergence).
    pending: Vec<Entry>,
    /// Random bytes drawn live and not written yet, from their position: kept raw until
    /// written (a seeding draws thousands of bytes, one at a time).
    drawn: Option<(u64, Vec<u8>)>,
    last_sequence: u64,
    bytes: usize,
    max_bytes: usize,
    superseded: bool,
}

impl JobJournal {
    /// The journal of a job to run for real, following `record` (read from the store, with
    /// its last sequence `last`), or starting afresh where `input` is not what it recorded.
    pub fn record(
        store: Arc<JournalStore>,
        job_id: &str,
        (record, last): (Record, u64),
        input: (Value, Value, u32),
    ) -> Self {
        // The same job follows its journal, whatever its action's revision now: a run that
        // asks for other calls diverges where it does.
        let same_job = record
            .input
            .as_ref()
            .is_some_and(|(job, ..)| *job == input.0);
        let same_action = record.input.as_ref().is_some_and(|(_, a, _)| *a == input.1);
        let mut state = State::new(if same_job { record } else { Record::default() });
        state.last_sequence = last;
        state.max_bytes = store.max_job_bytes;
        let (job, action, attempt) = input;
        if !same_job {
            state.push(Entry::Input {
                job,
                action,
                attempt,
            });
        } else if !same_action {
            state.push(Entry::Action { action });
        }
        Self {
            subject: store.subject(job_id),
            store: Some(store),
            mode: Mode::Record,
            state: Mutex::new(state),
        }
    }

    /// The journal of a replay: `record` answers, nothing is written.
    pub fn offline(record: Record) -> Self {
        Self {
            store: None,
            subject: String::new(),
            mode: Mode::Offline,
            state: Mutex::new(State::new(record)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding it is caught at the job's boundary; the state stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether another delivery of the job has overtaken this one.
    pub fn superseded(&self) -> bool {
        self.state().superseded
    }

    /// What to do with the job's next outside call, which asks `call`.
    pub fn plan(&self, call: &CallKey) -> (u32, CallPlan) {
        let mut state = self.state();
        let n = state.next_call;
        state.next_call += 1;
        let recorded = state
            .following
            .then(|| state.record.calls.get(n as usize).cloned())
            .flatten();
        let plan = match recorded {
            Some(recorded) if recorded.call == *call => match recorded.answer {
                Some(answer) => CallPlan::Replay(answer),
                None if self.mode == Mode::Offline => CallPlan::Refuse,
                None => CallPlan::Send {
                    resent: true,
                    diverged: false,
                },
            },
            Some(_) => {
                state.following = false;
                if self.mode == Mode::Offline {
                    CallPlan::Refuse
                } else {
                    state.pending.push(Entry::Diverged { at: n });
                    CallPlan::Send {
                        resent: false,
                        diverged: true,
                    }
                }
            }
            None if self.mode == Mode::Offline => CallPlan::Refuse,
            None if state.bytes > state.max_bytes => CallPlan::Unjournaled,
            None => CallPlan::Send {
                resent: false,
                diverged: false,
            },
        };
        (n, plan)
    }

    /// Journals that call `n` is about to be sent (with the readings and draws before it).
    pub async fn sending(&self, n: u32, call: &CallKey) -> Result<(), WriteError> {
        self.write(Entry::Sending {
            n,
            call: call.clone(),
        })
        .await
    }

    /// Journals call `n`'s answer.
    pub async fn answered(&self, n: u32, call: &CallKey, answer: Value) -> Result<(), WriteError> {
        self.write(Entry::Answer {
            n,
            call: call.clone(),
            answer,
        })
        .await
    }

    /// Writes what is pending (the input, the last readings and draws): the job has ended.
    pub async fn finish(&self) -> Result<(), WriteError> {
        let pending = self.state().take_pending();
        self.append(pending).await
    }

    async fn write(&self, entry: Entry) -> Result<(), WriteError> {
        let batch = {
            let mut state = self.state();
            state.push(entry);
            state.take_pending()
        };
        self.append(batch).await
    }

    /// Appends `batch` after the last sequence this delivery knows, retrying through a NATS
    /// outage for a while.
    async fn append(&self, batch: Vec<Entry>) -> Result<(), WriteError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut pause = Duration::from_millis(50);
        let give_up = Instant::now() + WRITE_PATIENCE;
        loop {
            let last = self.state().last_sequence;
            match store.append(&self.subject, last, &batch).await {
                Ok(sequence) => {
                    self.state().last_sequence = sequence;
                    return Ok(());
                }
                Err(WriteError::Superseded) => {
                    self.state().superseded = true;
                    return Err(WriteError::Superseded);
                }
                Err(error) if Instant::now() + pause > give_up => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, "cannot write the job's journal yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// How long a journal write is retried through an outage before the call is not made.
const WRITE_PATIENCE: Duration = Duration::from_secs(10);

impl State {
    fn new(record: Record) -> Self {
        Self {
            record,
            following: true,
            next_call: 0,
            wall_drawn: 0,
            monotonic_drawn: 0,
            random_drawn: 0,
            monotonic_origin: (0, Instant::now()),
            pending: Vec::new(),
            drawn: None,
            last_sequence: 0,
            bytes: 0,
            max_bytes: usize::MAX,
            superseded: false,
        }
    }

    /// Queues `entry`, counting its size against the cap; an entry past it is dropped (the
    /// calls after it are then made unjournaled).
    fn push(&mut self, entry: Entry) {
        let size = match &entry {
            Entry::Wall { ns, .. } | Entry::Monotonic { ns, .. } => 8 * ns.len(),
            Entry::Random { bytes, .. } => bytes.len(),
            other => serde_json::to_string(other).map_or(0, |s| s.len()),
        };
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes <= self.max_bytes || matches!(entry, Entry::Input { .. }) {
            self.pending.push(entry);
        }
    }

    /// What is to be written, the random bytes drawn last included.
    fn take_pending(&mut self) -> Vec<Entry> {
        if let Some((from, bytes)) = self.drawn.take() {
            let bytes = encode_bytes(&bytes);
            self.pending.push(Entry::Random { from, bytes });
        }
        std::mem::take(&mut self.pending)
    }

    /// Random bytes drawn live at position `from`, to be journaled (within the cap).
    fn drew(&mut self, from: u64, live: &[u8]) {
        self.bytes = self.bytes.saturating_add(live.len());
        if self.bytes > self.max_bytes {
            return;
        }
        match &mut self.drawn {
            Some((start, bytes)) if *start + bytes.len() as u64 == from => {
                bytes.extend_from_slice(live);
            }
            _ => {
                if let Some((start, bytes)) = self.drawn.replace((from, live.to_vec())) {
                    let bytes = encode_bytes(&bytes);
                    self.pending.push(Entry::Random { from: start, bytes });
                }
            }
        }
    }

    /// A clock reading: the record's next one while following it, else `live()` journaled.
    fn reading(&mut self, wall: bool, live: impl FnOnce(&Self) -> u64) -> u64 {
        let (drawn, recorded) = if wall {
            (self.wall_drawn, &self.record.wall)
        } else {
            (self.monotonic_drawn, &self.record.monotonic)
        };
        let replayed = recorded.get(drawn).copied().filter(|_| self.following);
        if wall {
            self.wall_drawn += 1;
        } else {
            self.monotonic_drawn += 1;
        }
        if let Some(value) = replayed {
            return value;
        }
        let value = live(self);
        let from = u32::try_from(drawn).unwrap_or(u32::MAX);
        match self.pending.last_mut() {
            Some(Entry::Wall { from: f, ns }) if wall && *f as usize + ns.len() == drawn => {
                ns.push(value);
                self.bytes += 8;
            }
            Some(Entry::Monotonic { from: f, ns }) if !wall && *f as usize + ns.len() == drawn => {
                ns.push(value);
                self.bytes += 8;
            }
            _ if wall => self.push(Entry::Wall {
                from,
                ns: vec![value],
            }),
            _ => self.push(Entry::Monotonic {
                from,
                ns: vec![value],
            }),
        }
        value
    }
}

impl Entropy for JobJournal {
    fn wall_clock(&self) -> Duration {
        let ns = self.state().reading(true, |_| {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
            now.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        });
        Duration::from_nanos(ns)
    }

    fn monotonic_clock(&self) -> u64 {
        let mut state = self.state();
        let ns = state.reading(false, |state| {
            let (base, at) = state.monotonic_origin;
            base.saturating_add(u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX))
        });
        state.monotonic_origin = (ns, Instant::now());
        ns
    }

    fn random(&self, bytes: &mut [u8]) {
        let mut state = self.state();
        let drawn = state.random_drawn;
        let recorded: &[u8] = if state.following {
            state.record.random.get(drawn..).unwrap_or_default()
        } else {
            &[]
        };
        let replayed = recorded.len().min(bytes.len());
        bytes[..replayed].copy_from_slice(&recorded[..replayed]);
        state.random_drawn += bytes.len();
        if replayed == bytes.len() {
            return;
        }
        let live = &mut bytes[replayed..];
        rand::fill(live);
        state.drew((drawn + replayed) as u64, live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::entry::{RecordedCall, decode_bytes};
    use serde_json::json;

    fn call(name: &str) -> CallKey {
        CallKey::new("http", "POST", name, &[name.as_bytes()])
    }

    /// A record whose call 0 (`a`) was answered and call 1 (`b`) was sent, unanswered.
    fn record() -> Record {
        Record {
            calls: vec![
                RecordedCall {
                    call: call("a"),
                    answer: Some(json!({"ok": "A"})),
                },
                RecordedCall {
                    call: call("b"),
                    answer: None,
                },
            ],
            wall: vec![5, 6],
            monotonic: vec![100],
            random: vec![1, 2, 3],
            ..Record::default()
        }
    }

    /// A journal that follows `record` for real, writing nowhere.
    fn recording(record: Record) -> JobJournal {
        JobJournal {
            store: None,
            subject: String::new(),
            mode: Mode::Record,
            state: Mutex::new(State::new(record)),
        }
    }

    #[test]
    fn a_run_takes_journaled_answers_resends_the_unanswered_and_goes_live_after() {
        let journal = recording(record());
        assert_eq!(
            journal.plan(&call("a")),
            (0, CallPlan::Replay(json!({"ok": "A"})))
        );
        let resent = CallPlan::Send {
            resent: true,
            diverged: false,
        };
        assert_eq!(journal.plan(&call("b")), (1, resent));
        let live = CallPlan::Send {
            resent: false,
            diverged: false,
        };
        assert_eq!(journal.plan(&call("c")), (2, live));
    }

    #[test]
    fn a_run_that_asks_otherwise_diverges_and_never_follows_again() {
        let journal = recording(record());
        let diverged = CallPlan::Send {
            resent: false,
            diverged: true,
        };
        assert_eq!(journal.plan(&call("x")), (0, diverged));
        assert_eq!(journal.state().pending, vec![Entry::Diverged { at: 0 }]);
        // Call 1 is what the journal holds there, but the run no longer follows it.
        assert!(matches!(
            journal.plan(&call("b")).1,
            CallPlan::Send { resent: false, .. }
        ));
        // Nor its clocks: a live reading, journaled from reading 0.
        assert!(journal.wall_clock() > Duration::from_secs(1_000_000));
    }

    #[test]
    fn a_replay_refuses_what_the_journal_lacks() {
        let journal = JobJournal::offline(record());
        assert!(matches!(journal.plan(&call("a")).1, CallPlan::Replay(_)));
        assert_eq!(journal.plan(&call("b")).1, CallPlan::Refuse);
        assert_eq!(journal.plan(&call("c")).1, CallPlan::Refuse);
        let journal = JobJournal::offline(record());
        assert_eq!(journal.plan(&call("x")).1, CallPlan::Refuse);
        assert!(
            journal.state().pending.is_empty(),
            "a replay writes nothing"
        );
    }

    #[test]
    fn clocks_and_random_bytes_come_from_the_record_then_live_and_journaled() {
        let journal = recording(record());
        assert_eq!(journal.wall_clock(), Duration::from_nanos(5));
        assert_eq!(journal.wall_clock(), Duration::from_nanos(6));
        let live = journal.wall_clock();
        assert!(live > Duration::from_secs(1_000_000), "{live:?}");
        assert_eq!(journal.monotonic_clock(), 100);
        assert!(
            journal.monotonic_clock() >= 100,
            "monotonic across the switch"
        );
        let mut bytes = [0; 5];
        journal.random(&mut bytes);
        assert_eq!(bytes[..3], [1, 2, 3]);
        let mut more = [0; 4];
        journal.random(&mut more);
        let pending = journal.state().take_pending();
        // The live readings and draws, at their positions, consecutive draws in one entry.
        assert!(matches!(&pending[0], Entry::Wall { from: 2, ns } if ns.len() == 1));
        assert!(matches!(&pending[1], Entry::Monotonic { from: 1, ns } if ns.len() == 1));
        let Entry::Random { from, bytes: drawn } = &pending[2] else {
            panic!("{pending:?}");
        };
        assert_eq!(*from, 3);
        let drawn = decode_bytes(drawn);
        assert_eq!(drawn[..2], bytes[3..]);
        assert_eq!(drawn[2..], more);
        assert_eq!(pending.len(), 3);
    }

    #[test]
    fn past_its_cap_a_journal_lets_calls_go_unjournaled() {
        let journal = recording(Record::default());
        journal.state().max_bytes = 100;
        let mut bytes = vec![0; 200];
        journal.random(&mut bytes);
        assert_eq!(journal.plan(&call("a")).1, CallPlan::Unjournaled);
        assert!(
            CallPlan::Unjournaled
                .note()
                .unwrap()
                .contains("journal_max_job_bytes")
        );
    }
}
