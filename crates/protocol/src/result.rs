//! Results (SPEC §5): what the worker answers for every job, whatever happened.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The action ran to completion.
    Ok,
    /// An uncaught exception; an API action's non-2xx status or transport error.
    ActionError,
    /// A limit stopped the action; `error.limit` names which.
    LimitExceeded,
    /// The job never ran: undecodable, bad schema, unknown action, bad arguments.
    Rejected,
    /// A fault of the worker, not of the action.
    Failed,
}

/// Which limit stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The job's fuel (a deterministic count of executed WebAssembly) ran out.
    Fuel,
    /// The instance asked for more linear memory than the job may have.
    Memory,
    /// The job's wall-clock deadline passed, host waits included.
    Time,
    /// The WebAssembly stack overflowed.
    Stack,
    /// The job made more HTTP calls than allowed.
    HttpCalls,
    /// One HTTP response body was larger than allowed.
    ResponseSize,
    /// The encoded output was larger than allowed.
    Output,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fuel => "fuel",
            Self::Memory => "memory",
            Self::Time => "time",
            Self::Stack => "stack",
            Self::HttpCalls => "http_calls",
            Self::ResponseSize => "response_size",
            Self::Output => "output",
        }
    }
}

/// What kind of error `error` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The script raised.
    Exception,
    /// The script does not compile.
    Syntax,
    /// The script defines no `execute_action`.
    MissingEntrypoint,
    /// The return value is not JSON.
    InvalidOutput,
    /// A limit stopped the job (status `limit_exceeded`).
    Limit,
    /// The job was not accepted (status `rejected`).
    Rejected,
    /// The job was not taken now: its tenant was over a quota, or no slot came free within
    /// the queue deadline (status `rejected`; the caller may retry).
    OverCapacity,
    /// An API action's upstream answered with a non-2xx status.
    HttpStatus,
    /// An API action's request failed before a response.
    Transport,
    /// The worker failed (status `failed`).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitKind>,
}

impl ErrorInfo {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            traceback: None,
            limit: None,
        }
    }

    pub fn limit(limit: LimitKind, message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Limit,
            message: message.into(),
            traceback: None,
            limit: Some(limit),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logs {
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

/// One HTTP or helper call made while the job ran. URLs never carry secret values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceEntry {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default)]
    pub bytes: u64,
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The secrets the request carried, as `[secret:NAME]` (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Tokens an LLM call read and wrote, as the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// How the job's journal answered the call: `replayed` (from the journal, not sent),
    /// `re-sent` (sent by an earlier delivery whose answer was never journaled: sent again,
    /// same `Idempotency-Key`), `diverged` (the journal held another call here: live from
    /// here on), `refused` (a replay, and the journal has no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub wall_ms: u64,
    pub fuel_used: u64,
    pub memory_peak_bytes: u64,
    pub http_calls: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub action: String,
    pub status: Status,
    #[serde(default)]
    pub output: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub effects: Vec<Value>,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub trace: Vec<TraceEntry>,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub test: bool,
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub worker: String,
    /// A replay's comparison with the stored result (a job with `replay`): `replay_of`,
    /// `same`, `differences` [{`path`, `stored`, `now`}].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Value>,
}

impl JobResult {
    /// This result with the stamp (`test`, `attempt`, `worker`) of `other`, the result it
    /// stands in for.
    pub fn stamped_like(mut self, other: &JobResult) -> Self {
        self.test = other.test;
        self.attempt = other.attempt;
        self.worker = other.worker.clone();
        self
    }

    /// A result for a job that never ran.
    pub fn rejected(
        job_id: impl Into<String>,
        action: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::empty(
            job_id,
            action,
            Status::Rejected,
            Some(ErrorInfo::new(ErrorKind::Rejected, message)),
        )
    }

    pub fn empty(
        job_id: impl Into<String>,
        action: impl Into<String>,
        status: Status,
        error: Option<ErrorInfo>,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            action: action.into(),
            status,
            output: Value::Null,
            error,
            effects: vec![],
            logs: Logs::default(),
            trace: vec![],
            stats: Stats::default(),
            test: false,
            attempt: 1,
            worker: String::new(),
            replay: None,
        }
    }
}

/// A duration in whole milliseconds, as results and traces report it (saturating).
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
