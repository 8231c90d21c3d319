//! `[runtime]` and `[limits]`: the sandbox and the limits of a job.

use std::collections::BTreeMap;
use std::path::PathBuf;

use action_sandbox::{JobLimits, SandboxConfig};
use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[runtime]`: the Python runtime component and the instance pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The component built by `make runtime`; relative paths are taken from the working directory.
    pub component: PathBuf,
    /// Compiled components are cached here (one file per runtime build and engine settings).
    pub cache_dir: PathBuf,
    /// Instances that may exist at once (running jobs plus warm ones).
    pub max_instances: u32,
    /// Instances made ready ahead of their jobs.
    pub warm_instances: u32,
    /// MiB of each memory slot kept mapped between jobs.
    pub keep_resident_mb: u64,
    /// KiB of WebAssembly stack per job.
    pub max_wasm_stack_kb: u64,
    /// Microseconds of CPU a computing job runs between yields (its slice): the longest a
    /// short job waits for a thread behind it, and how often jobs take turns on the CPU.
    pub cpu_slice_us: u64,
    /// Worker processes `serve` runs (itself and copies, see `crate::processes`); 0: one
    /// per CPU.
    pub processes: usize,
    /// Runtime profiles besides "default" (the `component` above), by name: actions name one
    /// in `python.runtime` (docs/actions.md, "Runtime profiles").
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// `[runtime.profiles.NAME]`: the default runtime plus the pure-Python packages of one pinned
/// requirements file, built into a component of its own by `action-worker runtime build`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// A requirements file of pure-Python wheels, each pinned (`==`) with its `--hash`.
    pub requirements: PathBuf,
    /// The profile's component; by default `build/runtime-NAME.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
    /// Modules (with their submodules) of the packages not imported at build time, so not
    /// in the profile: large data a profile does not need.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A Python file run once at build time, after the imports: the caches the packages fill
    /// on first use are then in the snapshot every job starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_up: Option<PathBuf>,
}

impl ProfileConfig {
    /// Where the component of profile `name` is.
    pub fn component_path(&self, name: &str) -> PathBuf {
        self.component
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("build/runtime-{name}.wasm")))
    }

    fn validate(&self, name: &str) -> anyhow::Result<()> {
        if name == action_protocol::DEFAULT_RUNTIME {
            bail!(
                "runtime.profiles.default: \"default\" is the runtime of runtime.component; name the profile otherwise"
            );
        }
        if !action_protocol::is_valid_runtime_name(name) {
            bail!(
                "runtime.profiles.{name}: not a profile name matching {}",
                action_protocol::RUNTIME_NAME_RULE
            );
        }
        for module in &self.exclude {
            if module.is_empty() || !module.split('.').all(is_identifier) {
                bail!("runtime.profiles.{name}.exclude: {module:?} is not a dotted module name");
            }
        }
        Ok(())
    }
}

/// `runtime.cpu_slice_us` by default: 1 ms, a fifth of the sandbox's own slice. Measured
/// (docs/benchmarks.md, "Fair shares"): beside a tenant's 64 spinning jobs another tenant's
/// p99 is 36-38 ms with 5 ms slices and 14 ms with 1 ms, for 3 % more time on a CPU-bound job.
pub const DEFAULT_CPU_SLICE_US: u64 = 1000;

/// `runtime.warm_instances` by default: a worker that serves keeps two instances ready (the
/// sandbox alone makes none ahead).
pub const DEFAULT_WARM_INSTANCES: u32 = 2;

impl Default for RuntimeConfig {
    /// The sandbox's own defaults (`SandboxConfig::new`), in the units of the file.
    fn default() -> Self {
        let sandbox = SandboxConfig::new("build/action-runtime.wasm");
        Self {
            component: sandbox.component,
            cache_dir: "data/cache".into(),
            max_instances: sandbox.max_instances,
            warm_instances: DEFAULT_WARM_INSTANCES,
            keep_resident_mb: (sandbox.keep_resident_bytes >> 20) as u64,
            max_wasm_stack_kb: (sandbox.max_wasm_stack >> 10) as u64,
            cpu_slice_us: DEFAULT_CPU_SLICE_US,
            processes: 0,
            profiles: BTreeMap::new(),
        }
    }
}

/// `[limits]` are the defaults of every job; `[limits.max]` caps what an action may ask for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Effects (conversation changes) a job may record; a helper call past them answers
    /// `success: False` and changes nothing.
    pub max_effects: u32,
    /// Trace entries a job may make: its outside calls (HTTP, LLM, Google Sheets) together;
    /// a call past them is refused, not made.
    pub max_trace_entries: u32,
    #[serde(flatten)]
    pub default: LimitValues,
    pub max: LimitValues,
}

/// `limits.max_effects` by default.
pub const DEFAULT_MAX_EFFECTS: u32 = 1000;
/// `limits.max_trace_entries` by default: room for `limits.max.max_http_calls` (100) and
/// the LLM and Sheets calls besides.
pub const DEFAULT_MAX_TRACE_ENTRIES: u32 = 200;

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_effects: DEFAULT_MAX_EFFECTS,
            max_trace_entries: DEFAULT_MAX_TRACE_ENTRIES,
            default: LimitValues::default(),
            max: LimitValues {
                timeout_ms: 120_000,
                fuel: 8 * JobLimits::FUEL_PER_SECOND,
                memory_mb: SandboxConfig::new("").max_memory_bytes >> 20,
                max_http_calls: 100,
                output_bytes: 4 << 20,
                log_bytes: 256 << 10,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitValues {
    pub timeout_ms: u64,
    pub fuel: u64,
    pub memory_mb: u64,
    pub max_http_calls: u32,
    pub output_bytes: u32,
    pub log_bytes: u32,
}

impl Default for LimitValues {
    fn default() -> Self {
        let d = JobLimits::default();
        Self {
            timeout_ms: d.timeout.as_millis() as u64,
            fuel: d.fuel,
            memory_mb: d.memory_bytes >> 20,
            max_http_calls: d.max_http_calls,
            output_bytes: d.output_bytes,
            log_bytes: d.log_bytes,
        }
    }
}

impl LimitValues {
    pub fn to_job_limits(self) -> JobLimits {
        JobLimits {
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            fuel: self.fuel,
            memory_bytes: self.memory_mb << 20,
            max_http_calls: self.max_http_calls,
            output_bytes: self.output_bytes,
            log_bytes: self.log_bytes,
        }
    }

    pub(super) fn validate(&self, section: &str) -> anyhow::Result<()> {
        for (key, value) in [
            ("timeout_ms", self.timeout_ms),
            ("fuel", self.fuel),
            ("memory_mb", self.memory_mb),
            ("output_bytes", u64::from(self.output_bytes)),
            ("log_bytes", u64::from(self.log_bytes)),
        ] {
            if value == 0 {
                bail!("{section}.{key}: must be at least 1");
            }
        }
        if self.memory_mb < 96 {
            bail!(
                "{section}.memory_mb: {} is too small: the Python runtime alone needs about 60 MiB",
                self.memory_mb
            );
        }
        Ok(())
    }
}

impl RuntimeConfig {
    /// Every runtime profile with its component: "default" (`component`) first, then
    /// `[runtime.profiles]` in name order (the order the sandbox loads them in).
    pub fn profile_components(&self) -> impl Iterator<Item = (&str, PathBuf)> {
        let named = self.profiles.iter();
        let named = named.map(|(name, profile)| (name.as_str(), profile.component_path(name)));
        std::iter::once((action_protocol::DEFAULT_RUNTIME, self.component.clone())).chain(named)
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let r = self;
        if r.max_instances == 0 {
            bail!("runtime.max_instances: must be at least 1");
        }
        if r.warm_instances >= r.max_instances {
            bail!(
                "runtime.warm_instances: must be less than runtime.max_instances ({})",
                r.max_instances
            );
        }
        if !(100..=100_000).contains(&r.cpu_slice_us) {
            bail!(
                "runtime.cpu_slice_us: {} is outside 100..=100000",
                r.cpu_slice_us
            );
        }
        if !(64..=16384).contains(&r.max_wasm_stack_kb) {
            bail!(
                "runtime.max_wasm_stack_kb: {} is outside 64..=16384",
                r.max_wasm_stack_kb
            );
        }
        for (name, profile) in &r.profiles {
            profile.validate(name)?;
        }
        Ok(())
    }
}

/// A Python identifier, ASCII only (module names of pure-Python packages).
fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl LimitsConfig {
    /// Each set of values, and no default over its maximum.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        self.default.validate("limits")?;
        self.max.validate("limits.max")?;
        if self.max_effects == 0 {
            bail!("limits.max_effects: must be at least 1");
        }
        if self.max_trace_entries < self.max.max_http_calls {
            bail!(
                "limits.max_trace_entries: {} is less than limits.max.max_http_calls ({}): every \
                 HTTP call an action may make needs its trace entry",
                self.max_trace_entries,
                self.max.max_http_calls
            );
        }
        let (d, m) = (&self.default, &self.max);
        for (key, default, max) in [
            ("timeout_ms", d.timeout_ms, m.timeout_ms),
            ("fuel", d.fuel, m.fuel),
            ("memory_mb", d.memory_mb, m.memory_mb),
            (
                "max_http_calls",
                u64::from(d.max_http_calls),
                u64::from(m.max_http_calls),
            ),
            (
                "output_bytes",
                u64::from(d.output_bytes),
                u64::from(m.output_bytes),
            ),
            ("log_bytes", u64::from(d.log_bytes), u64::from(m.log_bytes)),
        ] {
            if default > max {
                bail!("limits.{key}: the default {default} is over limits.max.{key} = {max}");
            }
        }
        Ok(())
    }
}
