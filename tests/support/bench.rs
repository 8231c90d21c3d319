//! The release worker the benchmarks measure: `WORKER_BIN`, or the release build in the
//! target directory, on its embedded nats-server, with the repository's runtime.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `action-worker serve` (release build) and where it serves.
pub struct ReleaseWorker {
    pub child: Child,
    /// The embedded nats-server's URL.
    pub url: String,
    /// `http://host:port` of the admin port.
    pub admin: String,
}

impl ReleaseWorker {
    /// The binary: `WORKER_BIN` (another build, for a side-by-side run), else
    /// `$CARGO_TARGET_DIR/release/action-worker`.
    pub fn binary() -> PathBuf {
        let root = super::repo_root();
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let binary = std::env::var_os("WORKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("release/action-worker"));
        assert!(
            binary.exists(),
            "{} is missing: run `make build`",
            binary.display()
        );
        binary
    }

    /// Starts it with a `worker.toml` in `dir`: the repository's runtime and cache, the admin
    /// port anywhere on loopback, loopback open to egress, an embedded nats-server storing in
    /// `dir/nats` on any free port, and `extra` TOML (keys of `[nats]` first, without the
    /// header).
    pub async fn start(dir: &Path, nats_extra: &str, extra: &str) -> Self {
        let root = super::repo_root();
        let config = dir.join("worker.toml");
        std::fs::write(
            &config,
            format!(
                "[runtime]\ncomponent = \"{}\"\ncache_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[egress]\nallow_private_cidrs = [\"127.0.0.1/32\"]\n\
                 [nats]\nserver_binary = \"{}\"\ndata_dir = \"{}\"\nembedded_port = 0\n{nats_extra}\n{extra}",
                root.join("build/action-runtime.wasm").display(),
                root.join("data/cache").display(),
                root.join(".venv/bin/nats-server").display(),
                dir.join("nats").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(Self::binary())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut admin) = (String::new(), String::new());
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("action-worker: started a local nats-server at ")
            {
                url = rest.split_whitespace().next().unwrap().to_string();
            }
            if let Some(rest) = line.strip_prefix("action-worker: admin on ") {
                admin = rest.split_whitespace().next().unwrap().to_string();
            }
            if line.contains("serving actions.run") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url, admin }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// SIGTERM, and up to 5 s for it to stop.
    pub async fn stop(mut self) {
        let pid = self.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait()).await;
    }
}
