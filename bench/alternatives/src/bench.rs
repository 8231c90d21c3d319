//! The bench driver: a nats-server and a loopback HTTP server of its own, then each runner
//! in turn (one at a time, so they never compete for the cores), the same four actions
//! through each, and the worker's extra figures (memory per waiting job, start-up).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::mem;

const MIB: f64 = 1024.0 * 1024.0;
const CPU_N: u64 = 200_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Settings {
    n: usize,
    n_process: usize,
    waiting: usize,
    hold_ms: u64,
    starts: usize,
    max_in_flight: usize,
    runners: String,
    bench_dir: PathBuf,
    root: PathBuf,
    worker_bin: PathBuf,
    venv_python: PathBuf,
    tmp: PathBuf,
}

// ---------------------------------------------------------------------------------------
// The loopback HTTP server: /item/{id} answers at once; /slow/{id} holds the request until
// the bench releases it (or hold_ms passes).

#[derive(Clone)]
struct Upstream {
    held: Arc<AtomicUsize>,
    release: watch::Receiver<bool>,
    hold: Duration,
}

async fn item(UrlPath(id): UrlPath<String>) -> axum::Json<Value> {
    axum::Json(json!({"id": id, "inStock": true, "qty": 3}))
}

async fn slow(State(up): State<Upstream>, UrlPath(id): UrlPath<String>) -> axum::Json<Value> {
    up.held.fetch_add(1, Ordering::SeqCst);
    let mut release = up.release.clone();
    let _ = tokio::time::timeout(up.hold, release.wait_for(|r| *r)).await;
    up.held.fetch_sub(1, Ordering::SeqCst);
    axum::Json(json!({"id": id, "inStock": true, "qty": 3}))
}

// ---------------------------------------------------------------------------------------
// The actions, each with the check its every result must pass.

type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

struct Action {
    key: &'static str,
    label: &'static str,
    definition: Value,
    args: Value,
    check: Check,
}

fn actions(port: u16) -> Vec<Action> {
    let expected: u64 = (0..CPU_N).map(|i| i * i % 7).sum();
    vec![
        Action {
            key: "trivial",
            label: "trivial Python",
            definition: json!({"name": "trivial", "type": "python", "python": {"code":
                "def execute_action(c):\n    return {\"ok\": True}\n"}}),
            args: json!({}),
            check: Arc::new(|out| {
                (out == &json!({"ok": true}))
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "cpu",
            label: "CPU-bound Python",
            definition: json!({"name": "cpuBound", "type": "python", "python": {"code":
                "def execute_action(c):\n    total = 0\n    for i in range(c[\"args\"][\"n\"]):\n        total += i * i % 7\n    return {\"total\": total}\n"}}),
            args: json!({"n": CPU_N}),
            check: Arc::new(move |out| {
                (out["total"] == json!(expected))
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "http",
            label: "Python + requests.get",
            definition: json!({"name": "fetchItem", "type": "python", "python": {"code": format!(
                "import requests\n\ndef execute_action(c):\n    r = requests.get(\"http://127.0.0.1:{port}/item/\" + c[\"args\"][\"id\"], timeout=30)\n    r.raise_for_status()\n    return r.json()\n")}}),
            args: json!({"id": "SKU-1"}),
            check: Arc::new(|out| {
                (out["id"] == "SKU-1")
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
        Action {
            key: "api",
            label: "API action",
            definition: json!({"name": "getItem", "type": "api", "api": {
                "base_url": format!("http://127.0.0.1:{port}"), "path": "/item/$id", "method": "GET"}}),
            args: json!({"id": "SKU-1"}),
            check: Arc::new(|out| {
                (out["id"] == "SKU-1")
                    .then_some(())
                    .ok_or(format!("output {out}"))
            }),
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Sending jobs.

#[derive(Default, Clone)]
struct Phase {
    jobs: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
    first_failure: Option<String>,
}

/// `n` jobs over `subject`, `in_flight` at a time; every result is checked.
async fn measure(
    client: &async_nats::Client,
    subject: &str,
    action: &Action,
    n: usize,
    in_flight: usize,
    tag: &str,
) -> Phase {
    let (definition, args, check) = (&action.definition, &action.args, &action.check);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..in_flight.min(n) {
        let (client, next, check) = (client.clone(), next.clone(), check.clone());
        let (subject, definition, args, tag) = (
            subject.to_string(),
            definition.clone(),
            args.clone(),
            tag.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            let mut failures = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let id = format!("{tag}-{i}");
                let job = json!({"id": id, "action": definition, "args": args});
                let t = Instant::now();
                let outcome = match client
                    .request(subject.clone(), job.to_string().into())
                    .await
                {
                    Err(e) => Err(format!("request: {e}")),
                    Ok(reply) => match serde_json::from_slice::<Value>(&reply.payload) {
                        Err(e) => Err(format!("undecodable result: {e}")),
                        Ok(r) if r["status"] != "ok" || r["job_id"] != id.as_str() => {
                            Err(format!("result {r}"))
                        }
                        Ok(r) => check(&r["output"]),
                    },
                };
                times.push(t.elapsed());
                if let Err(e) = outcome {
                    failures.push(e);
                }
            }
            (times, failures)
        }));
    }
    let mut times = vec![];
    let mut failures = vec![];
    for t in tasks {
        let (a, b) = t.await.expect("a client task panicked");
        times.extend(a);
        failures.extend(b);
    }
    let wall = start.elapsed();
    times.sort();
    Phase {
        jobs: times.len(),
        rate: times.len() as f64 / wall.as_secs_f64(),
        p50: times[times.len() / 2],
        p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
        failures: failures.len(),
        first_failure: failures.into_iter().next(),
    }
}

// ---------------------------------------------------------------------------------------
// Runners.

struct Running {
    child: Child,
    started: Instant,
    ready: Duration,
    subject: String,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Starts `command` (stdout piped, stderr to `log`) and waits for a stdout line that
/// contains `serving SUBJECT`; the time from spawn to that line is its start-up.
async fn start(mut command: Command, subject: &str, log: &Path) -> Running {
    let stderr = std::fs::File::create(log).expect("cannot create a log file");
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start a runner");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let wanted = format!("serving {subject}");
    let ready = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(&wanted) {
                return Some(started.elapsed());
            }
        }
        None
    })
    .await;
    let Ok(Some(ready)) = ready else {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("the runner never printed {wanted:?}; its stderr:\n{log}");
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running {
        child,
        started,
        ready,
        subject: subject.to_string(),
    }
}

/// Waits until a request on the runner's subject finds a responder (an empty job, which
/// is rejected); returns the time from the runner's spawn. A runner that prints "serving"
/// before the server has its subscription answers "no responders" until then.
async fn answering(client: &async_nats::Client, running: &Running) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.request(running.subject.clone(), "{}".into()).await {
            Err(e)
                if e.kind() == async_nats::RequestErrorKind::NoResponders
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            _ => return running.started.elapsed(),
        }
    }
}

fn worker_config(s: &Settings, url: &str, name: &str, jobs: usize, instances: usize) -> PathBuf {
    let path = s.tmp.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[runtime]\ncomponent = \"{}\"\ncache_dir = \"{}\"\nmax_instances = {instances}\n\
             [egress]\nallow_private_cidrs = [\"127.0.0.0/8\"]\n\
             [nats]\nurl = \"{url}\"\nsubject_prefix = \"alt_a\"\nmax_concurrent_jobs = {jobs}\n",
            s.root.join("build/action-runtime.wasm").display(),
            s.root.join("data/cache").display(),
        ),
    )
    .expect("cannot write the worker's configuration");
    path
}

async fn start_worker(s: &Settings, config: &Path) -> Running {
    let mut command = Command::new(&s.worker_bin);
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(&s.tmp);
    start(command, "alt_a.run", &s.tmp.join("worker.log")).await
}

async fn start_front(s: &Settings, url: &str, mode: &str, subject: &str) -> Running {
    let mut command = Command::new(std::env::current_exe().expect("current_exe"));
    command.args([
        "front",
        mode,
        url,
        subject,
        &s.venv_python.display().to_string(),
        &s.bench_dir.join("python").display().to_string(),
        &s.max_in_flight.to_string(),
    ]);
    start(command, subject, &s.tmp.join(format!("front-{mode}.log"))).await
}

// ---------------------------------------------------------------------------------------
// Set-up.

fn ensure_venv(bench_dir: &Path) -> PathBuf {
    let venv = bench_dir.join(".venv");
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    println!(
        "creating {} from {base} with requirements.txt (pinned)",
        venv.display()
    );
    let ok = std::process::Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(bench_dir.join("requirements.txt"))
            .status()
            .is_ok_and(|s| s.success())
        // setuptools' distutils-precedence.pth runs at every interpreter start: not needed.
        && std::process::Command::new(venv.join("bin/pip"))
            .args(["uninstall", "-q", "-y", "setuptools"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "could not create {}", venv.display());
    python
}

/// Byte-compiles the runners' modules (PYTHONDONTWRITEBYTECODE may be set): a fresh process
/// then loads them instead of compiling them again for every job.
fn compile_python(python: &Path, dir: &Path) {
    let ok = std::process::Command::new(python)
        .args(["-m", "compileall", "-q"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not byte-compile {}", dir.display());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port")
        .port()
}

async fn start_nats(s: &Settings) -> (Child, String) {
    let port = free_port();
    let child = Command::new(s.root.join(".venv/bin/nats-server"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(s.tmp.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start nats-server");
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (child, format!("nats://127.0.0.1:{port}"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// The tree's memory, the median of `k` samples 50 ms apart, field by field.
async fn settled(pid: u32, k: usize) -> mem::Usage {
    let mut v = vec![];
    for _ in 0..k {
        v.push(mem::tree_usage(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mem::Usage {
        rss: median(v.iter().map(|u| u.rss).collect()),
        pss: median(v.iter().map(|u| u.pss).collect()),
        anon: median(v.iter().map(|u| u.anon).collect()),
    }
}

// ---------------------------------------------------------------------------------------
// One runner through the four actions.

#[derive(Clone, Default)]
struct Cell {
    seq: Phase,
    at16: Phase,
    at64: Phase,
    peak_rss: u64,
    peak_pss: u64,
}

impl Cell {
    fn failures(&self) -> usize {
        self.seq.failures + self.at16.failures + self.at64.failures
    }
}

struct RunnerResult {
    letter: char,
    name: &'static str,
    idle: mem::Usage,
    ready: Duration,
    cells: Vec<Cell>,
    /// Cores used on average by processes other than the runner, nats-server and the bench.
    foreign: f64,
}

async fn bench_runner(
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
async fn memory_per_waiting_job(
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
struct Waiting {
    before: mem::Usage,
    during: mem::Usage,
    held: usize,
    rss: f64,
    pss: f64,
    anon: f64,
}

// ---------------------------------------------------------------------------------------

fn target(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

pub async fn run() {
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = bench_dir
        .join("../..")
        .canonicalize()
        .expect("the repository root");
    let home = std::env::var("HOME").unwrap_or_default();
    let n = env_usize("N", 500);
    let tmp = std::env::temp_dir().join(format!("alternatives-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("cannot create a temporary directory");
    let s = Settings {
        n,
        n_process: env_usize("N_PROCESS", (n / 5).max(20)),
        waiting: env_usize("WAITING", 500),
        hold_ms: env_usize("HOLD_MS", 20_000) as u64,
        starts: env_usize("STARTS", 5).max(1),
        max_in_flight: env_usize("MAX_IN_FLIGHT", 64),
        runners: std::env::var("RUNNERS")
            .unwrap_or_else(|_| "ABC".into())
            .to_uppercase(),
        worker_bin: std::env::var("WORKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(home).join(".cache/action-worker/target/release/action-worker")
            }),
        venv_python: ensure_venv(&bench_dir),
        bench_dir,
        root,
        tmp,
    };
    assert!(
        s.worker_bin.exists(),
        "{} is missing: run `make build`",
        s.worker_bin.display()
    );
    compile_python(&s.venv_python, &s.bench_dir.join("python"));
    let python_version = std::process::Command::new(&s.venv_python)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let (release, release_rx) = watch::channel(false);
    let up = Upstream {
        held: Arc::default(),
        release: release_rx,
        hold: Duration::from_millis(s.hold_ms),
    };
    let app = Router::new()
        .route("/item/{id}", get(item))
        .route("/slow/{id}", get(slow))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the upstream failed")
    });

    let (mut nats, url) = start_nats(&s).await;
    let nats_pid = nats.id().unwrap_or(0);
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(120)))
        .connect(&url)
        .await
        .expect("cannot connect to the bench's nats-server");
    let actions = actions(port);
    println!(
        "alternatives-bench: {} cores, N = {} jobs per measurement (B: N_PROCESS = {}), runners {}, at most {} jobs in flight in each runner",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.n,
        s.n_process,
        s.runners,
        s.max_in_flight
    );
    let built = std::process::Command::new("date")
        .arg("-r")
        .arg(&s.worker_bin)
        .arg("+%Y-%m-%d %H:%M:%S")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "worker: {} (built {built}); B and C: {} ({}); nats-server {url}; upstream http://127.0.0.1:{port}",
        s.worker_bin.display(),
        s.venv_python.display(),
        python_version
    );

    let load_before = loadavg();
    let mut results: Vec<RunnerResult> = vec![];
    let mut waiting = None;
    let mut starts = vec![];
    let mut first_reply = Duration::ZERO;
    for letter in s.runners.chars() {
        match letter {
            'A' => {
                let config =
                    worker_config(&s, &url, "worker", s.max_in_flight, s.max_in_flight.max(64));
                let running = start_worker(&s, &config).await;
                results.push(
                    bench_runner(
                        &client,
                        &running,
                        &actions,
                        'A',
                        "action-worker (wasmtime sandbox)",
                        s.n,
                        nats_pid,
                    )
                    .await,
                );
                running.stop().await;
                let mut replies = vec![];
                for _ in 0..s.starts {
                    let running = start_worker(&s, &config).await;
                    starts.push(running.ready);
                    replies.push(answering(&client, &running).await);
                    running.stop().await;
                }
                starts.sort();
                replies.sort();
                println!(
                    "\n== A. start-up with a warm compile cache, {} starts: \"serving\" after median {:.0} ms (min {:.0}, max {:.0}); first reply after median {:.0} ms (min {:.0}, max {:.0})",
                    starts.len(),
                    ms(starts[starts.len() / 2]),
                    ms(starts[0]),
                    ms(starts[starts.len() - 1]),
                    ms(replies[replies.len() / 2]),
                    ms(replies[0]),
                    ms(replies[replies.len() - 1])
                );
                first_reply = replies[replies.len() / 2];
                waiting =
                    memory_per_waiting_job(&s, &client, &url, port, &up, &release, &actions[2])
                        .await;
            }
            'B' => {
                let running = start_front(&s, &url, "process", "alt_b.run").await;
                results.push(
                    bench_runner(
                        &client,
                        &running,
                        &actions,
                        'B',
                        "process per job (python3, no sandbox)",
                        s.n_process,
                        nats_pid,
                    )
                    .await,
                );
                running.stop().await;
            }
            'C' => {
                let running = start_front(&s, &url, "inprocess", "alt_c.run").await;
                results.push(
                    bench_runner(
                        &client,
                        &running,
                        &actions,
                        'C',
                        "in-process, unisolated (one python3)",
                        s.n,
                        nats_pid,
                    )
                    .await,
                );
                running.stop().await;
            }
            other => println!("unknown runner {other:?} in RUNNERS, skipped"),
        }
    }
    println!(
        "\nload average (1, 5, 15 min) at the start: {load_before}; at the end: {} (other work on the machine shows here)",
        loadavg()
    );
    let _ = nats.kill().await;
    let _ = std::fs::remove_dir_all(&s.tmp);
    report(&s, &actions, &results, waiting, &starts, first_reply);
}

fn report(
    s: &Settings,
    actions: &[Action],
    results: &[RunnerResult],
    waiting: Option<Waiting>,
    starts: &[Duration],
    first_reply: Duration,
) {
    let get = |letter: char| results.iter().find(|r| r.letter == letter);
    let ok = |c: &Cell| c.failures() == 0;
    if let (Some(a), Some(b), Some(c)) = (get('A'), get('B'), get('C')) {
        println!("\n== Targets (issue 7)");
        for (i, act) in actions.iter().enumerate() {
            let (ca, cb, cc) = (&a.cells[i], &b.cells[i], &c.cells[i]);
            if !(ok(ca) && ok(cb) && ok(cc)) {
                println!("{:<22} a runner failed: no ratios", act.label);
                continue;
            }
            let t16 = ca.at16.rate / cb.at16.rate;
            let t64 = ca.at64.rate / cb.at64.rate;
            let vs_b = ms(cb.seq.p50) / ms(ca.seq.p50);
            let vs_c = ms(ca.seq.p50) / ms(cc.seq.p50);
            println!(
                "{:<22} A/B jobs/s: {t16:.1}x at 16, {t64:.1}x at 64 (>= 15x: {}) | B p50 / A p50: {vs_b:.1}x (>= 10x: {}) | A p50 / C p50: {vs_c:.2}x (<= 2x: {})",
                act.label,
                target(t16 >= 15.0 && t64 >= 15.0),
                target(vs_b >= 10.0),
                target(vs_c <= 2.0)
            );
        }
    }
    if let Some(w) = &waiting {
        println!(
            "memory per waiting job: PSS {:.2} MiB (<= 4 MiB: {}); RSS {:.2} MiB (<= 4 MiB: {}); anonymous {:.2} MiB",
            w.pss,
            target(w.pss <= 4.0),
            w.rss,
            target(w.rss <= 4.0),
            w.anon
        );
    }

    println!("\n== Markdown\n");
    println!(
        "Runners behind the same NATS request-reply front; {} cores; N = {} jobs per measurement for A and C, N_PROCESS = {} for B; at most {} jobs in flight in each runner.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        s.n,
        s.n_process,
        s.max_in_flight
    );
    println!(
        "| runner | action | p50, 1 client | p99, 1 client | jobs/s, 16 in flight | jobs/s, 64 in flight | peak RSS | peak PSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        for (i, act) in actions.iter().enumerate() {
            let c = &r.cells[i];
            if !ok(c) {
                println!(
                    "| {}. {} | {} | failed | | | | | |",
                    r.letter, r.name, act.label
                );
                continue;
            }
            println!(
                "| {}. {} | {} | {:.2} ms | {:.2} ms | {:.0} | {:.0} | {:.0} MiB | {:.0} MiB |",
                r.letter,
                r.name,
                act.label,
                ms(c.seq.p50),
                ms(c.seq.p99),
                c.at16.rate,
                c.at64.rate,
                mib(c.peak_rss),
                mib(c.peak_pss)
            );
        }
    }
    println!();
    for r in results {
        println!(
            "- {}. {}: idle RSS {:.1} MiB, PSS {:.1} MiB; \"serving\" {:.0} ms after spawn; other processes used {:.2} cores during its measurements",
            r.letter,
            r.name,
            mib(r.idle.rss),
            mib(r.idle.pss),
            ms(r.ready),
            r.foreign
        );
    }
    if !starts.is_empty() {
        println!(
            "- A, start-up with a warm compile cache: \"serving\" after {:.0} ms, first reply after {:.0} ms (medians of {} starts)",
            ms(starts[starts.len() / 2]),
            ms(first_reply),
            starts.len()
        );
    }
    if let Some(w) = &waiting {
        println!(
            "- A, {} jobs waiting on a slow upstream: RSS {:.0} → {:.0} MiB (+{:.2} MiB a job), PSS {:.0} → {:.0} MiB (+{:.2} MiB a job), anonymous +{:.2} MiB a job",
            w.held,
            mib(w.before.rss),
            mib(w.during.rss),
            w.rss,
            mib(w.before.pss),
            mib(w.during.pss),
            w.pss,
            w.anon
        );
    }
    if let (Some(a), Some(b), Some(c)) = (get('A'), get('B'), get('C')) {
        println!(
            "\n| target | {} |",
            actions
                .iter()
                .map(|a| a.label)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        println!("| --- |{}", " --- |".repeat(actions.len()));
        let row = |name: &str, f: &dyn Fn(&Cell, &Cell, &Cell) -> String| {
            let cells: Vec<String> = (0..actions.len())
                .map(|i| {
                    let (ca, cb, cc) = (&a.cells[i], &b.cells[i], &c.cells[i]);
                    if ok(ca) && ok(cb) && ok(cc) {
                        f(ca, cb, cc)
                    } else {
                        "failed".into()
                    }
                })
                .collect();
            println!("| {name} | {} |", cells.join(" | "));
        };
        row(
            "A jobs/s ÷ B, 16 / 64 in flight (≥ 15×)",
            &|ca, cb, _| {
                let (t16, t64) = (ca.at16.rate / cb.at16.rate, ca.at64.rate / cb.at64.rate);
                format!(
                    "{t16:.1}× / {t64:.1}× {}",
                    if t16 >= 15.0 && t64 >= 15.0 {
                        "✓"
                    } else {
                        "✗"
                    }
                )
            },
        );
        row("B p50 ÷ A p50 (≥ 10×)", &|ca, cb, _| {
            let r = ms(cb.seq.p50) / ms(ca.seq.p50);
            format!("{r:.1}× {}", if r >= 10.0 { "✓" } else { "✗" })
        });
        row("A p50 ÷ C p50 (≤ 2×)", &|ca, _, cc| {
            let r = ms(ca.seq.p50) / ms(cc.seq.p50);
            format!("{r:.2}× {}", if r <= 2.0 { "✓" } else { "✗" })
        });
    }
    if let Some(w) = &waiting {
        println!(
            "\nMemory per waiting job (A), target ≤ 4 MiB: PSS {:.2} MiB {}, RSS {:.2} MiB {} (RSS counts the runtime image's shared pages once per instance).",
            w.pss,
            if w.pss <= 4.0 { "✓" } else { "✗" },
            w.rss,
            if w.rss <= 4.0 { "✓" } else { "✗" }
        );
    }
}
