//! The one place of test support for every crate's tests: where the repository and the
//! `action-worker` binary are, worker configurations, running the binary, a loopback HTTP
//! server, and real nats-servers ([`nats`]).
// Test support fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod bench;
pub mod nats;

/// The repository root: from the directory of the package whose test is running, as cargo
/// says when it runs it (the one compiled in may be another checkout's, when checkouts share
/// a target directory), up to the workspace's `Cargo.toml`.
pub fn repo_root() -> PathBuf {
    let start = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let start = PathBuf::from(start).canonicalize().unwrap();
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.contains("[workspace]"))
        })
        .expect("a workspace Cargo.toml above the package")
        .to_path_buf()
}

/// The `action-worker` binary of this build: `cargo test --workspace` builds it beside
/// the test executables (`target/<profile>/action-worker`).
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("action-worker");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --workspace` first",
        binary.display()
    );
    binary
}

/// Runs the binary from the repository root with the shipped `worker.toml`.
pub fn worker(args: &[&str]) -> Output {
    Command::new(worker_binary())
        .current_dir(repo_root())
        .args(["--config", "worker.toml"])
        .args(args)
        .env("ACTION_WORKER_LOG", "error")
        .output()
        .expect("run action-worker")
}

/// Runs the binary with `config` and `args`, its logs at errors only: (exit code, stdout,
/// stderr).
pub fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(worker_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("ACTION_WORKER_LOG", "error")
        .output()
        .expect("run action-worker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `worker.toml` in `dir` using the repository's runtime and compile cache, one process, the
/// admin port
/// on any free loopback port, loopback opened for the fake servers, and `extra` TOML after
/// that.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let root = repo_root();
    let path = dir.join("worker.toml");
    std::fs::write(
        &path,
        format!(
            "[runtime]\ncomponent = \"{}\"\ncache_dir = \"{}\"\nprocesses = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[egress]\nallow_private_cidrs = [\"127.0.0.0/8\"]\n{extra}",
            root.join("build/action-runtime.wasm").display(),
            root.join("data/cache").display()
        ),
    )
    .unwrap();
    path
}

/// The `[runtime.profiles.contacts]` table of the shipped worker.toml, with absolute paths,
/// for a test's own configuration (the component is built by `make test`).
pub fn contacts_profile() -> String {
    let root = repo_root();
    format!(
        "[runtime.profiles.contacts]\nrequirements = \"{}\"\ncomponent = \"{}\"\nexclude = [\"phonenumbers.geodata\", \"phonenumbers.geocoder\"]\n",
        root.join("profiles/contacts.txt").display(),
        root.join("build/runtime-contacts.wasm").display()
    )
}

/// Runs `action-worker --config CONFIG run SCRIPT ARGS…` off the async runtime (so the fake
/// servers keep serving) and returns the result and the raw stdout.
pub async fn run_script(
    config: &Path,
    script: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Value, String) {
    let mut command = std::process::Command::new(worker_binary());
    command
        .arg("--config")
        .arg(config)
        .arg("run")
        .arg(script)
        .args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout={stdout} stderr={}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (value, stdout)
}

/// Prints a test's figures where `make test` shows them: straight to the process's stderr,
/// past the test harness's capture (which takes only `print!` and `eprint!`).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The Prometheus text of an admin port (`http://host:port`).
pub async fn scrape(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Serves `app` on `bind` (`127.0.0.1:0` for any port) until the test ends.
pub async fn serve(app: axum::Router, bind: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
