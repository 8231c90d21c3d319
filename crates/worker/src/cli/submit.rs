//! `action-worker submit ACTION`: send a job to a running worker over NATS request-reply and
//! print its result (SPEC §8).

use std::process::ExitCode;
use std::time::Duration;

use action_protocol::{Encoding, JobResult};
use anyhow::{Context, bail};

use crate::cli::run::{RunArgs, build_job, print_result};
use crate::config::WorkerConfig;

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
}

pub fn main(config: &WorkerConfig, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    if args.durable {
        bail!(
            "--durable: the JetStream job stream is not served by this build yet; submit without it"
        );
    }
    let (job, _action) = build_job(&args.run)?;
    let url = args
        .url
        .clone()
        .or_else(|| config.nats.url.clone())
        .unwrap_or_else(|| format!("nats://127.0.0.1:{}", config.nats.embedded_port));
    let subject = format!(
        "{}.{}",
        config.nats.subject_prefix,
        if job.test { "test" } else { "run" }
    );
    let wait = Duration::from_millis(config.limits.max.timeout_ms) + Duration::from_secs(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result: JobResult = runtime.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(wait))
            .connect(&url)
            .await
            .with_context(|| {
                format!("cannot connect to NATS at {url}: is `action-worker serve` running?")
            })?;
        let payload = Encoding::Json.encode(&job);
        let reply = client
            .request(subject.clone(), payload.into())
            .await
            .with_context(|| format!("no answer on {subject} at {url}"))?;
        Encoding::Json
            .decode::<JobResult>(&reply.payload)
            .context("the worker's answer is not a result")
    })?;
    print_result(&result)
}
