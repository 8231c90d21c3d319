//! `[tenants]`: how a worker is shared among the businesses it serves. Free slots go to the
//! tenants with jobs waiting in turn (weighted round robin), one tenant never holds the last
//! `1 - max_share` of the slots while another may need them, and quotas bound a tenant (or one
//! of its actions): jobs in flight and jobs per second.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[tenants]`, with `[tenants.overrides.<tenant>]` and `[tenants.actions."<tenant>.<action>"]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsSection {
    /// Every tenant's weight: its part of the free slots when several tenants wait.
    pub weight: u32,
    /// Every tenant's quota of jobs running at once, in one process; 0: none.
    pub max_in_flight: u32,
    /// Every tenant's quota of jobs started per second, in one process; 0: none.
    pub jobs_per_second: f64,
    /// The part of a process's job slots (`nats.max_concurrent_jobs`) one tenant may hold;
    /// the rest is headroom, so that another tenant's job starts at once. 1: no headroom.
    pub max_share: f64,
    /// How long a request-reply job may wait for a slot (its tenant over a quota, or the
    /// worker full) before it is answered `rejected`, `error.kind = "over_capacity"`.
    pub queue_deadline_ms: u64,
    /// Jobs that may wait for a slot in one process, all tenants together; past it a job is
    /// answered over capacity at once.
    pub max_queued: usize,
    /// By tenant name; `""` is the jobs without a tenant.
    pub overrides: BTreeMap<String, TenantOverride>,
    /// Quotas of one action: `"<tenant>.<action>"`, or `"<action>"` for jobs without a tenant.
    pub actions: BTreeMap<String, Quota>,
}

/// A tenant's weight (its share of the slots when several wait) and quotas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TenantPolicy {
    pub weight: u32,
    pub quota: Quota,
}

/// What a tenant (or an action) may have: 0 is no quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Jobs running at once, in one process.
    pub max_in_flight: u32,
    /// Jobs started per second, in one process (a burst of one second's worth is allowed).
    pub jobs_per_second: f64,
}

/// One tenant's settings over the default; what is unset is the default's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantOverride {
    pub weight: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub jobs_per_second: Option<f64>,
}

/// `tenants.max_share` by default: with 16 slots, two are kept for other tenants.
pub const DEFAULT_MAX_SHARE: f64 = 0.875;

impl Default for TenantsSection {
    fn default() -> Self {
        Self {
            weight: 1,
            max_in_flight: 0,
            jobs_per_second: 0.0,
            max_share: DEFAULT_MAX_SHARE,
            queue_deadline_ms: 10_000,
            max_queued: 10_000,
            overrides: BTreeMap::new(),
            actions: BTreeMap::new(),
        }
    }
}

impl TenantsSection {
    /// Every tenant's policy, before overrides.
    pub fn default_policy(&self) -> TenantPolicy {
        TenantPolicy {
            weight: self.weight,
            quota: Quota {
                max_in_flight: self.max_in_flight,
                jobs_per_second: self.jobs_per_second,
            },
        }
    }

    /// The policy of `tenant` (`None`: the jobs without a tenant).
    pub fn policy(&self, tenant: Option<&str>) -> TenantPolicy {
        let Some(o) = self.overrides.get(tenant.unwrap_or("")) else {
            return self.default_policy();
        };
        TenantPolicy {
            weight: o.weight.unwrap_or(self.weight),
            quota: Quota {
                max_in_flight: o.max_in_flight.unwrap_or(self.max_in_flight),
                jobs_per_second: o.jobs_per_second.unwrap_or(self.jobs_per_second),
            },
        }
    }

    /// The quota of `action` of `tenant`, if it has one.
    pub fn action_quota(&self, tenant: Option<&str>, action: &str) -> Option<Quota> {
        let key = match tenant {
            Some(tenant) => format!("{tenant}.{action}"),
            None => action.to_string(),
        };
        self.actions.get(&key).copied()
    }

    /// The slots one tenant may hold of `slots`: at least one, and one fewer than all when
    /// there are two or more and `max_share` is below 1.
    pub fn share_of(&self, slots: usize) -> usize {
        let share = (slots as f64 * self.max_share).floor() as usize;
        match slots {
            0 | 1 => slots,
            _ if self.max_share >= 1.0 => slots,
            _ => share.clamp(1, slots - 1),
        }
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !(self.max_share > 0.0 && self.max_share <= 1.0) {
            bail!("tenants.max_share: {} is outside (0, 1]", self.max_share);
        }
        if self.max_queued == 0 {
            bail!("tenants.max_queued: must be at least 1");
        }
        check_policy("tenants", &self.default_policy())?;
        for (name, o) in &self.overrides {
            let key = format!("tenants.overrides.{name:?}");
            if !name.is_empty() && !action_protocol::is_valid_tenant(name) {
                bail!("{key}: not a tenant name (1-64 letters, digits, '_' or '-')");
            }
            check_policy(
                &key,
                &TenantPolicy {
                    weight: o.weight.unwrap_or(1),
                    quota: Quota {
                        max_in_flight: o.max_in_flight.unwrap_or(0),
                        jobs_per_second: o.jobs_per_second.unwrap_or(0.0),
                    },
                },
            )?;
        }
        for (key, quota) in &self.actions {
            check_quota(&format!("tenants.actions.{key:?}"), quota)?;
        }
        Ok(())
    }
}

fn check_policy(key: &str, policy: &TenantPolicy) -> anyhow::Result<()> {
    if !(1..=1000).contains(&policy.weight) {
        bail!("{key}.weight: {} is outside 1..=1000", policy.weight);
    }
    check_quota(key, &policy.quota)
}

fn check_quota(key: &str, quota: &Quota) -> anyhow::Result<()> {
    let rate = quota.jobs_per_second;
    if !(rate.is_finite() && rate >= 0.0) {
        bail!("{key}.jobs_per_second: {rate} is not a rate (0 is none)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_inherit_what_they_leave_unset() {
        let section: TenantsSection = toml::from_str(
            "weight = 2\nmax_in_flight = 4\n[overrides.acme]\njobs_per_second = 10.0\n[overrides.\"\"]\nweight = 3\n",
        )
        .unwrap();
        section.validate().unwrap();
        let acme = section.policy(Some("acme"));
        assert_eq!((acme.weight, acme.quota.max_in_flight), (2, 4));
        assert_eq!(acme.quota.jobs_per_second, 10.0);
        assert_eq!(section.policy(None).weight, 3);
        assert_eq!(section.policy(Some("other")), section.default_policy());
    }

    #[test]
    fn a_share_leaves_headroom_but_never_nothing() {
        let section = TenantsSection::default();
        assert_eq!(section.share_of(16), 14);
        assert_eq!(section.share_of(2), 1);
        assert_eq!(section.share_of(1), 1);
        let all = TenantsSection {
            max_share: 1.0,
            ..TenantsSection::default()
        };
        assert_eq!(all.share_of(16), 16);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |text: &str| {
            let section: TenantsSection = toml::from_str(text).unwrap();
            format!("{:#}", section.validate().unwrap_err())
        };
        assert!(bad("max_share = 0.0").starts_with("tenants.max_share"));
        assert!(bad("weight = 0").starts_with("tenants.weight"));
        assert!(bad("[overrides.\"a b\"]\nweight = 1").contains("not a tenant name"));
        assert!(bad("[actions.\"acme.x\"]\njobs_per_second = -1.0").starts_with("tenants.actions"));
    }
}
