//! `action-worker actions put FILE` / `list` / `rm NAME`: the registry, KV bucket `ACTIONS`
//! (SPEC §6), keyed `<tenant>.<name>` or `<name>`.

use std::path::PathBuf;
use std::process::ExitCode;

use action_protocol::{ActionDefinition, is_valid_action_name, is_valid_tenant, load_action};
use anyhow::{Context, bail};
use futures_util::TryStreamExt;

use crate::cli::check;
use crate::cli::submit::{ask_whether_it_runs, nats_url};
use crate::config::Settings;
use crate::connect::connect;
use crate::registry::{self, BUCKET, Registry};

#[derive(Debug, clap::Args)]
pub struct ActionsArgs {
    #[command(subcommand)]
    command: ActionsCommand,
    /// The NATS server: nats.url, else the embedded default's 127.0.0.1:<nats.embedded_port>.
    #[arg(long, global = true)]
    url: Option<String>,
    /// The tenant whose actions these are; none: the actions of jobs without a tenant.
    #[arg(long, global = true)]
    tenant: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ActionsCommand {
    /// Stores a definition (`name.py`, `.toml` or `.json`) under its name; prints the revision.
    /// Checked first as `action-worker check` does: errors refuse it, warnings are printed.
    Put {
        file: PathBuf,
        /// Stores it even when the checks find errors.
        #[arg(long)]
        force: bool,
    },
    /// Lists the stored actions: key, revision, type, description.
    List,
    /// Removes an action; jobs naming it are then rejected.
    Rm { name: String },
}

/// `actions put`'s checks: findings printed on stderr; errors refuse the action unless
/// `force`.
fn refuse_errors(
    config: &Settings,
    file: &std::path::Path,
    definition: &ActionDefinition,
    force: bool,
) -> anyhow::Result<()> {
    let (path, findings) = check::check_loaded(config, file, definition)?;
    eprint!(
        "{}",
        check::Report {
            path: &path,
            findings: &findings
        }
    );
    let errors = findings
        .iter()
        .filter(|f| f.severity == check::Severity::Error)
        .count();
    if errors > 0 && !force {
        bail!(
            "{} not stored: the checks found {errors} error(s) (--force stores it anyway)",
            definition.name
        );
    }
    Ok(())
}

pub fn main(config: &Settings, args: ActionsArgs) -> anyhow::Result<ExitCode> {
    if let Some(tenant) = &args.tenant
        && !is_valid_tenant(tenant)
    {
        bail!("--tenant {tenant:?}: 1 to 64 letters, digits, '_' or '-'");
    }
    // `put`'s action, loaded and checked before anything connects (the checks run a job).
    let put = match &args.command {
        ActionsCommand::Put { file, force } => {
            let definition = load_action(file)?;
            refuse_errors(config, file, &definition, *force)?;
            Some(definition)
        }
        _ => None,
    };
    let url = nats_url(config, args.url.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = async_nats::ConnectOptions::new().name("action-worker actions");
        let client = connect(&url, &config.nats_access, options)
            .await
            .map_err(ask_whether_it_runs)?;
        let js = async_nats::jetstream::new(client);
        let tenant = args.tenant.as_deref();
        match args.command {
            ActionsCommand::Put { .. } => {
                let Some(definition) = put else {
                    bail!("put: no action loaded");
                };
                Registry::open(&js, config.nats.stream_replicas).await?;
                let store = js.get_key_value(BUCKET).await?;
                let key = registry::key(tenant, &definition.name);
                let value = serde_json::to_vec(&definition)?;
                let revision = store
                    .put(key.as_str(), value.into())
                    .await
                    .with_context(|| format!("cannot store {key}"))?;
                println!("{key}: revision {revision}");
            }
            ActionsCommand::List => {
                let Ok(store) = js.get_key_value(BUCKET).await else {
                    return Ok(ExitCode::SUCCESS);
                };
                let mut keys: Vec<String> = store.keys().await?.try_collect().await?;
                keys.sort();
                for key in keys {
                    let mine = match tenant {
                        Some(tenant) => {
                            key.strip_prefix(tenant).is_some_and(|r| r.starts_with('.'))
                        }
                        None => !key.contains('.'),
                    };
                    if !mine {
                        continue;
                    }
                    let Some(entry) = store.entry(key.as_str()).await? else {
                        continue;
                    };
                    match serde_json::from_slice::<ActionDefinition>(&entry.value) {
                        Ok(d) => println!(
                            "{key}\trevision {}\t{:?}\t{}",
                            entry.revision,
                            d.kind,
                            d.description.lines().next().unwrap_or_default()
                        ),
                        Err(e) => println!("{key}\trevision {}\tinvalid: {e}", entry.revision),
                    }
                }
            }
            ActionsCommand::Rm { name } => {
                if !is_valid_action_name(&name) {
                    bail!("{name:?} is not an action name (^[a-z][A-Za-z0-9]{{0,63}}$)");
                }
                let key = registry::key(tenant, &name);
                let store = js
                    .get_key_value(BUCKET)
                    .await
                    .with_context(|| format!("no registry (KV bucket {BUCKET}) yet"))?;
                if store.get(key.as_str()).await?.is_none() {
                    bail!("no action {key} in the registry");
                }
                store.delete(key.as_str()).await?;
                println!("{key}: removed");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
