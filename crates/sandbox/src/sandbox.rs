//! The [`Sandbox`]: one engine, one compiled runtime per runtime profile, a fresh instance
//! for every job.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use action_protocol::{ErrorInfo, ErrorKind, Status};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::types::JobInput;
use crate::bindings::{ActionRuntime, ActionRuntimePre};
use crate::cache::{self, LoadKind};
use crate::config::{JobLimits, SandboxConfig};
use crate::error::SandboxError;
use crate::host::ActionHost;
use crate::outcome::{self, RunOutcome};
use crate::scripts::{ScriptCache, script_key};
use crate::state::{JobState, LimitTrap};
use action_protocol::DEFAULT_RUNTIME;

/// Fuel between a computing guest's yields to the executor by default
/// (`SandboxConfig::yield_fuel`, ~5 ms of CPU): each yield lets other jobs on the thread run
/// and is where the job's deadline is looked at.
pub const YIELD_FUEL: u64 = JobLimits::FUEL_PER_SECOND / 200;

fn setup(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(format!("{e:#}"))
}

/// One Python job as the sandbox sees it.
#[derive(Debug, Clone, Copy)]
pub struct PythonJob<'a> {
    /// The action's name; tracebacks show the script as `<name>.py`.
    pub action: &'a str,
    pub source: &'a str,
    /// The `context` argument (SPEC §3), a JSON object.
    pub context: &'a Value,
    pub limits: JobLimits,
    /// The runtime profile to run on (`python.runtime`; "default" for the component of
    /// [`SandboxConfig::component`]).
    pub runtime: &'a str,
}

/// An instance that has never run anything, with its claim on one of the pool's
/// `max_instances` slots (released only once the slot is given back, see [`retire`]).
type Ready = (Store<JobState>, ActionRuntime, OwnedSemaphorePermit);

/// One runtime profile's compiled component and its instances made ahead.
struct Runtime {
    name: String,
    component: PathBuf,
    pre: ActionRuntimePre<JobState>,
    warm: Mutex<Vec<Ready>>,
    refilling: AtomicBool,
    load_kind: LoadKind,
}

struct Inner {
    engine: Engine,
    /// The default runtime first, then the profiles in the order of the configuration.
    runtimes: Vec<Runtime>,
    config: SandboxConfig,
    /// Compiled scripts, shared by the profiles: every profile is the same CPython, so a
    /// script's bytecode is the same on each.
    scripts: ScriptCache,
    /// One permit per pooling-allocator instance slot, shared by the profiles: an
    /// instantiation waits for a slot rather than failing while used instances are still
    /// being given back.
    instances: Arc<Semaphore>,
}

/// Cheap to clone: clones share the engine, the compiled runtime and the instance pool.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &SandboxConfig) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let n = config.max_instances.max(1);
    // Each component instance of the CPython runtime holds a handful of core instances,
    // memories and tables (the interpreter, libc, the adapters); these bound the pool.
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(config.keep_resident_bytes)
        .table_keep_resident(config.keep_resident_bytes)
        .pagemap_scan(if config.pagemap_scan {
            wasmtime::Enabled::Auto
        } else {
            wasmtime::Enabled::No
        });
    let mut cfg = Config::new();
    // Wall time is enforced without epoch interruption: the guest yields every YIELD_FUEL
    // (fuel checks already sit at every loop head and function entry), and `until_deadline`
    // looks at the clock then. Epoch checks cost ~10 % of a CPU-bound job on top of fuel's.
    cfg.consume_fuel(true)
        .max_wasm_stack(config.max_wasm_stack)
        .async_stack_size(config.max_wasm_stack + (1 << 20))
        .memory_init_cow(true)
        .table_lazy_init(!config.eager_tables)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

impl Sandbox {
    /// Builds the engine, loads (or compiles and caches) the runtime of every profile, links
    /// the host. Every profile is loaded here, at start: a missing or broken component stops
    /// the start, naming it, rather than failing its first job.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = Engine::new(&engine_config(&config)).map_err(setup)?;
        let mut linker: Linker<JobState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        ActionRuntime::add_to_linker::<JobState, HasSelf<JobState>>(&mut linker, |s| s)
            .map_err(setup)?;
        let default = (DEFAULT_RUNTIME.to_string(), config.component.clone());
        let mut runtimes = Vec::new();
        for (name, path) in std::iter::once(default).chain(config.profiles.iter().cloned()) {
            let (component, load_kind) =
                cache::load_component(&engine, &path, config.cache_dir.as_deref())?;
            let pre = ActionRuntimePre::new(linker.instantiate_pre(&component).map_err(setup)?)
                .map_err(setup)?;
            runtimes.push(Runtime {
                name,
                component: path,
                pre,
                warm: Mutex::new(Vec::new()),
                refilling: AtomicBool::new(false),
                load_kind,
            });
        }
        let scripts = ScriptCache::new(config.script_cache_entries);
        let instances = Arc::new(Semaphore::new(config.max_instances.max(1) as usize));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                runtimes,
                config,
                scripts,
                instances,
            }),
        })
    }

    /// Whether every profile's runtime came from the compile cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.inner
            .runtimes
            .iter()
            .all(|r| r.load_kind == LoadKind::FromCache)
    }

    /// The runtime profiles, the default first, each with its component and whether it came
    /// from the cache.
    pub fn profiles(&self) -> Vec<(&str, &Path, bool)> {
        let runtimes = self.inner.runtimes.iter();
        runtimes
            .map(|r| {
                let cached = r.load_kind == LoadKind::FromCache;
                (r.name.as_str(), r.component.as_path(), cached)
            })
            .collect()
    }

    /// The index of the profile `name`, or the error a job naming an unknown one gets.
    fn runtime_index(&self, name: &str) -> Result<usize, String> {
        let runtimes = &self.inner.runtimes;
        runtimes.iter().position(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = runtimes.iter().map(|r| r.name.as_str()).collect();
            unknown_runtime(name, &known)
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Instantiates one instance and drops it, returning how long instantiation took.
    /// For benchmarks and readiness checks.
    pub async fn time_instantiation(&self) -> Result<Duration, SandboxError> {
        let start = Instant::now();
        let ready = self.inner.instantiate(0).await.map_err(setup)?;
        let elapsed = start.elapsed();
        drop(ready);
        Ok(elapsed)
    }

    /// Instantiates the warm instances of every profile now, so that the first jobs find
    /// them ready.
    pub async fn warm_up(&self) -> Result<(), SandboxError> {
        let target = self.inner.config.warm_instances as usize;
        for rt in 0..self.inner.runtimes.len() {
            while self.warm_len(rt) < target {
                let ready = self.inner.instantiate(rt).await.map_err(setup)?;
                self.put_warm(rt, ready);
            }
        }
        Ok(())
    }

    fn warm_len(&self, rt: usize) -> usize {
        let warm = &self.inner.runtimes[rt].warm;
        warm.lock().map(|w| w.len()).unwrap_or(0)
    }

    fn put_warm(&self, rt: usize, ready: Ready) {
        if let Ok(mut warm) = self.inner.runtimes[rt].warm.lock() {
            warm.push(ready);
        }
    }

    /// An instance of profile `rt` made ahead, or a new one; either has never run anything.
    async fn take_instance(&self, rt: usize) -> wasmtime::Result<Ready> {
        let warm = &self.inner.runtimes[rt].warm;
        let taken = warm.lock().ok().and_then(|mut w| w.pop());
        match taken {
            Some(ready) => Ok(ready),
            None => self.inner.instantiate(rt).await,
        }
    }

    /// Tops the warm instances up, in the background. Called when a job has finished, not
    /// when it starts: making an instance while the job runs would put both on the two cores
    /// of one address space at once, which costs each of them (docs/benchmarks.md).
    fn refill(&self, rt: usize) {
        let target = self.inner.config.warm_instances as usize;
        if target == 0
            || self.warm_len(rt) >= target
            || self.inner.runtimes[rt]
                .refilling
                .swap(true, Ordering::AcqRel)
        {
            return;
        }
        let guard = RefillGuard(self.clone(), rt);
        tokio::spawn(async move {
            let sandbox = &guard.0;
            while sandbox.warm_len(rt) < target {
                match sandbox.inner.instantiate(rt).await {
                    Ok(ready) => sandbox.put_warm(rt, ready),
                    Err(error) => {
                        tracing::warn!(%error, "could not make a warm instance");
                        break;
                    }
                }
            }
        });
    }

    /// Runs one job in a fresh instance, and gives `host` back with the outcome: what it
    /// gathered during the run is read from it ([`ActionHost::take_record`]). Every failure
    /// is an outcome, never a panic.
    pub async fn run(
        &self,
        job: PythonJob<'_>,
        host: Box<dyn ActionHost>,
    ) -> (RunOutcome, Box<dyn ActionHost>) {
        let start = Instant::now();
        let deadline = start + job.limits.timeout;
        let rt = match self.runtime_index(job.runtime) {
            Ok(rt) => rt,
            Err(message) => {
                let error = ErrorInfo::new(ErrorKind::Rejected, message);
                return (RunOutcome::new(Status::Rejected, Some(error)), host);
            }
        };
        let (mut outcome, used, host) = self.run_inner(rt, job, host, deadline).await;
        match used {
            Some(used) => self.after_job(rt, used),
            None => self.refill(rt),
        }
        outcome.stats.wall_ms = action_protocol::millis(start.elapsed());
        (outcome, host)
    }

    /// Retires the job's instance, then tops the warm instances up: one after the other, off
    /// the job's path. Resetting a slot and making an instance at the same time would put
    /// two threads of one address space to work at once, and each page the reset decommits
    /// would interrupt the other core (docs/benchmarks.md).
    fn after_job(&self, rt: usize, used: Ready) {
        let retired = retire(used);
        let sandbox = self.clone();
        tokio::spawn(async move {
            let _ = retired.await;
            sandbox.refill(rt);
        });
    }

    /// The outcome, the instance the job ran in (if it got one) to retire, and the host.
    async fn run_inner(
        &self,
        rt: usize,
        job: PythonJob<'_>,
        host: Box<dyn ActionHost>,
        deadline: Instant,
    ) -> (RunOutcome, Option<Ready>, Box<dyn ActionHost>) {
        let limits = job.limits;
        if job.source.len() > self.inner.config.max_source_bytes {
            let outcome = RunOutcome::new(
                Status::Rejected,
                Some(ErrorInfo::new(
                    ErrorKind::Rejected,
                    format!(
                        "the script is {} bytes, over the limit of {} bytes",
                        job.source.len(),
                        self.inner.config.max_source_bytes
                    ),
                )),
            );
            return (outcome, None, host);
        }
        let filename = format!("{}.py", job.action);
        let code = match self
            .compiled(rt, &filename, job.source, &limits, deadline)
            .await
        {
            Ok(code) => code,
            Err(outcome) => return (outcome, None, host),
        };
        let context_json = match serde_json::to_string(job.context) {
            Ok(text) => text,
            Err(e) => {
                let outcome = RunOutcome::failed(format!("cannot encode the context: {e}"));
                return (outcome, None, host);
            }
        };
        let instance = until_deadline(deadline, self.take_instance(rt));
        let instance = instance.instrument(tracing::info_span!("instantiate"));
        let (mut store, runtime, slot) = match instance.await {
            Err(_elapsed) => return (outcome::time_limit(&limits), None, host),
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let outcome =
                    RunOutcome::failed(format!("cannot instantiate the Python runtime: {e:#}"));
                return (outcome, None, host);
            }
        };
        let yield_fuel = self.inner.config.yield_fuel;
        if let Err(e) = arm(&mut store, &limits, host, deadline, yield_fuel) {
            let host = take_host(&mut store);
            return (
                outcome::from_trap(&e, &limits),
                Some((store, runtime, slot)),
                host,
            );
        }
        let input = JobInput {
            filename,
            source: job.source.to_string(),
            code: Some(code.to_vec()),
            context_json,
            log_limit: limits.log_bytes,
            output_limit: limits.output_bytes,
        };
        let call = until_deadline(deadline, runtime.call_run(&mut store, &input))
            .instrument(tracing::info_span!("run"))
            .await;
        let mut outcome = match call {
            Err(_elapsed) => outcome::time_limit(&limits),
            Ok(Err(trap)) => outcome::from_trap(&trap, &limits),
            Ok(Ok(out)) => outcome::from_output(out, &limits),
        };
        outcome.stats.fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let host = take_host(&mut store);
        let data = store.data_mut();
        outcome.logs = std::mem::take(&mut data.logs.logs);
        outcome.stats.memory_peak_bytes = data.memory.peak;
        outcome.stats.http_calls = data.http_calls;
        (outcome, Some((store, runtime, slot)), host)
    }

    /// The script's `marshal` bytes: from the cache, or compiled in an instance of its own.
    async fn compiled(
        &self,
        rt: usize,
        filename: &str,
        source: &str,
        limits: &JobLimits,
        deadline: Instant,
    ) -> Result<Arc<[u8]>, RunOutcome> {
        let key = script_key(filename, source);
        if let Some(code) = self.inner.scripts.get(&key) {
            return Ok(code);
        }
        let (mut store, runtime, slot) = self.take_instance(rt).await.map_err(|e| {
            RunOutcome::failed(format!("cannot instantiate the Python runtime: {e:#}"))
        })?;
        let result = self
            .compile_in(&mut store, &runtime, filename, source, limits, deadline)
            .await;
        retire((store, runtime, slot));
        let code = result?;
        self.inner.scripts.insert(key, code.clone());
        Ok(code)
    }

    async fn compile_in(
        &self,
        store: &mut Store<JobState>,
        runtime: &ActionRuntime,
        filename: &str,
        source: &str,
        limits: &JobLimits,
        deadline: Instant,
    ) -> Result<Arc<[u8]>, RunOutcome> {
        let yield_fuel = self.inner.config.yield_fuel;
        arm(
            store,
            limits,
            Box::new(crate::host::NoNetwork),
            deadline,
            yield_fuel,
        )
        .map_err(|e| outcome::from_trap(&e, limits))?;
        let call = until_deadline(
            deadline,
            runtime.call_compile(&mut *store, filename, source),
        )
        .await;
        match call {
            Err(_elapsed) => Err(outcome::time_limit(limits)),
            Ok(Err(trap)) => Err(outcome::from_trap(&trap, limits)),
            Ok(Ok(Err(script_error))) => Err(outcome::from_script_error(script_error, limits)),
            Ok(Ok(Ok(bytes))) => Ok(Arc::from(bytes)),
        }
    }
}

/// Clears a profile's refilling flag however the refill task ends, its runtime's shutdown
/// included.
struct RefillGuard(Sandbox, usize);

impl Drop for RefillGuard {
    fn drop(&mut self) {
        let runtime = &self.0.inner.runtimes[self.1];
        runtime.refilling.store(false, Ordering::Release);
    }
}

/// What a job naming a profile the worker does not have is told.
pub fn unknown_runtime(name: &str, known: &[&str]) -> String {
    format!(
        "python.runtime: this worker has no runtime profile {name:?}; its profiles: {}",
        known.join(", ")
    )
}

impl Inner {
    /// A new instance of profile `rt`, once a pool slot is free.
    async fn instantiate(&self, rt: usize) -> wasmtime::Result<Ready> {
        let slot = self
            .instances
            .clone()
            .acquire_owned()
            .await
            .map_err(wasmtime::Error::msg)?;
        let mut store = Store::new(&self.engine, JobState::idle(self.config.max_memory_bytes));
        store.limiter(|state| &mut state.memory);
        // Instantiation runs no guest code (the interpreter was initialised at build time),
        // but give it fuel in case a start function exists.
        store.set_fuel(u64::MAX)?;
        let runtime = self.runtimes[rt].pre.instantiate_async(&mut store).await?;
        Ok((store, runtime, slot))
    }
}

/// The job's host, out of the instance's store (which keeps a host that reaches nothing).
fn take_host(store: &mut Store<JobState>) -> Box<dyn ActionHost> {
    std::mem::replace(&mut store.data_mut().host, Box::new(crate::host::NoNetwork))
}

/// Gives an instance its job: host, deadline, fuel, memory and call limits.
fn arm(
    store: &mut Store<JobState>,
    limits: &JobLimits,
    host: Box<dyn ActionHost>,
    deadline: Instant,
    yield_fuel: u64,
) -> wasmtime::Result<()> {
    let state = store.data_mut();
    if let Some(entropy) = host.entropy() {
        // The instance is retired after the job: its clocks need not be given back.
        state.wasi = crate::entropy::wasi_ctx(entropy);
    }
    state.host = host;
    state.deadline = deadline;
    state.memory.limit = limits.memory_bytes;
    state.max_http_calls = limits.max_http_calls;
    state.http_calls = 0;
    state.logs = crate::state::LogBuffer {
        limit: limits.log_bytes as usize,
        ..Default::default()
    };
    if state.memory.total > limits.memory_bytes {
        return Err(LimitTrap::new(
            action_protocol::LimitKind::Memory,
            format!(
                "memory limit: the runtime alone needs {} MiB, the limit is {} MiB",
                state.memory.total >> 20,
                limits.memory_bytes >> 20
            ),
        )
        .into());
    }
    store.set_fuel(limits.fuel)?;
    store.fuel_async_yield_interval(Some(yield_fuel.max(1)))?;
    if let Some(turns) = store.data().host.cpu_turns() {
        store.fuel_async_yield_hook(Some(Box::new(move || turns.next_turn())));
    }
    Ok(())
}

/// The job's deadline passed before the future finished.
#[derive(Debug)]
struct PastDeadline;

/// Polls `work` until it finishes or `deadline` passes. A computing guest yields every
/// `YIELD_FUEL` (see [`arm`]) and is re-polled at once, so the clock is read here every
/// ~5 ms of its CPU; a guest waiting on the host is woken by the timer at the deadline.
/// Dropping `work` cancels the call; the instance is then retired, never reused.
async fn until_deadline<F: Future>(deadline: Instant, work: F) -> Result<F::Output, PastDeadline> {
    let mut work = std::pin::pin!(work);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if Instant::now() >= deadline || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(PastDeadline));
        }
        Poll::Pending
    })
    .await
}

/// Drops a used instance off the job's path: returning its pooling slot resets the memory
/// (unmapping what the job touched), which the caller need not wait for.
fn retire((store, runtime, slot): Ready) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        drop((runtime, store));
        drop(slot);
    })
}
