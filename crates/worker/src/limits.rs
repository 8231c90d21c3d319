//! The limits step of the [pipeline](crate::pipeline): the action's overrides over the
//! worker's defaults, under its caps; an API action's own `timeout_ms`, and the job's.

use std::time::Duration;

use action_protocol::ActionDefinition;
use action_sandbox::JobLimits;

use crate::config::LimitsConfig;

pub fn effective_limits(
    config: &LimitsConfig,
    action: &ActionDefinition,
    job_timeout_ms: Option<u64>,
) -> JobLimits {
    let mut limits = config.default.to_job_limits();
    let o = &action.limits;
    if let Some(ms) = o.timeout_ms {
        limits.timeout = Duration::from_millis(ms);
    }
    if let Some(fuel) = o.fuel {
        limits.fuel = fuel;
    }
    if let Some(mb) = o.memory_mb {
        limits.memory_bytes = mb << 20;
    }
    if let Some(calls) = o.max_http_calls {
        limits.max_http_calls = calls;
    }
    let mut limits = limits.capped_by(&config.max.to_job_limits());
    // An API action's request timeout, and a job's, only shorten it (SPEC §3, §5).
    if let Some(ms) = action.api.as_ref().and_then(|api| api.timeout_ms) {
        limits.timeout = limits.timeout.min(Duration::from_millis(ms));
    }
    if let Some(ms) = job_timeout_ms {
        limits.timeout = limits.timeout.min(Duration::from_millis(ms));
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;
    use action_protocol::ActionLimits;

    #[test]
    fn overrides_are_capped_and_a_job_only_shortens_the_timeout() {
        let config = LimitsConfig::default();
        let mut action: ActionDefinition = serde_json::from_value(serde_json::json!({
            "name": "a", "type": "python", "python": {"code": "x"}
        }))
        .unwrap();
        action.limits = ActionLimits {
            timeout_ms: Some(999_999_999),
            memory_mb: Some(64),
            ..Default::default()
        };
        let limits = effective_limits(&config, &action, None);
        assert_eq!(limits.timeout, Duration::from_millis(config.max.timeout_ms));
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(
            effective_limits(&config, &action, Some(100)).timeout,
            Duration::from_millis(100)
        );
    }
}
