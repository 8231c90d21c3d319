//! A real nats-server and real `action-worker serve` processes for the NATS tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn nats_server_binary() -> PathBuf {
    let local = super::repo_root().join(".venv/bin/nats-server");
    if local.is_file() {
        return local;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server (make venv installs it into .venv/bin)")
}

/// A nats-server with JetStream on a free loopback port, storing under `store`.
pub struct Nats {
    pub url: String,
    port: u16,
    store: PathBuf,
    /// A configuration file (`-c`) instead of the command-line flags.
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl Nats {
    pub async fn start(store: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store: store.to_path_buf(),
            config: None,
            child: None,
        };
        nats.spawn().await;
        nats
    }

    /// A nats-server on a free loopback port with JetStream storing under `dir/jetstream`
    /// and `settings` (nats-server configuration: `authorization { … }`, `tls { … }`,
    /// `operator`…) in the file `dir/nats-server.conf`.
    pub async fn start_with_config(dir: &Path, settings: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = dir.join("jetstream");
        let config = dir.join("nats-server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {:?} }}\n{settings}\n",
                store.display().to_string()
            ),
        )
        .unwrap();
        let mut nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
            config: Some(config),
            child: None,
        };
        nats.spawn().await;
        nats
    }

    async fn spawn(&mut self) {
        let mut command = Command::new(nats_server_binary());
        match &self.config {
            Some(config) => command
                .arg("-c")
                .arg(config)
                .arg("-l")
                .arg(config.with_extension("log")),
            None => command
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(&self.store),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log = self
            .config
            .as_ref()
            .and_then(|c| std::fs::read_to_string(c.with_extension("log")).ok())
            .unwrap_or_default();
        panic!("nats-server did not start on port {}\n{log}", self.port);
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and starts it again on the same
    /// port and store.
    pub async fn restart(&mut self, down_for: Duration) {
        self.kill().await;
        tokio::time::sleep(down_for).await;
        self.spawn().await;
    }

    /// Kills the server (SIGKILL), leaving it down until [`Nats::start_again`].
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Starts a killed server again, on the same port, store and configuration.
    pub async fn start_again(&mut self) {
        self.spawn().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JetStream cluster of real nats-servers on loopback, with routes between every two:
/// node `i` is `server_name: n<i>`, its monitoring port serves `/connz`.
pub struct Cluster {
    pub nodes: Vec<Nats>,
    /// `http://127.0.0.1:<port>` of each node's monitoring endpoint.
    pub monitors: Vec<String>,
}

impl Cluster {
    /// `size` nodes under `dir`, returned once JetStream answers through every node.
    pub async fn start(dir: &Path, size: usize) -> Self {
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let monitor_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..size {
            let others: Vec<String> = (0..size)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", routes[j]))
                .collect();
            let settings = format!(
                "server_name: n{i}\nhttp: \"127.0.0.1:{}\"\ncluster {{\n  name: actions\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                monitor_ports[i],
                routes[i],
                others.join(", ")
            );
            nodes.push(Nats::start_with_config(&dir.join(format!("n{i}")), &settings).await);
        }
        let cluster = Self {
            nodes,
            monitors: monitor_ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
        };
        for i in 0..size {
            cluster.wait_for_jetstream(i).await;
        }
        cluster
    }

    /// Every node's URL, comma-separated (`nats.url` of a worker on the cluster).
    pub fn urls(&self) -> String {
        let urls: Vec<&str> = self.nodes.iter().map(|n| n.url.as_str()).collect();
        urls.join(",")
    }

    /// Waits until node `i` answers JetStream requests (its meta leader is known).
    pub async fn wait_for_jetstream(&self, i: usize) {
        let client = async_nats::connect(&self.nodes[i].url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        for _ in 0..300 {
            if js.query_account().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("JetStream did not come up on node n{i}");
    }

    /// The node holding a client connection named `name`, by the nodes' `/connz`.
    pub async fn node_serving(&self, name: &str) -> Option<usize> {
        for (i, monitor) in self.monitors.iter().enumerate() {
            let Ok(response) = reqwest::get(format!("{monitor}/connz")).await else {
                continue;
            };
            let Ok(text) = response.text().await else {
                continue;
            };
            let Ok(connz) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let connections = connz["connections"].as_array().cloned().unwrap_or_default();
            if connections.iter().any(|c| c["name"] == name) {
                return Some(i);
            }
        }
        None
    }
}

/// A running `action-worker serve`.
pub struct Worker {
    pub child: Child,
    /// The URL of the nats-server it started, when it started one.
    pub embedded: Option<String>,
    /// `http://host:port` of its admin port.
    pub admin: Option<String>,
}

impl Worker {
    /// Starts `serve` with `worker.toml` in `dir` (see [`super::write_config`]) and returns
    /// once it serves.
    pub async fn start(dir: &Path, extra: &str) -> Self {
        Self::start_with_env(dir, extra, &[]).await
    }

    /// [`Worker::start`] with more environment variables (e.g. `ACTION_WORKER__…` overrides).
    pub async fn start_with_env(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = super::write_config(dir, extra);
        let mut child = Command::new(super::worker_binary())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut embedded = None;
        let mut admin = None;
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) =
                    line.strip_prefix("action-worker: started a local nats-server at ")
                {
                    embedded = rest.split_whitespace().next().map(str::to_string);
                }
                if let Some(rest) = line.strip_prefix("action-worker: admin on ") {
                    admin = rest.split_whitespace().next().map(str::to_string);
                }
                if line.contains("serving actions.run") {
                    return;
                }
            }
            panic!("the worker exited before serving");
        });
        ready.await.expect("the worker did not become ready");
        // Keep reading stdout so that the worker never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            embedded,
            admin,
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().unwrap().to_string()
    }

    /// SIGKILL: the worker dies mid-whatever, as on a crash or an OOM kill.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, and the exit status (within 30 s).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the worker did not stop within 30 s of SIGTERM")
            .unwrap()
    }
}

/// Publishes `job` (JSON, `Nats-Msg-Id` = its id) to the durable stream on `subject` and
/// waits for the stream to store it.
pub async fn submit_json(
    js: &async_nats::jetstream::Context,
    subject: &str,
    job: &serde_json::Value,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", job["id"].as_str().unwrap_or_default());
    headers.insert("Content-Type", "application/json");
    js.publish_with_headers(subject.to_string(), headers, job.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Sends `job` as JSON on `actions.run` and decodes the result.
pub async fn run_json(client: &async_nats::Client, job: &serde_json::Value) -> serde_json::Value {
    let reply = client
        .request("actions.run", job.to_string().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// A reply's `Content-Type` and its result, decoded by that type (JSON or MessagePack).
pub fn decode_reply(message: &async_nats::Message) -> (String, serde_json::Value) {
    let content_type = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    let result = if content_type == "application/msgpack" {
        rmp_serde::from_slice(&message.payload).unwrap()
    } else {
        serde_json::from_slice(&message.payload).unwrap()
    };
    (content_type, result)
}
