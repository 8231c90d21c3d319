//! The store data of one job: WASI context, memory accounting, the host, the deadline; and
//! the traps by which a limit or a host's panic stops a job.

use std::time::Instant;

use action_protocol::{LimitKind, Logs};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::logs;
use crate::host::{ActionHost, NoNetwork};

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
    pub(crate) wasi: WasiCtx,
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

/// stdout and stderr of the job, sharing one budget of bytes.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pub(crate) logs: Logs,
    pub(crate) limit: usize,
}

impl LogBuffer {
    pub(crate) fn write(&mut self, channel: logs::Channel, text: &str) {
        let used = self.logs.stdout.len() + self.logs.stderr.len();
        let room = self.limit.saturating_sub(used);
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len() {
            self.logs.truncated = true;
        }
        let target = match channel {
            logs::Channel::Stdout => &mut self.logs.stdout,
            logs::Channel::Stderr => &mut self.logs.stderr,
        };
        target.push_str(&text[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_cut_on_a_character_boundary_across_both_streams() {
        let mut buffer = LogBuffer {
            limit: 5,
            ..LogBuffer::default()
        };
        buffer.write(logs::Channel::Stdout, "ééé");
        buffer.write(logs::Channel::Stderr, "abc");
        assert_eq!(buffer.logs.stdout, "éé");
        assert_eq!(buffer.logs.stderr, "a");
        assert!(buffer.logs.truncated);
        let mut buffer = LogBuffer {
            limit: 5,
            ..LogBuffer::default()
        };
        buffer.write(logs::Channel::Stdout, "ab");
        buffer.write(logs::Channel::Stderr, "cde");
        assert!(!buffer.logs.truncated);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Log capture over arbitrary Unicode: never a panic, never over the limit, always
        /// whole characters, and `truncated` exactly when something was dropped.
        #[test]
        fn logs_keep_whole_characters_within_their_limit(
            writes in proptest::collection::vec((proptest::prelude::any::<bool>(), proptest::prelude::any::<String>()), 0..8),
            limit in 0usize..64,
        ) {
            let mut buffer = LogBuffer { limit, ..LogBuffer::default() };
            let mut given = 0;
            for (stdout, text) in &writes {
                let channel = if *stdout { logs::Channel::Stdout } else { logs::Channel::Stderr };
                buffer.write(channel, text);
                given += text.len();
            }
            let kept = buffer.logs.stdout.len() + buffer.logs.stderr.len();
            proptest::prop_assert!(kept <= limit);
            proptest::prop_assert_eq!(buffer.logs.truncated, kept < given);
        }
    }
}
