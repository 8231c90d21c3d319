//! `http.send`: a script's `requests` call, counted against the job's cap, bounded by its
//! deadline; a response over the size cap is the job's limit, not the script's exception.

use std::time::Duration;

use action_protocol::{HttpError, HttpErrorKind, HttpRequest, LimitKind};
use wasmtime::Result;

use super::bounded;
use crate::bindings::http;
use crate::state::{JobState, LimitTrap};

fn to_wit_error(error: HttpError) -> Result<http::Error> {
    let HttpError { kind, message, .. } = error;
    Ok(match kind {
        HttpErrorKind::Denied => http::Error::Denied(message),
        HttpErrorKind::Timeout => http::Error::Timeout(message),
        HttpErrorKind::Connection => http::Error::Connection(message),
        HttpErrorKind::TooManyRedirects => http::Error::TooManyRedirects(message),
        HttpErrorKind::InvalidRequest => http::Error::InvalidRequest(message),
        HttpErrorKind::ResponseTooLarge => {
            return Err(LimitTrap::new(
                LimitKind::ResponseSize,
                format!("response size limit: {message}"),
            )
            .into());
        }
    })
}

impl http::Host for JobState {
    async fn send(&mut self, req: http::Request) -> Result<Result<http::Response, http::Error>> {
        if self.http_calls >= self.max_http_calls {
            return Err(LimitTrap::new(
                LimitKind::HttpCalls,
                format!(
                    "HTTP call limit: the action may make {} calls",
                    self.max_http_calls
                ),
            )
            .into());
        }
        self.http_calls += 1;
        let request = HttpRequest {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout: req
                .timeout_ms
                .map(|ms| Duration::from_millis(u64::from(ms))),
            follow_redirects: req.follow_redirects,
        };
        let deadline = self.deadline;
        let call = self.host.http_send(request, deadline);
        match bounded(deadline, "http.send", "an HTTP call", call).await? {
            Ok(r) => Ok(Ok(http::Response {
                status: r.status,
                reason: r.reason,
                url: r.url,
                headers: r.headers,
                body: r.body,
                elapsed_ms: u32::try_from(r.elapsed.as_millis()).unwrap_or(u32::MAX),
            })),
            Err(error) => Ok(Err(to_wit_error(error)?)),
        }
    }
}
