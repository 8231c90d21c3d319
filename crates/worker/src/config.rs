//! `worker.toml`: every key, its default, and the check that names a wrong one; environment
//! variables `ACTION_WORKER__<SECTION>__<KEY>` override keys ([`env`]).

use std::ffi::OsString;
use std::path::Path;

use action_sandbox::SandboxConfig;
use anyhow::Context;
use serde::{Deserialize, Serialize};

mod access;
mod admin;
pub mod env;
mod nats;
mod runtime;
mod services;
mod tenants;

pub use access::{Auth, NatsAccess, Tls};
pub use admin::{AdminSection, LogFormat, LogSection, TelemetrySection};
pub use nats::{NatsSection, Secret};
pub use runtime::{LimitValues, LimitsConfig, ProfileConfig, RuntimeConfig};
pub use services::{EgressSection, LlmSection, SecretsSection, SheetsSection};
pub use tenants::{Quota, TenantOverride, TenantPolicy, TenantsSection};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub runtime: RuntimeConfig,
    pub limits: LimitsConfig,
    pub egress: EgressSection,
    pub secrets: SecretsSection,
    pub llm: LlmSection,
    pub sheets: SheetsSection,
    pub nats: NatsSection,
    pub tenants: TenantsSection,
    pub admin: AdminSection,
    pub log: LogSection,
    pub telemetry: TelemetrySection,
}

impl WorkerConfig {
    /// Reads `path` with the `ACTION_WORKER__…` environment variables over it (see
    /// [`env`]); a missing file at the default path means all defaults.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Settings> {
        Self::load_with_env(path, explicit, std::env::vars_os()).map(|(settings, _)| settings)
    }

    /// [`Self::load`] with the environment given, returning the names of the variables
    /// that went into the configuration as well.
    pub fn load_with_env(
        path: &Path,
        explicit: bool,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<(Settings, Vec<String>)> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the configuration {}", path.display()));
            }
        };
        Self::from_text(&text, &path.display().to_string(), vars)
    }

    /// The configuration in `text` (from `origin`, for messages) with the environment's
    /// overrides merged into it, deserialised, checked and built into [`Settings`], once.
    /// Every error names the key, and the variable when one set it.
    pub fn from_text(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<(Settings, Vec<String>)> {
        let file: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            anyhow::anyhow!("{origin}: {}", e.to_string().trim_end())
        })?;
        let overrides = env::overrides(vars)?;
        let mut table = file.clone();
        for o in &overrides {
            env::apply(&mut table, o)?;
        }
        let config = Self::deserialize(table).map_err(|e| {
            // Every override was checked alone, so the wrong key is the file's: name it, and
            // its line when the file alone shows it.
            let line = toml::from_str::<Self>(text)
                .err()
                .and_then(|e| e.span())
                .map(|span| {
                    // Counted over bytes: a span need not fall on a character boundary.
                    let before = text.as_bytes().get(..span.start).unwrap_or(text.as_bytes());
                    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                    format!(", line {line}")
                })
                .unwrap_or_default();
            let named =
                env::first_bad_key(&file).unwrap_or_else(|| e.message().trim_end().to_string());
            anyhow::anyhow!("{origin}{line}: {named}")
        })?;
        let vars: Vec<String> = overrides.into_iter().map(|o| o.var).collect();
        // One message, not a chain, so that any rendering of it names the key.
        let settings = config.settings().map_err(|e| {
            let from_env = if vars.is_empty() {
                String::new()
            } else {
                format!(" with {} from the environment", vars.join(", "))
            };
            anyhow::anyhow!("{origin}{from_env}: invalid configuration: {e:#}")
        })?;
        Ok((settings, vars))
    }

    /// The effective configuration as TOML, for `check-config`: secrets show `[redacted]`.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot print the configuration as TOML")
    }

    /// Every section checked, and the settings of the other crates built from them: the one
    /// place the file becomes what the parts take.
    pub fn settings(self) -> anyhow::Result<Settings> {
        self.limits.validate()?;
        self.nats.validate()?;
        self.tenants.validate()?;
        self.log.validate()?;
        self.telemetry.validate()?;
        self.runtime.validate()?;
        Ok(Settings {
            sandbox: self.sandbox_config(),
            egress: self.egress.egress_config()?,
            llm: self.llm.llm_config()?,
            admin: self.admin.address()?,
            nats_access: NatsAccess::read(&self.nats)?,
            sections: self,
        })
    }

    fn sandbox_config(&self) -> SandboxConfig {
        let r = &self.runtime;
        let mut config = SandboxConfig::new(&r.component);
        config.profiles = r
            .profiles
            .iter()
            .map(|(name, profile)| (name.clone(), profile.component_path(name)))
            .collect();
        config.cache_dir = Some(r.cache_dir.clone());
        config.max_instances = r.max_instances;
        config.warm_instances = r.warm_instances;
        config.max_memory_bytes = self.limits.max.memory_mb << 20;
        config.keep_resident_bytes =
            usize::try_from(r.keep_resident_mb << 20).unwrap_or(usize::MAX);
        config.max_wasm_stack = usize::try_from(r.max_wasm_stack_kb << 10).unwrap_or(1 << 20);
        config.yield_fuel =
            r.cpu_slice_us * (action_sandbox::JobLimits::FUEL_PER_SECOND / 1_000_000);
        config
    }
}

/// The configuration as the parts take it, built once when it is loaded
/// ([`WorkerConfig::settings`]): the sections as written (and overridden), and the settings of
/// the sandbox, egress, the LLM client and the admin port, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sections: WorkerConfig,
    pub sandbox: SandboxConfig,
    pub egress: action_egress::EgressConfig,
    pub llm: Option<action_helpers::LlmConfig>,
    /// Where the admin port listens, if it does.
    pub admin: Option<std::net::SocketAddr>,
    /// `[nats]`'s authentication and TLS, files and variables read.
    pub nats_access: NatsAccess,
}

impl std::ops::Deref for Settings {
    type Target = WorkerConfig;

    /// The sections, as `settings.nats`, `settings.limits`…
    fn deref(&self) -> &WorkerConfig {
        &self.sections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<WorkerConfig> {
        with_env(text, &[])
    }

    fn with_env(text: &str, vars: &[(&str, &str)]) -> anyhow::Result<WorkerConfig> {
        let vars = vars
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        WorkerConfig::from_text(text, "worker.toml", vars).map(|(settings, _)| settings.sections)
    }

    fn error(result: anyhow::Result<WorkerConfig>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn the_shipped_worker_toml_is_the_default() {
        let path = std::path::PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
        )
        .join("../../worker.toml");
        let shipped = WorkerConfig::load(&path, true).unwrap().sections;
        let default = WorkerConfig::default();
        assert_eq!(shipped.limits.default, default.limits.default);
        assert_eq!(shipped.limits.max, default.limits.max);
        assert_eq!(shipped.runtime.component, default.runtime.component);
        assert_eq!(shipped.runtime.max_instances, default.runtime.max_instances);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse("[limits]\nfuel_budget = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fuel_budget"), "{err}");
        let err = parse("[limits]\nmemory_mb = 0\n").unwrap_err().to_string();
        assert!(err.contains("limits.memory_mb"), "{err}");
        let err = parse("[limits]\ntimeout_ms = 500000\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.timeout_ms") && err.contains("limits.max.timeout_ms"),
            "{err}"
        );
        let err = parse("[runtime]\nwarm_instances = 64\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime.warm_instances"), "{err}");
        // Type errors and unknown keys name the dotted key and the line, nested tables too.
        let err = error(parse("[nats]\nurl = \"n\"\n\n[limits.max]\nfuel = \"x\"\n"));
        assert!(
            err.starts_with("worker.toml, line 5: limits.max.fuel: invalid type: string"),
            "{err}"
        );
        let err = error(parse("[limits]\nfuel_budget = 3\n"));
        assert!(
            err.starts_with("worker.toml, line 1: unknown key limits.fuel_budget"),
            "{err}"
        );
        let err = error(parse("[nats]\nmax_concurrent_jobs = 0\n"));
        assert!(err.contains("nats.max_concurrent_jobs"), "{err}");
        let err = error(parse("[egress]\nallow_private_cidrs = [\"ten\"]\n"));
        assert!(err.contains("egress.allow_private_cidrs[0]"), "{err}");
        let err = error(parse("[llm]\nmodel = \"m\"\n"));
        assert!(err.contains("llm.base_url"), "{err}");
        let err = error(parse(
            "[nats]\nuser = \"u\"\ntoken = \"t\"\npassword = \"p\"\n",
        ));
        assert!(err.contains("nats.token and nats.user"), "{err}");
        let err = error(parse("[nats]\nurl = 1\n"));
        assert!(err.contains("nats.url: invalid type"), "{err}");
        let err = error(parse("[nats\nurl = 1\n"));
        assert!(err.contains("line 1"), "{err}");
        let err = error(parse("[limits]\nmax_effects = 0\n"));
        assert!(
            err.ends_with("limits.max_effects: must be at least 1"),
            "{err}"
        );
        let err = error(parse("[limits]\nmax_trace_entries = 99\n"));
        assert!(
            err.contains(
                "limits.max_trace_entries: 99 is less than limits.max.max_http_calls (100)"
            ),
            "{err}"
        );
        let config = parse("[limits]\nmax_effects = 7\nmax_trace_entries = 300\n").unwrap();
        assert_eq!(
            (config.limits.max_effects, config.limits.max_trace_entries),
            (7, 300)
        );
    }

    #[test]
    fn environment_variables_override_the_file() {
        let config = with_env(
            "[nats]\nurl = \"nats://file:4222\"\nmax_concurrent_jobs = 3\n",
            &[
                ("ACTION_WORKER__NATS__URL", "nats://env:4222"),
                ("ACTION_WORKER__LIMITS__MAX__FUEL", "60000000000"),
                (
                    "ACTION_WORKER__EGRESS__ALLOW_PRIVATE_CIDRS",
                    r#"["10.0.0.0/8"]"#,
                ),
                ("ACTION_WORKER__NATS__DURABLE", "false"),
                ("ACTION_WORKER_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(config.nats.url.as_deref(), Some("nats://env:4222"));
        assert_eq!(config.nats.max_concurrent_jobs, 3);
        assert_eq!(config.limits.max.fuel, 60_000_000_000);
        assert_eq!(config.egress.allow_private_cidrs, ["10.0.0.0/8"]);
        assert!(!config.nats.durable);
    }

    #[test]
    fn environment_errors_name_the_variable_and_the_key() {
        let err = error(with_env("", &[("ACTION_WORKER__NATS__URLL", "x")]));
        assert_eq!(err, "ACTION_WORKER__NATS__URLL: unknown key nats.urll");
        let err = error(with_env("", &[("ACTION_WORKER__LIMITS__MEMORY_MB", "0")]));
        assert!(
            err.starts_with(
                "worker.toml with ACTION_WORKER__LIMITS__MEMORY_MB from the environment: \
                 invalid configuration: limits.memory_mb"
            ),
            "{err}"
        );
        let err = error(with_env("", &[("ACTION_WORKER__NATS__MAX_ATTEMPTS", "-1")]));
        assert!(
            err.starts_with("ACTION_WORKER__NATS__MAX_ATTEMPTS: nats.max_attempts:"),
            "{err}"
        );
    }

    #[test]
    fn the_printed_configuration_redacts_secrets() {
        let config = with_env(
            "[nats]\nuser = \"worker\"\npassword = \"hunter2\"\n",
            &[("ACTION_WORKER__NATS__URL", "nats://env:4222")],
        )
        .unwrap();
        let text = config.to_toml().unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("password = \"[redacted]\""), "{text}");
        assert!(text.contains("url = \"nats://env:4222\""), "{text}");
        assert!(!format!("{config:?}").contains("hunter2"));
        let config = with_env("", &[("ACTION_WORKER__NATS__TOKEN", "s3cret")]).unwrap();
        assert!(!config.to_toml().unwrap().contains("s3cret"));
        assert_eq!(config.nats.token.unwrap().expose(), "s3cret");
    }
}
