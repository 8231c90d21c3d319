//! `[admin]` and `[log]`: what operators see of a running worker.

use anyhow::bail;
use serde::{Deserialize, Serialize};

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

impl LogSection {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            bail!(
                "log.level: {:?} is not a tracing filter such as \"info\"",
                self.level
            );
        }
        Ok(())
    }
}

/// `[telemetry]`: traces of jobs, exported with OpenTelemetry ([`crate::telemetry`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySection {
    /// Where spans are exported with OTLP over HTTP (protobuf), e.g.
    /// `http://127.0.0.1:4318/v1/traces` (a local OpenTelemetry Collector); empty: off.
    pub otlp_endpoint: String,
    /// The share of new traces sampled (0 to 1); a job whose `traceparent` says sampled is.
    pub sample_ratio: f64,
    /// Outbound HTTP requests (scripts', API actions', the helpers') carry `traceparent`.
    pub propagate: bool,
    /// The `service.name` of the spans.
    pub service_name: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
            propagate: false,
            service_name: "action-worker".into(),
        }
    }
}

impl TelemetrySection {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            bail!(
                "telemetry.sample_ratio: {} is outside 0..=1",
                self.sample_ratio
            );
        }
        let endpoint = &self.otlp_endpoint;
        if !endpoint.is_empty() && !endpoint.starts_with("http://") {
            bail!(
                "telemetry.otlp_endpoint: {endpoint:?} is not an http:// URL (OTLP over HTTP to a \
                 local collector, which forwards with TLS)"
            );
        }
        Ok(())
    }
}
