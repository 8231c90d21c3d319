//! Environment variables over `worker.toml`, for containers and secrets managers that set
//! the environment rather than write files.
//!
//! The rule: `ACTION_WORKER__<SECTION>__<KEY>` sets `<section>.<key>`; a double underscore
//! separates levels (`ACTION_WORKER__LIMITS__MAX__FUEL` is `limits.max.fuel`), names are
//! lower-cased, and a single underscore stays part of the name
//! (`ACTION_WORKER__EGRESS__ALLOW_PRIVATE_CIDRS`). The value is read as a TOML value when it
//! is one (`42`, `true`, `["10.0.0.0/8"]`, `"quoted"`), else taken as a string
//! (`nats://nats:4222`); a value that reads as a number or boolean where the key takes a
//! string is taken as that string (a password `1234` stays `"1234"`).
//!
//! Variables are merged into the parsed file before it is deserialised, so they obey the same
//! types and `deny_unknown_fields` as the file. Each one is also checked alone first, so an
//! error names the variable and the key.

use std::ffi::OsString;

use anyhow::bail;
use serde::Deserialize;
use toml::{Table, Value};

use super::WorkerConfig;

pub const PREFIX: &str = "ACTION_WORKER__";

/// Keys whose values an error never repeats.
const SECRET_KEYS: [&str; 2] = ["nats.token", "nats.password"];

/// One `ACTION_WORKER__…` variable: the key it sets and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub var: String,
    pub key: Vec<String>,
    pub value: Value,
}

/// The `ACTION_WORKER__…` variables among `vars`, sorted by name, each checked alone.
/// Other variables (`ACTION_WORKER_LOG` has one underscore) are not looked at.
pub fn overrides(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> anyhow::Result<Vec<Override>> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let key: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if key.iter().any(String::is_empty) {
            bail!(
                "{name}: names no key: the rule is ACTION_WORKER__<SECTION>__<KEY>, \
                 e.g. ACTION_WORKER__NATS__URL for nats.url"
            );
        }
        let Some(raw) = value.to_str() else {
            bail!("{name}: the value is not UTF-8");
        };
        let value = read_value(&key, raw).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        found.push(Override {
            var: name.to_string(),
            key,
            value,
        });
    }
    found.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(found)
}

/// `raw` as a TOML value if it is one and `key` takes it, else as a string if `key` takes that.
fn read_value(key: &[String], raw: &str) -> Result<Value, String> {
    let as_string = Value::String(raw.to_string());
    let parsed = raw.parse::<Value>().unwrap_or_else(|_| as_string.clone());
    match check(key, &parsed) {
        Ok(()) => Ok(parsed),
        Err(_) if !parsed.is_str() && check(key, &as_string).is_ok() => Ok(as_string),
        Err(error) => Err(error),
    }
}

/// Sets the override's key in `table`, creating the tables on its way.
pub fn apply(table: &mut Table, o: &Override) -> anyhow::Result<()> {
    let Some((last, parents)) = o.key.split_last() else {
        bail!("{}: names no key", o.var);
    };
    let mut here = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = here
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        here = match entry {
            Value::Table(t) => t,
            _ => bail!("{}: {} is not a table", o.var, o.key[..=i].join(".")),
        };
    }
    here.insert(last.clone(), o.value.clone());
    Ok(())
}

/// Whether a configuration with `key = value` alone deserialises; if not, what is wrong,
/// naming the key.
pub fn check(key: &[String], value: &Value) -> Result<(), String> {
    let mut leaf = value.clone();
    for part in key.iter().rev() {
        let mut parent = Table::new();
        parent.insert(part.clone(), leaf);
        leaf = Value::Table(parent);
    }
    let Value::Table(table) = leaf else {
        return Err("the configuration is a table of sections".to_string());
    };
    WorkerConfig::deserialize(table)
        .map(drop)
        .map_err(|e| describe(key, &e))
}

/// The first key of `table` (leaves in key order) that does not deserialise, described.
pub fn first_bad_key(table: &Table) -> Option<String> {
    fn walk(prefix: &mut Vec<String>, table: &Table) -> Option<String> {
        for (name, value) in table {
            prefix.push(name.clone());
            let found = match value {
                Value::Table(inner) if !inner.is_empty() => walk(prefix, inner),
                _ => check(prefix, value).err(),
            };
            prefix.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    walk(&mut Vec::new(), table)
}

/// serde's message with the dotted key: `unknown key nats.urll`, or
/// `limits.fuel: invalid type: string "x", expected u64`. A secret's value is not repeated.
fn describe(key: &[String], error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        // The unknown field is the deepest one of that name on the key's path (or below it,
        // when the value is an inline table).
        let unknown = match key.iter().rposition(|k| k == field) {
            Some(i) => key[..=i].join("."),
            None => format!("{}.{field}", key.join(".")),
        };
        return format!("unknown key {unknown}");
    }
    let name = key.join(".");
    if SECRET_KEYS.contains(&name.as_str()) {
        return format!("{name}: must be a string (the value is not repeated: it is a secret)");
    }
    format!("{name}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn one(name: &str, value: &str) -> Result<Override, String> {
        overrides(vars(&[(name, value)]))
            .map(|mut o| o.remove(0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn double_underscores_separate_levels_and_names_are_lower_cased() {
        let o = one("ACTION_WORKER__LIMITS__MAX__FUEL", "7").unwrap();
        assert_eq!(o.key, ["limits", "max", "fuel"]);
        assert_eq!(o.value, Value::Integer(7));
        let o = one(
            "ACTION_WORKER__EGRESS__ALLOW_PRIVATE_CIDRS",
            r#"["10.0.0.0/8"]"#,
        )
        .unwrap();
        assert_eq!(o.key, ["egress", "allow_private_cidrs"]);
        assert_eq!(
            o.value,
            Value::Array(vec![Value::String("10.0.0.0/8".into())])
        );
    }

    #[test]
    fn values_are_toml_when_they_parse_else_strings() {
        let o = one("ACTION_WORKER__NATS__URL", "nats://nats.internal:4222").unwrap();
        assert_eq!(o.value, Value::String("nats://nats.internal:4222".into()));
        let o = one("ACTION_WORKER__NATS__DURABLE", "false").unwrap();
        assert_eq!(o.value, Value::Boolean(false));
        let o = one("ACTION_WORKER__NATS__USER", r#""quoted""#).unwrap();
        assert_eq!(o.value, Value::String("quoted".into()));
        // A number where the key takes a string is that string.
        let o = one("ACTION_WORKER__NATS__PASSWORD", "1234").unwrap();
        assert_eq!(o.value, Value::String("1234".into()));
        let o = one("ACTION_WORKER__NATS__SUBJECT_PREFIX", "true").unwrap();
        assert_eq!(o.value, Value::String("true".into()));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_variable_and_the_key() {
        let err = one("ACTION_WORKER__NATS__URLL", "x").unwrap_err();
        assert_eq!(err, "ACTION_WORKER__NATS__URLL: unknown key nats.urll");
        let err = one("ACTION_WORKER__NATSS__URL", "x").unwrap_err();
        assert_eq!(err, "ACTION_WORKER__NATSS__URL: unknown key natss");
        let err = one("ACTION_WORKER__LIMITS__FUEL_BUDGET", "3").unwrap_err();
        assert_eq!(
            err,
            "ACTION_WORKER__LIMITS__FUEL_BUDGET: unknown key limits.fuel_budget"
        );
        let err = one("ACTION_WORKER__LIMITS__MAX__FUEL", "lots").unwrap_err();
        assert!(
            err.starts_with("ACTION_WORKER__LIMITS__MAX__FUEL: limits.max.fuel: invalid type"),
            "{err}"
        );
        // nats.url takes a string, not a table.
        let err = one("ACTION_WORKER__NATS__URL__HOST", "x").unwrap_err();
        assert!(
            err.starts_with("ACTION_WORKER__NATS__URL__HOST: nats.url.host: invalid type: map"),
            "{err}"
        );
        let err = one("ACTION_WORKER__NATS____URL", "x").unwrap_err();
        assert!(err.contains("names no key"), "{err}");
        let err = one("ACTION_WORKER__", "x").unwrap_err();
        assert!(err.contains("names no key"), "{err}");
    }

    #[test]
    fn a_secret_is_not_repeated_in_an_error() {
        let table: Table = "[nats]\ntoken = 987654321\n".parse().unwrap();
        let err = first_bad_key(&table).unwrap();
        assert!(err.starts_with("nats.token: must be a string"), "{err}");
        assert!(!err.contains("987654321"), "{err}");
        // From the environment, anything is taken as the string it is.
        let o = one("ACTION_WORKER__NATS__TOKEN", "[\"hunter2\"]").unwrap();
        assert_eq!(o.value, Value::String("[\"hunter2\"]".into()));
    }

    #[test]
    fn other_variables_are_ignored_and_overrides_are_sorted() {
        let found = overrides(vars(&[
            ("ACTION_WORKER_LOG", "debug"),
            ("PATH", "/bin"),
            ("ACTION_WORKER__NATS__URL", "nats://b:4222"),
            ("ACTION_WORKER__LIMITS__FUEL", "5"),
        ]))
        .unwrap();
        let names: Vec<_> = found.iter().map(|o| o.var.as_str()).collect();
        assert_eq!(
            names,
            ["ACTION_WORKER__LIMITS__FUEL", "ACTION_WORKER__NATS__URL"]
        );
    }

    #[test]
    fn apply_creates_tables_and_replaces_values() {
        let mut table: Table = "[nats]\nurl = \"nats://a:4222\"\n".parse().unwrap();
        for o in overrides(vars(&[
            ("ACTION_WORKER__NATS__URL", "nats://b:4222"),
            ("ACTION_WORKER__LIMITS__MAX__FUEL", "9"),
        ]))
        .unwrap()
        {
            apply(&mut table, &o).unwrap();
        }
        assert_eq!(table["nats"]["url"].as_str(), Some("nats://b:4222"));
        assert_eq!(table["limits"]["max"]["fuel"].as_integer(), Some(9));
    }

    #[test]
    fn first_bad_key_finds_the_key_in_a_nested_table() {
        let table: Table = "[limits.max]\nfuel = \"x\"\n[nats]\nurl = \"n\"\n"
            .parse()
            .unwrap();
        let found = first_bad_key(&table).unwrap();
        assert!(
            found.starts_with("limits.max.fuel: invalid type"),
            "{found}"
        );
        let table: Table = "[limits]\nfuel_budget = 3\n".parse().unwrap();
        assert_eq!(
            first_bad_key(&table).unwrap(),
            "unknown key limits.fuel_budget"
        );
    }
}
