//! `action-worker`: runs chatbot custom actions. See `action-worker --help` and the README.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use action_worker::{cli, config};

#[derive(Debug, Parser)]
#[command(
    name = "action-worker",
    version,
    about = "Runs chatbot custom actions: API requests and sandboxed Python"
)]
struct Cli {
    /// The configuration file; a missing ./worker.toml means all defaults.
    #[arg(long, global = true, default_value = "worker.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The worker: jobs from NATS (`<prefix>.run`, `<prefix>.test`), results back.
    Serve,
    /// Runs one action locally, no NATS needed, and prints the result JSON.
    Run(cli::run::RunArgs),
    /// Sends one job to a running worker over NATS and prints its result.
    Submit(cli::submit::SubmitArgs),
    /// Manages the registry of actions (KV bucket ACTIONS): put, list, rm.
    Actions(cli::actions::ActionsArgs),
    /// Prints an action's name, description, arguments and LLM tool definition.
    Inspect(cli::inspect::InspectArgs),
    /// Checks the configuration and exits.
    CheckConfig,
    /// Compiles the Python runtime into the compile cache and exits.
    Precompile,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACTION_WORKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    let result =
        config::WorkerConfig::load(&cli.config, explicit).and_then(|config| match cli.command {
            Command::Serve => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(action_worker::serve::serve(&config)))
                .map(|()| ExitCode::SUCCESS),
            Command::Run(args) => cli::run::main(&config, args),
            Command::Submit(args) => cli::submit::main(&config, args),
            Command::Actions(args) => cli::actions::main(&config, args),
            Command::Inspect(args) => cli::inspect::main(args),
            Command::CheckConfig => {
                println!("{}: ok", cli.config.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::Precompile => cli::run::precompile(&config),
        });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("action-worker: {error:#}");
            ExitCode::from(2)
        }
    }
}
