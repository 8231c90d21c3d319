//! `worker.toml`: every key, its default, and the check that names a wrong one; environment
//! variables `ACTION_WORKER__<SECTION>__<KEY>` override keys ([`env`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use action_sandbox::{JobLimits, SandboxConfig};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub mod env;

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
    pub admin: AdminSection,
    pub log: LogSection,
}

/// `[admin]`: the admin HTTP port of `serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`host:port`; port 0: any free
    /// port, printed at start); empty: no admin port.
    pub listen: String,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl AdminSection {
    /// The address to bind, or `None` when the admin port is off.
    pub fn address(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            anyhow::anyhow!(
                "admin.listen: {:?} is not an address such as \"0.0.0.0:9464\"",
                self.listen
            )
        })
    }
}

/// The log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`: logs on stderr, through `tracing`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` (human-readable) or `json` (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, `action_worker=debug,warn`… The environment
    /// variable `ACTION_WORKER_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[nats]`: where jobs come from (SPEC §6).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    /// The NATS server, e.g. `nats://nats.internal:4222`. Unset: `serve` starts a local
    /// nats-server with JetStream, bound to 127.0.0.1 (the embedded default).
    pub url: Option<String>,
    /// The subject prefix: `<prefix>.run`, `<prefix>.test`.
    pub subject_prefix: String,
    /// Jobs run at once; further requests wait (backpressure).
    pub max_concurrent_jobs: usize,
    /// The embedded server's binary: `nats-server` on PATH, else `.venv/bin/nats-server`.
    pub server_binary: Option<PathBuf>,
    /// The embedded server's JetStream storage.
    pub data_dir: PathBuf,
    /// The embedded server's port (`submit` finds it there); 0: any free port.
    pub embedded_port: u16,
    /// Consume durable jobs from stream `ACTIONS_JOBS` (`<prefix>.jobs.>`) as well as
    /// request-reply.
    pub durable: bool,
    /// How long a delivered durable job may go without an ack or a progress ack before
    /// JetStream hands it to another worker. A running job sends progress acks every third of it.
    pub ack_wait_ms: u64,
    /// Deliveries of a durable job that are run; the delivery after the last one is not run:
    /// it gets a `failed` result and is terminated. The consumer's max_deliver is this plus one.
    pub max_attempts: u32,
    /// How long results stay in stream `ACTIONS_RESULTS` (and a job id cannot yield another).
    pub results_max_age_s: u64,
    /// Replicas of the streams and the registry bucket the worker creates (3 in a cluster).
    pub stream_replicas: usize,
    /// On SIGTERM/SIGINT: how long in-flight jobs may take to finish before the worker exits
    /// and leaves them to redelivery.
    pub shutdown_grace_ms: u64,
    // How the worker proves who it is: at most one of the four methods ([`crate::connect`]
    // checks the combinations). None: no authentication, as the embedded server wants.
    /// A `.creds` file (user JWT and NKey seed), as `nsc` writes it: decentralised auth.
    pub credentials_file: Option<PathBuf>,
    /// A file holding a user NKey seed (`SU…`); the server lists the public key.
    pub nkey_seed_file: Option<PathBuf>,
    /// A token, inline; prefer `token_env`.
    pub token: Option<Secret>,
    /// The environment variable holding the token.
    pub token_env: Option<String>,
    /// A user name, with `password` or `password_env`.
    pub user: Option<String>,
    /// The password, inline; prefer `password_env`.
    pub password: Option<Secret>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// Refuse a connection without TLS. Also implied by a `tls://` URL and by any `tls_*` file.
    pub tls_required: bool,
    /// PEM file of the CA(s) that signed the server's certificate; replaces the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

/// A configured secret (a NATS token or password). It reaches the connection alone: `Debug`
/// and `Serialize` (what `check-config` prints) show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl Default for NatsSection {
    fn default() -> Self {
        Self {
            url: None,
            subject_prefix: "actions".into(),
            max_concurrent_jobs: 16,
            server_binary: None,
            data_dir: "data/nats".into(),
            embedded_port: 4222,
            durable: true,
            ack_wait_ms: 30_000,
            max_attempts: 3,
            results_max_age_s: 86_400,
            stream_replicas: 1,
            shutdown_grace_ms: 30_000,
            credentials_file: None,
            nkey_seed_file: None,
            token: None,
            token_env: None,
            user: None,
            password: None,
            password_env: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[sheets]`: Google Sheets for `add_google_sheets_row`. Unset: not configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SheetsSection {
    /// The service-account key (JSON, as Google issues it). Keep it readable by the worker alone.
    pub service_account_file: Option<PathBuf>,
    /// The Sheets API; `https://sheets.googleapis.com` when unset.
    pub base_url: Option<String>,
    /// The OAuth token endpoint; the key's `token_uri` when unset.
    pub token_url: Option<String>,
    /// Per request.
    pub timeout_ms: u64,
}

impl Default for SheetsSection {
    fn default() -> Self {
        Self {
            service_account_file: None,
            base_url: None,
            token_url: None,
            timeout_ms: 10_000,
        }
    }
}

impl SheetsSection {
    /// `None` when not configured.
    pub fn client(&self) -> anyhow::Result<Option<action_helpers::SheetsClient>> {
        let Some(path) = &self.service_account_file else {
            return Ok(None);
        };
        let key = std::fs::read_to_string(path).with_context(|| {
            format!(
                "sheets.service_account_file: cannot read {}",
                path.display()
            )
        })?;
        let config = action_helpers::SheetsConfig::from_key_json(
            &key,
            self.base_url.clone(),
            self.token_url.clone(),
            std::time::Duration::from_millis(self.timeout_ms.max(1)),
        )
        .map_err(|e| anyhow::anyhow!("sheets.service_account_file ({}): {e}", path.display()))?;
        Ok(Some(action_helpers::SheetsClient::new(config)))
    }
}

/// `[llm]`: the OpenAI-compatible endpoint behind `llm_classify_*`. Unset: not configured,
/// and the helpers fail (or return their fallback) with a message that says so.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSection {
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The name of a secret without a tenant (see `[secrets]`) holding the API key.
    pub api_key_secret: Option<String>,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub max_calls_per_job: u32,
}

impl Default for LlmSection {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key_secret: None,
            timeout_ms: 10_000,
            max_attempts: 2,
            max_calls_per_job: 10,
        }
    }
}

impl LlmSection {
    /// `None` when not configured; an error when half configured.
    pub fn llm_config(&self) -> anyhow::Result<Option<action_helpers::LlmConfig>> {
        match (&self.base_url, &self.model) {
            (None, None) => Ok(None),
            (Some(base_url), Some(model)) => {
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    bail!("llm.base_url: must start with http:// or https://");
                }
                if self.timeout_ms == 0 || self.max_attempts == 0 {
                    bail!("llm.timeout_ms and llm.max_attempts: must be at least 1");
                }
                Ok(Some(action_helpers::LlmConfig {
                    base_url: base_url.clone(),
                    model: model.clone(),
                    api_key_secret: self.api_key_secret.clone(),
                    timeout: std::time::Duration::from_millis(self.timeout_ms),
                    max_attempts: self.max_attempts,
                    max_calls_per_job: self.max_calls_per_job,
                }))
            }
            (None, Some(_)) => bail!("llm.base_url: missing (llm.model is set)"),
            (Some(_), None) => bail!("llm.model: missing (llm.base_url is set)"),
        }
    }
}

/// `[secrets]`: where `{{secrets.NAME}}` references are resolved from.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSection {
    /// A TOML file of `[[secret]]` entries (see `docs/security.md`); none by default.
    pub file: Option<PathBuf>,
}

/// `[egress]`: every outbound HTTP request (SPEC §7).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressSection {
    /// Internal ranges opened on purpose, e.g. `["10.20.0.0/16"]`. Empty: none.
    pub allow_private_cidrs: Vec<String>,
    /// Largest response body per call.
    pub max_response_bytes: u64,
    /// Redirects followed per call.
    pub max_redirects: u32,
    /// Longest wait for a connection.
    pub connect_timeout_ms: u64,
}

impl Default for EgressSection {
    fn default() -> Self {
        let d = action_egress::EgressConfig::default();
        Self {
            allow_private_cidrs: vec![],
            max_response_bytes: d.max_response_bytes,
            max_redirects: d.max_redirects,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
        }
    }
}

impl EgressSection {
    pub fn egress_config(&self) -> anyhow::Result<action_egress::EgressConfig> {
        let mut cidrs = Vec::with_capacity(self.allow_private_cidrs.len());
        for (i, text) in self.allow_private_cidrs.iter().enumerate() {
            let net: ipnet::IpNet = text.parse().map_err(|e| {
                anyhow::anyhow!(
                    "egress.allow_private_cidrs[{i}]: {text:?} is not a CIDR range: {e}"
                )
            })?;
            cidrs.push(net);
        }
        if self.max_response_bytes == 0 {
            bail!("egress.max_response_bytes: must be at least 1");
        }
        if self.connect_timeout_ms == 0 {
            bail!("egress.connect_timeout_ms: must be at least 1");
        }
        Ok(action_egress::EgressConfig {
            allow_private_cidrs: cidrs,
            max_response_bytes: self.max_response_bytes,
            max_redirects: self.max_redirects,
            connect_timeout: std::time::Duration::from_millis(self.connect_timeout_ms),
            ..action_egress::EgressConfig::default()
        })
    }
}

/// `[runtime]`: the Python runtime component and the instance pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// The component built by `make runtime`; relative paths are taken from the working directory.
    pub component: PathBuf,
    /// Compiled components are cached here (one file per runtime build and engine settings).
    pub cache_dir: PathBuf,
    /// Instances that may exist at once (running jobs plus warm ones).
    pub max_instances: u32,
    /// Instances made ready ahead of their jobs.
    pub warm_instances: u32,
    /// MiB of each memory slot kept mapped between jobs.
    pub keep_resident_mb: u64,
    /// KiB of WebAssembly stack per job.
    pub max_wasm_stack_kb: u64,
    /// Worker processes `serve` runs (itself and copies, see `crate::processes`); 0: one
    /// per CPU.
    pub processes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            component: "build/action-runtime.wasm".into(),
            cache_dir: "data/cache".into(),
            max_instances: 64,
            warm_instances: 1,
            keep_resident_mb: 8,
            max_wasm_stack_kb: 1024,
            processes: 0,
        }
    }
}

/// `[limits]` are the defaults of every job; `[limits.max]` caps what an action may ask for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    #[serde(flatten)]
    pub default: LimitValues,
    pub max: LimitValues,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default: LimitValues::default(),
            max: LimitValues {
                timeout_ms: 120_000,
                fuel: 8 * JobLimits::FUEL_PER_SECOND,
                memory_mb: 256,
                max_http_calls: 100,
                output_bytes: 4 << 20,
                log_bytes: 256 << 10,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitValues {
    pub timeout_ms: u64,
    pub fuel: u64,
    pub memory_mb: u64,
    pub max_http_calls: u32,
    pub output_bytes: u32,
    pub log_bytes: u32,
}

impl Default for LimitValues {
    fn default() -> Self {
        let d = JobLimits::default();
        Self {
            timeout_ms: d.timeout.as_millis() as u64,
            fuel: d.fuel,
            memory_mb: d.memory_bytes >> 20,
            max_http_calls: d.max_http_calls,
            output_bytes: d.output_bytes,
            log_bytes: d.log_bytes,
        }
    }
}

impl LimitValues {
    pub fn to_job_limits(self) -> JobLimits {
        JobLimits {
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            fuel: self.fuel,
            memory_bytes: self.memory_mb << 20,
            max_http_calls: self.max_http_calls,
            output_bytes: self.output_bytes,
            log_bytes: self.log_bytes,
        }
    }

    fn validate(&self, section: &str) -> anyhow::Result<()> {
        for (key, value) in [
            ("timeout_ms", self.timeout_ms),
            ("fuel", self.fuel),
            ("memory_mb", self.memory_mb),
            ("output_bytes", u64::from(self.output_bytes)),
            ("log_bytes", u64::from(self.log_bytes)),
        ] {
            if value == 0 {
                bail!("{section}.{key}: must be at least 1");
            }
        }
        if self.memory_mb < 96 {
            bail!(
                "{section}.memory_mb: {} is too small: the Python runtime alone needs about 60 MiB",
                self.memory_mb
            );
        }
        Ok(())
    }
}

impl WorkerConfig {
    /// Reads `path` with the `ACTION_WORKER__…` environment variables over it (see
    /// [`env`]); a missing file at the default path means all defaults.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        Self::load_with_env(path, explicit, std::env::vars_os()).map(|(config, _)| config)
    }

    /// [`Self::load`] with the environment given, returning the names of the variables
    /// that went into the configuration as well.
    pub fn load_with_env(
        path: &Path,
        explicit: bool,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<(Self, Vec<String>)> {
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
    /// overrides merged into it, deserialised and validated. Every error names the key, and
    /// the variable when one set it.
    pub fn from_text(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> anyhow::Result<(Self, Vec<String>)> {
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
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(", line {line}")
                })
                .unwrap_or_default();
            let named =
                env::first_bad_key(&file).unwrap_or_else(|| e.message().trim_end().to_string());
            anyhow::anyhow!("{origin}{line}: {named}")
        })?;
        let vars: Vec<String> = overrides.into_iter().map(|o| o.var).collect();
        // One message, not a chain, so that any rendering of it names the key.
        config.validate().map_err(|e| {
            let from_env = if vars.is_empty() {
                String::new()
            } else {
                format!(" with {} from the environment", vars.join(", "))
            };
            anyhow::anyhow!("{origin}{from_env}: invalid configuration: {e:#}")
        })?;
        Ok((config, vars))
    }

    /// The effective configuration as TOML, for `check-config`: secrets show `[redacted]`.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("cannot print the configuration as TOML")
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.limits.default.validate("limits")?;
        self.limits.max.validate("limits.max")?;
        let (d, m) = (&self.limits.default, &self.limits.max);
        for (key, default, max) in [
            ("timeout_ms", d.timeout_ms, m.timeout_ms),
            ("fuel", d.fuel, m.fuel),
            ("memory_mb", d.memory_mb, m.memory_mb),
            (
                "max_http_calls",
                u64::from(d.max_http_calls),
                u64::from(m.max_http_calls),
            ),
            (
                "output_bytes",
                u64::from(d.output_bytes),
                u64::from(m.output_bytes),
            ),
            ("log_bytes", u64::from(d.log_bytes), u64::from(m.log_bytes)),
        ] {
            if default > max {
                bail!("limits.{key}: the default {default} is over limits.max.{key} = {max}");
            }
        }
        self.egress.egress_config()?;
        self.llm.llm_config()?;
        if self.nats.max_concurrent_jobs == 0 {
            bail!("nats.max_concurrent_jobs: must be at least 1");
        }
        let prefix = &self.nats.subject_prefix;
        if prefix.is_empty()
            || prefix.contains([' ', '*', '>'])
            || prefix.starts_with('.')
            || prefix.ends_with('.')
        {
            bail!("nats.subject_prefix: {prefix:?} is not a subject prefix such as \"actions\"");
        }
        self.admin.address()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bail!(
                "log.level: {:?} is not a tracing filter such as \"info\"",
                self.log.level
            );
        }
        let n = &self.nats;
        if n.ack_wait_ms < 1000 {
            bail!("nats.ack_wait_ms: {} is under 1000", n.ack_wait_ms);
        }
        if n.max_attempts == 0 || n.max_attempts > 100 {
            bail!("nats.max_attempts: {} is outside 1..=100", n.max_attempts);
        }
        if n.results_max_age_s < 300 {
            bail!(
                "nats.results_max_age_s: {} is under 300 (the streams' duplicate window is 2 minutes)",
                n.results_max_age_s
            );
        }
        if !(1..=5).contains(&n.stream_replicas) {
            bail!(
                "nats.stream_replicas: {} is outside 1..=5",
                n.stream_replicas
            );
        }
        crate::connect::check(n)?;
        let r = &self.runtime;
        if r.max_instances == 0 {
            bail!("runtime.max_instances: must be at least 1");
        }
        if r.warm_instances >= r.max_instances {
            bail!(
                "runtime.warm_instances: must be less than runtime.max_instances ({})",
                r.max_instances
            );
        }
        if !(64..=16384).contains(&r.max_wasm_stack_kb) {
            bail!(
                "runtime.max_wasm_stack_kb: {} is outside 64..=16384",
                r.max_wasm_stack_kb
            );
        }
        Ok(())
    }

    pub fn sandbox_config(&self) -> SandboxConfig {
        let r = &self.runtime;
        let mut config = SandboxConfig::new(&r.component);
        config.cache_dir = Some(r.cache_dir.clone());
        config.max_instances = r.max_instances;
        config.warm_instances = r.warm_instances;
        config.max_memory_bytes = self.limits.max.memory_mb << 20;
        config.keep_resident_bytes =
            usize::try_from(r.keep_resident_mb << 20).unwrap_or(usize::MAX);
        config.max_wasm_stack = usize::try_from(r.max_wasm_stack_kb << 10).unwrap_or(1 << 20);
        config
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
        WorkerConfig::from_text(text, "worker.toml", vars).map(|(config, _)| config)
    }

    fn error(result: anyhow::Result<WorkerConfig>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    #[test]
    fn the_shipped_worker_toml_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../worker.toml");
        let shipped = WorkerConfig::load(&path, true).unwrap();
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
