//! The guest's only way out: the [`ActionHost`] a caller supplies for each job.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

pub use action_protocol::ConversationReply;
use action_protocol::LimitKind;

/// A boxed future, so that [`ActionHost`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An HTTP request as the guest's `requests` shim made it; nothing is checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The script's own timeout; the host must also stop at the job's deadline.
    pub timeout_ms: Option<u32>,
    pub follow_redirects: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed_ms: u32,
}

/// A failed call that the script sees as a `requests` exception and may handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("connection: {0}")]
    Connection(String),
    #[error("too many redirects: {0}")]
    TooManyRedirects(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// What a host call can end in besides a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Handed to the guest, which raises it.
    #[error(transparent)]
    Call(#[from] HttpError),
    /// Stops the job: the result is `limit_exceeded` with this limit.
    #[error("{1}")]
    Limit(LimitKind, String),
}

/// The outside world of one job. Implementations decide policy (egress rules, secrets,
/// tracing); the sandbox adds the job's deadline and the call cap around every call.
pub trait ActionHost: Send {
    fn http_send(
        &mut self,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HostError>>;

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
}

/// A host that reaches nothing: every request is denied.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNetwork;

impl ActionHost for NoNetwork {
    fn http_send(
        &mut self,
        request: HttpRequest,
        _deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HostError>> {
        Box::pin(async move {
            Err(HostError::Call(HttpError::Denied(format!(
                "{} {}: this sandbox has no network access",
                request.method, request.url
            ))))
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
