//! Rendering an API action's request from its compiled templates and a job's arguments
//! (SPEC §2).
//!
//! Encoding is by position, so no argument can change the request's shape: a path value is
//! one percent-encoded segment (`.`, `..` and empty are refused), a query value is
//! percent-encoded as one value, a header value must be Latin-1 text without control
//! characters (what a header can carry), and in the body a string that is exactly `$x` takes
//! the argument's JSON value while a variable inside a longer string is inserted as text (the
//! JSON encoder escapes it). The host (`base_url`) comes from the definition alone.

use serde_json::{Map, Value};

#[cfg(test)]
use crate::api::required_arguments;
use crate::api::{ApiSpec, BodyTemplate, header_text_problem};
use crate::template::{Piece, Template};

/// A request ready for the egress layer; `{{secrets.NAME}}` references are still in it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("missing required arguments: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("argument {name}: {reason}")]
    Invalid { name: String, reason: String },
}

fn invalid(name: &str, reason: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// An argument as text, for the path, the query and headers.
fn scalar_text(name: &str, value: &Value) -> Result<String, RenderError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(
            name,
            format!(
                "must be a string, number or boolean here, not {}",
                kind(other)
            ),
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn arg<'a>(args: &'a Map<String, Value>, name: &str) -> Result<&'a Value, RenderError> {
    args.get(name)
        .ok_or_else(|| RenderError::Missing(vec![name.to_string()]))
}

fn render_text(
    template: &Template,
    args: &Map<String, Value>,
    check: &dyn Fn(&str, &str) -> Result<String, RenderError>,
) -> Result<String, RenderError> {
    let mut out = String::new();
    for piece in &template.pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(name) => out.push_str(&check(name, &scalar_text(name, arg(args, name)?)?)?),
        }
    }
    Ok(out)
}

/// Builds the request. Every missing argument is named at once.
pub fn render(api: &ApiSpec, args: &Map<String, Value>) -> Result<RenderedRequest, RenderError> {
    let templates = api
        .templates()
        .map_err(|e| invalid("(definition)", e.to_string()))?;
    let missing: Vec<String> = api
        .required_arguments()
        .into_iter()
        .filter(|n| !args.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let path = render_text(&templates.path, args, &|name, value| {
        if value.is_empty() || value == "." || value == ".." {
            return Err(invalid(
                name,
                format!("{value:?} is not allowed as a path segment"),
            ));
        }
        Ok(percent_encode(value))
    })?;
    let base = api.base_url.trim_end_matches('/');
    let mut url = if path.is_empty() || path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    };
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (key, template) in &templates.query {
        let value = render_text(template, args, &|_, v| Ok(v.to_string()))?;
        url.push(separator);
        url.push_str(&percent_encode(key));
        url.push('=');
        url.push_str(&percent_encode(&value));
        separator = '&';
    }
    let mut headers = Vec::with_capacity(templates.headers.len());
    for (name, template) in &templates.headers {
        let holder = format!("header {name}");
        let value = render_text(
            template,
            args,
            &|arg_name, v| match header_text_problem(v, &holder) {
                Some(problem) => Err(invalid(arg_name, problem)),
                None => Ok(v.to_string()),
            },
        )?;
        headers.push((name.clone(), value));
    }
    let body = match &templates.body {
        None => None,
        Some(template) => Some(render_body(template, args)?),
    };
    Ok(RenderedRequest {
        method: api.method.as_str().to_string(),
        url,
        headers,
        body,
    })
}

fn render_body(template: &BodyTemplate, args: &Map<String, Value>) -> Result<Value, RenderError> {
    Ok(match template {
        BodyTemplate::Text(template) => match template.sole_var() {
            Some(name) => arg(args, name)?.clone(),
            None => {
                let mut out = String::new();
                for piece in &template.pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Var(name) => match arg(args, name)? {
                            Value::String(s) => out.push_str(s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
        },
        BodyTemplate::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_body(v, args))
                .collect::<Result<_, _>>()?,
        ),
        BodyTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_body(v, args)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        BodyTemplate::Other(value) => value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> ApiSpec {
        serde_json::from_value(value).unwrap()
    }

    fn spec_validate(api: &ApiSpec) -> Result<(), crate::DefinitionError> {
        api.validate()
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn required_arguments_in_first_seen_order() {
        let api = spec(json!({
            "base_url": "https://api.example.com", "path": "/stores/$storeId/stock/${productId}",
            "query": {"lang": "$lang", "store": "$storeId"}, "headers": {"X-Customer": "$email"},
            "body": {"items": [{"sku": "$sku"}], "note": "for $email"}
        }));
        assert_eq!(
            required_arguments(&api),
            vec!["storeId", "productId", "lang", "email", "sku"]
        );
    }

    #[test]
    fn every_missing_argument_is_named() {
        let api =
            spec(json!({"base_url": "https://a.test", "path": "/$a/$b", "headers": {"X": "$c"}}));
        let err = render(&api, &args(json!({"b": "1"}))).unwrap_err();
        assert_eq!(err.to_string(), "missing required arguments: a, c");
    }

    #[test]
    fn encoding_is_by_position() {
        let api = spec(json!({
            "base_url": "https://api.example.com/", "path": "/files/$name", "method": "POST",
            "query": {"q": "$q"}, "headers": {"Authorization": "Bearer {{secrets.KEY}}", "X-Who": "$who"},
            "body": {"qty": "$qty", "text": "Order for $who: $qty", "nested": ["$flag"]}
        }));
        let r = render(
            &api,
            &args(
                json!({"name": "../admin", "q": "a&b=c d", "who": "Zoë", "qty": 3, "flag": true}),
            ),
        )
        .unwrap();
        assert_eq!(
            r.url,
            "https://api.example.com/files/..%2Fadmin?q=a%26b%3Dc%20d"
        );
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.headers[0],
            (
                "Authorization".to_string(),
                "Bearer {{secrets.KEY}}".to_string()
            )
        );
        assert_eq!(
            r.body,
            Some(json!({"qty": 3, "text": "Order for Zoë: 3", "nested": [true]}))
        );
        for bad in ["", ".", ".."] {
            let err = render(
                &api,
                &args(json!({"name": bad, "q": "", "who": "x", "qty": 1, "flag": 1})),
            )
            .unwrap_err();
            assert!(err.to_string().contains("path segment"), "{err}");
        }
        let err = render(
            &api,
            &args(json!({"name": "n", "q": "", "who": "x\r\nX-Admin: 1", "qty": 1, "flag": 1})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CR, LF or NUL"), "{err}");
        let err = render(
            &api,
            &args(json!({"name": {"a": 1}, "q": "", "who": "x", "qty": 1, "flag": 1})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let err = spec_validate(&spec(
            json!({"base_url": "https://a.test", "path": "/orders/${id"}),
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "api.path: unterminated ${ at column 9");
        let err = spec_validate(&spec(
            json!({"base_url": "https://a.test", "body": {"a": ["{{x}}"]}}),
        ))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("api.body.a[0]: unknown form"),
            "{err}"
        );
        let err = spec_validate(&spec(json!({"base_url": "https://$host.test"}))).unwrap_err();
        assert_eq!(err.field, "api.base_url");
        assert!(
            spec_validate(&spec(
                json!({"base_url": "https://a.test/{{secrets.TENANT_PATH}}"})
            ))
            .is_ok()
        );
    }
}
