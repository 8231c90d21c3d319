//! Runs untrusted Python actions: CPython compiled to WASI, inside wasmtime, one fresh
//! instance per job, with fuel, memory, wall-time, stack, log and output limits.
//!
//! One [`Sandbox`] per process holds the wasmtime `Engine`, the compiled runtime component
//! (cached on disk, see [`cache`]) and an `InstancePre` over a pooling allocator with
//! copy-on-write memory images. [`Sandbox::run`] takes a script, its `context` and its
//! [`JobLimits`], and returns a [`RunOutcome`] in the vocabulary of `action-protocol`.
//!
//! The sandbox knows nothing of NATS, of egress policy or of secrets: every call the guest
//! makes to the outside world goes through the [`ActionHost`] trait that the caller supplies
//! for the job. A trap is a limit or a runtime bug, never a crash of the worker.

mod bindings;
pub mod cache;
mod config;
mod entropy;
mod error;
mod host;
mod imports;
mod outcome;
mod sandbox;
mod scripts;
mod state;

pub use action_protocol::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};
pub use config::{JobLimits, SandboxConfig};
pub use error::SandboxError;
pub use host::{
    ActionHost, BoxFuture, ConversationCall, ConversationReply, CpuTurns, Entropy, HostRecord,
    NoNetwork,
};
pub use outcome::RunOutcome;
pub use sandbox::{PythonJob, Sandbox, YIELD_FUEL, unknown_runtime};
