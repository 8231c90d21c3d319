//! Rendering an API action's request from its templates and the job's arguments (SPEC §2).
//!
//! Encoding is by position, so no argument can change the request's shape: a path value is
//! one percent-encoded segment (`.`, `..` and empty are refused), a query value is
//! percent-encoded as one value, a header value may not hold CR, LF or NUL, and in the body a
//! string that is exactly `$x` takes the argument's JSON value while a variable inside a
//! longer string is inserted as text (the JSON encoder escapes it). The host (`base_url`)
//! comes from the definition alone.

use serde_json::{Map, Value};

use crate::definition::{ApiSpec, DefinitionError};
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

/// Checks every templated field of an API definition.
pub fn validate_api(api: &ApiSpec) -> Result<(), DefinitionError> {
    let base = Template::parse("api.base_url", &api.base_url)?;
    if base.vars().next().is_some() || api.base_url.contains('$') {
        return Err(DefinitionError::new(
            "api.base_url",
            "is never templated: the host of an API action is fixed by its definition",
        ));
    }
    Template::parse("api.path", &api.path)?;
    for (key, value) in &api.query {
        Template::parse(&format!("api.query.{key}"), value)?;
    }
    for (name, value) in &api.headers {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(DefinitionError::new(
                format!("api.headers.{name}"),
                "is not a valid header name",
            ));
        }
        let field = format!("api.headers.{name}");
        let template = Template::parse(&field, value)?;
        for piece in &template.pieces {
            if let Piece::Text(text) = piece
                && let Some(problem) = header_text_problem(text, "a header")
            {
                return Err(DefinitionError::new(field, problem));
            }
        }
    }
    if let Some(body) = &api.body {
        walk_body(body, "api.body", &mut |field, text| {
            Template::parse(field, text).map(|_| ())
        })?;
    }
    Ok(())
}

fn walk_body<E>(
    value: &Value,
    field: &str,
    f: &mut impl FnMut(&str, &str) -> Result<(), E>,
) -> Result<(), E> {
    match value {
        Value::String(s) => f(field, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_body(item, &format!("{field}[{i}]"), f)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk_body(v, &format!("{field}.{k}"), f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The variables of a definition, in the order they first appear: path, query values, header
/// values, body strings. Each is a required argument.
pub fn required_arguments(api: &ApiSpec) -> Vec<String> {
    let mut names: Vec<String> = vec![];
    let mut add = |text: &str| {
        if let Ok(t) = Template::parse("", text) {
            for var in t.vars() {
                if !names.iter().any(|n| n == var) {
                    names.push(var.to_string());
                }
            }
        }
    };
    add(&api.path);
    api.query.values().for_each(|v| add(v));
    api.headers.values().for_each(|v| add(v));
    if let Some(body) = &api.body {
        let _ = walk_body::<()>(body, "", &mut |_, text| {
            add(text);
            Ok(())
        });
    }
    names
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

/// Why `text` cannot be (part of) a header value, if it cannot: HTTP carries a header value
/// as one byte per Latin-1 (ISO-8859-1) character, and a control character (CR, LF and NUL
/// among them) would end or split the header.
/// `holder` names the header in the message ("header X-Customer").
fn header_text_problem(text: &str, holder: &str) -> Option<String> {
    if text.contains(['\r', '\n', '\0']) {
        return Some(format!(
            "contains CR, LF or NUL, which {holder} cannot carry"
        ));
    }
    let bad = text.chars().find(|&c| {
        let code = u32::from(c);
        code > 0xff || (code < 0x20 && c != '\t') || code == 0x7f
    })?;
    Some(if u32::from(bad) > 0xff {
        format!(
            "contains {bad:?} (U+{:04X}), which is not Latin-1 (ISO-8859-1) and {holder} cannot \
             carry; send such text in the path, the query or the body",
            u32::from(bad)
        )
    } else {
        format!(
            "contains the control character U+{:04X}, which {holder} cannot carry",
            u32::from(bad)
        )
    })
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
    let missing: Vec<String> = required_arguments(api)
        .into_iter()
        .filter(|n| !args.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let parse =
        |text: &str| Template::parse("", text).map_err(|e| invalid("(definition)", e.to_string()));

    let path = render_text(&parse(&api.path)?, args, &|name, value| {
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
    for (key, value) in &api.query {
        let value = render_text(&parse(value)?, args, &|_, v| Ok(v.to_string()))?;
        url.push(separator);
        url.push_str(&percent_encode(key));
        url.push('=');
        url.push_str(&percent_encode(&value));
        separator = '&';
    }

    let mut headers = Vec::with_capacity(api.headers.len());
    for (name, value) in &api.headers {
        let holder = format!("header {name}");
        let value = render_text(
            &parse(value)?,
            args,
            &|arg_name, v| match header_text_problem(v, &holder) {
                Some(problem) => Err(invalid(arg_name, problem)),
                None => Ok(v.to_string()),
            },
        )?;
        headers.push((name.clone(), value));
    }

    let body = match &api.body {
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

fn render_body(value: &Value, args: &Map<String, Value>) -> Result<Value, RenderError> {
    Ok(match value {
        Value::String(text) => {
            let template =
                Template::parse("", text).map_err(|e| invalid("(definition)", e.to_string()))?;
            if let Some(name) = template.sole_var() {
                arg(args, name)?.clone()
            } else {
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
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_body(v, args))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_body(v, args)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> ApiSpec {
        serde_json::from_value(value).unwrap()
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
        let err = validate_api(&spec(
            json!({"base_url": "https://a.test", "path": "/orders/${id"}),
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "api.path: unterminated ${ at column 9");
        let err = validate_api(&spec(
            json!({"base_url": "https://a.test", "body": {"a": ["{{x}}"]}}),
        ))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("api.body.a[0]: unknown form"),
            "{err}"
        );
        let err = validate_api(&spec(json!({"base_url": "https://$host.test"}))).unwrap_err();
        assert_eq!(err.field, "api.base_url");
        assert!(
            validate_api(&spec(
                json!({"base_url": "https://a.test/{{secrets.TENANT_PATH}}"})
            ))
            .is_ok()
        );
    }
}
