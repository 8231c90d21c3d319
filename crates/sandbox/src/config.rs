//! The sandbox's settings and the limits of one job, with their defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Limits of one job. Every one is enforced by the host; see `docs/security.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Wall time from the start of the job, host waits included (SPEC §7: 30 s).
    pub timeout: Duration,
    /// WebAssembly fuel. About 2 s of CPU by default (SPEC §7), measured by the bench.
    pub fuel: u64,
    /// Linear memory of the instance, the start-up snapshot included (SPEC §7: 128 MiB).
    pub memory_bytes: u64,
    /// Outbound HTTP calls (SPEC §7: 25).
    pub max_http_calls: u32,
    /// Bytes of the JSON-encoded output (SPEC §7: 1 MiB).
    pub output_bytes: u32,
    /// Bytes of stdout plus stderr kept; more is dropped and flagged (SPEC §7: 64 KiB).
    pub log_bytes: u32,
}

impl JobLimits {
    /// Fuel per second of CPU on the reference machine: a pure-Python loop burns about
    /// 7.4e9 a second there (`make bench`, "CPU-bound loop"; see `docs/benchmarks.md`).
    pub const FUEL_PER_SECOND: u64 = 7_000_000_000;

    /// Keeps each limit at or under the same limit of `cap`.
    pub fn capped_by(self, cap: &JobLimits) -> JobLimits {
        JobLimits {
            timeout: self.timeout.min(cap.timeout),
            fuel: self.fuel.min(cap.fuel),
            memory_bytes: self.memory_bytes.min(cap.memory_bytes),
            max_http_calls: self.max_http_calls.min(cap.max_http_calls),
            output_bytes: self.output_bytes.min(cap.output_bytes),
            log_bytes: self.log_bytes.min(cap.log_bytes),
        }
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            fuel: 2 * Self::FUEL_PER_SECOND,
            memory_bytes: 128 << 20,
            max_http_calls: 25,
            output_bytes: 1 << 20,
            log_bytes: 64 << 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The runtime component built by `make runtime`: the profile "default".
    pub component: PathBuf,
    /// The other runtime profiles, by name, each with its component (built by
    /// `action-worker runtime build`).
    pub profiles: Vec<(String, PathBuf)>,
    /// Where compiled components are cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may exist at once: running jobs plus instances made ready ahead.
    pub max_instances: u32,
    /// Instances instantiated ahead of their job, so a job does not wait for one.
    pub warm_instances: u32,
    /// The largest memory any job may be given; sizes the pooling allocator's slots.
    pub max_memory_bytes: u64,
    /// Bytes of each memory slot kept mapped between instances instead of returned to the
    /// kernel. With `pagemap_scan`, the pages a job made private (up to this much) are copied
    /// back from the image and stay mapped, so the next job does not fault on them; without
    /// it, the lowest bytes of the slot are copied back whole (docs/benchmarks.md).
    pub keep_resident_bytes: usize,
    /// Reset memory slots with Linux's `PAGEMAP_SCAN` (6.7+) when available: only the pages
    /// a job wrote (up to `keep_resident_bytes`) are copied back from the image, and the
    /// pages it only read stay mapped, so the next job takes no fault on them.
    pub pagemap_scan: bool,
    /// Fill the runtime's function tables when an instance is made (true) rather than on
    /// each entry's first call (false): CPython calls through its tables all the time, and
    /// filling them at once was about 20% less CPU per job (docs/benchmarks.md).
    pub eager_tables: bool,
    /// The WebAssembly (native) stack of a job.
    pub max_wasm_stack: usize,
    /// Compiled scripts kept, keyed by their source.
    pub script_cache_entries: usize,
    /// Longest script source accepted, in bytes.
    pub max_source_bytes: usize,
    /// Fuel between a computing guest's yields (its CPU slice): where other jobs get the
    /// thread, where the job's deadline is looked at, and where a host's CPU turns apply.
    pub yield_fuel: u64,
}

impl SandboxConfig {
    pub fn new(component: impl Into<PathBuf>) -> Self {
        Self {
            component: component.into(),
            profiles: Vec::new(),
            cache_dir: None,
            max_instances: 64,
            warm_instances: 0,
            max_memory_bytes: 256 << 20,
            keep_resident_bytes: 8 << 20,
            pagemap_scan: true,
            eager_tables: true,
            max_wasm_stack: 1 << 20,
            script_cache_entries: 1024,
            max_source_bytes: 1 << 20,
            yield_fuel: crate::sandbox::YIELD_FUEL,
        }
    }
}
