//! Starting the runners (the worker, the NATS fronts of B and C) and what they need: the
//! nats-server, the venv.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::*;

// ---------------------------------------------------------------------------------------
// Runners.

pub(super) struct Running {
    pub(super) child: Child,
    pub(super) started: Instant,
    pub(super) ready: Duration,
    pub(super) subject: String,
}

impl Running {
    pub(super) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub(super) async fn stop(mut self) {
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
pub(super) async fn start(mut command: Command, subject: &str, log: &Path) -> Running {
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
pub(super) async fn answering(client: &async_nats::Client, running: &Running) -> Duration {
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

pub(super) fn worker_config(
    s: &Settings,
    url: &str,
    name: &str,
    jobs: usize,
    instances: usize,
) -> PathBuf {
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

pub(super) async fn start_worker(s: &Settings, config: &Path) -> Running {
    let mut command = Command::new(&s.worker_bin);
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(&s.tmp);
    start(command, "alt_a.run", &s.tmp.join("worker.log")).await
}

pub(super) async fn start_front(s: &Settings, url: &str, mode: &str, subject: &str) -> Running {
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

pub(super) fn ensure_venv(bench_dir: &Path) -> PathBuf {
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
pub(super) fn compile_python(python: &Path, dir: &Path) {
    let ok = std::process::Command::new(python)
        .args(["-m", "compileall", "-q"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not byte-compile {}", dir.display());
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port")
        .port()
}

pub(super) async fn start_nats(s: &Settings) -> (Child, String) {
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
