//! The outside world of one Python job: its HTTP calls go through the egress policy, each
//! leaves a trace entry, and unsafe methods carry an idempotency key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use action_egress::{
    CallOptions, Egress, EgressError, OutboundRequest, SecretStore, mark_references,
};
use action_helpers::{Conversation, HeaderCache, LlmClient, Question, SheetsClient, Usage};
use action_protocol::{LimitKind, TraceEntry};
use action_sandbox::{
    ActionHost, BoxFuture, ConversationCall, ConversationReply, HostError, HttpError, HttpRequest,
    HttpResponse,
};

/// Shared with the executor, which moves the entries into the result.
pub type Trace = Arc<Mutex<Vec<TraceEntry>>>;

/// The job's conversation, if it has one; shared with the executor for the effects.
pub type SharedConversation = Arc<Mutex<Option<Conversation>>>;

/// What the hosts of all jobs share: the egress client, the secrets, the LLM client.
#[derive(Clone)]
pub struct Services {
    pub egress: Arc<Egress>,
    pub secrets: Arc<SecretStore>,
    pub llm: Option<Arc<LlmClient>>,
    pub sheets: Option<Arc<SheetsClient>>,
}

pub struct JobHost {
    egress: Arc<Egress>,
    secrets: Arc<SecretStore>,
    llm: Option<Arc<LlmClient>>,
    sheets: Option<Arc<SheetsClient>>,
    sheet_headers: HeaderCache,
    tenant: Option<String>,
    allowed_hosts: Vec<String>,
    job_id: String,
    calls: u32,
    llm_calls: u32,
    trace: Trace,
    /// Trace entries a job may make (`limits.max_trace_entries`): a call past them is refused.
    max_trace: usize,
    conversation: SharedConversation,
}

impl JobHost {
    /// A host for one job, without a conversation until [`Self::with_conversation`].
    pub fn new(
        services: Services,
        tenant: Option<String>,
        allowed_hosts: Vec<String>,
        job_id: &str,
        trace: Trace,
        max_trace: usize,
    ) -> Self {
        Self {
            egress: services.egress,
            secrets: services.secrets,
            llm: services.llm,
            sheets: services.sheets,
            sheet_headers: HeaderCache::new(),
            tenant,
            allowed_hosts,
            job_id: job_id.to_string(),
            calls: 0,
            llm_calls: 0,
            trace,
            max_trace,
            conversation: SharedConversation::default(),
        }
    }

    pub fn with_conversation(mut self, conversation: SharedConversation) -> Self {
        self.conversation = conversation;
        self
    }

    /// Why a call may not be made, when the job's trace is full: every call leaves an entry,
    /// and a result's trace is bounded.
    fn trace_full(&self) -> Option<String> {
        let used = self.trace.lock().map_or(usize::MAX, |t| t.len());
        (used >= self.max_trace).then(|| {
            format!(
                "trace limit: a job may make {} outside calls (HTTP, LLM, Google Sheets), and \
                 this one has made them all; the call was not made",
                self.max_trace
            )
        })
    }

    fn push_trace(&self, entry: TraceEntry) {
        if let Ok(mut trace) = self.trace.lock() {
            trace.push(entry);
        }
    }
}

/// `Idempotency-Key` for a call: the same job id and call index on every delivery of the job,
/// so a redelivered job repeats its requests with the same keys.
pub fn idempotency_key(job_id: &str, call_index: u32) -> String {
    format!("{job_id}:{call_index}")
}

fn with_idempotency_key(mut request: OutboundRequest, key: String) -> OutboundRequest {
    let safe = matches!(
        request.method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    );
    if !safe
        && !request
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"))
    {
        request.headers.push(("Idempotency-Key".into(), key));
    }
    request
}

fn to_host_error(error: EgressError) -> HostError {
    match error {
        EgressError::Denied { message, .. } => HttpError::Denied(message).into(),
        EgressError::InvalidRequest(m) => HttpError::InvalidRequest(m).into(),
        EgressError::Timeout(m) => HttpError::Timeout(m).into(),
        EgressError::Connection(m) => HttpError::Connection(m).into(),
        EgressError::TooManyRedirects(m) => HttpError::TooManyRedirects(m).into(),
        e @ EgressError::ResponseTooLarge { .. } => {
            HostError::Limit(LimitKind::ResponseSize, format!("response size limit: {e}"))
        }
    }
}

impl ActionHost for JobHost {
    fn sheets_append(
        &mut self,
        sheet_id: String,
        row_json: String,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let Some(sheets) = self.sheets.clone() else {
                return Err("Google Sheets is not configured: set [sheets] service_account_file in worker.toml".into());
            };
            if let Some(full) = self.trace_full() {
                return Err(full);
            }
            crate::guard::inject("sheets", self.job_id.as_bytes());
            let data: serde_json::Value =
                serde_json::from_str(&row_json).map_err(|e| format!("data: {e}"))?;
            let started = Instant::now();
            let answer = sheets
                .append_row(
                    &self.egress,
                    &sheet_id,
                    &data,
                    &mut self.sheet_headers,
                    deadline,
                )
                .await;
            let entry = TraceEntry {
                kind: "sheets".into(),
                method: Some("POST".into()),
                url: Some(format!(
                    "{}/v4/spreadsheets/{sheet_id}/values/A1:append",
                    sheets.config.base_url
                )),
                ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error: answer.as_ref().err().cloned(),
                ..TraceEntry::default()
            };
            self.push_trace(entry);
            answer
        })
    }

    fn llm_classify(
        &mut self,
        prompt: String,
        input: String,
        options: Vec<String>,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let Some(llm) = self.llm.clone() else {
                return Err("LLM classification is not configured: set [llm] base_url and model in worker.toml".into());
            };
            if let Some(full) = self.trace_full() {
                return Err(full);
            }
            crate::guard::inject("llm", self.job_id.as_bytes());
            if self.llm_calls >= llm.config.max_calls_per_job {
                return Err(format!(
                    "LLM call limit: an action may classify {} times per job",
                    llm.config.max_calls_per_job
                ));
            }
            self.llm_calls += 1;
            let started = Instant::now();
            let mut usage = Usage::default();
            let question = Question {
                prompt: &prompt,
                input: &input,
                options: &options,
            };
            let answer = llm
                .classify(&self.egress, &self.secrets, question, deadline, &mut usage)
                .await;
            let entry = TraceEntry {
                kind: "llm".into(),
                method: Some("POST".into()),
                url: Some(format!(
                    "{}/chat/completions",
                    llm.config.base_url.trim_end_matches('/')
                )),
                status: usage.status,
                bytes: usage.bytes,
                ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error: answer.as_ref().err().cloned(),
                prompt_tokens: Some(usage.prompt_tokens),
                completion_tokens: Some(usage.completion_tokens),
                ..TraceEntry::default()
            };
            self.push_trace(entry);
            answer
        })
    }

    fn conversation(&mut self, call: ConversationCall) -> ConversationReply {
        crate::guard::inject("conversation", self.job_id.as_bytes());
        let Ok(mut guard) = self.conversation.lock() else {
            return ConversationReply::no_conversation();
        };
        let Some(conversation) = guard.as_mut() else {
            return ConversationReply::no_conversation();
        };
        match call {
            ConversationCall::Present => ConversationReply {
                success: true,
                ..Default::default()
            },
            ConversationCall::GetMetadata { key } => ConversationReply {
                success: true,
                value: conversation.get_metadata(&key),
                ..Default::default()
            },
            ConversationCall::SetMetadata { key, value } => conversation.set_metadata(&key, &value),
            ConversationCall::DeleteMetadata { key } => conversation.delete_metadata(&key),
            ConversationCall::AddTag { tag } => conversation.add_tag(&tag),
            ConversationCall::AddEvent { event } => conversation.add_event(&event),
            ConversationCall::HandOff {
                reason,
                phone_destination,
            } => conversation.hand_off(reason.as_deref(), phone_destination.as_deref()),
        }
    }

    fn http_send(
        &mut self,
        request: HttpRequest,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HostError>> {
        let index = self.calls;
        self.calls += 1;
        let outbound = with_idempotency_key(
            OutboundRequest {
                method: request.method,
                url: request.url,
                headers: request.headers,
                body: request.body,
                follow_redirects: request.follow_redirects,
            },
            idempotency_key(&self.job_id, index),
        );
        Box::pin(async move {
            crate::guard::inject("http_send", self.job_id.as_bytes());
            if let Some(full) = self.trace_full() {
                return Err(HttpError::Denied(full).into());
            }
            let started = Instant::now();
            let mut entry = TraceEntry {
                kind: "http".into(),
                method: Some(outbound.method.to_ascii_uppercase()),
                url: Some(mark_references(&outbound.url)),
                ..TraceEntry::default()
            };
            let options = CallOptions {
                deadline,
                timeout: request
                    .timeout_ms
                    .map(|ms| Duration::from_millis(u64::from(ms))),
                allowed_hosts: &self.allowed_hosts,
                secrets: Some((&self.secrets, self.tenant.as_deref())),
            };
            let host = url::Url::parse(&outbound.url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| "-".into());
            let result = self.egress.send(outbound, options).await;
            entry.ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            record_egress(&host, &result);
            let result = match result {
                Ok(response) => {
                    entry.status = Some(response.status);
                    entry.bytes = response.body.len() as u64;
                    entry.secrets = response
                        .secrets
                        .iter()
                        .map(|name| format!("[secret:{name}]"))
                        .collect();
                    Ok(HttpResponse {
                        status: response.status,
                        reason: response.reason,
                        url: response.url,
                        headers: response.headers,
                        body: response.body,
                        elapsed_ms: u32::try_from(response.elapsed.as_millis()).unwrap_or(u32::MAX),
                    })
                }
                Err(error) => {
                    entry.error = Some(error.to_string());
                    Err(to_host_error(error))
                }
            };
            self.push_trace(entry);
            result
        })
    }
}

/// Counts one outbound request in the metrics: by host and status class or failure, and a
/// denial by its rule.
fn record_egress(
    host: &str,
    result: &Result<action_egress::InboundResponse, action_egress::EgressError>,
) {
    use action_egress::EgressError;
    let outcome = match result {
        Ok(response) => match response.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(EgressError::Denied { .. }) => "denied",
        Err(EgressError::Timeout(_)) => "timeout",
        Err(EgressError::ResponseTooLarge { .. }) => "too_large",
        Err(EgressError::TooManyRedirects(_)) => "too_many_redirects",
        Err(EgressError::InvalidRequest(_)) => "invalid",
        Err(EgressError::Connection(_)) => "error",
    };
    let rule = result.as_ref().err().and_then(EgressError::rule);
    crate::metrics::global().egress(host, outcome, rule);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: Vec<(String, String)>) -> OutboundRequest {
        OutboundRequest {
            method: method.into(),
            url: "https://x.test/".into(),
            headers,
            body: None,
            follow_redirects: true,
        }
    }

    #[test]
    fn unsafe_methods_get_a_stable_idempotency_key_unless_the_script_set_one() {
        let post = with_idempotency_key(request("post", vec![]), idempotency_key("job-7", 2));
        assert_eq!(
            post.headers,
            vec![("Idempotency-Key".to_string(), "job-7:2".to_string())]
        );
        let get = with_idempotency_key(request("GET", vec![]), idempotency_key("job-7", 0));
        assert!(get.headers.is_empty());
        let own = vec![("idempotency-key".to_string(), "mine".to_string())];
        assert_eq!(
            with_idempotency_key(request("PUT", own.clone()), idempotency_key("j", 0)).headers,
            own
        );
    }
}
