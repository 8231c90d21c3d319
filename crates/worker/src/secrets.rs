//! Loading secrets: a TOML file of `[[secret]]` entries whose values are written in the file
//! or read from environment variables.
//!
//! ```toml
//! [[secret]]
//! name = "ERP_KEY"                   # referenced as {{secrets.ERP_KEY}}
//! tenant = "acme"                    # omit: for jobs without a tenant
//! hosts = ["erp.example.com"]        # where the value may be sent (exact or *.domain)
//! value_env = "ACME_ERP_KEY"         # or: value = "..."
//! ```

use std::path::Path;

use action_egress::{Secret, SecretStore};
use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config::SecretsSection;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default)]
    secret: Vec<SecretEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretEntry {
    name: String,
    #[serde(default)]
    tenant: Option<String>,
    hosts: Vec<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_env: Option<String>,
}

// Never print a value, even in a debug dump.
impl std::fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEntry")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn load(section: &SecretsSection) -> anyhow::Result<SecretStore> {
    match &section.file {
        None => Ok(SecretStore::default()),
        Some(path) => load_file(path, &|name| std::env::var(name).ok()),
    }
}

fn load_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<SecretStore> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secrets file {}", path.display()))?;
    let file: SecretsFile = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    let mut store = SecretStore::default();
    for (i, entry) in file.secret.into_iter().enumerate() {
        let at = format!("{}: secret[{i}] ({})", path.display(), entry.name);
        if !valid_name(&entry.name) {
            bail!("{at}: name must match [A-Za-z_][A-Za-z0-9_]*");
        }
        if entry.hosts.is_empty() {
            bail!("{at}: hosts is empty: name the hosts this secret may be sent to");
        }
        let value = match (entry.value, entry.value_env) {
            (Some(v), None) => v,
            (None, Some(var)) => env(&var)
                .with_context(|| format!("{at}: the environment variable {var} is not set"))?,
            _ => bail!("{at}: give exactly one of value and value_env"),
        };
        if value.is_empty() {
            bail!("{at}: the value is empty");
        }
        store.insert(
            entry.tenant.as_deref(),
            &entry.name,
            Secret {
                value,
                hosts: entry.hosts,
            },
        );
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_load_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        std::fs::write(
            &path,
            "[[secret]]\nname = \"A\"\ntenant = \"acme\"\nhosts = [\"x.test\"]\nvalue = \"va\"\n\
             [[secret]]\nname = \"B\"\nhosts = [\"*.y.test\"]\nvalue_env = \"B_VALUE\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "B_VALUE").then(|| "vb".to_string());
        let store = load_file(&path, &env).unwrap();
        let mut carried = vec![];
        let r = store
            .render(Some("acme"), "x.test", "{{secrets.A}}", &mut carried)
            .unwrap();
        assert_eq!(r.value, "va");
        let r = store
            .render(None, "api.y.test", "{{secrets.B}}", &mut carried)
            .unwrap();
        assert_eq!(r.value, "vb");
    }

    #[test]
    fn bad_entries_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        let none = |_: &str| None;
        for (text, needle) in [
            (
                "[[secret]]\nname = \"A\"\nhosts = []\nvalue = \"v\"\n",
                "hosts is empty",
            ),
            (
                "[[secret]]\nname = \"A-B\"\nhosts = [\"h\"]\nvalue = \"v\"\n",
                "name must match",
            ),
            (
                "[[secret]]\nname = \"A\"\nhosts = [\"h\"]\nvalue_env = \"NOPE\"\n",
                "NOPE is not set",
            ),
            (
                "[[secret]]\nname = \"A\"\nhosts = [\"h\"]\n",
                "exactly one of value and value_env",
            ),
            (
                "[[secret]]\nname = \"A\"\nhosts = [\"h\"]\nvalue = \"v\"\ncolour = 1\n",
                "colour",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", load_file(&path, &none).unwrap_err());
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("= \"v\""), "{err}");
        }
    }
}
