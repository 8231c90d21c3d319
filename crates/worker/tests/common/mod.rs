//! Shared by the worker's end-to-end tests: configurations, running the binary, serving a
//! fake upstream on loopback.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)] // each test file uses a different part of this module

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod nats;

/// This package's directory, as cargo says when it runs the test (the one compiled in may be
/// another checkout's, when checkouts share a target directory).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
}

pub fn root() -> PathBuf {
    manifest_dir().join("../..").canonicalize().unwrap()
}

/// A `worker.toml` in `dir` using the repository's runtime and compile cache, one process, the
/// admin port
/// on any free loopback port, loopback opened for the fake servers, and `extra` TOML after
/// that.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let root = root();
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

/// Runs `action-worker --config CONFIG run SCRIPT ARGS…` off the async runtime (so the fake
/// servers keep serving) and returns the result and the raw stdout.
pub async fn run_script(
    config: &Path,
    script: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Value, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_action-worker"));
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

/// Serves `app` on `bind` (`127.0.0.1:0` for any port) until the test ends.
pub async fn serve(app: axum::Router, bind: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
