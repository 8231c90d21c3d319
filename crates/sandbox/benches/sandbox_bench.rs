//! Prints what a Python job costs in-process, a fresh instance per job.
//!
//!     make bench            # or: cargo bench -p action-sandbox --bench sandbox_bench
//!
//! Figures: per-job latency (p50, p99) with and without instances made ready ahead,
//! throughput with 1, 2, 4 and 16 jobs in flight,
//! instantiation alone, CPU per job (process CPU time over jobs, background work included),
//! fuel per trivial job, resident memory per live instance, what an import costs in a job,
//! a job importing a runtime profile's packages against a trivial job on the default runtime
//! (alternating), and fuel per second of CPU (the basis of the default fuel limit).
//! Env: `JOBS` (2000); `ONLY=profiles` for the profile rows alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use action_sandbox::{
    ActionHost, BoxFuture, HttpError, HttpRequest, HttpResponse, JobLimits, NoNetwork, PythonJob,
    Sandbox, SandboxConfig,
};
use serde_json::json;

const TRIVIAL: &str =
    "def execute_action(context):\n    return {'ok': True, 'id': context['args']['orderId']}\n";

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A line of /proc/self/status in bytes: `RssAnon` counts the private pages (copy-on-write
/// copies and heap), `RssShmem` the mapped pages of the shared memory images.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| {
            rest.trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        * 1024
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn sandbox(warm: u32, keep_resident: usize) -> Sandbox {
    sandbox_with(warm, keep_resident, true)
}

/// `tuned: false` gives the settings the defaults replaced: tables filled lazily and slots
/// reset without PAGEMAP_SCAN.
fn sandbox_with(warm: u32, keep_resident: usize, tuned: bool) -> Sandbox {
    let root = action_worker_tests::repo_root();
    // RUNTIME=path compares another build of the runtime, side by side with this one.
    let component = std::env::var_os("RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build/action-runtime.wasm"));
    let mut config = SandboxConfig::new(component);
    config.cache_dir = Some(root.join("build/cache"));
    config.warm_instances = warm;
    config.keep_resident_bytes = keep_resident;
    config.pagemap_scan = tuned;
    config.eager_tables = tuned;
    config.max_instances = 96;
    Sandbox::new(config).unwrap()
}

async fn run(sandbox: &Sandbox, source: &str, limits: JobLimits) -> action_sandbox::RunOutcome {
    run_on(sandbox, "default", source, limits).await
}

async fn run_on(
    sandbox: &Sandbox,
    runtime: &str,
    source: &str,
    limits: JobLimits,
) -> action_sandbox::RunOutcome {
    let ctx = json!({"args": {"orderId": "A1"}, "conversation": null, "action": {"name": "bench"},
                     "job": {"id": "b", "attempt": 1, "test": false}});
    sandbox
        .run(
            PythonJob {
                action: "bench",
                source,
                context: &ctx,
                limits,
                runtime,
            },
            Box::new(NoNetwork),
        )
        .await
        .0
}

async fn latency_run(label: &str, sandbox: &Sandbox, jobs: usize) {
    sandbox.warm_up().await.unwrap();
    for _ in 0..50 {
        run(sandbox, TRIVIAL, JobLimits::default()).await;
    }
    let mut times = Vec::with_capacity(jobs);
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut fuel = 0;
    for _ in 0..jobs {
        let t = Instant::now();
        let out = run(sandbox, TRIVIAL, JobLimits::default()).await;
        times.push(t.elapsed());
        assert_eq!(out.output["ok"], json!(true), "{out:?}");
        fuel = out.stats.fuel_used;
        // Let the background refill finish, as it would between jobs arriving.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let wall = wall0.elapsed() - Duration::from_micros(200) * jobs as u32;
    let cpu = cpu_seconds() - cpu0;
    times.sort();
    println!(
        "{label:<44} p50 {}  p99 {}  cpu/job {:.3} ms  fuel/job {fuel}  (wall/job {})",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        cpu * 1000.0 / jobs as f64,
        ms(wall / jobs as u32)
    );
}

/// Jobs per second with `in_flight` jobs running at once (tokio tasks on 2 worker threads).
async fn throughput_run(sandbox: &Sandbox, jobs: usize, in_flight: usize) {
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight {
        let sandbox = sandbox.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..jobs / in_flight {
                let out = run(&sandbox, TRIVIAL, JobLimits::default()).await;
                assert_eq!(out.output["ok"], json!(true), "{out:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let done = (jobs / in_flight * in_flight) as f64;
    println!(
        "trivial jobs, {in_flight:>2} in flight                    {:>6.0} jobs/s  cpu/job {:.3} ms",
        done / wall,
        (cpu_seconds() - cpu0) * 1000.0 / done
    );
}

/// Holds every request until the benchmark has measured memory.
struct Parked(std::sync::Arc<tokio::sync::Notify>);

impl ActionHost for Parked {
    fn http_send(
        &mut self,
        request: HttpRequest,
        _d: Instant,
    ) -> BoxFuture<'_, Result<HttpResponse, HttpError>> {
        let release = self.0.clone();
        Box::pin(async move {
            release.notified().await;
            Ok(HttpResponse {
                status: 200,
                reason: "OK".into(),
                url: request.url,
                headers: vec![],
                body: b"{}".to_vec(),
                elapsed: Duration::ZERO,
                secrets: vec![],
            })
        })
    }
}

async fn memory_per_instance(sandbox: &Sandbox, live: usize) {
    let source = "import requests\ndef execute_action(c):\n    return requests.get('https://x.example.com').status_code\n";
    run(sandbox, source, JobLimits::default()).await; // compile once, outside the measure
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (anon0, shmem0) = (status_bytes("RssAnon"), status_bytes("RssShmem"));
    let mut handles = vec![];
    for _ in 0..live {
        let sandbox = sandbox.clone();
        let host = Parked(release.clone());
        handles.push(tokio::spawn(async move {
            let ctx = json!({"args": {}, "conversation": null, "action": {"name": "m"}, "job": {"id": "m", "attempt": 1, "test": false}});
            sandbox.run(PythonJob { action: "mem", source, context: &ctx, limits: JobLimits::default(), runtime: "default" }, Box::new(host)).await.0
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (anon1, shmem1) = (status_bytes("RssAnon"), status_bytes("RssShmem"));
    release.notify_waiters();
    for h in handles {
        assert_eq!(h.await.unwrap().output, json!(200));
    }
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / live as f64 / (1 << 20) as f64;
    println!(
        "memory per live instance ({live} waiting on a host call): private {:.2} MiB, shared image pages mapped {:.2} MiB",
        per(anon0, anon1),
        per(shmem0, shmem1)
    );
}

/// A job on the "contacts" profile that imports its packages, against the same job without
/// the import on the default runtime, in alternating rounds of one sandbox that has both
/// (target, issue #19: within 10 %); and what loading the profile costs.
async fn profile_import(jobs: usize) {
    let root = action_worker_tests::repo_root();
    let contacts = root.join("build/runtime-contacts.wasm");
    if !contacts.exists() {
        println!(
            "profile import: skipped, {} is not built (make build)",
            contacts.display()
        );
        return;
    }
    let rss = || status_bytes("RssAnon") + status_bytes("RssShmem") + status_bytes("RssFile");
    let mut config = SandboxConfig::new(root.join("build/action-runtime.wasm"));
    config.cache_dir = Some(root.join("build/cache"));
    config.warm_instances = 2;
    let (rss0, t) = (rss(), Instant::now());
    let one = Sandbox::new(config.clone()).unwrap();
    one.warm_up().await.unwrap();
    let (rss1, one_ms) = (rss(), t.elapsed());
    config.profiles = vec![("contacts".into(), contacts)];
    let t = Instant::now();
    let both = Sandbox::new(config).unwrap();
    both.warm_up().await.unwrap();
    let (rss2, both_ms) = (rss(), t.elapsed());
    println!(
        "loaded and warm (2 instances each): default alone {} (+{:.1} MiB resident), default and contacts {} (+{:.1} MiB)",
        ms(one_ms),
        rss1.saturating_sub(rss0) as f64 / (1 << 20) as f64,
        ms(both_ms),
        rss2.saturating_sub(rss1) as f64 / (1 << 20) as f64
    );
    drop(one);
    let import = format!("import phonenumbers\nfrom slugify import slugify\n{TRIVIAL}");
    let cases = [
        ("default", TRIVIAL),
        ("contacts", import.as_str()),
        ("contacts", TRIVIAL),
    ];
    let mut times = [vec![], vec![], vec![]];
    let mut stats = [(0, 0); 3];
    for (i, (runtime, source)) in cases.iter().enumerate() {
        for _ in 0..50 {
            run_on(&both, runtime, source, JobLimits::default()).await;
        }
        let out = run_on(&both, runtime, source, JobLimits::default()).await;
        assert_eq!(out.output["ok"], json!(true), "{out:?}");
        stats[i] = (out.stats.fuel_used, out.stats.memory_peak_bytes);
    }
    for round in 0..8 {
        let order = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for i in order {
            let (runtime, source) = cases[i];
            for _ in 0..jobs / 8 {
                let t = Instant::now();
                run_on(&both, runtime, source, JobLimits::default()).await;
                times[i].push(t.elapsed());
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
    for (i, label) in [
        "trivial job, default runtime",
        "same + import phonenumbers, slugify (contacts)",
        "trivial job, contacts (no import)",
    ]
    .iter()
    .enumerate()
    {
        times[i].sort();
        println!(
            "{:<44} p50 {}  p99 {}  fuel/job {}  memory {:.1} MiB",
            label,
            ms(percentile(&times[i], 0.5)),
            ms(percentile(&times[i], 0.99)),
            stats[i].0,
            stats[i].1 as f64 / (1 << 20) as f64
        );
    }
    println!(
        "profile import against the default: p50 {:+.1} %, fuel {:+.1} % (target: within 10 %)",
        (percentile(&times[1], 0.5).as_secs_f64() / percentile(&times[0], 0.5).as_secs_f64() - 1.0)
            * 100.0,
        (stats[1].0 as f64 / stats[0].0 as f64 - 1.0) * 100.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs: usize = std::env::var("JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    println!(
        "PAGEMAP_SCAN available: {}",
        wasmtime::PoolingAllocationConfig::is_pagemap_scan_available()
    );
    // ONLY=profiles runs only the runtime profile rows.
    if std::env::var("ONLY").is_ok_and(|v| v == "profiles") {
        profile_import(jobs).await;
        return;
    }
    let t = Instant::now();
    let sb = sandbox(2, 0);
    println!(
        "sandbox ready in {} (runtime {} the compile cache)",
        ms(t.elapsed()),
        if sb.loaded_from_cache() {
            "from"
        } else {
            "not from"
        }
    );

    let mut inst: Vec<Duration> = vec![];
    for _ in 0..300 {
        inst.push(sb.time_instantiation().await.unwrap());
    }
    inst.sort();
    println!(
        "instantiation alone                          p50 {}  p99 {}",
        ms(percentile(&inst, 0.5)),
        ms(percentile(&inst, 0.99))
    );

    // IN_FLIGHT=n runs that single throughput row with the default settings (for profiling).
    if let Some(n) = std::env::var("IN_FLIGHT").ok().and_then(|v| v.parse().ok()) {
        throughput_run(
            &sandbox(0, SandboxConfig::new("").keep_resident_bytes),
            jobs,
            n,
        )
        .await;
        return;
    }
    // ROW=warm,keep_mib runs that single latency row (for profiling); default: all rows,
    // the first with the settings the defaults replaced (lazy tables, no PAGEMAP_SCAN).
    let rows: Vec<(u32, usize, bool)> = match std::env::var("ROW") {
        Ok(row) => {
            let (w, k) = row.split_once(',').expect("ROW=warm,keep_mib");
            vec![(w.parse().unwrap(), k.parse().unwrap(), true)]
        }
        Err(_) => vec![
            (0, 0, false),
            (0, 0, true),
            (0, 8, true),
            (1, 8, true),
            (2, 8, true),
            (0, 64, true),
        ],
    };
    for (warm, keep, tuned) in rows {
        let label = format!(
            "trivial job, warm {warm}, keep_resident {keep} MiB{}",
            if tuned {
                ""
            } else {
                ", lazy tables, no pagemap"
            }
        );
        latency_run(&label, &sandbox_with(warm, keep << 20, tuned), jobs).await;
    }
    if std::env::var("ROW").is_ok() {
        return;
    }
    let plain = sandbox(0, SandboxConfig::new("").keep_resident_bytes);
    for in_flight in [1, 2, 4, 16] {
        throughput_run(&plain, jobs, in_flight).await;
    }

    let import_src = "def execute_action(context):\n    import email.mime.text, xml.dom.minidom, csv, decimal, zoneinfo\n    return {'ok': True, 'id': 1}\n";
    let base = run(&sb, TRIVIAL, JobLimits::default())
        .await
        .stats
        .fuel_used;
    let with_imports = run(&sb, import_src, JobLimits::default())
        .await
        .stats
        .fuel_used;
    println!(
        "import of 5 pre-imported modules in a job: +{} fuel",
        with_imports.saturating_sub(base)
    );

    let loop_src = "def execute_action(context):\n    x = 0\n    for i in range(3000000):\n        x += i * i\n    return x\n";
    run(&sb, loop_src, JobLimits::default()).await;
    let t = Instant::now();
    let out = run(
        &sb,
        loop_src,
        JobLimits {
            fuel: u64::MAX / 4,
            ..JobLimits::default()
        },
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CPU-bound loop: {} fuel in {:.3} s = {:.2e} fuel per second (JobLimits::FUEL_PER_SECOND = {:.2e})",
        out.stats.fuel_used,
        secs,
        out.stats.fuel_used as f64 / secs,
        JobLimits::FUEL_PER_SECOND as f64
    );

    memory_per_instance(&sb, 64).await;
    profile_import(jobs).await;
}
