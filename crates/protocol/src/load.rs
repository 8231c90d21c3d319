//! Loading a definition from disk: `name.py`, `name.toml` or `name.json`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::definition::{
    ActionDefinition, ActionKind, ActionLimits, PythonSpec, is_valid_action_name,
};
use crate::error::DefinitionError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unsupported file type: use .py, .toml or .json")]
    Extension { path: PathBuf },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Invalid {
        path: PathBuf,
        source: DefinitionError,
    },
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads and validates one action. A bare `name.py` is a Python action named `name`, whose
/// description is the first line of the module docstring, if any.
pub fn load_action(path: &Path) -> Result<ActionDefinition, LoadError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut def = match ext {
        "py" => python_file(path)?,
        "toml" => {
            toml::from_str::<ActionDefinition>(&read(path)?).map_err(|e| LoadError::Parse {
                path: path.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?
        }
        "json" => serde_json::from_str::<ActionDefinition>(&read(path)?).map_err(|e| {
            LoadError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?,
        _ => {
            return Err(LoadError::Extension {
                path: path.to_path_buf(),
            });
        }
    };
    if let Some(python) = &mut def.python
        && let Some(script) = python.script.take()
    {
        if !python.code.is_empty() {
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                source: DefinitionError::new("python", "give either code or script, not both"),
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        python.code = read(&base.join(script))?;
    }
    def.validate().map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(def)
}

fn python_file(path: &Path) -> Result<ActionDefinition, LoadError> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    if !is_valid_action_name(&name) {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            source: DefinitionError::new(
                "name",
                format!(
                    "the file name {name:?} must be a camelCase action name (^[a-z][A-Za-z0-9]{{0,63}}$)"
                ),
            ),
        });
    }
    let code = read(path)?;
    Ok(ActionDefinition {
        name,
        description: docstring_summary(&code).unwrap_or_default(),
        kind: ActionKind::Python,
        api: None,
        python: Some(PythonSpec {
            code,
            script: None,
            runtime: None,
        }),
        parameters: IndexMap::new(),
        limits: ActionLimits::default(),
        allowed_hosts: vec![],
        record: false,
    })
}

/// The first line of a module docstring written with triple quotes.
fn docstring_summary(code: &str) -> Option<String> {
    let body = code
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty() || l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let quote = ["\"\"\"", "'''"]
        .into_iter()
        .find(|q| body.starts_with(q))?;
    let rest = &body[quote.len()..];
    let end = rest.find(quote)?;
    let first = rest[..end].lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(
        first
            .chars()
            .take(crate::definition::MAX_DESCRIPTION_CHARS)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_python_file_is_an_action_named_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("getOrder.py");
        std::fs::write(
            &path,
            "\"\"\"Looks up an order.\n\nMore.\"\"\"\ndef execute_action(c):\n    return 1\n",
        )
        .unwrap();
        let def = load_action(&path).unwrap();
        assert_eq!(def.name, "getOrder");
        assert_eq!(def.kind, ActionKind::Python);
        assert_eq!(def.description, "Looks up an order.");
        let bad = dir.path().join("get_order.py");
        std::fs::write(&bad, "x = 1").unwrap();
        assert!(
            load_action(&bad)
                .unwrap_err()
                .to_string()
                .contains("camelCase")
        );
    }

    #[test]
    fn toml_and_json_definitions_load_with_their_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("refund.py"),
            "def execute_action(c):\n    return 2\n",
        )
        .unwrap();
        let toml_path = dir.path().join("refund.toml");
        std::fs::write(
            &toml_path,
            "name = \"processRefund\"\ndescription = \"Refunds.\"\ntype = \"python\"\n\
             [python]\nscript = \"refund.py\"\n[parameters.orderId]\ntype = \"string\"\n",
        )
        .unwrap();
        let def = load_action(&toml_path).unwrap();
        assert_eq!(
            def.python_code(),
            Some("def execute_action(c):\n    return 2\n")
        );
        assert_eq!(def.parameters["orderId"].kind.as_deref(), Some("string"));

        let json_path = dir.path().join("stock.json");
        std::fs::write(
            &json_path,
            r#"{"name":"checkStock","type":"api","api":{"base_url":"https://api.example.com","path":"/stock/$productId"}}"#,
        )
        .unwrap();
        assert_eq!(load_action(&json_path).unwrap().name, "checkStock");
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "name = \"x\"\ntype = \"python\"\n[python]\ncode = \"\"\n",
        )
        .unwrap();
        let err = load_action(&path).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("python.code: is empty"),
            "{err}"
        );
        std::fs::write(&path, "name = \"x\"\ntype = \"pyhton\"\n").unwrap();
        let err = load_action(&path).unwrap_err().to_string();
        assert!(err.contains("pyhton"), "{err}");
        let missing = load_action(&dir.path().join("nope.py"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
