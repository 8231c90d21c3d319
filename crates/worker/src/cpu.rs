//! Fair CPU among computing jobs. A guest yields after every slice of its CPU (the sandbox's
//! `YIELD_FUEL`, about 5 ms); here it then waits for a turn. At most `cores` jobs hold a turn
//! at once, and a free turn goes to the waiting job whose tenant has used the least CPU
//! lately (an exponentially decaying count of slices, half-life [`HALF_LIFE`]), first come
//! first among equals. A job that never uses a whole slice (most jobs: a trivial one takes
//! ~0.2 ms) never waits here; so one tenant's runaway scripts take turns among themselves
//! while another tenant's short jobs run at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use action_sandbox::{BoxFuture, CpuTurns};
use tokio::sync::oneshot;

/// How fast a tenant's CPU use is forgotten.
pub const HALF_LIFE: Duration = Duration::from_secs(2);

pub struct CpuGate {
    cores: usize,
    next_job: AtomicU64,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    /// The jobs holding a turn now.
    holding: HashSet<u64>,
    waiting: Vec<Waiting>,
    /// The order of arrival of waits.
    next_seq: u64,
    /// Recent CPU by tenant, in slices.
    used: HashMap<String, Decaying>,
}

struct Waiting {
    seq: u64,
    job: u64,
    tenant: String,
    grant: oneshot::Sender<()>,
}

#[derive(Clone, Copy)]
struct Decaying {
    value: f64,
    at: Instant,
}

impl Decaying {
    fn at(self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.value * 0.5f64.powf(age / HALF_LIFE.as_secs_f64())
    }
}

impl CpuGate {
    /// A gate of `cores` turns (the threads that run jobs).
    pub fn new(cores: usize) -> Arc<Self> {
        Arc::new(Self {
            cores: cores.max(1),
            next_job: AtomicU64::new(1),
            state: Mutex::new(GateState::default()),
        })
    }

    /// The turns of one job of `tenant` (`None`: no tenant).
    pub fn turns(self: &Arc<Self>, tenant: Option<&str>) -> Arc<Turns> {
        Arc::new(Turns {
            gate: self.clone(),
            tenant: tenant.unwrap_or("").to_string(),
            job: self.next_job.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Jobs waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives free turns to the waiting jobs of the tenants that used the least CPU lately.
    fn dispatch(&self, state: &mut GateState) {
        let now = Instant::now();
        while state.holding.len() < self.cores && !state.waiting.is_empty() {
            let used = &state.used;
            let recent = |tenant: &str| used.get(tenant).map_or(0.0, |d| d.at(now));
            let waiting = &state.waiting;
            let Some(next) = (0..waiting.len()).min_by(|&a, &b| {
                let (a, b) = (&waiting[a], &waiting[b]);
                recent(&a.tenant)
                    .total_cmp(&recent(&b.tenant))
                    .then(a.seq.cmp(&b.seq))
            }) else {
                return;
            };
            let waiter = state.waiting.remove(next);
            // A job that is gone (its wait dropped) takes no turn.
            if waiter.grant.send(()).is_ok() {
                state.holding.insert(waiter.job);
            }
        }
    }
}

/// The turns of one job, charged to its tenant. [`Turns::finish`] when the job ends gives
/// its turn (or its place in the queue) back: its guest may have been stopped mid-wait.
pub struct Turns {
    gate: Arc<CpuGate>,
    tenant: String,
    job: u64,
}

impl Turns {
    pub fn finish(&self) {
        let mut state = self.gate.lock();
        state.waiting.retain(|w| w.job != self.job);
        state.holding.remove(&self.job);
        self.gate.dispatch(&mut state);
    }
}

impl CpuTurns for Turns {
    fn next_turn(&self) -> BoxFuture<'static, ()> {
        let now = Instant::now();
        let mut state = self.gate.lock();
        let used = state.used.entry(self.tenant.clone()).or_insert(Decaying {
            value: 0.0,
            at: now,
        });
        *used = Decaying {
            value: used.at(now) + 1.0,
            at: now,
        };
        if state.used.len() > 10_000 {
            // Forget the tenants whose use has faded, so made-up names cannot grow this.
            state.used.retain(|_, d| d.at(now) > 0.01);
        }
        state.holding.remove(&self.job);
        let (grant, granted) = oneshot::channel();
        state.next_seq += 1;
        let seq = state.next_seq;
        state.waiting.push(Waiting {
            seq,
            job: self.job,
            tenant: self.tenant.clone(),
            grant,
        });
        self.gate.dispatch(&mut state);
        drop(state);
        Box::pin(async move {
            // Back to the executor once even with the turn in hand: the jobs that have not
            // used a slice yet (they take no turn) and the worker's other tasks run too.
            tokio::task::yield_now().await;
            // The sender goes only when the wait is withdrawn (the job finished).
            let _ = granted.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_goes_to_the_tenant_that_used_the_least_cpu() {
        let gate = CpuGate::new(1);
        let hog = gate.turns(Some("noisy"));
        let hog2 = gate.turns(Some("noisy"));
        let quiet = gate.turns(Some("quiet"));
        // The hog uses slices: it holds the one turn, its second job waits.
        hog.next_turn().await;
        hog.next_turn().await;
        let waiting_hog = hog2.next_turn();
        assert_eq!(gate.waiting(), 1);
        // The quiet tenant's job, after its first slice, waits too; the turn the hog gives
        // back at its next slice goes to quiet, which has used less.
        let waiting_quiet = quiet.next_turn();
        let hog_again = hog.next_turn();
        tokio::time::timeout(Duration::from_millis(100), waiting_quiet)
            .await
            .expect("quiet goes first");
        assert_eq!(gate.waiting(), 2);
        quiet.finish();
        tokio::time::timeout(Duration::from_millis(100), waiting_hog)
            .await
            .expect("then the hog's other job, waiting longer");
        hog2.finish();
        tokio::time::timeout(Duration::from_millis(100), hog_again)
            .await
            .expect("then the hog");
        hog.finish();
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn a_finished_job_gives_its_turn_back_even_mid_wait() {
        let gate = CpuGate::new(1);
        let a = gate.turns(Some("a"));
        let b = gate.turns(Some("b"));
        a.next_turn().await;
        let waiting = b.next_turn();
        // a is stopped (its deadline) while it holds the turn; b goes on.
        a.finish();
        tokio::time::timeout(Duration::from_millis(100), waiting)
            .await
            .expect("b has the turn");
        // b is stopped while it waits: its place is gone, nothing is held.
        drop(b.next_turn());
        b.finish();
        assert_eq!(gate.waiting(), 0);
        assert!(gate.lock().holding.is_empty());
    }
}
