//! API actions (SPEC §2): the request of a definition and its `$variable` templates, parsed
//! once, when the definition is validated (or first used), and held by it. Rendering them
//! with a job's arguments is [`crate::render`].

use std::sync::OnceLock;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DefinitionError;
use crate::template::{Piece, Template};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    pub base_url: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The templates above, parsed once (by validation, or on first use) and kept.
    #[serde(skip)]
    compiled: Compiled,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// The parsed templates of an [`ApiSpec`], field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTemplates {
    pub path: Template,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(String, Template)>,
    pub body: Option<BodyTemplate>,
}

/// A JSON body whose strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    Text(Template),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
    Other(Value),
}

/// The compiled templates a spec keeps. Two specs are equal by their fields alone: whether
/// one was compiled yet says nothing of what it is.
#[derive(Clone, Default)]
struct Compiled(OnceLock<ApiTemplates>);

impl PartialEq for Compiled {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "compiled"
        } else {
            "not compiled"
        })
    }
}

impl ApiSpec {
    /// Checks every templated field (errors name the field and column) and keeps the
    /// parsed templates for rendering.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let base = Template::parse("api.base_url", &self.base_url)?;
        if base.vars().next().is_some() || self.base_url.contains('$') {
            return Err(DefinitionError::new(
                "api.base_url",
                "is never templated: the host of an API action is fixed by its definition",
            ));
        }
        self.templates().map(|_| ())
    }

    /// The parsed templates: parsed on first use and kept, so a definition's templates are
    /// parsed once however many jobs render them.
    pub fn templates(&self) -> Result<&ApiTemplates, DefinitionError> {
        if let Some(templates) = self.compiled.0.get() {
            return Ok(templates);
        }
        let templates = compile(self)?;
        Ok(self.compiled.0.get_or_init(|| templates))
    }

    /// The variables, in the order they first appear: path, query values, header values,
    /// body strings. Each is a required argument.
    pub fn required_arguments(&self) -> Vec<String> {
        let Ok(templates) = self.templates() else {
            return vec![];
        };
        let mut names: Vec<String> = vec![];
        let mut add = |template: &Template| {
            for var in template.vars() {
                if !names.iter().any(|n| n == var) {
                    names.push(var.to_string());
                }
            }
        };
        add(&templates.path);
        templates.query.iter().for_each(|(_, t)| add(t));
        templates.headers.iter().for_each(|(_, t)| add(t));
        if let Some(body) = &templates.body {
            body.each_template(&mut add);
        }
        names
    }
}

impl BodyTemplate {
    fn each_template(&self, f: &mut impl FnMut(&Template)) {
        match self {
            Self::Text(t) => f(t),
            Self::Array(items) => items.iter().for_each(|i| i.each_template(f)),
            Self::Object(fields) => fields.iter().for_each(|(_, v)| v.each_template(f)),
            Self::Other(_) => {}
        }
    }
}

/// The variables of `api`, in the order they first appear ([`ApiSpec::required_arguments`]).
pub fn required_arguments(api: &ApiSpec) -> Vec<String> {
    api.required_arguments()
}

fn compile(api: &ApiSpec) -> Result<ApiTemplates, DefinitionError> {
    let path = Template::parse("api.path", &api.path)?;
    let query = api
        .query
        .iter()
        .map(|(key, value)| {
            Ok((
                key.clone(),
                Template::parse(&format!("api.query.{key}"), value)?,
            ))
        })
        .collect::<Result<_, DefinitionError>>()?;
    let mut headers = Vec::with_capacity(api.headers.len());
    for (name, value) in &api.headers {
        let field = format!("api.headers.{name}");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(DefinitionError::new(field, "is not a valid header name"));
        }
        let template = Template::parse(&field, value)?;
        for piece in &template.pieces {
            if let Piece::Text(text) = piece
                && let Some(problem) = header_text_problem(text, "a header")
            {
                return Err(DefinitionError::new(field, problem));
            }
        }
        headers.push((name.clone(), template));
    }
    let body = match &api.body {
        Some(body) => Some(compile_body(body, "api.body")?),
        None => None,
    };
    Ok(ApiTemplates {
        path,
        query,
        headers,
        body,
    })
}

fn compile_body(value: &Value, field: &str) -> Result<BodyTemplate, DefinitionError> {
    Ok(match value {
        Value::String(s) => BodyTemplate::Text(Template::parse(field, s)?),
        Value::Array(items) => BodyTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| compile_body(item, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => BodyTemplate::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), compile_body(v, &format!("{field}.{k}"))?)))
                .collect::<Result<_, DefinitionError>>()?,
        ),
        other => BodyTemplate::Other(other.clone()),
    })
}

/// Why `text` cannot be (part of) a header value, if it cannot: HTTP carries a header value
/// as one byte per Latin-1 (ISO-8859-1) character, and a control character (CR, LF and NUL
/// among them) would end or split the header.
/// `holder` names the header in the message ("header X-Customer").
pub(crate) fn header_text_problem(text: &str, holder: &str) -> Option<String> {
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
