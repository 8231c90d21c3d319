//! `runtime.processes`: one worker process per core. Python jobs running at once in one
//! process share one address space, and the kernel keeps every core's view of it in step
//! with inter-processor interrupts on each copy-on-write fault and slot reset: two jobs at
//! once in one process cost about twice the CPU each (docs/benchmarks.md). Separate
//! processes do not share that, so `serve` runs `processes - 1` more copies of itself.
//!
//! The children are whole workers (their own sandbox, NATS connection, registry cache and
//! durable pull loop) on the parent's NATS URL, with the admin port on a free loopback port.
//! The parent's admin port answers for all: `/readyz` is ready when every process is, and
//! `/metrics` sums the processes' series. A child stops when its stdin closes, so it never
//! outlives its parent, even one killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Set in a child's environment; its value is the child's number.
pub const CHILD_ENV: &str = "ACTION_WORKER_CHILD";

/// Whether this process is a child of another `serve`.
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Resolves `processes = 0` to the CPUs this process may use.
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    cores()
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Resolves when stdin reaches its end: a child's signal to stop. Make it once and keep
/// polling that one future: each read holds a blocking thread until it returns.
pub async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// One copy: its admin address while it runs, its stdin (closed to stop it), and whether its
/// supervising task has ended.
#[derive(Debug)]
struct Slot {
    admin: std::sync::RwLock<Option<String>>,
    /// The last scrape that answered: used when a scrape fails, so that the summed counters
    /// never seem to go back (Prometheus would read a reset).
    last_metrics: std::sync::Mutex<Option<String>>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    ended: tokio::sync::watch::Receiver<bool>,
}

/// The other worker processes. Each is watched by a task of its own: one that exits while
/// the worker is not stopping (a crash, an OOM kill) is logged and started again.
#[derive(Debug)]
pub struct Children {
    slots: Vec<Arc<Slot>>,
    stopping: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How to start a copy.
#[derive(Debug, Clone)]
struct Recipe {
    exe: PathBuf,
    config: Option<PathBuf>,
    url: String,
}

impl Recipe {
    /// Starts copy `i` and waits until it serves: the child and its admin address.
    async fn start(&self, i: usize) -> anyhow::Result<(Child, String)> {
        let mut command = Command::new(&self.exe);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .arg("serve")
            .env(CHILD_ENV, i.to_string())
            .env("ACTION_WORKER__NATS__URL", &self.url)
            .env("ACTION_WORKER__ADMIN__LISTEN", "127.0.0.1:0")
            .env("ACTION_WORKER__RUNTIME__PROCESSES", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start worker process {i}"))?;
        let stdout = child.stdout.take().context("no stdout from a child")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("action-worker: admin on http://") {
                    admin = rest.split_whitespace().next().map(str::to_string);
                }
                if line.starts_with("action-worker: serving ") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            bail!("worker process {i} did not start (its errors are above)");
        }
        // Keep draining its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let admin = admin.context("a child did not print its admin address")?;
        Ok((child, admin))
    }
}

impl Children {
    /// Starts `n` children of this binary with `config` and the NATS `url`, and waits until
    /// each serves; a child that cannot start at all is an error.
    pub async fn spawn(n: usize, config: Option<&Path>, url: &str) -> anyhow::Result<Self> {
        let recipe = Recipe {
            exe: std::env::current_exe().context("cannot find this program to start copies")?,
            config: config.map(Path::to_path_buf),
            url: url.to_string(),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let mut slots = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for i in 1..=n {
            let (mut child, admin) = recipe.start(i).await?;
            let (ended_tx, ended) = tokio::sync::watch::channel(false);
            let slot = Arc::new(Slot {
                admin: std::sync::RwLock::new(Some(admin)),
                last_metrics: std::sync::Mutex::new(None),
                stdin: tokio::sync::Mutex::new(child.stdin.take()),
                ended,
            });
            tasks.push(tokio::spawn(supervise(
                i,
                child,
                recipe.clone(),
                slot.clone(),
                stopping.clone(),
                ended_tx,
            )));
            slots.push(slot);
        }
        Ok(Self {
            slots,
            stopping,
            tasks,
        })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Ready when every child is.
    pub async fn readiness(&self) -> Result<(), String> {
        for (i, slot) in self.slots.iter().enumerate() {
            let admin = slot.admin.read().ok().and_then(|a| a.clone());
            let Some(admin) = admin else {
                return Err(format!("process {} is starting again", i + 1));
            };
            match get(&admin, "/readyz").await {
                Ok((200, _)) => {}
                Ok((_, body)) => return Err(format!("process {}: {}", i + 1, body.trim())),
                Err(e) => return Err(format!("process {}: {e}", i + 1)),
            }
        }
        Ok(())
    }

    /// The children's `/metrics`, for [`merge`]. A child that is starting again counts from
    /// zero: its predecessor's counts are gone with it.
    pub async fn metrics(&self) -> Vec<String> {
        let mut texts = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let admin = slot.admin.read().ok().and_then(|a| a.clone());
            let fresh = match admin {
                Some(admin) => match get(&admin, "/metrics").await {
                    Ok((200, body)) => Some(body),
                    _ => None,
                },
                None => None,
            };
            let Ok(mut last) = slot.last_metrics.lock() else {
                continue;
            };
            if let Some(body) = fresh {
                *last = Some(body);
            }
            if let Some(body) = last.as_ref() {
                texts.push(body.clone());
            }
        }
        texts
    }

    /// Closes every child's stdin: their signal to stop taking jobs and finish.
    pub async fn signal_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            if let Some(mut stdin) = slot.stdin.lock().await.take() {
                let _ = stdin.shutdown().await;
            }
        }
    }

    /// Waits up to `grace` for the children to exit, then kills what is left.
    pub async fn wait(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for slot in &self.slots {
            let mut ended = slot.ended.clone();
            let _ = tokio::time::timeout_at(deadline, ended.wait_for(|done| *done)).await;
        }
        // Dropping a child kills it (`kill_on_drop`): abort the tasks that still hold one.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Watches copy `i` (whose stdin is already in the slot), and starts it again, its stdin
/// into the slot, if it exits while the worker is not stopping.
async fn supervise(
    i: usize,
    mut child: Child,
    recipe: Recipe,
    slot: Arc<Slot>,
    stopping: Arc<AtomicBool>,
    ended: tokio::sync::watch::Sender<bool>,
) {
    loop {
        let status = child.wait().await;
        if let Ok(mut admin) = slot.admin.write() {
            *admin = None;
        }
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        tracing::error!(process = i, status = ?status, "a worker process exited; starting it again");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stopping.load(Ordering::SeqCst) {
                let _ = ended.send(true);
                return;
            }
            match recipe.start(i).await {
                Ok((next, admin)) => {
                    child = next;
                    *slot.stdin.lock().await = child.stdin.take();
                    if let Ok(mut slot_admin) = slot.admin.write() {
                        *slot_admin = Some(admin);
                    }
                    break;
                }
                Err(error) => tracing::error!(
                    process = i,
                    error = format!("{error:#}"),
                    "cannot start the worker process again"
                ),
            }
        }
    }
    let _ = ended.send(true);
}

/// A minimal HTTP/1.0 GET on loopback (the children's admin ports).
async fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .map_err(|_| "no answer within 2 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| "a malformed HTTP answer".to_string())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "a malformed HTTP status".to_string())?;
    Ok((status, body.to_string()))
}

/// Sums Prometheus text expositions of the same metrics: each family (from its `# HELP`
/// line to the next) keeps the first text's order, with series only some texts have
/// appended; a series' value is the sum over the texts. Every metric the worker exposes
/// (counters, gauges of jobs and slots, histogram buckets, sums and counts) adds up.
pub fn merge(texts: &[String]) -> String {
    struct Family {
        header: Vec<String>,
        series: Vec<(String, f64)>,
    }
    let mut families: Vec<(String, Family)> = Vec::new();
    for text in texts {
        let mut current: Option<usize> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let index = match families.iter().position(|(n, _)| *n == name) {
                    Some(index) => index,
                    None => {
                        families.push((
                            name,
                            Family {
                                header: vec![],
                                series: vec![],
                            },
                        ));
                        families.len() - 1
                    }
                };
                let family = &mut families[index].1;
                if family.header.is_empty() {
                    family.header.push(line.to_string());
                }
                current = Some(index);
            } else if line.starts_with("# TYPE ") {
                if let Some(index) = current {
                    let family = &mut families[index].1;
                    if family.header.len() == 1 {
                        family.header.push(line.to_string());
                    }
                }
            } else if let (Some(index), Some((key, value))) = (current, line.rsplit_once(' ')) {
                let value: f64 = value.parse().unwrap_or(0.0);
                let series = &mut families[index].1.series;
                match series.iter_mut().find(|(k, _)| k == key) {
                    Some((_, sum)) => *sum += value,
                    None => series.push((key.to_string(), value)),
                }
            }
        }
    }
    let mut out = String::new();
    for (_, family) in families {
        for line in family.header {
            out.push_str(&line);
            out.push('\n');
        }
        for (key, value) in family.series {
            out.push_str(&format!("{key} {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expositions_add_up_series_by_series() {
        let a = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{s=\"ok\"} 2\n\
                 # HELP free Free.\n# TYPE free gauge\nfree 3\n";
        let b = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{s=\"ok\"} 5\njobs_total{s=\"rejected\"} 1\n\
                 # HELP free Free.\n# TYPE free gauge\nfree 4\n";
        assert_eq!(
            merge(&[a.to_string(), b.to_string()]),
            "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{s=\"ok\"} 7\njobs_total{s=\"rejected\"} 1\n\
             # HELP free Free.\n# TYPE free gauge\nfree 7\n"
        );
    }
}
