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
