//! The NATS front of runners B and C: a NATS micro service on one request-reply subject, in
//! queue group `action-workers`, with at most `max_in_flight` jobs at once (further requests
//! wait, as in the worker's `serve`), each job handed to Python:
//!
//! - `process`: a fresh `python per_process.py` per job, the job on its stdin, the result on
//!   its stdout (runner B);
//! - `inprocess`: one long-lived `python in_process.py`, jobs and results multiplexed over its
//!   stdin and stdout as `ID<TAB>JSON` lines (runner C).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{Semaphore, mpsc, oneshot};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct FrontArgs {
    pub mode: String,
    pub url: String,
    pub subject: String,
    pub python: PathBuf,
    pub script_dir: PathBuf,
    pub max_in_flight: usize,
}

enum Runner {
    PerProcess {
        python: PathBuf,
        script_dir: PathBuf,
    },
    InProcess {
        lines: mpsc::UnboundedSender<Vec<u8>>,
        pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>>,
        next: AtomicU64,
    },
}

fn failed(message: &str) -> Bytes {
    serde_json::json!({"job_id": "", "status": "failed", "output": null,
        "error": {"kind": "runner", "message": message}})
    .to_string()
    .into()
}

impl Runner {
    async fn start(args: &FrontArgs) -> Result<Self, Error> {
        if args.mode == "process" {
            return Ok(Self::PerProcess {
                python: args.python.clone(),
                script_dir: args.script_dir.clone(),
            });
        }
        let mut child = Command::new(&args.python)
            .arg("in_process.py")
            .current_dir(&args.script_dir)
            .env("MAX_IN_FLIGHT", args.max_in_flight.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut ready = String::new();
        stdout.read_line(&mut ready).await?;
        if ready.trim() != "ready" {
            return Err(format!("in_process.py did not start: {ready:?}").into());
        }
        let (lines, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if stdin.write_all(&line).await.is_err() {
                    break;
                }
            }
        });
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Bytes>>>> = Arc::default();
        let waiting = pending.clone();
        tokio::spawn(async move {
            let _child = child; // killed when this ends
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Some(tab) = line.iter().position(|&b| b == b'\t') else {
                    continue;
                };
                let Some(id) = std::str::from_utf8(&line[..tab])
                    .ok()
                    .and_then(|s| s.parse().ok())
                else {
                    continue;
                };
                let body = Bytes::copy_from_slice(line[tab + 1..].trim_ascii_end());
                if let Some(tx) = waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
                    let _ = tx.send(body);
                }
            }
            eprintln!("alt-runner: in_process.py exited");
            std::process::exit(1);
        });
        Ok(Self::InProcess {
            lines,
            pending,
            next: AtomicU64::new(0),
        })
    }

    async fn run(&self, payload: Bytes) -> Bytes {
        match self {
            Self::PerProcess { python, script_dir } => {
                match per_process(python, script_dir, &payload).await {
                    Ok(result) => result,
                    Err(e) => failed(&e.to_string()),
                }
            }
            Self::InProcess {
                lines,
                pending,
                next,
            } => {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = oneshot::channel();
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, tx);
                // A raw CR or LF cannot be inside a JSON string: as a space it changes nothing.
                let mut line = format!("{id}\t").into_bytes();
                line.extend(
                    payload
                        .iter()
                        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
                );
                line.push(b'\n');
                if lines.send(line).is_err() {
                    return failed("in_process.py is gone");
                }
                rx.await
                    .unwrap_or_else(|_| failed("in_process.py dropped the job"))
            }
        }
    }
}

async fn per_process(python: &PathBuf, dir: &PathBuf, payload: &[u8]) -> Result<Bytes, Error> {
    let mut child = Command::new(python)
        .arg("per_process.py")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    stdin.write_all(payload).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(format!(
            "python exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out.stdout.into())
}

pub async fn serve(args: FrontArgs) -> Result<(), Error> {
    let runner = Arc::new(Runner::start(&args).await?);
    let client = async_nats::connect(&args.url).await?;
    let service = client
        .service_builder()
        .description("bench/alternatives: a Python runner without the sandbox")
        .queue_group("action-workers")
        .start("alt-runner", "0.1.0")
        .await
        .map_err(|e| format!("cannot start the NATS service: {e}"))?;
    let mut requests = service
        .endpoint_builder()
        .name("run")
        .add(args.subject.clone())
        .await
        .map_err(|e| format!("cannot add the endpoint: {e}"))?;
    client.flush().await?;
    let slots = Arc::new(Semaphore::new(args.max_in_flight));
    println!(
        "alt-runner ({}): serving {} on {}",
        args.mode, args.subject, args.url
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            next = requests.next() => {
                let Some(request) = next else { break };
                let permit = slots.clone().acquire_owned().await?;
                let runner = runner.clone();
                tokio::spawn(async move {
                    let result = runner.run(request.message.payload.clone()).await;
                    let mut headers = HeaderMap::new();
                    headers.insert("Content-Type", "application/json");
                    if let Err(e) = request.respond_with_headers(Ok(result), headers).await {
                        eprintln!("alt-runner: could not send a result: {e}");
                    }
                    drop(permit);
                });
            }
            _ = terminate.recv() => break,
        }
    }
    Ok(())
}
