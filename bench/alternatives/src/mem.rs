//! Resident memory of a process tree, from /proc, summed over a process and all its
//! descendants, sampled on a thread of its own:
//!
//! - RSS (statm's resident pages): cheap, but a shared page counts once per process *and once
//!   per mapping* (the worker maps its runtime image copy-on-write into every instance's slot;
//!   process-per-job runners map libpython into every process);
//! - PSS (smaps_rollup): every page divided among its mappings, so shared pages count once
//!   across the tree: the memory the tree really costs the machine;
//! - anonymous RSS (smaps_rollup's Anonymous): private memory, what each job writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const PAGE: u64 = 4096;

/// Resident bytes of `pid` (0 if it is gone).
pub fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE)
}

/// `pid` and every descendant (children of every thread, recursively).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path().join("children");
            if let Ok(children) = std::fs::read_to_string(path) {
                out.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// Resident bytes of the whole tree under `pid`, shared pages counted once per mapping.
pub fn tree_rss(pid: u32) -> u64 {
    tree(pid).into_iter().map(rss).sum()
}

/// (PSS, anonymous) bytes of `pid`, from smaps_rollup (zeros if it is gone).
pub fn pss(pid: u32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            * 1024
    };
    (field("Pss:"), field("Anonymous:"))
}

/// (PSS, anonymous) bytes of the whole tree under `pid`.
pub fn tree_pss(pid: u32) -> (u64, u64) {
    tree(pid)
        .into_iter()
        .map(pss)
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

/// RSS, PSS and anonymous bytes of the tree under `pid` at one moment.
#[derive(Clone, Copy, Default, Debug)]
pub struct Usage {
    pub rss: u64,
    pub pss: u64,
    pub anon: u64,
}

pub fn tree_usage(pid: u32) -> Usage {
    let (pss, anon) = tree_pss(pid);
    Usage {
        rss: tree_rss(pid),
        pss,
        anon,
    }
}

/// Samples the tree under `pid`, keeping the peaks since the last `reset`: RSS every
/// `every`, PSS every tenth sample (smaps_rollup walks page tables: dearer to read).
pub struct Sampler {
    pid: u32,
    peak_rss: Arc<AtomicU64>,
    peak_pss: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let peak_rss = Arc::new(AtomicU64::new(0));
        let peak_pss = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak_rss, peak_pss, stop) = (peak_rss.clone(), peak_pss.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    peak_rss.fetch_max(tree_rss(pid), Ordering::Relaxed);
                    if i.is_multiple_of(10) {
                        peak_pss.fetch_max(tree_pss(pid).0, Ordering::Relaxed);
                    }
                    i += 1;
                    std::thread::sleep(every);
                }
            })
        };
        Self {
            pid,
            peak_rss,
            peak_pss,
            stop,
            thread: Some(thread),
        }
    }

    /// Forgets the peaks; the current usage is the new start.
    pub fn reset(&self) {
        self.peak_rss.store(0, Ordering::Relaxed);
        self.peak_pss.store(0, Ordering::Relaxed);
        self.sample_now();
    }

    /// (peak RSS, peak PSS) since the last reset, the current usage included.
    pub fn peaks(&self) -> (u64, u64) {
        self.sample_now();
        (
            self.peak_rss.load(Ordering::Relaxed),
            self.peak_pss.load(Ordering::Relaxed),
        )
    }

    fn sample_now(&self) {
        self.peak_rss
            .fetch_max(tree_rss(self.pid), Ordering::Relaxed);
        self.peak_pss
            .fetch_max(tree_pss(self.pid).0, Ordering::Relaxed);
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux x86_64 and arm64).
const TICKS: f64 = 100.0;

/// CPU seconds the whole machine has spent busy (every state but idle and iowait).
pub fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0.0;
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy as f64 / TICKS
}

/// CPU seconds of `pid` and of its children it has waited for (0 if it is gone).
pub fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    // `rest` starts at field 3 (state); utime, stime, cutime, cstime are fields 14 to 17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |k: usize| {
        f.get(k - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get(14) + get(15) + get(16) + get(17)) as f64 / TICKS
}

/// CPU seconds of the tree under `pid`: every live process's own and reaped children's.
pub fn tree_cpu(pid: u32) -> f64 {
    tree(pid).into_iter().map(process_cpu).sum()
}
