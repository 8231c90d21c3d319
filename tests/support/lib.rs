//! Shared support for the end-to-end tests: where the repository, the runtime and the
//! `action-worker` binary are. Later issues add a real nats-server launcher and a loopback
//! HTTP server here.
// Test support fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("..")
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
