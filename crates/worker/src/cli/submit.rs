//! `action-worker submit ACTION|NAME`: send a job to a running worker and print its result
//! (SPEC §8): over request-reply, or with `--durable` through stream `ACTIONS_JOBS`, waiting
//! for the result the worker stores in `ACTIONS_RESULTS`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use action_protocol::{ActionRef, Encoding, Job, JobResult};
use anyhow::{Context, bail};
use async_nats::HeaderMap;
use futures_util::StreamExt;

use crate::cli::run::{RunArgs, build_job, job_for, print_result};
use crate::config::{Settings, WorkerConfig};
use crate::connect::{ConnectFailed, connect};
use crate::durable::{JOBS_STREAM, RESULTS_STREAM, id_names_a_result};

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The NATS server: nats.url, else the embedded default's 127.0.0.1:<nats.embedded_port>.
    #[arg(long)]
    url: Option<String>,
    /// Through the durable JetStream path instead of request-reply.
    #[arg(long)]
    durable: bool,
    /// The job id (the idempotency key); a fresh one by default. A durable job whose id has a
    /// stored result is not run again: the stored result is printed.
    #[arg(long)]
    id: Option<String>,
}

/// A connection failure, with the question to ask when no server answered.
pub fn ask_whether_it_runs(failed: ConnectFailed) -> anyhow::Error {
    if failed.unreachable {
        anyhow::anyhow!("{failed}: is `action-worker serve` running?")
    } else {
        failed.into()
    }
}

/// The NATS URL the CLI talks to.
pub fn nats_url(config: &WorkerConfig, url: Option<&str>) -> String {
    url.map(str::to_string)
        .or_else(|| config.nats.url.clone())
        .unwrap_or_else(|| format!("nats://127.0.0.1:{}", config.nats.embedded_port))
}

/// A file that exists is a definition; anything else that is a valid action name is a
/// registry name.
fn build(args: &SubmitArgs) -> anyhow::Result<Job> {
    let path = &args.run.action;
    let mut job = if path.exists() {
        build_job(&args.run)?.0
    } else {
        let name = path.to_string_lossy().to_string();
        if !action_protocol::is_valid_action_name(&name) {
            bail!(
                "{name:?} is neither a file nor an action name (^[a-z][A-Za-z0-9]{{0,63}}$) to look up in the registry"
            );
        }
        job_for(
            &args.run,
            ActionRef::Named {
                name,
                revision: None,
            },
        )?
    };
    if let Some(id) = &args.id {
        job.id = id.clone();
    }
    job.validate()?;
    Ok(job)
}

pub fn main(config: &Settings, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut job = build(&args)?;
    let url = nats_url(config, args.url.as_deref());
    let wait = Duration::from_millis(config.limits.max.timeout_ms) + Duration::from_secs(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let prefix = config.nats.subject_prefix.clone();
    let result: JobResult = runtime.block_on(async {
        let options = async_nats::ConnectOptions::new()
            .name("action-worker submit")
            .request_timeout(Some(wait));
        let client = connect(&url, &config.nats_access, options)
            .await
            .map_err(ask_whether_it_runs)?;
        if args.durable {
            return durable(&client, &prefix, &mut job, wait).await;
        }
        let subject = format!("{prefix}.{}", if job.test { "test" } else { "run" });
        let reply = client
            .request(subject.clone(), Encoding::Json.encode(&job).into())
            .await
            .with_context(|| format!("no answer on {subject} at {url}"))?;
        Encoding::Json
            .decode::<JobResult>(&reply.payload)
            .context("the worker's answer is not a result")
    })?;
    print_result(&result)
}

/// Publishes `job` to the jobs stream with `reply_to` set to an inbox, and waits for the
/// result there or in the results stream (where it already is when the id ran before).
async fn durable(
    client: &async_nats::Client,
    prefix: &str,
    job: &mut Job,
    wait: Duration,
) -> anyhow::Result<JobResult> {
    if !id_names_a_result(&job.id) {
        bail!(
            "--id {:?}: a durable job id must be usable in a NATS subject",
            job.id
        );
    }
    let js = async_nats::jetstream::new(client.clone());
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    job.reply_to = Some(inbox);
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", job.id.as_str());
    headers.insert("Content-Type", Encoding::Json.content_type());
    let subject = format!(
        "{prefix}.jobs.{}",
        job.tenant.as_deref().unwrap_or("default")
    );
    js.publish_with_headers(subject.clone(), headers, Encoding::Json.encode(&*job).into())
        .await
        .with_context(|| format!("cannot publish to {subject}"))?
        .await
        .with_context(|| {
            format!("{subject} was not stored: is there a stream {JOBS_STREAM} (a worker with nats.durable = true creates it)?")
        })?;
    let results = js.get_stream(RESULTS_STREAM).await.ok();
    let result_subject = format!("{prefix}.results.{}", job.id);
    let deadline = Instant::now() + wait;
    loop {
        tokio::select! {
            reply = replies.next() => {
                let reply = reply.context("the reply subscription closed")?;
                let content_type = reply.headers.as_ref().and_then(|h| h.get("Content-Type")).map(|v| v.as_str().to_string());
                let encoding = Encoding::from_content_type(content_type.as_deref())?;
                return encoding.decode::<JobResult>(&reply.payload).context("the worker's answer is not a result");
            }
            // The publish may have been a duplicate within the stream's window, which no
            // worker sees: then the stored result is the answer.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(results) = &results
                    && let Ok(message) = results.direct_get_last_for_subject(result_subject.as_str()).await
                {
                    let content_type = message.headers.get("Content-Type").map(|v| v.as_str().to_string());
                    let encoding = Encoding::from_content_type(content_type.as_deref())?;
                    return encoding.decode::<JobResult>(&message.payload).context("the stored result is not a result");
                }
                if Instant::now() > deadline {
                    bail!("no result for job {} within {} s", job.id, wait.as_secs());
                }
            }
        }
    }
}
