//! One HTTP call, in the words every crate uses: a script's `requests` call, an API action's
//! request, an LLM or a Google Sheets call. The egress crate sends an [`HttpRequest`] and
//! answers an [`HttpResponse`] or an [`HttpError`]; the sandbox hands them to and from the
//! guest; API actions and the helpers build and read them. The only conversions left are at
//! the edges: the WIT records (`crates/sandbox`) and the Python shim (`python-runtime/requests`).

use std::time::Duration;

/// A request as its maker built it; nothing is checked yet, and `{{secrets.NAME}}`
/// references are still in it (egress resolves them when it sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    /// Values are Latin-1 text, one byte a character (what a header carries).
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The maker's own bound for this call; the job's deadline bounds it too.
    pub timeout: Option<Duration>,
    pub follow_redirects: bool,
}

impl HttpRequest {
    /// A request with no headers, body or timeout of its own, following redirects.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: None,
            follow_redirects: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    /// The final URL, after redirects.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
    /// The names of the secrets the request carried (its values were redacted from all of
    /// the above).
    pub secrets: Vec<String>,
}

/// What went wrong with a call, for a caller to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// Refused before anything was sent: the address policy, `allowed_hosts`, a secret's
    /// hosts, the scheme ([`HttpError::rule`] names which).
    Denied,
    /// Malformed: the URL, the method, a header.
    InvalidRequest,
    Timeout,
    Connection,
    TooManyRedirects,
    /// The response body was over the cap: a limit of the job, not the script's to handle.
    ResponseTooLarge,
}

impl HttpErrorKind {
    /// The kind in words, as an API action's transport error names it (`timeout: …`).
    pub fn words(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::InvalidRequest => "invalid request",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::TooManyRedirects => "too many redirects",
            Self::ResponseTooLarge => "response too large",
        }
    }

    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::Denied,
        Self::InvalidRequest,
        Self::Timeout,
        Self::Connection,
        Self::TooManyRedirects,
        Self::ResponseTooLarge,
    ];

    /// [`Self::as_str`] read back (a journal entry's kind).
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == label)
    }

    /// The label of an outcome in metrics (`action_worker_egress_requests_total`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::InvalidRequest => "invalid",
            Self::Timeout => "timeout",
            Self::Connection => "error",
            Self::TooManyRedirects => "too_many_redirects",
            Self::ResponseTooLarge => "too_large",
        }
    }
}

/// A call that did not give a response: its kind, the deny rule for a denial, and a message
/// fit for the script (secrets shown as `[secret:NAME]`). Shown (in traces) as the message,
/// `invalid request: ` before it for a malformed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub kind: HttpErrorKind,
    pub rule: Option<String>,
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == HttpErrorKind::InvalidRequest {
            f.write_str("invalid request: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            rule: None,
            message: message.into(),
        }
    }

    /// A malformed request (the URL, the method, a header).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(HttpErrorKind::InvalidRequest, message)
    }

    /// A denial by `rule` (`loopback`, `allowed_hosts`, `secret`, `scheme`…).
    pub fn denied(rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: HttpErrorKind::Denied,
            rule: Some(rule.into()),
            message: message.into(),
        }
    }

    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }

    /// The deny rule, for a denial.
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// The same error with its message passed through `f` (redaction).
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.message = f(self.message);
        self
    }
}
