//! Which durable lanes to pull from, and how many jobs from each: the durable path's side of
//! the fair shares. A lane is a tenant's part of `ACTIONS_JOBS` (its own consumer); jobs are
//! pulled only for the slots that are free, the lanes taking them in turn by the same rules
//! as waiting jobs (fewest held for its weight first), and never past a tenant's share,
//! `max_in_flight` or `jobs_per_second`: over quota, a durable job stays in the stream.

use std::time::{Duration, Instant};

use super::{Scheduler, State, tenant_key};

/// One lane with jobs waiting in the stream, as the puller sees it.
#[derive(Debug, Clone, Copy)]
pub struct LaneDemand<'a> {
    /// The tenant the lane is named after (`None`: the jobs without a tenant).
    pub tenant: Option<&'a str>,
    /// Its jobs in this process that wait for their slot or run.
    pub in_hand: u32,
}

/// What [`Scheduler::plan_pulls`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PullPlan {
    /// Jobs to pull, by the position of the lane in the demand.
    pub pulls: Vec<u32>,
    /// Lanes held back only by a rate quota: the time until the first may start again.
    pub rate_wait: Option<Duration>,
}

impl Scheduler {
    /// Shares `free` slots among `lanes`: one at a time to the lane that holds the fewest jobs
    /// for its weight, among those under their share, `max_in_flight` and rate (whose starts
    /// are taken now: [`Self::refund_starts`] gives back what a pull did not find). `turn`
    /// rotates who goes first among equals.
    pub fn plan_pulls(&self, lanes: &[LaneDemand<'_>], free: usize, turn: usize) -> PullPlan {
        let now = Instant::now();
        let mut plan = PullPlan {
            pulls: vec![0; lanes.len()],
            rate_wait: None,
        };
        if lanes.is_empty() {
            return plan;
        }
        let mut state = self.lock();
        state.sweep(now);
        let running: Vec<u32> = lanes
            .iter()
            .map(|lane| {
                let key = tenant_key(lane.tenant);
                state.tenants.get(&key).map_or(0, |t| t.usage.running)
            })
            .collect();
        for _ in 0..free {
            let Some(at) = self.next_lane(&mut state, lanes, &running, &mut plan, turn, now) else {
                break;
            };
            plan.pulls[at] += 1;
            let rate = self.config.policy(lanes[at].tenant).quota.jobs_per_second;
            if rate > 0.0 {
                let key = tenant_key(lanes[at].tenant);
                let usage = &mut state.tenants.entry(key).or_default().usage;
                usage.take_rate(rate, now);
            }
        }
        if plan.pulls.iter().any(|&n| n > 0) {
            plan.rate_wait = None;
        }
        plan
    }

    /// The lane to give the next slot: the one holding the fewest jobs for its weight (from
    /// `turn` on, among equals) of those under their share, `max_in_flight` and rate; the
    /// nearest rate's room is noted in the plan.
    fn next_lane(
        &self,
        state: &mut State,
        lanes: &[LaneDemand<'_>],
        running: &[u32],
        plan: &mut PullPlan,
        turn: usize,
        now: Instant,
    ) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for k in 0..lanes.len() {
            let at = (turn + k) % lanes.len();
            let lane = &lanes[at];
            let held = lane.in_hand.max(running[at]) + plan.pulls[at];
            if held as usize >= self.cap(lane.tenant) {
                continue;
            }
            let policy = self.config.policy(lane.tenant);
            let rate = policy.quota.jobs_per_second;
            if rate > 0.0 {
                let key = tenant_key(lane.tenant);
                let wait = state
                    .tenants
                    .entry(key)
                    .or_default()
                    .usage
                    .rate_wait(rate, now);
                if !wait.is_zero() {
                    plan.rate_wait = Some(plan.rate_wait.map_or(wait, |w| w.min(wait)));
                    continue;
                }
            }
            let held = f64::from(held) / f64::from(policy.weight);
            if best.is_none_or(|(_, fewest)| held < fewest) {
                best = Some((at, held));
            }
        }
        best.map(|(at, _)| at)
    }

    /// Gives back `unused` starts taken by [`Self::plan_pulls`] for `tenant` that its pull
    /// did not find jobs for.
    pub fn refund_starts(&self, tenant: Option<&str>, unused: u32) {
        let rate = self.config.policy(tenant).quota.jobs_per_second;
        if rate <= 0.0 || unused == 0 {
            return;
        }
        let mut state = self.lock();
        if let Some(t) = state.tenants.get_mut(&tenant_key(tenant))
            && let Some(next) = t.usage.next_start
        {
            let back = Duration::from_secs_f64(f64::from(unused) / rate);
            t.usage.next_start = next.checked_sub(back);
        }
    }
}
