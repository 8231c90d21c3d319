//! The outside world of one job, one module per capability: [`http`] (egress, idempotency
//! keys), [`llm`], [`sheets`] and [`conversation`]. Each checks its own limits and leaves its
//! own trace entry; [`JobHost`] holds what they share and gives the record back at the end.
//!
//! A new helper is one WIT interface, its Python stub, one method of
//! [`action_sandbox::ActionHost`] (served by one module of the sandbox's `imports`), and one
//! module here.

mod conversation;
mod http;
mod journal;
mod llm;
mod sheets;

use std::sync::Arc;
use std::time::Instant;

use action_egress::{Egress, SecretStore};
use action_helpers::{Conversation, HeaderCache, LlmClient, SheetsClient};
use action_protocol::{HttpError, HttpRequest, HttpResponse, TraceEntry};
use action_sandbox::{
    ActionHost, BoxFuture, ConversationCall, ConversationReply, CpuTurns, Entropy, HostRecord,
};

use tracing::Instrument;

use crate::cpu::Turns;
use crate::journal::JobJournal;

pub use http::idempotency_key;

/// A URL's host, for metrics and spans (`-` when it has none): never its path or query.
pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// What the hosts of all jobs share: the egress client, the secrets, the helpers' clients.
#[derive(Clone)]
pub struct Services {
    pub egress: Arc<Egress>,
    pub secrets: Arc<SecretStore>,
    pub llm: Option<Arc<LlmClient>>,
    pub sheets: Option<Arc<SheetsClient>>,
}

/// Who the job is, for the host's policy: its id (idempotency keys), its tenant (secrets),
/// and its action's `allowed_hosts`.
#[derive(Debug, Clone, Default)]
pub struct JobScope {
    pub job_id: String,
    pub tenant: Option<String>,
    pub allowed_hosts: Vec<String>,
}

pub struct JobHost {
    services: Services,
    scope: JobScope,
    /// HTTP calls made so far: the index of the next one's idempotency key.
    http_calls: u32,
    llm_calls: u32,
    sheet_headers: HeaderCache,
    trace: Vec<TraceEntry>,
    /// Trace entries a job may make (`limits.max_trace_entries`): a call past them is refused.
    max_trace: usize,
    conversation: Option<Conversation>,
    /// The job's turns on the CPU, shared fairly among tenants ([`crate::cpu`]).
    turns: Option<Arc<Turns>>,
    /// The job's journal, when it has one ([`crate::journal`]): its calls, clocks and
    /// random draws go through it.
    journal: Option<Arc<JobJournal>>,
    /// What the journal did with the call under way, for its trace entry.
    journal_note: Option<&'static str>,
}

impl JobHost {
    /// A host for one job, without a conversation until [`Self::with_conversation`].
    pub fn new(services: Services, scope: JobScope, max_trace: usize) -> Self {
        Self {
            services,
            scope,
            http_calls: 0,
            llm_calls: 0,
            sheet_headers: HeaderCache::new(),
            trace: Vec::new(),
            max_trace,
            conversation: None,
            turns: None,
            journal: None,
            journal_note: None,
        }
    }

    pub fn with_turns(mut self, turns: Option<Arc<Turns>>) -> Self {
        self.turns = turns;
        self
    }

    pub fn with_conversation(mut self, conversation: Option<Conversation>) -> Self {
        self.conversation = conversation;
        self
    }

    /// Why a call may not be made, when the job's trace is full: every call leaves an entry,
    /// and a result's trace is bounded.
    fn trace_full(&self) -> Option<String> {
        (self.trace.len() >= self.max_trace).then(|| {
            format!(
                "trace limit: a job may make {} outside calls (HTTP, LLM, Google Sheets), and \
                 this one has made them all; the call was not made",
                self.max_trace
            )
        })
    }

    /// Where the fault-injection tests may make a host call panic (a no-op in a release).
    fn inject(&self, point: &str) {
        crate::guard::inject(point, self.scope.job_id.as_bytes());
    }
}

impl ActionHost for JobHost {
    fn http_send(
        &mut self,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HttpError>> {
        let span = tracing::info_span!(
            "host.http",
            http.request.method = %request.method.to_ascii_uppercase(),
            server.address = %host_of(&request.url),
            http.response.status_code = tracing::field::Empty,
            journal = tracing::field::Empty,
        );
        Box::pin(self.send(request, deadline).instrument(span))
    }

    fn llm_classify(
        &mut self,
        prompt: String,
        input: String,
        options: Vec<String>,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        let span = tracing::info_span!("host.llm", journal = tracing::field::Empty);
        Box::pin(
            self.classify(prompt, input, options, deadline)
                .instrument(span),
        )
    }

    fn sheets_append(
        &mut self,
        sheet_id: String,
        row_json: String,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        let span = tracing::info_span!("host.sheets", journal = tracing::field::Empty);
        Box::pin(
            self.append_row(sheet_id, row_json, deadline)
                .instrument(span),
        )
    }

    fn conversation(&mut self, call: ConversationCall) -> ConversationReply {
        self.converse(call)
    }

    fn cpu_turns(&self) -> Option<Arc<dyn CpuTurns>> {
        self.turns.clone().map(|turns| turns as Arc<dyn CpuTurns>)
    }

    fn entropy(&self) -> Option<Arc<dyn Entropy>> {
        self.journal
            .clone()
            .map(|journal| journal as Arc<dyn Entropy>)
    }

    fn take_record(&mut self) -> HostRecord {
        HostRecord {
            trace: std::mem::take(&mut self.trace),
            effects: self
                .conversation
                .take()
                .map(Conversation::into_effects)
                .unwrap_or_default(),
        }
    }
}
