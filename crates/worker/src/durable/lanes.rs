//! The lanes of `ACTIONS_JOBS`: one per tenant, the first token after `<prefix>.jobs.` of a
//! job's subject, each read through its own durable consumer `action-workers-<tenant>`
//! (filtered on `<prefix>.jobs.<tenant>` and `<prefix>.jobs.<tenant>.>`). A worker learns
//! which lanes have work from the doorbell (the stream republishes each stored job's headers
//! on `<prefix>.queued.<tenant>...`) and from a survey of the stream's subjects each second
//! (jobs stored before it started, redeliveries, a doorbell missed in a reconnection).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use sha2::Digest;

use super::{Durable, SHARED_CONSUMER};
use crate::scheduler::{LaneDemand, Scheduler};

/// A lane consumer that no worker has pulled from for this long is deleted by the server
/// (it has no jobs left then: workers pull from a lane with work).
const LANE_IDLE: Duration = Duration::from_secs(15 * 60);
/// Past this many lanes known, the idle ones are forgotten (made-up tenant names cannot grow
/// the map).
const FORGET_AT: usize = 1024;
/// The lane of the jobs without a tenant, as `submit` publishes them.
pub const DEFAULT_LANE: &str = "default";

/// The lane of a subject under `head` (`<prefix>.jobs.` or `<prefix>.queued.`).
pub fn lane_of<'a>(subject: &'a str, head: &str) -> Option<&'a str> {
    let lane = subject.strip_prefix(head)?.split('.').next()?;
    (!lane.is_empty()).then_some(lane)
}

/// The consumer of a lane: `action-workers-<lane>` when the lane's name is a plain one (ASCII
/// letters, digits, `-` and `_`, up to 64), else `action-workers-~<digest>`, a consumer's name
/// allowing no `.`, `*`, `>`, space or path separator.
pub fn consumer_name(lane: &str) -> String {
    let plain = !lane.is_empty()
        && lane.len() <= 64
        && lane
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return format!("{SHARED_CONSUMER}-{lane}");
    }
    let digest = sha2::Sha256::digest(lane.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{SHARED_CONSUMER}-~{hex}")
}

/// A lane's tenant, as the scheduler knows it: `default` is the jobs without a tenant.
pub fn lane_tenant(lane: &str) -> Option<&str> {
    (lane != DEFAULT_LANE).then_some(lane)
}

/// One lane as this worker knows it.
pub struct Lane {
    /// Its consumer, once opened, and the runs it allows a job.
    pub consumer: Option<(PullConsumer, u32)>,
    /// Jobs may be waiting in it (a doorbell or the survey said so, and no pull since found
    /// it empty).
    pub has_work: bool,
    /// Its jobs in this process that wait for their slot or run.
    pub in_hand: Arc<AtomicU32>,
}

/// Counts a job of its lane until dropped (when its run is over), and then wakes the puller:
/// the lane may take another.
pub struct InHand {
    count: Arc<AtomicU32>,
    scheduler: Arc<Scheduler>,
}

impl InHand {
    pub fn new(count: &Arc<AtomicU32>, scheduler: &Arc<Scheduler>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self {
            count: count.clone(),
            scheduler: scheduler.clone(),
        }
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.scheduler.wake_puller();
    }
}

/// The lanes this worker knows, by name.
#[derive(Default)]
pub struct Lanes {
    pub by_name: HashMap<String, Lane>,
    /// Rotates which lane goes first among equals.
    pub turn: usize,
}

impl Lanes {
    /// Marks `lane` as having work (a doorbell rang for it, or the survey saw jobs in it).
    pub fn ring(&mut self, lane: &str) {
        if let Some(known) = self.by_name.get_mut(lane) {
            known.has_work = true;
            return;
        }
        if self.by_name.len() >= FORGET_AT {
            self.by_name
                .retain(|_, l| l.has_work || l.in_hand.load(Ordering::Relaxed) > 0);
        }
        self.by_name.insert(
            lane.to_string(),
            Lane {
                consumer: None,
                has_work: true,
                in_hand: Arc::new(AtomicU32::new(0)),
            },
        );
    }

    /// The lanes with work, in a stable order, and what the scheduler needs of each.
    pub fn demand(&self) -> (Vec<&str>, Vec<LaneDemand<'_>>) {
        let mut names: Vec<&str> = self
            .by_name
            .iter()
            .filter(|(_, lane)| lane.has_work)
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        let demand = names
            .iter()
            .map(|name| LaneDemand {
                tenant: lane_tenant(name),
                in_hand: self.by_name[*name].in_hand.load(Ordering::Relaxed),
            })
            .collect();
        (names, demand)
    }

    /// Marks the lanes in which the stream holds more jobs than this worker has in hand.
    pub async fn survey(&mut self, durable: &Durable) {
        let pending = match durable.pending_by_tenant().await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::debug!(%error, "cannot survey {}", super::JOBS_STREAM);
                return;
            }
        };
        for (lane, count) in pending {
            let in_hand = self
                .by_name
                .get(&lane)
                .map_or(0, |l| l.in_hand.load(Ordering::Relaxed));
            if count > u64::from(in_hand) {
                self.ring(&lane);
            }
        }
    }
}

impl Durable {
    /// The consumer of `lane`, created if absent, and the runs it allows a job (its
    /// `max_deliver` minus one: an existing consumer is used as it is).
    pub async fn lane_consumer(&self, lane: &str) -> anyhow::Result<(PullConsumer, u32)> {
        let name = consumer_name(lane);
        let prefix = &self.prefix;
        let consumer: PullConsumer = self
            .stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("action-worker replicas: the jobs of {lane}")),
                    filter_subjects: vec![
                        format!("{prefix}.jobs.{lane}"),
                        format!("{prefix}.jobs.{lane}.>"),
                    ],
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: i64::from(self.max_attempts) + 1,
                    max_ack_pending: 10_000,
                    inactive_threshold: LANE_IDLE,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("cannot create or open the consumer {name}"))?;
        let max_deliver = consumer.cached_info().config.max_deliver;
        let max_attempts = if max_deliver > 1 {
            u32::try_from(max_deliver - 1).unwrap_or(u32::MAX)
        } else {
            self.max_attempts
        };
        if max_attempts != self.max_attempts {
            tracing::warn!(
                max_deliver,
                configured = self.max_attempts,
                "the existing consumer {name} allows {max_attempts} runs of a job; it is used as it is"
            );
        }
        Ok((consumer, max_attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_the_first_token_after_the_head() {
        assert_eq!(lane_of("actions.jobs.acme", "actions.jobs."), Some("acme"));
        assert_eq!(
            lane_of("actions.jobs.acme.x.y", "actions.jobs."),
            Some("acme")
        );
        assert_eq!(lane_of("actions.queued.b", "actions.queued."), Some("b"));
        assert_eq!(lane_of("actions.jobs.", "actions.jobs."), None);
        assert_eq!(lane_of("other.jobs.a", "actions.jobs."), None);
    }

    #[test]
    fn consumer_names_are_valid_for_any_lane() {
        assert_eq!(consumer_name("acme"), "action-workers-acme");
        assert_eq!(consumer_name("a_b-9"), "action-workers-a_b-9");
        for lane in ["caf\u{e9}", "a/b", "x".repeat(65).as_str(), "a\\b", "$sys"] {
            let name = consumer_name(lane);
            assert!(name.starts_with("action-workers-~"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-~".contains(&b)),
                "{name}"
            );
        }
        assert_ne!(consumer_name("a/b"), consumer_name("a\\b"));
    }

    proptest::proptest! {
        /// Any subject token names a valid consumer, and two lanes never share one.
        #[test]
        fn any_lane_has_a_valid_consumer_of_its_own(a in "\\PC{1,80}", b in "\\PC{1,80}") {
            for lane in [&a, &b] {
                let name = consumer_name(lane);
                proptest::prop_assert!(name.len() <= 80, "{}", name);
                proptest::prop_assert!(
                    name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_~".contains(&c)),
                    "{}", name
                );
            }
            if a != b {
                proptest::prop_assert_ne!(consumer_name(&a), consumer_name(&b));
            }
        }

        /// A subject's lane is one of its tokens, never empty and never with a dot.
        #[test]
        fn a_lane_is_one_token(subject in "[a-z.]{0,12}(\\.[^ .]{0,6}){0,4}") {
            if let Some(lane) = lane_of(&subject, "actions.jobs.") {
                proptest::prop_assert!(!lane.is_empty() && !lane.contains('.'));
                let head = format!("actions.jobs.{}", lane);
                proptest::prop_assert!(subject.starts_with(&head));
            }
        }
    }
}
