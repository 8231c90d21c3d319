//! The one HTTP client of the worker: every request checked, redirects followed by hand,
//! bodies read up to a cap, every wait bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use url::{Host, Url};

use action_protocol::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};

use crate::hosts::host_allowed;
use crate::policy::AddressPolicy;
use crate::prepare::{Prepared, latin1_text, prepare};
use crate::resolve::{NameResolver, PolicyResolve, ResolveError};
use crate::secrets::{CarriedSecret, SecretStore, redact_bytes, redact_text};

/// `[egress]` of `worker.toml`.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Internal ranges opened on purpose (tests, internal APIs). Empty by default.
    pub allow_private_cidrs: Vec<IpNet>,
    /// Largest response body read per call (SPEC §7: 5 MiB).
    pub max_response_bytes: u64,
    /// Largest request body sent per call (a form, JSON, a multipart upload): 5 MiB.
    pub max_request_bytes: u64,
    /// Redirects followed per call (SPEC §7: 5).
    pub max_redirects: u32,
    /// Longest wait for a TCP and TLS connection.
    pub connect_timeout: Duration,
    /// Sent when a request names no `User-Agent`.
    pub user_agent: String,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow_private_cidrs: vec![],
            max_response_bytes: 5 << 20,
            max_request_bytes: 5 << 20,
            max_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("action-worker/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// The bounds of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions<'a> {
    /// The job's deadline: no wait goes past it (nor past the request's own `timeout`).
    pub deadline: Instant,
    /// An action's `allowed_hosts`; empty means any public host.
    pub allowed_hosts: &'a [String],
    /// Where `{{secrets.NAME}}` references resolve, and for which tenant.
    pub secrets: Option<(&'a SecretStore, Option<&'a str>)>,
}

pub struct Egress {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    config: EgressConfig,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Egress {
    pub fn new(config: EgressConfig, resolver: Arc<dyn NameResolver>) -> Result<Self, HttpError> {
        let policy = Arc::new(AddressPolicy::new(config.allow_private_cidrs.clone()));
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolve {
                resolver,
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                HttpError::new(
                    HttpErrorKind::Connection,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            client,
            policy,
            config,
        })
    }

    pub fn config(&self) -> &EgressConfig {
        &self.config
    }

    /// Scheme, `allowed_hosts`, and for an IP literal the address policy; names are checked
    /// when they resolve.
    fn check_url(&self, url: &Url, allowed_hosts: &[String]) -> Result<(), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::denied(
                "scheme",
                format!(
                    "egress denied: scheme {:?} (only http and https are allowed)",
                    url.scheme()
                ),
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| HttpError::invalid(format!("{url}: no host")))?;
        let name = match &host {
            Host::Domain(d) => d.to_string(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        if !host_allowed(allowed_hosts, &name) {
            return Err(HttpError::denied(
                "allowed_hosts",
                format!(
                    "egress denied: {name} is not in this action's allowed_hosts ({})",
                    allowed_hosts.join(", ")
                ),
            ));
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal {
            self.policy
                .check(ip)
                .map_err(|d| HttpError::denied(d.rule.as_str(), format!("{url}: {d}")))?;
        }
        Ok(())
    }

    /// Sends one request (and its redirects) within `options`.
    pub async fn send(
        &self,
        request: HttpRequest,
        options: CallOptions<'_>,
    ) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let limit = match request.timeout {
            Some(t) => (started + t).min(options.deadline),
            None => options.deadline,
        };
        let url = crate::secrets::mark_references(&request.url);
        let mut carried = Vec::new();
        let call = self.send_inner(request, options, started, &mut carried);
        let result = match tokio::time::timeout_at(limit.into(), call).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::new(
                HttpErrorKind::Timeout,
                format!(
                    "no complete response from {url} within {} ms",
                    limit.saturating_duration_since(started).as_millis()
                ),
            )),
        };
        // Nothing that goes back to the caller carries a secret's value.
        result.map_err(|e| redact_error(e, &carried))
    }

    async fn send_inner(
        &self,
        request: HttpRequest,
        options: CallOptions<'_>,
        started: Instant,
        carried: &mut Vec<CarriedSecret>,
    ) -> Result<HttpResponse, HttpError> {
        let mut hop = prepare(&request, options.secrets, &self.config.user_agent, carried)?;
        self.check_body(&hop)?;
        let mut redirects = 0;
        loop {
            self.check_url(&hop.url, options.allowed_hosts)?;
            let mut builder = self.client.request(hop.method.clone(), hop.url.clone());
            for (name, value) in &hop.headers {
                builder = builder.header(name, value);
            }
            if let Some(bytes) = &hop.body {
                builder = builder.body(bytes.clone());
            }
            let response = builder.send().await.map_err(|e| classify(&hop.url, &e))?;
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match location {
                Some(location) if request.follow_redirects && status.is_redirection() => {
                    let next = hop.url.join(&location).map_err(|e| {
                        HttpError::invalid(format!("redirect to {location:?}: {e}"))
                    })?;
                    if redirects >= self.config.max_redirects {
                        return Err(HttpError::new(
                            HttpErrorKind::TooManyRedirects,
                            format!(
                                "Exceeded {} redirects (the last to {next})",
                                self.config.max_redirects
                            ),
                        ));
                    }
                    redirects += 1;
                    redirect(&mut hop, status, next, carried)?;
                }
                _ => return self.answer(response, &hop.url, started, carried).await,
            }
        }
    }

    /// A body over `max_request_bytes` is refused before anything is sent.
    fn check_body(&self, hop: &Prepared) -> Result<(), HttpError> {
        let size = hop.body.as_ref().map_or(0, Vec::len) as u64;
        if size > self.config.max_request_bytes {
            return Err(HttpError::denied(
                "request-size",
                format!(
                    "egress denied: the request body to {} is {size} bytes, over egress.max_request_bytes = {}",
                    hop.url, self.config.max_request_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The final response, read up to the cap, with every carried secret redacted from it:
    /// a server that echoes a secret does not hand it to the guest.
    async fn answer(
        &self,
        mut response: reqwest::Response,
        url: &Url,
        started: Instant,
        carried: &[CarriedSecret],
    ) -> Result<HttpResponse, HttpError> {
        let cap = self.config.max_response_bytes;
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(too_large(url, cap));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, &e))? {
            if bytes.len() as u64 + chunk.len() as u64 > cap {
                return Err(too_large(url, cap));
            }
            bytes.extend_from_slice(&chunk);
        }
        // Redacted as bytes, then read as Latin-1, as `requests` reads header bytes.
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                let value = redact_bytes(v.as_bytes().to_vec(), carried);
                (n.as_str().to_string(), latin1_text(&value))
            })
            .collect();
        let status = response.status();
        Ok(HttpResponse {
            status: status.as_u16(),
            // A server may echo a secret anywhere it can, the reason phrase included.
            reason: redact_text(&reason_phrase(&response), carried),
            url: redact_text(url.as_str(), carried),
            headers,
            body: redact_bytes(bytes, carried),
            elapsed: started.elapsed(),
            secrets: carried.iter().map(|c| c.name.clone()).collect(),
        })
    }
}

/// The reason phrase the server sent (HTTP/1; hyper keeps one that is not the canonical
/// phrase), read as Latin-1 as `requests` reads it; else the canonical phrase.
fn reason_phrase(response: &reqwest::Response) -> String {
    match response.extensions().get::<hyper::ext::ReasonPhrase>() {
        Some(sent) => latin1_text(sent.as_bytes()),
        None => response
            .status()
            .canonical_reason()
            .unwrap_or("")
            .to_string(),
    }
}

fn redact_error(error: HttpError, carried: &[CarriedSecret]) -> HttpError {
    if carried.is_empty() {
        return error;
    }
    error.map_message(|m| redact_text(&m, carried))
}

fn too_large(url: &Url, limit: u64) -> HttpError {
    HttpError::new(
        HttpErrorKind::ResponseTooLarge,
        format!("response from {url} is larger than the limit of {limit} bytes"),
    )
}

/// Finds the policy's own error in reqwest's chain, so a denial reads as one.
fn classify(url: &Url, error: &reqwest::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(resolve) = e.downcast_ref::<ResolveError>() {
            return match resolve {
                ResolveError::Denied { source: denied, .. } => {
                    HttpError::denied(denied.rule.as_str(), format!("{url}: {resolve}"))
                }
                other => HttpError::new(HttpErrorKind::Connection, format!("{url}: {other}")),
            };
        }
        source = e.source();
    }
    if error.is_timeout() {
        return HttpError::new(HttpErrorKind::Timeout, format!("{url}: timed out"));
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    HttpError::new(HttpErrorKind::Connection, format!("{url}: {text}"))
}
/// Turns `hop` into the request to `next`: refused when a carried secret is not bound
/// to the new host; a 303 (and a 301 or 302 after a POST) becomes a GET without a body; the
/// credentials stay behind when the host or port changes.
fn redirect(
    hop: &mut Prepared,
    status: StatusCode,
    next: Url,
    carried: &[CarriedSecret],
) -> Result<(), HttpError> {
    let next_host = next.host_str().unwrap_or("");
    if next.host_str() != hop.url.host_str()
        && let Some(secret) = carried.iter().find(|s| !s.allows(next_host))
    {
        return Err(HttpError::denied(
            "secret",
            format!(
                "egress denied: a redirect to {next_host} would carry secret {}, which is bound to {}",
                secret.name,
                secret.hosts.join(", ")
            ),
        ));
    }
    if status == StatusCode::SEE_OTHER
        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && hop.method == Method::POST)
    {
        hop.method = Method::GET;
        hop.body = None;
        hop.headers
            .retain(|(n, _)| n != CONTENT_TYPE && n != CONTENT_LENGTH);
    }
    if next.host_str() != hop.url.host_str()
        || next.port_or_known_default() != hop.url.port_or_known_default()
    {
        // Credentials were meant for the first host, not wherever it points.
        hop.headers.retain(|(n, _)| {
            n != AUTHORIZATION && n != COOKIE && n.as_str() != "proxy-authorization"
        });
    }
    hop.url = next;
    Ok(())
}
