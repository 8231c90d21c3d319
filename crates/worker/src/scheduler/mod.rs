//! The admission step of the [pipeline](crate::pipeline): a job runs only with one of the
//! process's slots (`nats.max_concurrent_jobs`), and the slots are shared fairly among the
//! tenants (`[tenants]`):
//! - tenants with jobs waiting take free slots in turn, `weight` slots a turn (weighted round
//!   robin; jobs without a tenant are one tenant of their own); a tenant's jobs start in the
//!   order they came, except one held back by its action's quota;
//! - one tenant holds at most its share of the slots (`tenants.max_share`), so that another
//!   tenant's job finds one free at once; and at most its quota (`max_in_flight`);
//! - a tenant (or an action) over its `jobs_per_second` waits for its next start, or is
//!   refused when that is past the job's queue deadline;
//! - a job that waits past its queue deadline, or finds `max_queued` jobs waiting already, is
//!   refused over capacity.
//!
//! A [`Slot`] is held while the job runs; dropping it gives the slot to the next tenant in
//! turn.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{Quota, TenantsSection};

/// Why a job got no slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Over a quota, or no slot within the queue deadline: the caller may try again later
    /// (`retry_after` is the scheduler's guess).
    OverCapacity {
        message: String,
        retry_after: Duration,
    },
    /// The worker is stopping.
    Stopping,
}

/// How long a job may wait for its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Up to a deadline (request-reply: `tenants.queue_deadline_ms`), rate quotas included:
    /// a job that cannot start by then is refused at once.
    Until(Instant),
    /// A durable job in hand: as long as it takes, its action's rate quota included (its
    /// tenant's start was taken when it was pulled, [`Scheduler::plan_pulls`]).
    InHand,
}

/// A slot taken before its job is known (the durable path pulls as many messages as it
/// holds slots): [`Scheduler::claim`] gives it to the job's tenant; dropped unclaimed, it is
/// free again.
pub struct Reserved {
    scheduler: Arc<Scheduler>,
    armed: bool,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.scheduler.lock();
            state.free += 1;
            self.scheduler.dispatch(&mut state);
            drop(state);
            self.scheduler.freed.notify_waiters();
        }
    }
}

/// A job's place in the worker: released when dropped.
pub struct Slot {
    scheduler: Arc<Scheduler>,
    tenant: String,
    action: Option<String>,
    /// Set when the slot was handed to a waiter that was gone: the count is undone there.
    armed: bool,
    /// How long the job waited for it.
    pub waited: Duration,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.scheduler.release(&self.tenant, self.action.as_deref());
        }
    }
}

pub struct Scheduler {
    config: TenantsSection,
    slots: usize,
    /// The slots one tenant may hold.
    share: usize,
    state: Mutex<State>,
    /// Signalled when a slot is released (the durable puller waits for free slots).
    freed: Notify,
}

#[derive(Default)]
struct State {
    free: usize,
    queued: usize,
    next_id: u64,
    tenants: HashMap<String, Tenant>,
    /// Per-action quotas' usage, by `"<tenant>.<action>"`.
    actions: HashMap<String, Usage>,
    /// Tenants with jobs waiting, in turn.
    ring: VecDeque<String>,
}

/// Past this many tenants (or actions) known, the idle ones are forgotten.
const SWEEP_AT: usize = 1024;

impl State {
    /// Forgets the tenants and actions with nothing running, nothing waiting and no rate
    /// schedule ahead, once there are many: a stream of made-up tenant names under a rate
    /// quota cannot grow the state (a released slot forgets its tenant only when idle then).
    fn sweep(&mut self, now: Instant) {
        if self.tenants.len() > SWEEP_AT {
            self.tenants
                .retain(|_, t| t.in_ring || !t.waiting.is_empty() || !t.usage.idle(now));
        }
        if self.actions.len() > SWEEP_AT {
            self.actions.retain(|_, usage| !usage.idle(now));
        }
    }
}

#[derive(Default)]
struct Tenant {
    usage: Usage,
    waiting: VecDeque<Waiter>,
    /// Slots left of this turn.
    credit: u32,
    /// In the ring of tenants in turn.
    in_ring: bool,
}

/// Jobs running and the rate's schedule, of a tenant or an action.
#[derive(Default)]
struct Usage {
    running: u32,
    /// The theoretical start of the next job under the rate quota (GCRA).
    next_start: Option<Instant>,
}

struct Waiter {
    id: u64,
    action: Option<String>,
    since: Instant,
    grant: oneshot::Sender<Slot>,
}

/// The tenant key of a job: `""` for jobs without a tenant.
fn tenant_key(tenant: Option<&str>) -> String {
    tenant.unwrap_or("").to_string()
}

impl Usage {
    /// How long until the rate quota lets a job start (zero: now).
    fn rate_wait(&self, rate: f64, now: Instant) -> Duration {
        if rate <= 0.0 {
            return Duration::ZERO;
        }
        let next = self.next_start.unwrap_or(now).max(now);
        // A burst of one second's worth of jobs (at least one) may start at once.
        let burst = Duration::from_secs_f64((1.0 - 1.0 / rate).max(0.0));
        next.checked_sub(burst).map_or(Duration::ZERO, |earliest| {
            earliest.saturating_duration_since(now)
        })
    }

    fn take_rate(&mut self, rate: f64, now: Instant) {
        if rate > 0.0 {
            let next = self.next_start.unwrap_or(now).max(now);
            self.next_start = Some(next + Duration::from_secs_f64(1.0 / rate));
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.running == 0 && self.next_start.is_none_or(|next| next <= now)
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("slots", &self.slots)
            .field("free", &self.free())
            .field("queued", &self.queued())
            .finish()
    }
}

impl Scheduler {
    pub fn new(slots: usize, config: TenantsSection) -> Arc<Self> {
        let share = config.share_of(slots);
        Arc::new(Self {
            config,
            slots,
            share,
            state: Mutex::new(State {
                free: slots,
                ..State::default()
            }),
            freed: Notify::new(),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn config(&self) -> &TenantsSection {
        &self.config
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.lock().free
    }

    /// Jobs waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent at every unlock: a panic elsewhere cannot leave it torn.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free slot, taken now for a job not yet known; `None` when none is free. Only a slot
    /// that no waiting job can use is free (a release hands it to a waiter first).
    pub fn reserve(self: &Arc<Self>) -> Option<Reserved> {
        let mut state = self.lock();
        if state.free == 0 {
            return None;
        }
        state.free -= 1;
        Some(Reserved {
            scheduler: self.clone(),
            armed: true,
        })
    }

    /// Gives a reserved slot to a job of `tenant` running `action`: it counts against the
    /// tenant's share and quotas from now on (a job in hand is never sent back for them).
    pub fn claim(
        self: &Arc<Self>,
        mut reserved: Reserved,
        tenant: Option<&str>,
        action: &str,
    ) -> Slot {
        reserved.armed = false;
        let key = tenant_key(tenant);
        let action_key = self
            .config
            .action_quota(tenant, action)
            .map(|_| format!("{key}.{action}"));
        let mut state = self.lock();
        state.tenants.entry(key.clone()).or_default().usage.running += 1;
        if let Some(action_key) = &action_key {
            state.actions.entry(action_key.clone()).or_default().running += 1;
        }
        drop(state);
        Slot {
            scheduler: self.clone(),
            tenant: key,
            action: action_key,
            armed: true,
            waited: Duration::ZERO,
        }
    }

    /// Wakes the durable puller as a release of a slot does (a lane's job finished its run).
    pub fn wake_puller(&self) {
        self.freed.notify_waiters();
    }

    /// Resolves at the next release of a slot after this call (the durable puller takes it
    /// before it looks at the free slots, so that no release between is missed).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// Whether `action` of `tenant` has a quota of its own (a durable job of it cannot take
    /// the slot reserved for it as it arrived: it waits for its action's room in turn).
    pub fn has_action_quota(&self, tenant: Option<&str>, action: &str) -> bool {
        self.config.action_quota(tenant, action).is_some()
    }

    /// A slot for a job of `tenant` running `action`, in its turn, waiting as `wait` says;
    /// `stop` ends the wait.
    pub async fn admit(
        self: &Arc<Self>,
        tenant: Option<&str>,
        action: &str,
        wait: Wait,
        stop: &CancellationToken,
    ) -> Result<Slot, Refused> {
        let deadline = match wait {
            Wait::Until(deadline) => Some(deadline),
            Wait::InHand => None,
        };
        let arrived = Instant::now();
        let key = tenant_key(tenant);
        let action_key = self
            .config
            .action_quota(tenant, action)
            .map(|_| format!("{key}.{action}"));
        let wait = self.take_rate(tenant, &key, action, action_key.as_deref(), deadline)?;
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return Err(Refused::Stopping),
            }
        }
        let (id, granted) = self.enqueue(&key, action_key, arrived)?;
        let mut waiting = Waiting {
            scheduler: self,
            tenant: &key,
            id,
        };
        let until = deadline.map(tokio::time::Instant::from_std);
        let timed_out = async {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        let mut granted = granted;
        tokio::select! {
            slot = &mut granted => {
                waiting.id = u64::MAX;
                slot.map_err(|_| Refused::Stopping)
            }
            _ = timed_out => {
                if self.withdraw(&key, id) {
                    waiting.id = u64::MAX;
                    return Err(self.over_capacity(tenant, action, arrived.elapsed()));
                }
                // Granted meanwhile: the slot is in the channel.
                waiting.id = u64::MAX;
                granted.await.map_err(|_| Refused::Stopping)
            }
            _ = stop.cancelled() => Err(Refused::Stopping),
        }
    }

    /// Reserves the job's start under the rate quotas of its tenant and action; how long it
    /// must wait for it, or why it may not. Without a deadline (a durable job in hand) only
    /// the action's rate counts, and it waits as long as it must.
    fn take_rate(
        &self,
        tenant: Option<&str>,
        key: &str,
        action: &str,
        action_key: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Duration, Refused> {
        let policy = self.config.policy(tenant);
        let action_quota = self.config.action_quota(tenant, action).unwrap_or_default();
        let tenant_rate = match deadline {
            Some(_) => policy.quota.jobs_per_second,
            None => 0.0,
        };
        let action_rate = action_quota.jobs_per_second;
        if tenant_rate <= 0.0 && action_rate <= 0.0 {
            return Ok(Duration::ZERO);
        }
        let now = Instant::now();
        let mut state = self.lock();
        let state = &mut *state;
        state.sweep(now);
        let mut wait = Duration::ZERO;
        let tenant_usage = state.tenants.entry(key.to_string()).or_default();
        wait = wait.max(tenant_usage.usage.rate_wait(tenant_rate, now));
        if let Some(action_key) = action_key {
            let usage = state.actions.entry(action_key.to_string()).or_default();
            wait = wait.max(usage.rate_wait(action_rate, now));
        }
        let may_wait = deadline.is_none_or(|deadline| now + wait <= deadline);
        if !may_wait {
            let (what, rate) = if action_rate > 0.0 && tenant_rate <= 0.0 {
                (format!("action {action}"), action_rate)
            } else {
                ("tenant".to_string(), tenant_rate)
            };
            return Err(Refused::OverCapacity {
                message: format!(
                    "over capacity: the {what} of {} may start {rate} jobs per second; try again in {} ms",
                    label(tenant),
                    wait.as_millis()
                ),
                retry_after: wait,
            });
        }
        let start = now + wait;
        if let Some(tenant) = state.tenants.get_mut(key) {
            tenant.usage.take_rate(tenant_rate, start);
        }
        if let Some(action_key) = action_key
            && let Some(usage) = state.actions.get_mut(action_key)
        {
            usage.take_rate(action_rate, start);
        }
        Ok(wait)
    }

    /// Puts the job in its tenant's queue and hands out what slots are free.
    fn enqueue(
        self: &Arc<Self>,
        key: &str,
        action: Option<String>,
        since: Instant,
    ) -> Result<(u64, oneshot::Receiver<Slot>), Refused> {
        let (grant, granted) = oneshot::channel();
        let mut state = self.lock();
        if state.queued >= self.config.max_queued {
            drop(state);
            return Err(Refused::OverCapacity {
                message: format!(
                    "over capacity: {} jobs are waiting for a slot in this worker (tenants.max_queued)",
                    self.config.max_queued
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        state.next_id += 1;
        let id = state.next_id;
        state.queued += 1;
        let tenant = state.tenants.entry(key.to_string()).or_default();
        tenant.waiting.push_back(Waiter {
            id,
            action,
            since,
            grant,
        });
        if !tenant.in_ring {
            tenant.in_ring = true;
            state.ring.push_back(key.to_string());
        }
        self.dispatch(&mut state);
        Ok((id, granted))
    }

    /// Takes a waiter out of its queue; false when it is no longer there (it was granted).
    fn withdraw(&self, key: &str, id: u64) -> bool {
        let mut state = self.lock();
        let Some(tenant) = state.tenants.get_mut(key) else {
            return false;
        };
        let Some(at) = tenant.waiting.iter().position(|w| w.id == id) else {
            return false;
        };
        tenant.waiting.remove(at);
        state.queued -= 1;
        true
    }

    fn over_capacity(&self, tenant: Option<&str>, action: &str, waited: Duration) -> Refused {
        let state = self.lock();
        let key = tenant_key(tenant);
        let running = state.tenants.get(&key).map_or(0, |t| t.usage.running);
        let cap = self.cap(tenant);
        let why = if let Some(quota) = self.config.action_quota(tenant, action)
            && quota.max_in_flight > 0
            && state
                .actions
                .get(&format!("{key}.{action}"))
                .is_some_and(|u| u.running >= quota.max_in_flight)
        {
            format!(
                "action {action} of {} has {} jobs running, its quota",
                label(tenant),
                quota.max_in_flight
            )
        } else if running as usize >= cap {
            format!(
                "{} has {running} jobs running, its quota here",
                label(tenant)
            )
        } else {
            format!("all {} slots of this worker are taken", self.slots)
        };
        Refused::OverCapacity {
            message: format!(
                "over capacity: no slot within {} ms: {why}",
                waited.as_millis()
            ),
            retry_after: Duration::from_secs(1),
        }
    }

    /// The jobs `tenant` may run at once: its share, and its quota.
    fn cap(&self, tenant: Option<&str>) -> usize {
        let quota = self.config.policy(tenant).quota.max_in_flight;
        match quota {
            0 => self.share,
            n => self.share.min(n as usize),
        }
    }

    /// Hands free slots to waiting jobs. Of the tenants with a job that may start (not held
    /// back by its share or a quota), the one holding the fewest slots for its weight goes
    /// first; among equals, the tenants take turns, `weight` jobs a turn.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        while state.free > 0 {
            let tenants = &mut state.tenants;
            state.ring.retain(|key| match tenants.get_mut(key) {
                Some(tenant) if !tenant.waiting.is_empty() => true,
                Some(tenant) => {
                    tenant.in_ring = false;
                    tenant.credit = 0;
                    false
                }
                None => false,
            });
            let Some((at, waiter_at)) = self.next_in_turn(state) else {
                return;
            };
            self.grant(state, at, waiter_at);
        }
    }

    /// The ring position of the tenant to serve next and the position of its job to start.
    fn next_in_turn(&self, state: &State) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, f64)> = None;
        for (at, key) in state.ring.iter().enumerate() {
            let tenant_name = (!key.is_empty()).then_some(key.as_str());
            let Some(tenant) = state.tenants.get(key) else {
                continue;
            };
            if tenant.usage.running as usize >= self.cap(tenant_name) {
                continue;
            }
            let Some(waiter_at) = tenant.waiting.iter().position(|w| {
                w.action.as_ref().is_none_or(|a| {
                    let quota = self.action_cap(a);
                    state.actions.get(a).is_none_or(|u| u.running < quota)
                })
            }) else {
                continue;
            };
            let weight = f64::from(self.config.policy(tenant_name).weight);
            let held = f64::from(tenant.usage.running) / weight;
            if best.is_none_or(|(_, _, fewest)| held < fewest) {
                best = Some((at, waiter_at, held));
            }
        }
        best.map(|(at, waiter_at, _)| (at, waiter_at))
    }

    /// Starts the job at `waiter_at` of the tenant at `at` in the ring.
    fn grant(self: &Arc<Self>, state: &mut State, at: usize, waiter_at: usize) {
        let Some(key) = state.ring.get(at).cloned() else {
            return;
        };
        let tenant_name = (!key.is_empty()).then_some(key.as_str());
        let weight = self.config.policy(tenant_name).weight;
        let Some(tenant) = state.tenants.get_mut(&key) else {
            return;
        };
        let Some(waiter) = tenant.waiting.remove(waiter_at) else {
            return;
        };
        if tenant.credit == 0 {
            tenant.credit = weight;
        }
        tenant.credit -= 1;
        if tenant.credit == 0 {
            // Its turn is over: behind the others.
            state.ring.remove(at);
            state.ring.push_back(key.clone());
        }
        tenant.usage.running += 1;
        state.free -= 1;
        state.queued -= 1;
        if let Some(action) = &waiter.action {
            state.actions.entry(action.clone()).or_default().running += 1;
        }
        let slot = Slot {
            scheduler: self.clone(),
            tenant: key.clone(),
            action: waiter.action.clone(),
            armed: true,
            waited: waiter.since.elapsed(),
        };
        if let Err(mut slot) = waiter.grant.send(slot) {
            // Its job is gone (its task ended while it waited): undo, here, under the lock.
            slot.armed = false;
            self.undo(state, &key, waiter.action.as_deref());
        }
    }

    /// The jobs one action with a quota may run at once.
    fn action_cap(&self, action_key: &str) -> u32 {
        let quota: Option<&Quota> = self.config.actions.get(action_key.trim_start_matches('.'));
        match quota.map_or(0, |q| q.max_in_flight) {
            0 => u32::MAX,
            n => n,
        }
    }

    fn undo(&self, state: &mut State, key: &str, action: Option<&str>) {
        let now = Instant::now();
        state.free += 1;
        if let Some(tenant) = state.tenants.get_mut(key) {
            tenant.usage.running -= 1;
            if tenant.usage.idle(now) && tenant.waiting.is_empty() && !tenant.in_ring {
                state.tenants.remove(key);
            }
        }
        if let Some(action) = action
            && let Some(usage) = state.actions.get_mut(action)
        {
            usage.running -= 1;
            if usage.idle(now) {
                state.actions.remove(action);
            }
        }
    }

    fn release(self: &Arc<Self>, key: &str, action: Option<&str>) {
        let mut state = self.lock();
        self.undo(&mut state, key, action);
        self.dispatch(&mut state);
        drop(state);
        self.freed.notify_waiters();
    }
}

/// Removes a waiter that gave up (its future dropped) from its queue.
struct Waiting<'a> {
    scheduler: &'a Scheduler,
    tenant: &'a str,
    /// `u64::MAX` once the wait is settled.
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.id != u64::MAX {
            self.scheduler.withdraw(self.tenant, self.id);
        }
    }
}

/// A tenant as messages name it.
fn label(tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("tenant {tenant}"),
        None => "the jobs without a tenant".to_string(),
    }
}

mod plan;
pub use plan::{LaneDemand, PullPlan};

#[cfg(test)]
mod tests;
