//! `action-worker replay JOB_ID [--action FILE]`: a journaled job run again in this process,
//! offline (every answer from its journal; a call the journal lacks is refused, nothing is
//! sent), printed beside the differences from its stored result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use action_protocol::load_action;

use crate::cli::submit::{ask_whether_it_runs, nats_url};
use crate::config::Settings;
use crate::connect::connect;
use crate::execute::Executor;
use crate::journal::JournalStore;
use crate::pipeline::Pipeline;
use crate::replay::{Version, replay};

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The id of the job to run again (a durable job, or a recorded request-reply job).
    pub job_id: String,
    /// A new version of the action (`.py`, `.toml` or `.json`) to run against the recorded
    /// answers: what would it have returned?
    #[arg(long, value_name = "FILE")]
    action: Option<PathBuf>,
    /// The NATS server: nats.url, else the embedded default's 127.0.0.1:<nats.embedded_port>.
    #[arg(long)]
    url: Option<String>,
}

/// Prints `{replay_of, same, differences, result, stored}`; exit 0 when the new result is
/// the stored one, 1 when it differs, 2 when the job cannot be replayed.
pub fn main(config: &Settings, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let version = match &args.action {
        Some(path) => Version::New(Box::new(load_action(path)?)),
        None => Version::Recorded,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let replayed = runtime.block_on(async {
        let url = nats_url(config, args.url.as_deref());
        let options = async_nats::ConnectOptions::new().name("action-worker replay");
        let client = connect(&url, &config.nats_access, options)
            .await
            .map_err(ask_whether_it_runs)?;
        let js = async_nats::jetstream::new(client.clone());
        let max_payload = client.server_info().max_payload;
        let store = JournalStore::setup(&js, &config.nats, max_payload).await?;
        let executor = Executor::from_config(config, Some(0))?;
        let mut pipeline = Pipeline::local(Arc::new(executor));
        pipeline.worker_id = "replay".into();
        anyhow::Ok(replay(&pipeline, &store, &args.job_id, None, version).await)
    })?;
    match replayed {
        Ok(replayed) => {
            println!("{}", serde_json::to_string_pretty(&replayed)?);
            Ok(if replayed.same {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(message) => {
            eprintln!("action-worker: {message}");
            Ok(ExitCode::from(2))
        }
    }
}
