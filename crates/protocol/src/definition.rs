//! Action definitions (SPEC §2) and their validation.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::api::ApiSpec;
use crate::error::DefinitionError;

/// Longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// One custom action: an API request template or a Python script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonSpec>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub parameters: IndexMap<String, ParameterSpec>,
    #[serde(default, skip_serializing_if = "ActionLimits::is_empty")]
    pub limits: ActionLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Journal this action's request-reply jobs too, so that they can be replayed (durable
    /// jobs are always journaled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Api,
    Python,
}

/// The script of a Python action. On the wire `code` holds the source; a definition file on
/// disk may name a `script` file instead, which the loader reads into `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSpec {
    #[serde(default)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The runtime profile the script runs on (docs/actions.md, "Runtime profiles"): one of
    /// the worker's `[runtime.profiles]`; absent, [`DEFAULT_RUNTIME`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// The runtime profile of a Python action that names none: the runtime without packages of
/// its own.
pub const DEFAULT_RUNTIME: &str = "default";

/// The rule of a runtime profile's name, as errors show it ([`is_valid_runtime_name`]).
pub const RUNTIME_NAME_RULE: &str = "^[a-z][a-z0-9_-]{0,62}$";

/// [`RUNTIME_NAME_RULE`]: a runtime profile's name.
pub fn is_valid_runtime_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// What the AI is told about one argument.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// Per-action overrides of the worker's limits; each is capped by the worker's maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_calls: Option<u32>,
}

impl ActionLimits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// No limit set to 0 (but `max_http_calls`, which may be).
    fn validate(&self) -> Result<(), DefinitionError> {
        for (field, value) in [
            ("limits.timeout_ms", self.timeout_ms),
            ("limits.fuel", self.fuel),
            ("limits.memory_mb", self.memory_mb),
        ] {
            if value == Some(0) {
                return Err(DefinitionError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Each of `allowed_hosts` a host name or a `*.domain` pattern.
fn validate_allowed_hosts(hosts: &[String]) -> Result<(), DefinitionError> {
    for (i, host) in hosts.iter().enumerate() {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let ok = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !bare.starts_with('.')
            && !bare.ends_with('.');
        if !ok {
            return Err(DefinitionError::new(
                format!("allowed_hosts[{i}]"),
                format!("{host:?} is not a host name or *.domain pattern"),
            ));
        }
    }
    Ok(())
}

const PARAMETER_TYPES: &[&str] = &["string", "number", "integer", "boolean", "object", "array"];

/// `^[a-z][A-Za-z0-9]{0,63}$`
pub fn is_valid_action_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric())
}

impl ActionDefinition {
    /// Checks every rule that can be checked without the worker's configuration.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        self.validate_header()?;
        match self.kind {
            ActionKind::Api => self.validate_api(),
            ActionKind::Python => self.validate_python(),
        }?;
        self.validate_parameters()?;
        self.limits.validate()?;
        validate_allowed_hosts(&self.allowed_hosts)
    }

    /// The name and the description.
    fn validate_header(&self) -> Result<(), DefinitionError> {
        if !is_valid_action_name(&self.name) {
            return Err(DefinitionError::new(
                "name",
                format!(
                    "{:?} is not a camelCase name matching ^[a-z][A-Za-z0-9]{{0,63}}$",
                    self.name
                ),
            ));
        }
        let description_chars = self.description.chars().count();
        if description_chars > MAX_DESCRIPTION_CHARS {
            return Err(DefinitionError::new(
                "description",
                format!(
                    "{description_chars} characters, over the limit of {MAX_DESCRIPTION_CHARS}"
                ),
            ));
        }
        Ok(())
    }

    /// An action of type "api": its `api` table, and no `python`.
    fn validate_api(&self) -> Result<(), DefinitionError> {
        if self.python.is_some() {
            return Err(DefinitionError::new(
                "python",
                "not allowed in an action of type \"api\"",
            ));
        }
        let api = self.api.as_ref().ok_or_else(|| {
            DefinitionError::new("api", "missing: an action of type \"api\" needs it")
        })?;
        if !(api.base_url.starts_with("http://") || api.base_url.starts_with("https://")) {
            return Err(DefinitionError::new(
                "api.base_url",
                "must start with http:// or https://",
            ));
        }
        api.validate()?;
        if api.timeout_ms == Some(0) {
            return Err(DefinitionError::new("api.timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// An action of type "python": its `python` table, and no `api`.
    fn validate_python(&self) -> Result<(), DefinitionError> {
        if self.api.is_some() {
            return Err(DefinitionError::new(
                "api",
                "not allowed in an action of type \"python\"",
            ));
        }
        let python = self.python.as_ref().ok_or_else(|| {
            DefinitionError::new("python", "missing: an action of type \"python\" needs it")
        })?;
        if python.code.trim().is_empty() {
            return Err(DefinitionError::new("python.code", "is empty"));
        }
        if let Some(runtime) = &python.runtime
            && !is_valid_runtime_name(runtime)
        {
            return Err(DefinitionError::new(
                "python.runtime",
                format!("{runtime:?} is not a runtime profile name matching {RUNTIME_NAME_RULE}"),
            ));
        }
        Ok(())
    }

    /// Each parameter's `type`, when it names one.
    fn validate_parameters(&self) -> Result<(), DefinitionError> {
        for (name, spec) in &self.parameters {
            if let Some(kind) = &spec.kind
                && !PARAMETER_TYPES.contains(&kind.as_str())
            {
                return Err(DefinitionError::new(
                    format!("parameters.{name}.type"),
                    format!("{kind:?} is not one of {}", PARAMETER_TYPES.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The source of a Python action.
    pub fn python_code(&self) -> Option<&str> {
        self.python.as_ref().map(|p| p.code.as_str())
    }

    /// The runtime profile of a Python action ([`DEFAULT_RUNTIME`] when it names none).
    pub fn python_runtime(&self) -> &str {
        self.python
            .as_ref()
            .and_then(|p| p.runtime.as_deref())
            .unwrap_or(DEFAULT_RUNTIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python(name: &str) -> ActionDefinition {
        ActionDefinition {
            name: name.into(),
            description: String::new(),
            kind: ActionKind::Python,
            api: None,
            python: Some(PythonSpec {
                runtime: None,
                code: "def execute_action(c):\n    return 1\n".into(),
                script: None,
            }),
            parameters: IndexMap::new(),
            limits: ActionLimits::default(),
            allowed_hosts: vec![],
            record: false,
        }
    }

    #[test]
    fn a_runtime_profile_is_named_by_the_rule() {
        for good in ["default", "contacts", "a", "ml-2_x", &"a".repeat(63)] {
            assert!(is_valid_runtime_name(good), "{good}");
        }
        for bad in [
            "",
            "Contacts",
            "9a",
            "-a",
            "a.b",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_runtime_name(bad), "{bad}");
        }
        let mut def = python("phone");
        assert_eq!(def.python_runtime(), DEFAULT_RUNTIME);
        def.python.as_mut().unwrap().runtime = Some("Contacts".into());
        let err = def.validate().unwrap_err();
        assert_eq!(err.field, "python.runtime");
        def.python.as_mut().unwrap().runtime = Some("contacts".into());
        def.validate().unwrap();
        assert_eq!(def.python_runtime(), "contacts");
    }

    #[test]
    fn names_follow_the_camel_case_rule() {
        for good in [
            "a",
            "getOrderDetails",
            "x9",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(is_valid_action_name(good), "{good}");
        }
        for bad in [
            "",
            "GetOrder",
            "9a",
            "get_order",
            "get-order",
            &format!("a{}", "b".repeat(64)),
        ] {
            assert!(!is_valid_action_name(bad), "{bad}");
        }
        let err = python("Bad").validate().unwrap_err();
        assert_eq!(err.field, "name");
    }

    #[test]
    fn a_python_action_needs_code_and_no_api() {
        let mut def = python("ok");
        assert!(def.validate().is_ok());
        def.python = Some(PythonSpec {
            runtime: None,
            code: "  ".into(),
            script: None,
        });
        assert_eq!(
            def.validate().unwrap_err().to_string(),
            "python.code: is empty"
        );
        def.python = None;
        assert_eq!(def.validate().unwrap_err().field, "python");
    }

    #[test]
    fn long_descriptions_and_bad_types_are_named() {
        let mut def = python("ok");
        def.description = "x".repeat(501);
        assert_eq!(def.validate().unwrap_err().field, "description");
        def.description = "fine".into();
        def.parameters.insert(
            "qty".into(),
            ParameterSpec {
                kind: Some("float".into()),
                ..Default::default()
            },
        );
        assert_eq!(def.validate().unwrap_err().field, "parameters.qty.type");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ActionDefinition>(
            r#"{"name":"a","type":"python","python":{"code":"x"},"colour":"red"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn api_base_url_is_never_templated() {
        let def: ActionDefinition = serde_json::from_value(serde_json::json!({
            "name": "getOrder", "type": "api",
            "api": {"base_url": "https://$host/", "path": "/orders/$id"}
        }))
        .unwrap();
        assert_eq!(def.validate().unwrap_err().field, "api.base_url");
    }
}
