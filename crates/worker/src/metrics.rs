//! The worker's metrics, rendered in the Prometheus text format (version 0.0.4) on the admin
//! port's `/metrics`. One process-wide registry: the job host records egress outcomes without
//! being handed a handle.
//!
//! Labels that come from jobs (action names, hosts) are capped at [`MAX_SERIES`] distinct
//! values per metric; past that they count under `other`, so a stream of made-up names cannot
//! grow the worker's memory or the scrape without bound.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use action_protocol::{JobResult, Status};

/// Distinct label values per metric before `other`.
pub const MAX_SERIES: usize = 500;

const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
const FUEL_BUCKETS: &[f64] = &[1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11];
const MIB: f64 = 1048576.0;
const MEMORY_BUCKETS: &[f64] = &[
    64.0 * MIB,
    72.0 * MIB,
    96.0 * MIB,
    128.0 * MIB,
    192.0 * MIB,
    256.0 * MIB,
    512.0 * MIB,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// A counter by label values, capped at [`MAX_SERIES`] series.
#[derive(Debug, Default)]
struct Family {
    series: BTreeMap<Vec<String>, u64>,
}

impl Family {
    fn add(&mut self, mut labels: Vec<String>, n: u64) {
        if !self.series.contains_key(&labels) && self.series.len() >= MAX_SERIES {
            labels = labels.iter().map(|_| "other".to_string()).collect();
        }
        *self.series.entry(labels).or_default() += n;
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug)]
struct Inner {
    jobs: Family,
    job_seconds: BTreeMap<String, Histogram>,
    fuel: Histogram,
    memory: Histogram,
    egress: Family,
    denials: Family,
    limits: Family,
    panics: Family,
    tenant_jobs: Family,
    tenant_fuel: Family,
    tenant_waits: BTreeMap<String, Histogram>,
    over_capacity: Family,
}

#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    redeliveries: AtomicU64,
    reannounced: AtomicU64,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        inner: Mutex::new(Inner {
            jobs: Family::default(),
            job_seconds: BTreeMap::new(),
            fuel: Histogram::new(FUEL_BUCKETS),
            memory: Histogram::new(MEMORY_BUCKETS),
            egress: Family::default(),
            denials: Family::default(),
            limits: Family::default(),
            panics: Family::default(),
            tenant_jobs: Family::default(),
            tenant_fuel: Family::default(),
            tenant_waits: BTreeMap::new(),
            over_capacity: Family::default(),
        }),
        redeliveries: AtomicU64::new(0),
        reannounced: AtomicU64::new(0),
    })
}

pub(crate) fn status_label(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::ActionError => "action_error",
        Status::LimitExceeded => "limit_exceeded",
        Status::Rejected => "rejected",
        Status::Failed => "failed",
    }
}

impl Metrics {
    /// A finished job: `path` is `request_reply` or `durable`, `kind` `python`, `api` or
    /// `none` (never ran).
    pub fn job(&self, path: &str, kind: &str, result: &JobResult, elapsed: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let action = if result.action.is_empty() {
            "-".to_string()
        } else {
            result.action.clone()
        };
        inner.jobs.add(
            vec![
                action,
                status_label(result.status).to_string(),
                path.to_string(),
            ],
            1,
        );
        inner
            .job_seconds
            .entry(kind.to_string())
            .or_insert_with(|| Histogram::new(SECONDS_BUCKETS))
            .observe(elapsed.as_secs_f64());
        if kind == "python" {
            inner.fuel.observe(result.stats.fuel_used as f64);
            inner.memory.observe(result.stats.memory_peak_bytes as f64);
        }
        if result.status == Status::LimitExceeded {
            let limit = result
                .error
                .as_ref()
                .and_then(|e| e.limit)
                .map_or("unknown", |l| l.as_str())
                .to_string();
            inner.limits.add(vec![limit], 1);
        }
    }

    /// A finished job of `tenant` (`None`: no tenant, shown as `-`), with the time it waited
    /// for its slot when it got one.
    pub fn tenant_job(&self, tenant: Option<&str>, result: &JobResult, waited: Option<Duration>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let tenant = tenant.unwrap_or("-").to_string();
        let status = status_label(result.status).to_string();
        inner.tenant_jobs.add(vec![tenant.clone(), status], 1);
        if result.stats.fuel_used > 0 {
            inner
                .tenant_fuel
                .add(vec![tenant.clone()], result.stats.fuel_used);
        }
        if let Some(waited) = waited {
            let waits = &mut inner.tenant_waits;
            let key = if waits.contains_key(&tenant) || waits.len() < MAX_SERIES {
                tenant
            } else {
                "other".to_string()
            };
            waits
                .entry(key)
                .or_insert_with(|| Histogram::new(SECONDS_BUCKETS))
                .observe(waited.as_secs_f64());
        }
    }

    /// A job of `tenant` refused over capacity (a quota, or no slot in time).
    pub fn over_capacity(&self, tenant: Option<&str>) {
        if let Ok(mut inner) = self.inner.lock() {
            let tenant = tenant.unwrap_or("-").to_string();
            inner.over_capacity.add(vec![tenant], 1);
        }
    }

    /// One outbound HTTP request: `outcome` is the status class (`2xx`…) or the failure.
    pub fn egress(&self, host: &str, outcome: &str, denied_by: Option<&str>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner
            .egress
            .add(vec![host.to_string(), outcome.to_string()], 1);
        if let Some(rule) = denied_by {
            inner.denials.add(vec![rule.to_string()], 1);
        }
    }

    /// A panic caught on a job's path, by stage (`crate::guard`).
    pub fn panicked(&self, stage: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.panics.add(vec![stage.to_string()], 1);
        }
    }

    pub fn redelivered(&self) {
        self.redeliveries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reannounced(&self) {
        self.reannounced.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition, with the slot gauges given by the caller.
    pub fn render(&self, slots_total: usize, slots_free: usize) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        counter(
            &mut out,
            "action_worker_jobs_total",
            "Jobs finished, by action, status and path (request_reply or durable).",
            &["action", "status", "path"],
            &inner.jobs,
        );
        histograms(
            &mut out,
            "action_worker_job_duration_seconds",
            "Time from a job's arrival to its result, by kind (python, api, none).",
            "kind",
            &inner.job_seconds,
        );
        let _ = writeln!(
            out,
            "# HELP action_worker_job_fuel Fuel used per Python job.\n# TYPE action_worker_job_fuel histogram"
        );
        inner.fuel.render(&mut out, "action_worker_job_fuel", "");
        let _ = writeln!(
            out,
            "# HELP action_worker_job_memory_peak_bytes Peak linear memory per Python job (the runtime's own ~57 MiB included).\n# TYPE action_worker_job_memory_peak_bytes histogram"
        );
        inner
            .memory
            .render(&mut out, "action_worker_job_memory_peak_bytes", "");
        counter(
            &mut out,
            "action_worker_limit_trips_total",
            "Jobs stopped by a limit, by the limit (error.limit).",
            &["limit"],
            &inner.limits,
        );
        counter(
            &mut out,
            "action_worker_egress_requests_total",
            "Outbound HTTP requests, by host and outcome (status class, denied, timeout, error, too_large).",
            &["host", "outcome"],
            &inner.egress,
        );
        counter(
            &mut out,
            "action_worker_egress_denials_total",
            "Outbound requests refused by the egress policy, by rule.",
            &["rule"],
            &inner.denials,
        );
        counter(
            &mut out,
            "action_worker_job_panics_total",
            "Panics caught on a job's path (each job answered failed), by stage: decode, resolve, run, host_call, encode, store.",
            &["stage"],
            &inner.panics,
        );
        render_tenants(&mut out, &inner);
        let _ = writeln!(
            out,
            "# HELP action_worker_redeliveries_total Durable jobs received on a second or later delivery.\n# TYPE action_worker_redeliveries_total counter\naction_worker_redeliveries_total {}",
            self.redeliveries.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP action_worker_results_reannounced_total Durable jobs answered from a stored result instead of run.\n# TYPE action_worker_results_reannounced_total counter\naction_worker_results_reannounced_total {}",
            self.reannounced.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP action_worker_jobs_in_flight Jobs running now.\n# TYPE action_worker_jobs_in_flight gauge\naction_worker_jobs_in_flight {}",
            slots_total.saturating_sub(slots_free)
        );
        let _ = writeln!(
            out,
            "# HELP action_worker_job_slots_free Free job slots (nats.max_concurrent_jobs minus in flight).\n# TYPE action_worker_job_slots_free gauge\naction_worker_job_slots_free {slots_free}"
        );
        out
    }
}

/// A counter family in the text format.
fn counter(out: &mut String, name: &str, help: &str, names: &[&str], family: &Family) {
    write_family(out, name, help, "counter", names, family);
}

/// Histograms by one label in the text format.
fn histograms(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    by: &BTreeMap<String, Histogram>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (value, histogram) in by {
        histogram.render(out, name, &labels(&[label], std::slice::from_ref(value)));
    }
}

/// A family of series of one `kind` (`counter`, `gauge`) in the text format.
fn write_family(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    names: &[&str],
    family: &Family,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (values, n) in &family.series {
        let _ = writeln!(out, "{name}{{{}}} {n}", labels(names, values));
    }
}

/// `action_worker_durable_pending{tenant}`: jobs in `ACTIONS_JOBS` by tenant (at most
/// [`MAX_SERIES`] tenants, the rest under `other`).
pub fn render_pending(pending: &BTreeMap<String, u64>) -> String {
    let mut family = Family::default();
    for (tenant, n) in pending {
        family.add(vec![tenant.clone()], *n);
    }
    let mut out = String::new();
    write_family(
        &mut out,
        "action_worker_durable_pending",
        "Durable jobs in the stream ACTIONS_JOBS (waiting, or delivered and not yet acked), by tenant: the first token after <prefix>.jobs.",
        "gauge",
        &["tenant"],
        &family,
    );
    out
}

/// The per-tenant series.
fn render_tenants(out: &mut String, inner: &Inner) {
    counter(
        out,
        "action_worker_tenant_jobs_total",
        "Jobs finished, by tenant (- for none) and status.",
        &["tenant", "status"],
        &inner.tenant_jobs,
    );
    counter(
        out,
        "action_worker_tenant_fuel_total",
        "Fuel (CPU: about 7e9 a second) used by a tenant's Python jobs.",
        &["tenant"],
        &inner.tenant_fuel,
    );
    counter(
        out,
        "action_worker_tenant_over_capacity_total",
        "Jobs refused over capacity (a quota, no slot within the queue deadline; a durable job handed back as the worker stops), by tenant.",
        &["tenant"],
        &inner.over_capacity,
    );
    histograms(
        out,
        "action_worker_tenant_slot_wait_seconds",
        "Time a job waited for its slot, by tenant.",
        "tenant",
        &inner.tenant_waits,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(9.0);
        let mut out = String::new();
        h.render(&mut out, "x", "k=\"v\"");
        assert_eq!(
            out,
            "x_bucket{k=\"v\",le=\"1\"} 1\nx_bucket{k=\"v\",le=\"2\"} 2\nx_bucket{k=\"v\",le=\"+Inf\"} 3\nx_sum{k=\"v\"} 11\nx_count{k=\"v\"} 3\n"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn label_values_are_capped() {
        let mut f = Family::default();
        for i in 0..MAX_SERIES + 10 {
            f.add(vec![format!("host{i}")], 1);
        }
        assert_eq!(f.series.len(), MAX_SERIES + 1);
        assert_eq!(f.series[&vec!["other".to_string()]], 10);
    }
}
