//! The embedded default (SPEC §6): with no NATS URL configured, `serve` starts a local
//! nats-server with JetStream, bound to 127.0.0.1, and stops it when the worker stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::config::NatsSection;

#[derive(Debug)]
pub struct EmbeddedServer {
    pub url: String,
    _child: Child,
}

/// `nats-server` on PATH, else the project's `.venv/bin/nats-server`.
fn find_binary(config: &NatsSection) -> anyhow::Result<PathBuf> {
    if let Some(path) = &config.server_binary {
        return Ok(path.clone());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file());
    let local = Path::new(".venv/bin/nats-server").to_path_buf();
    on_path
        .or_else(|| local.is_file().then_some(local))
        .context(
            "no NATS URL is configured and no nats-server was found (on PATH or in .venv/bin): \
         run `make venv`, or set nats.url or nats.server_binary in worker.toml",
        )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

impl EmbeddedServer {
    pub async fn start(config: &NatsSection) -> anyhow::Result<Self> {
        let binary = find_binary(config)?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let port = if config.embedded_port == 0 {
            free_port()?
        } else {
            config.embedded_port
        };
        if config.embedded_port != 0
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            bail!(
                "127.0.0.1:{port} is taken (another nats-server or worker?): set nats.url to use it, \
                 or nats.embedded_port to another port (0 for any)"
            );
        }
        let child = Command::new(&binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&config.data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "{} did not accept connections on 127.0.0.1:{port} within 10 s",
                    binary.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            url: format!("nats://127.0.0.1:{port}"),
            _child: child,
        })
    }
}
