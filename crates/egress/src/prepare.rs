//! An outbound request made ready for the wire, with no I/O: secret references resolved for
//! the request's host, the URL parsed, header names and values checked, the body rendered.
//! Everything here sees text from scripts and end users, so it is property-tested over
//! arbitrary Unicode (`prepare/props.rs`).
//!
//! Header values follow what HTTP and Python's `requests` do: a value is a string of
//! Latin-1 (ISO-8859-1) characters, each sent as one byte; a character beyond U+00FF
//! cannot be carried by a header and is refused, naming the header; so is a control
//! character other than tab. Response header bytes are read back the same way, one
//! character per byte, as `requests` shows them.

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue, USER_AGENT};
use url::Url;

use action_protocol::{HttpError, HttpRequest};

use crate::secrets::{CarriedSecret, SecretStore, mark_references};

/// What is sent, once the request has been checked.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Option<Vec<u8>>,
}

/// Checks `request` and resolves its secret references for its own host. `carried` gets
/// every secret the request carries (for redaction of what comes back).
pub(crate) fn prepare(
    request: &HttpRequest,
    secrets: Option<(&SecretStore, Option<&str>)>,
    user_agent: &str,
    carried: &mut Vec<CarriedSecret>,
) -> Result<Prepared, HttpError> {
    let shown = mark_references(&request.url);
    let template =
        Url::parse(&request.url).map_err(|e| HttpError::invalid(format!("{shown}: {e}")))?;
    let host = template.host_str().unwrap_or("").to_string();
    let render = |text: &str, carried: &mut Vec<CarriedSecret>| -> Result<String, HttpError> {
        match secrets {
            None => Ok(text.to_string()),
            Some((store, tenant)) => store
                .render(tenant, &host, text, carried)
                .map(|r| r.value)
                .map_err(|e| HttpError::denied("secret", format!("egress denied: {e}"))),
        }
    };
    let url = Url::parse(&render(&request.url, carried)?)
        .map_err(|e| HttpError::invalid(format!("{shown}: {e}")))?;
    if url.host_str() != template.host_str() {
        return Err(HttpError::invalid(format!(
            "{shown}: a secret may not change the host of a URL"
        )));
    }
    let method =
        Method::from_bytes(request.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            HttpError::invalid(format!("method {:?} is not an HTTP method", request.method))
        })?;
    let mut headers = Vec::with_capacity(request.headers.len() + 1);
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            HttpError::invalid(format!("header name {name:?} is not a valid HTTP token"))
        })?;
        let value = header_value(&name, &render(value, carried)?)?;
        headers.push((name, value));
    }
    if !headers.iter().any(|(n, _)| n == USER_AGENT) {
        headers.push((USER_AGENT, header_value(&USER_AGENT, user_agent)?));
    }
    let body = match &request.body {
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Some(render(text, carried)?.into_bytes()),
            Err(_) => Some(bytes.clone()),
        },
        None => None,
    };
    Ok(Prepared {
        method,
        url,
        headers,
        body,
    })
}

/// `text` as a header value: one byte per Latin-1 character.
pub(crate) fn header_value(name: &HeaderName, text: &str) -> Result<HeaderValue, HttpError> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        let byte = u8::try_from(u32::from(c)).map_err(|_| {
            HttpError::invalid(format!(
                "header {name}: the value holds {c:?} (U+{:04X}), which is not Latin-1 \
                 (ISO-8859-1): a header carries one byte per character; send such text in \
                 the body or the query",
                u32::from(c)
            ))
        })?;
        bytes.push(byte);
    }
    HeaderValue::from_bytes(&bytes).map_err(|_| {
        HttpError::invalid(format!(
            "header {name}: the value holds a control character (CR, LF, NUL or another \
             below U+0020 but tab)"
        ))
    })
}

/// Header bytes as text, one character per byte (Latin-1), as `requests` reads them.
pub(crate) fn latin1_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> HttpRequest {
        HttpRequest {
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
            ..HttpRequest::new("post", url)
        }
    }

    #[test]
    fn non_ascii_urls_headers_and_bodies_are_prepared_as_requests_sends_them() {
        let prepared = prepare(
            &request(
                "https://api.example.com/search/café?q=Jürgen",
                &[("X-Name", "Jürgen")],
                Some("Ζωή".as_bytes()),
            ),
            None,
            "ua",
            &mut vec![],
        )
        .unwrap();
        assert_eq!(
            prepared.url.as_str(),
            "https://api.example.com/search/caf%C3%A9?q=J%C3%BCrgen"
        );
        assert_eq!(prepared.method, Method::POST);
        assert_eq!(prepared.headers[0].1.as_bytes(), b"J\xfcrgen");
        assert_eq!(prepared.body.as_deref(), Some("Ζωή".as_bytes()));
        assert_eq!(latin1_text(prepared.headers[0].1.as_bytes()), "Jürgen");
    }

    #[test]
    fn a_header_beyond_latin_1_or_with_a_control_character_is_refused_by_name() {
        let err = prepare(
            &request("https://a.test/", &[("X-Name", "Ζωή")], None),
            None,
            "ua",
            &mut vec![],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid request: header x-name: the value holds 'Ζ' (U+0396)"),
            "{err}"
        );
        let err = prepare(
            &request("https://a.test/", &[("X-Name", "a\r\nb")], None),
            None,
            "ua",
            &mut vec![],
        )
        .unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
    }
}
