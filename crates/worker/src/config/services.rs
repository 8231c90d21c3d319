//! `[egress]`, `[secrets]`, `[llm]` and `[sheets]`: everything an action reaches outside.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

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
    /// Largest request body per call (forms, JSON, multipart uploads).
    pub max_request_bytes: u64,
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
            max_request_bytes: d.max_request_bytes,
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
        if self.max_request_bytes == 0 {
            bail!("egress.max_request_bytes: must be at least 1");
        }
        if self.connect_timeout_ms == 0 {
            bail!("egress.connect_timeout_ms: must be at least 1");
        }
        Ok(action_egress::EgressConfig {
            allow_private_cidrs: cidrs,
            max_response_bytes: self.max_response_bytes,
            max_request_bytes: self.max_request_bytes,
            max_redirects: self.max_redirects,
            connect_timeout: std::time::Duration::from_millis(self.connect_timeout_ms),
            ..action_egress::EgressConfig::default()
        })
    }
}
