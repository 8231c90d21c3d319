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
    /// Runs a journaled job again, offline, against its recorded answers, and prints the new
    /// result beside its differences from the stored one.
    Replay(cli::replay::ReplayArgs),
    /// Checks an action before it runs: syntax, the entry point, imports, helper calls (Python),
    /// `$variables` against `parameters` (API). Exit 0 only when nothing is found.
    Check(cli::check::CheckArgs),
    /// Prints the type stubs of the helpers and of `context` (for an editor), or writes them
    /// into a directory.
    Stubs(cli::stubs::StubsArgs),
    /// Manages the registry of actions (KV bucket ACTIONS): put, list, rm.
    Actions(cli::actions::ActionsArgs),
    /// Prints an action's name, description, arguments and LLM tool definition.
    Inspect(cli::inspect::InspectArgs),
    /// Checks the configuration (the file and ACTION_WORKER__<SECTION>__<KEY> variables) and
    /// prints the effective one, secrets redacted; starts nothing.
    CheckConfig,
    /// Compiles the Python runtime of every profile into the compile cache and exits.
    Precompile,
    /// The runtime profiles: `build` makes their components, `list` shows them.
    Runtime(cli::runtime::RuntimeArgs),
}

/// `check-config`: the configuration loaded and validated (or `main` printed the error);
/// print where it came from and what it is. Secrets print as `[redacted]`.
fn check_config(
    path: &std::path::Path,
    config: &config::WorkerConfig,
    env_vars: &[String],
) -> anyhow::Result<ExitCode> {
    let from_env = if env_vars.is_empty() {
        String::new()
    } else {
        format!(" (with {} from the environment)", env_vars.join(", "))
    };
    let text = config.to_toml()?;
    println!(
        "{}: ok{from_env}\n# The effective configuration; secrets redacted.\n{text}",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Logs on stderr: `serve` by `[log]` (`info`, text or JSON), the other commands at `warn`;
/// `ACTION_WORKER_LOG` overrides the filter for all. `serve` exports its spans with
/// OpenTelemetry when `[telemetry] otlp_endpoint` is set, whatever the log level.
fn init_logging(log: Option<&config::LogSection>, telemetry: Option<&config::TelemetrySection>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let mut level = log
        .map(|l| l.level.clone())
        .unwrap_or_else(|| "warn".into());
    // The worker logs NATS connection events itself (connect.rs); the client library's own
    // lines say the same again at info.
    if level == "info" {
        level.push_str(",async_nats=warn");
    }
    let filter =
        EnvFilter::try_from_env("ACTION_WORKER_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if log.is_some_and(|l| l.format == config::LogFormat::Json) {
        // `span`: the innermost (a host call's, within a job); `spans`: from the job's
        // `action.run` (with `job_id`) inwards.
        fmt.json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    let spans = Targets::new()
        .with_target("action_worker", LevelFilter::INFO)
        .with_target("action_sandbox", LevelFilter::INFO);
    let otel = telemetry.and_then(|t| match action_worker::telemetry::layer(t) {
        Ok(layer) => layer.map(|layer| layer.with_filter(spans)),
        Err(error) => {
            eprintln!("action-worker: telemetry is off: {error:#}");
            None
        }
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    action_worker::guard::install_hook();
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    let loaded = config::WorkerConfig::load_with_env(&cli.config, explicit, std::env::vars_os());
    let serving = matches!(cli.command, Command::Serve);
    let serve_config = loaded.as_ref().ok().filter(|_| serving);
    init_logging(
        serve_config.map(|(config, _)| &config.log),
        serve_config.map(|(config, _)| &config.telemetry),
    );
    let result = loaded.and_then(|(config, env_vars)| match cli.command {
        Command::Serve => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                let path = cli.config.exists().then_some(cli.config.as_path());
                let served = rt.block_on(action_worker::server::serve(&config, path));
                // Do not wait for blocking threads that cannot end (a child's read of its
                // stdin, which its parent holds open).
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
                action_worker::telemetry::shutdown();
                served
            })
            .map(|()| ExitCode::SUCCESS),
        Command::Run(args) => cli::run::main(&config, args),
        Command::Submit(args) => cli::submit::main(&config, args),
        Command::Replay(args) => cli::replay::main(&config, args),
        Command::Actions(args) => cli::actions::main(&config, args),
        Command::Check(args) => cli::check::main(&config, args),
        Command::Stubs(args) => cli::stubs::main(args),
        Command::Inspect(args) => cli::inspect::main(args),
        Command::CheckConfig => check_config(&cli.config, &config, &env_vars),
        Command::Precompile => cli::run::precompile(&config),
        Command::Runtime(args) => cli::runtime::main(&config, args),
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("action-worker: {error:#}");
            ExitCode::from(2)
        }
    }
}
