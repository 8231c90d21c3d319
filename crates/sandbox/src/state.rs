//! The store data of one job: WASI context, memory accounting, the host, the deadline; and
//! the traps by which a limit or a host's panic stops a job.

use std::time::Instant;

use action_protocol::LimitKind;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::host::{ActionHost, NoNetwork};
use crate::imports::logs::LogBuffer;

/// Raised as a trap by the host side when a limit stops a job; found again by downcasting.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct LimitTrap {
    pub(crate) kind: LimitKind,
    pub(crate) message: String,
}

impl LimitTrap {
    pub(crate) fn new(kind: LimitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A host call whose host panicked: a bug of the worker, not of the action. Raised as a trap,
/// so that the guest unwinds and the job ends `failed`; found again by downcasting.
#[derive(Debug, thiserror::Error)]
#[error("the host call {call} panicked")]
pub(crate) struct HostPanic {
    pub(crate) call: &'static str,
}

/// Accounts every linear memory and table of the instance against the job's limit.
#[derive(Debug)]
pub(crate) struct MemoryAccount {
    pub(crate) limit: u64,
    pub(crate) total: u64,
    pub(crate) peak: u64,
}

impl ResourceLimiter for MemoryAccount {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        let grown = (desired as u64).saturating_sub(current as u64);
        let total = self.total.saturating_add(grown);
        if total > self.limit {
            return Err(LimitTrap::new(
                LimitKind::Memory,
                format!(
                    "memory limit: the action asked for {} MiB of memory, the limit is {} MiB",
                    total.div_ceil(1 << 20),
                    self.limit >> 20
                ),
            )
            .into());
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        // CPython's function tables are fixed at link time; growth past this is not ours.
        Ok(desired <= 1 << 20)
    }
}

pub(crate) struct JobState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryAccount,
    pub(crate) logs: LogBuffer,
    pub(crate) host: Box<dyn ActionHost>,
    pub(crate) deadline: Instant,
    pub(crate) http_calls: u32,
    pub(crate) max_http_calls: u32,
}

impl JobState {
    /// A state for an instance made before its job is known: no host, no deadline yet.
    pub(crate) fn idle(memory_limit: u64) -> Self {
        // No preopens, no environment, no arguments, no sockets, no name lookups: the
        // default WasiCtx grants nothing, and stdout/stderr are sinks (the guest captures
        // `print` itself, bounded by the job's log limit).
        let wasi = WasiCtx::builder().build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryAccount {
                limit: memory_limit,
                total: 0,
                peak: 0,
            },
            logs: LogBuffer::default(),
            host: Box::new(NoNetwork),
            deadline: Instant::now(),
            http_calls: 0,
            max_http_calls: 0,
        }
    }
}

impl WasiView for JobState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
