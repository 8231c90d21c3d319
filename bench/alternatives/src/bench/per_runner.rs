//! One runner through the four actions, and runner A's memory per waiting job.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::*;
use crate::mem;

// ---------------------------------------------------------------------------------------
// One runner through the four actions.

#[derive(Clone, Default)]
pub(super) struct Cell {
    pub(super) seq: Phase,
    pub(super) at16: Phase,
    pub(super) at64: Phase,
    pub(super) peak_rss: u64,
    pub(super) peak_pss: u64,
}

impl Cell {
    pub(super) fn failures(&self) -> usize {
        self.seq.failures + self.at16.failures + self.at64.failures
    }
}

pub(super) struct RunnerResult {
    pub(super) letter: char,
    pub(super) name: &'static str,
    pub(super) idle: mem::Usage,
    pub(super) ready: Duration,
    pub(super) cells: Vec<Cell>,
    /// Cores used on average by processes other than the runner, nats-server and the bench.
    pub(super) foreign: f64,
}

pub(super) async fn bench_runner(
    client: &async_nats::Client,
    running: &Running,
    actions: &[Action],
    letter: char,
    name: &'static str,
    n: usize,
    nats_pid: u32,
) -> RunnerResult {
    let pid = running.pid();
    let answered = answering(client, running).await;
    let sampler = mem::Sampler::start(pid, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = settled(pid, 5).await;
    let ours =
        || mem::tree_cpu(pid) + mem::process_cpu(std::process::id()) + mem::process_cpu(nats_pid);
    let (machine0, ours0, t0) = (mem::machine_busy(), ours(), Instant::now());
    println!(
        "\n== {letter}. {name}: \"serving\" {:.0} ms after spawn, first reply at {:.0} ms; idle RSS {:.1} MiB (PSS {:.1}); {n} jobs per measurement",
        ms(running.ready),
        ms(answered),
        mib(idle.rss),
        mib(idle.pss)
    );
    let mut cells = vec![];
    for a in actions {
        let tag = format!("{letter}-{}", a.key);
        let warm = (n / 5).max(16);
        let warmed = measure(client, &running.subject, a, warm, 16, &format!("{tag}-w")).await;
        sampler.reset();
        let seq = measure(client, &running.subject, a, n, 1, &format!("{tag}-1")).await;
        let at16 = measure(client, &running.subject, a, n, 16, &format!("{tag}-16")).await;
        let at64 = measure(client, &running.subject, a, n, 64, &format!("{tag}-64")).await;
        let (peak_rss, peak_pss) = sampler.peaks();
        let cell = Cell {
            peak_rss,
            peak_pss,
            seq,
            at16,
            at64,
        };
        print!(
            "{letter} {:<22} 1 client: p50 {:>7.2} ms  p99 {:>7.2} ms | 16 in flight: {:>6.0} jobs/s | 64 in flight: {:>6.0} jobs/s | peak RSS {:>6.0} MiB, PSS {:>5.0} MiB",
            a.label,
            ms(cell.seq.p50),
            ms(cell.seq.p99),
            cell.at16.rate,
            cell.at64.rate,
            mib(cell.peak_rss),
            mib(cell.peak_pss)
        );
        let failures = cell.failures() + warmed.failures;
        if failures > 0 {
            let first = [&warmed, &cell.seq, &cell.at16, &cell.at64]
                .iter()
                .find_map(|p| p.first_failure.clone())
                .unwrap_or_default();
            println!("\n  FAILED: {failures} results not ok; first: {first}");
        } else {
            println!(
                "   (all {} ok)",
                warmed.jobs + cell.seq.jobs + cell.at16.jobs + cell.at64.jobs
            );
        }
        cells.push(cell);
    }
    drop(sampler);
    let elapsed = t0.elapsed().as_secs_f64();
    let (runner_cpu, foreign) = (
        ours() - ours0,
        (mem::machine_busy() - machine0) - (ours() - ours0),
    );
    println!(
        "  {:.0} s; CPU used by the runner, nats-server and the bench: {:.2} cores on average; by other processes on the machine: {:.2} cores{}",
        elapsed,
        runner_cpu / elapsed,
        (foreign / elapsed).max(0.0),
        if foreign / elapsed > 0.2 {
            "  (NOISY: compare with a quieter run)"
        } else {
            ""
        }
    );
    RunnerResult {
        foreign: (foreign / elapsed).max(0.0),
        letter,
        name,
        idle,
        ready: running.ready,
        cells,
    }
}

/// Runner A only: resident memory per job while `waiting` jobs wait on the slow upstream.
pub(super) async fn memory_per_waiting_job(
    s: &Settings,
    client: &async_nats::Client,
    url: &str,
    port: u16,
    up: &Upstream,
    release: &watch::Sender<bool>,
    warm: &Action,
) -> Option<Waiting> {
    let config = worker_config(s, url, "worker-waiting", s.waiting, s.waiting + 20);
    let running = start_worker(s, &config).await;
    let pid = running.pid();
    answering(client, &running).await;
    let w = measure(client, &running.subject, warm, 64, 16, "A-slow-warm").await;
    if w.failures > 0 {
        println!("  warm-up FAILED: {:?}", w.first_failure);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = settled(pid, 5).await;
    let slow = Action {
        key: "slow",
        label: "Python + slow requests.get",
        args: json!({"id": "slow"}),
        check: Arc::new(|out| {
            (out["id"] == "slow")
                .then_some(())
                .ok_or(format!("output {out}"))
        }),
        definition: json!({"name": "slowItem", "type": "python", "python": {"code": format!(
        "import requests\n\ndef execute_action(c):\n    r = requests.get(\"http://127.0.0.1:{port}/slow/\" + c[\"args\"][\"id\"], timeout=60)\n    r.raise_for_status()\n    return r.json()\n")}}),
    };
    let sender = {
        let (client, subject, n) = (client.clone(), running.subject.clone(), s.waiting);
        tokio::spawn(async move { measure(&client, &subject, &slow, n, n, "A-slow").await })
    };
    let t = Instant::now();
    let mut held = 0;
    while t.elapsed() < Duration::from_secs(60) {
        held = up.held.load(Ordering::SeqCst);
        if held >= s.waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = settled(pid, 5).await;
    let held_now = up.held.load(Ordering::SeqCst);
    let _ = release.send(true);
    let phase = sender.await.expect("the slow jobs' task panicked");
    running.stop().await;
    let _ = release.send(false);
    println!(
        "\n== A. memory per waiting job: {held_now} jobs held by the upstream ({:.1} s to get there)\n  before: RSS {:.1} MiB, PSS {:.1} MiB, anonymous {:.1} MiB\n  while they wait: RSS {:.1} MiB, PSS {:.1} MiB, anonymous {:.1} MiB",
        t.elapsed().as_secs_f64(),
        mib(before.rss),
        mib(before.pss),
        mib(before.anon),
        mib(during.rss),
        mib(during.pss),
        mib(during.anon)
    );
    if phase.failures > 0 || held < s.waiting {
        println!(
            "  FAILED: {} results not ok (first: {:?}), {held} of {} held at once",
            phase.failures, phase.first_failure, s.waiting
        );
        return None;
    }
    let per = |f: fn(&mem::Usage) -> u64| {
        f(&during).saturating_sub(f(&before)) as f64 / held_now as f64 / MIB
    };
    let w = Waiting {
        before,
        during,
        held: held_now,
        rss: per(|u| u.rss),
        pss: per(|u| u.pss),
        anon: per(|u| u.anon),
    };
    println!(
        "  per waiting job: RSS +{:.2} MiB, PSS +{:.2} MiB, anonymous +{:.2} MiB (all {} results ok)",
        w.rss, w.pss, w.anon, phase.jobs
    );
    Some(w)
}

/// Runner A's memory before and while jobs wait, and the growth per waiting job in MiB.
pub(super) struct Waiting {
    pub(super) before: mem::Usage,
    pub(super) during: mem::Usage,
    pub(super) held: usize,
    pub(super) rss: f64,
    pub(super) pss: f64,
    pub(super) anon: f64,
}
