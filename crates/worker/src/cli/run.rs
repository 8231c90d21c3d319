//! `action-worker run ACTION`: one job, in this process, result JSON on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use action_protocol::{ActionRef, Job, Status, load_action};
use action_sandbox::Sandbox;
use anyhow::{Context, bail};
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::conversations::Conversations;
use crate::execute::Executor;
use crate::pipeline::{Arrival, Path, Pipeline};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The action: a `name.py`, or a `.toml` / `.json` definition (`submit`: or the name of
    /// an action in the registry).
    pub action: PathBuf,
    /// An argument, as a string: `--arg orderId=A1` (repeatable; wins over --args-json).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    args: Vec<String>,
    /// All arguments as one JSON object, with their types: `--args-json '{"qty": 3}'`.
    #[arg(long, value_name = "JSON")]
    args_json: Option<String>,
    /// A JSON file holding the conversation (SPEC §3) given to the action.
    #[arg(long, value_name = "FILE")]
    conversation: Option<PathBuf>,
    /// The conversation by its id: the worker asks the workflow engine for it over NATS
    /// (`nats.conversation_subject`), scoped by `--tenant`.
    #[arg(long, value_name = "ID", conflicts_with = "conversation")]
    conversation_id: Option<String>,
    /// Runs as a test job: effects are reported, flagged `test`, and never applied.
    #[arg(long)]
    test: bool,
    /// The tenant the job runs for: it scopes `{{secrets.NAME}}` (SPEC §5).
    #[arg(long)]
    pub tenant: Option<String>,
}

fn parse_args(args: &RunArgs) -> anyhow::Result<Map<String, Value>> {
    let mut map = match &args.args_json {
        None => Map::new(),
        Some(text) => {
            match serde_json::from_str::<Value>(text).context("--args-json is not JSON")? {
                Value::Object(map) => map,
                other => bail!("--args-json must be a JSON object, got {other}"),
            }
        }
    };
    for pair in &args.args {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--arg {pair:?}: expected KEY=VALUE");
        };
        if key.is_empty() {
            bail!("--arg {pair:?}: the key is empty");
        }
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok(map)
}

fn local_job_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("local-{nanos:x}")
}

/// The job `run` and `submit` send: the action inline, the arguments and conversation given.
pub fn build_job(args: &RunArgs) -> anyhow::Result<(Job, action_protocol::ActionDefinition)> {
    let action = load_action(&args.action)?;
    let job = job_for(args, ActionRef::Inline(Box::new(action.clone())))?;
    Ok((job, action))
}

/// A job for `action` with the arguments, conversation and tenant of `args`.
pub fn job_for(args: &RunArgs, action: ActionRef) -> anyhow::Result<Job> {
    let conversation = match &args.conversation {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
            {
                Value::Object(map) => Some(map),
                Value::Null => None,
                _ => bail!("{}: the conversation must be a JSON object", path.display()),
            }
        }
    };
    let job = Job {
        id: local_job_id(),
        tenant: args.tenant.clone(),
        action,
        args: parse_args(args)?,
        conversation,
        business: None,
        customer: None,
        test: args.test,
        timeout_ms: None,
        reply_to: None,
        conversation_id: args.conversation_id.clone(),
        record: false,
        replay: None,
    };
    Ok(job)
}

/// Prints the result; exit 0 only for `ok`.
pub fn print_result(result: &action_protocol::JobResult) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(result)?);
    Ok(if result.status == Status::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn main(config: &Settings, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (job, _) = build_job(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        // One job: nothing to prepare ahead.
        let executor = Executor::from_config(config, Some(0))?;
        let mut pipeline = Pipeline::local(Arc::new(executor));
        pipeline.worker_id = "local".into();
        if job.conversation_id.is_some() {
            pipeline.conversations = Some(engine(config).await?);
        }
        // The same pipeline as `serve`: a panic is a failed result, printed like any other.
        anyhow::Ok(pipeline.run(&job, Arrival::new(Path::Local, 1)).await)
    })?;
    print_result(&result)
}

/// The workflow engine's conversations, over NATS (`run --conversation-id`).
async fn engine(config: &Settings) -> anyhow::Result<Conversations> {
    let url = crate::cli::submit::nats_url(config, None);
    let options = async_nats::ConnectOptions::new().name("action-worker run");
    let client = crate::connect::connect(&url, &config.nats_access, options)
        .await
        .map_err(crate::cli::submit::ask_whether_it_runs)?;
    Ok(Conversations {
        client,
        subject: config.nats.conversation_subject(),
        timeout: std::time::Duration::from_millis(config.nats.conversation_timeout_ms),
    })
}

pub fn precompile(config: &Settings) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let sandbox = Sandbox::new(config.sandbox.clone())?;
    for (name, component, cached) in sandbox.profiles() {
        let how = if cached {
            "already in the cache"
        } else {
            "compiled"
        };
        println!(
            "{name}: {}: {how} under {}",
            component.display(),
            config.runtime.cache_dir.display()
        );
    }
    println!("{} ms", started.elapsed().as_millis());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str], json: Option<&str>) -> RunArgs {
        RunArgs {
            action: "x.py".into(),
            args: list.iter().map(|s| s.to_string()).collect(),
            args_json: json.map(String::from),
            conversation: None,
            conversation_id: None,
            test: false,
            tenant: None,
        }
    }

    #[test]
    fn arguments_merge_with_arg_winning() {
        let map = parse_args(&args(&["a=1", "b=x=y"], Some(r#"{"a": 5, "c": [1]}"#))).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"a": "1", "c": [1], "b": "x=y"})
        );
        assert!(
            parse_args(&args(&["novalue"], None))
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
        assert!(
            parse_args(&args(&[], Some("[1]")))
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
    }
}
