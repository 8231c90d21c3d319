//! `action-worker serve`: jobs from NATS request-reply on `<prefix>.run` and `<prefix>.test`,
//! as a NATS micro service in queue group `action-workers` (SPEC §6), results back in the
//! request's encoding. At most `nats.max_concurrent_jobs` jobs run at once; further requests
//! wait in the client library's buffer until a slot frees (backpressure).

use std::sync::Arc;

use action_protocol::{ActionRef, Encoding, Job, JobResult};
use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::service::{Request, ServiceExt};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::WorkerConfig;
use crate::embedded::EmbeddedServer;
use crate::execute::Executor;

pub async fn serve(config: &WorkerConfig) -> anyhow::Result<()> {
    let executor = Arc::new(Executor::from_config(config, None)?);
    let embedded = match &config.nats.url {
        Some(_) => None,
        None => Some(EmbeddedServer::start(&config.nats).await?),
    };
    let url = config
        .nats
        .url
        .clone()
        .or_else(|| embedded.as_ref().map(|e| e.url.clone()))
        .unwrap_or_default();
    if embedded.is_some() {
        say(format!(
            "action-worker: started a local nats-server at {url} (data in {})",
            config.nats.data_dir.display()
        ));
    }
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))?;
    let service = client
        .service_builder()
        .description("Runs chatbot custom actions: API requests and sandboxed Python")
        .queue_group("action-workers")
        .start("action-worker", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the NATS service: {e}"))?;
    let prefix = &config.nats.subject_prefix;
    let add = |name: &'static str| {
        let subject = format!("{prefix}.{name}");
        let builder = service.endpoint_builder().name(name);
        async move {
            builder
                .add(subject)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add endpoint {name}: {e}"))
        }
    };
    let run = add("run").await?.map(|r| (r, false));
    let test = add("test").await?.map(|r| (r, true));
    let mut requests = futures_util::stream::select(run, test);
    let slots = Arc::new(Semaphore::new(config.nats.max_concurrent_jobs));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    say(format!(
        "action-worker: serving {prefix}.run and {prefix}.test on {url} (queue group action-workers)"
    ));
    loop {
        tokio::select! {
            next = requests.next() => {
                let Some((request, force_test)) = next else { break };
                let permit = slots.clone().acquire_owned().await.context("the job slots closed")?;
                tokio::spawn(handle(executor.clone(), request, force_test, permit));
            }
            // Both end the loop, so that the embedded nats-server is stopped with the worker.
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    say("action-worker: stopping".to_string());
    drop(embedded);
    Ok(())
}

/// A status line on stdout; a closed stdout (a supervisor that stopped reading) is no error.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn decode(payload: &[u8], headers: Option<&HeaderMap>) -> (Encoding, Result<Job, String>) {
    let content_type = headers
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.as_str().to_string());
    let encoding = match Encoding::from_content_type(content_type.as_deref()) {
        Ok(encoding) => encoding,
        Err(e) => return (Encoding::Json, Err(e.to_string())),
    };
    let job = encoding
        .decode::<Job>(payload)
        .map_err(|e| format!("cannot decode the job: {e}"));
    (encoding, job)
}

async fn handle(
    executor: Arc<Executor>,
    request: Request,
    force_test: bool,
    _slot: OwnedSemaphorePermit,
) {
    let (encoding, job) = decode(&request.message.payload, request.message.headers.as_ref());
    let result = match job {
        Err(message) => JobResult::rejected("", "", message),
        Ok(mut job) => {
            job.test |= force_test;
            match job.validate() {
                Err(e) => JobResult::rejected(&job.id, job.action.name(), e.to_string()),
                Ok(()) => match &job.action {
                    ActionRef::Inline(action) => executor.run(&job, action, 1).await,
                    ActionRef::Named { name, .. } => JobResult::rejected(
                        &job.id,
                        name,
                        "actions by name need the registry (KV bucket ACTIONS), which this build does not serve yet: send the definition",
                    ),
                },
            }
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", encoding.content_type());
    if let Err(error) = request
        .respond_with_headers(Ok(encoding.encode(&result).into()), headers)
        .await
    {
        tracing::warn!(job_id = %result.job_id, %error, "could not send the result");
    }
}
