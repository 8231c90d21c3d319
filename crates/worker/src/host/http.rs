//! `http.send` on the host side: the egress policy, secrets, an idempotency key for unsafe
//! methods, a trace entry and the egress metrics.

use std::time::Instant;

use action_egress::{CallOptions, mark_references};
use action_protocol::{HttpError, HttpErrorKind, HttpRequest, HttpResponse, TraceEntry, millis};

use super::JobHost;
use super::journal::Before;
use crate::journal::{CallKey, http_answer, http_answer_of};

/// `Idempotency-Key` for a call: the same job id and call index on every delivery of the job,
/// so a redelivered job repeats its requests with the same keys.
pub fn idempotency_key(job_id: &str, call_index: u32) -> String {
    format!("{job_id}:{call_index}")
}

fn with_idempotency_key(mut request: HttpRequest, key: String) -> HttpRequest {
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

impl JobHost {
    pub(super) async fn send(
        &mut self,
        request: HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        let index = self.http_calls;
        self.http_calls += 1;
        let call = self.call_key(|| call_key(&request));
        let request = with_idempotency_key(request, idempotency_key(&self.scope.job_id, index));
        self.inject("http_send");
        if let Some(full) = self.trace_full() {
            return Err(HttpError::new(HttpErrorKind::Denied, full));
        }
        let started = Instant::now();
        let mut entry = TraceEntry {
            kind: "http".into(),
            method: Some(request.method.to_ascii_uppercase()),
            url: Some(mark_references(&request.url)),
            ..TraceEntry::default()
        };
        let result = match self.before_call(call, http_answer_of).await {
            Before::Answered(answer) => answer,
            Before::Refused(message) => Err(HttpError::denied("journal", message)),
            Before::Live(ticket) => {
                let result = self.send_live(request, deadline).await;
                self.after_call(ticket, http_answer(&result)).await;
                result
            }
        };
        entry.ms = millis(started.elapsed());
        entry.journal = self.journal_note.take().map(str::to_string);
        let span = tracing::Span::current();
        if let Some(note) = &entry.journal {
            span.record("journal", note.as_str());
        }
        match &result {
            Ok(response) => {
                span.record("http.response.status_code", response.status);
                entry.status = Some(response.status);
                entry.bytes = response.body.len() as u64;
                entry.secrets = response
                    .secrets
                    .iter()
                    .map(|name| format!("[secret:{name}]"))
                    .collect();
            }
            Err(error) => entry.error = Some(error.to_string()),
        }
        self.trace.push(entry);
        result
    }

    /// The request through egress, counted in the egress metrics.
    async fn send_live(
        &self,
        request: HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, HttpError> {
        let options = CallOptions {
            deadline,
            allowed_hosts: &self.scope.allowed_hosts,
            secrets: Some((&self.services.secrets, self.scope.tenant.as_deref())),
        };
        let host = super::host_of(&request.url);
        let mut request = request;
        request.headers.extend(crate::telemetry::outbound_headers());
        let result = self.services.egress.send(request, options).await;
        record_egress(&host, &result);
        result
    }
}

/// What the journal compares of a request, as the script made it (secret references, not
/// values; before the worker's `Idempotency-Key`).
fn call_key(request: &HttpRequest) -> CallKey {
    let headers: Vec<u8> = request
        .headers
        .iter()
        .flat_map(|(name, value)| format!("{name}: {value}\n").into_bytes())
        .collect();
    let body = request.body.as_deref().unwrap_or_default();
    CallKey::new(
        "http",
        &request.method.to_ascii_uppercase(),
        &mark_references(&request.url),
        &[&headers, body],
    )
}

/// Counts one outbound request in the metrics: by host and status class or failure kind,
/// and a denial by its rule.
fn record_egress(host: &str, result: &Result<HttpResponse, HttpError>) {
    let outcome = match result {
        Ok(response) => match response.status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
        Err(error) => error.kind.as_str(),
    };
    let rule = result.as_ref().err().and_then(HttpError::rule);
    crate::metrics::global().egress(host, outcome, rule);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: Vec<(String, String)>) -> HttpRequest {
        HttpRequest {
            headers,
            ..HttpRequest::new(method, "https://x.test/")
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
