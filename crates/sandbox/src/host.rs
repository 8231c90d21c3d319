//! The guest's only way out: the [`ActionHost`] a caller supplies for each job. Its calls
//! speak the vocabulary of `action-protocol` (an HTTP call is an [`HttpRequest`] answered by
//! an [`HttpResponse`] or an [`HttpError`]); the WIT records are converted only in
//! [`crate::imports`], one module per interface.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub use action_protocol::ConversationReply;
use action_protocol::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, TraceEntry};
use serde_json::Value;

/// A boxed future, so that [`ActionHost`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The outside world of one job. Implementations decide policy (egress rules, secrets,
/// tracing, per-job caps); the sandbox adds the job's deadline and the HTTP call cap around
/// every call, turns a response over its size cap into the job's limit, and catches a panic
/// of any call. [`crate::Sandbox::run`] gives the host back with the outcome; what it
/// gathered is then taken from it ([`ActionHost::take_record`]).
///
/// A capability is one method here (with a default for hosts that lack it) and one module
/// of [`crate::imports`] that serves its WIT interface.
pub trait ActionHost: Send {
    /// One HTTP request (and its redirects). An [`HttpError`] is raised in the script as
    /// the matching `requests` exception, except `ResponseTooLarge`, which stops the job.
    fn http_send(
        &mut self,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HttpError>>;

    /// LLM classification: one of `options`, or why not (the guest applies its fallback).
    /// The default: not configured.
    fn llm_classify(
        &mut self,
        prompt: String,
        input: String,
        options: Vec<String>,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        let _ = (prompt, input, options, deadline);
        Box::pin(async { Err("LLM classification is not available in this host".to_string()) })
    }

    /// Appends a row to a Google Sheet; the `updatedRange`, or why not.
    /// The default: not configured.
    fn sheets_append(
        &mut self,
        sheet_id: String,
        row_json: String,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        let _ = (sheet_id, row_json, deadline);
        Box::pin(async { Err("Google Sheets is not available in this host".to_string()) })
    }

    /// A conversation helper. The default: the job has no conversation.
    fn conversation(&mut self, call: ConversationCall) -> ConversationReply {
        let _ = call;
        ConversationReply::no_conversation()
    }

    /// What the host gathered for the job's result, taken out of it. The default: nothing.
    fn take_record(&mut self) -> HostRecord {
        HostRecord::default()
    }

    /// How the job takes turns on the CPU with other jobs. The default: none (the guest
    /// yields to the executor once a slice and goes on).
    fn cpu_turns(&self) -> Option<Arc<dyn CpuTurns>> {
        None
    }

    /// Where the job's clocks and random bytes come from. The default: the instance's own
    /// (the system's clocks, the operating system's randomness).
    fn entropy(&self) -> Option<Arc<dyn Entropy>> {
        None
    }
}

/// The job's clocks and random bytes, for a host that records them, or answers them from a
/// record, so that running the job again gives the same result (the worker's journal). Every
/// reading of `wasi:clocks` and every draw of `wasi:random` (secure, insecure and the
/// insecure seed) by the job goes through it.
pub trait Entropy: Send + Sync {
    /// The wall clock: the time since the Unix epoch.
    fn wall_clock(&self) -> std::time::Duration;
    /// The monotonic clock, in nanoseconds.
    fn monotonic_clock(&self) -> u64;
    /// Fills `bytes` with random bytes.
    fn random(&self, bytes: &mut [u8]);
}

/// Turns on the CPU for computing jobs. A guest yields after every slice of its CPU
/// ([`crate::YIELD_FUEL`] of fuel, about 5 ms); with turns, the sandbox then awaits
/// [`CpuTurns::next_turn`], and the guest goes on when that future resolves: the host
/// decides which of the waiting jobs continues first. The job's deadline still applies while
/// it waits.
pub trait CpuTurns: Send + Sync {
    /// The job has used one more slice; resolves when it may go on.
    fn next_turn(&self) -> BoxFuture<'static, ()>;
}

/// What a host gathered during a job, for its result: a trace entry per outside call, and
/// the conversation effects in call order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostRecord {
    pub trace: Vec<TraceEntry>,
    pub effects: Vec<Value>,
}

/// A host that reaches nothing: every request is denied.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNetwork;

impl ActionHost for NoNetwork {
    fn http_send(
        &mut self,
        request: HttpRequest,
        _deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HttpError>> {
        Box::pin(async move {
            Err(HttpError::new(
                HttpErrorKind::Denied,
                format!(
                    "{} {}: this sandbox has no network access",
                    request.method, request.url
                ),
            ))
        })
    }
}

/// A conversation helper call (SPEC §4), as the guest made it after its type checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationCall {
    /// Whether the job has a conversation.
    Present,
    GetMetadata {
        key: String,
    },
    SetMetadata {
        key: String,
        value: String,
    },
    DeleteMetadata {
        key: String,
    },
    AddTag {
        tag: String,
    },
    AddEvent {
        event: String,
    },
    HandOff {
        reason: Option<String>,
        phone_destination: Option<String>,
    },
}
