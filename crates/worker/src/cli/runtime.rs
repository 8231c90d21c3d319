//! `action-worker runtime build|list`: the runtime profiles of the configuration
//! (`[runtime.profiles.NAME]`, docs/actions.md "Runtime profiles").
//!
//! `build` makes each profile's component with `scripts/build-runtime` of the source tree
//! (pip installs the pinned, hashed requirements; componentize-py imports every module of the
//! packages at build time): the image step of a deployment, and a step of `make build`. A
//! profile whose inputs have not changed is left as it is. The default runtime is `make
//! runtime`'s.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::config::{ProfileConfig, Settings};

#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RuntimeCommand {
    /// Builds the component of each named profile (every profile when none is named).
    Build(BuildArgs),
    /// Lists the runtime profiles: name, component, whether it is built.
    List,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Profiles to build; all of `[runtime.profiles]` when none is given.
    pub profiles: Vec<String>,
    /// Rebuild even when the component is up to date.
    #[arg(long)]
    pub force: bool,
    /// The source tree: where scripts/build-runtime, python-runtime/ and wit/ are.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// The Python with pip and componentize-py; default SOURCE/.venv/bin/python, else python3.
    #[arg(long)]
    pub python: Option<PathBuf>,
}

pub fn main(config: &Settings, args: RuntimeArgs) -> anyhow::Result<ExitCode> {
    let profiles = &config.sections.runtime.profiles;
    match args.command {
        RuntimeCommand::List => {
            for (name, component) in config.sections.runtime.profile_components() {
                println!("{name}\t{}", built(&component));
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimeCommand::Build(args) => {
            for name in &args.profiles {
                if !profiles.contains_key(name) {
                    let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                    bail!(
                        "no profile {name:?} in [runtime.profiles] (it has: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    );
                }
            }
            for (name, profile) in profiles {
                if args.profiles.is_empty() || args.profiles.contains(name) {
                    build(&args, name, profile)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn built(path: &Path) -> String {
    let state = if path.exists() { "built" } else { "not built" };
    format!("{}\t{state}", path.display())
}

/// Runs scripts/build-runtime for one profile; its output goes to ours.
fn build(args: &BuildArgs, name: &str, profile: &ProfileConfig) -> anyhow::Result<()> {
    let script = args.source.join("scripts/build-runtime");
    if !script.exists() {
        bail!(
            "{} not found: --source names the action-worker source tree",
            script.display()
        );
    }
    let python = args.python.clone().unwrap_or_else(|| {
        let venv = args.source.join(".venv/bin/python");
        if venv.exists() {
            venv
        } else {
            "python3".into()
        }
    });
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg("--name")
        .arg(name)
        .arg("--requirements")
        .arg(&profile.requirements)
        .arg("--out")
        .arg(profile.component_path(name));
    for module in &profile.exclude {
        command.arg("--exclude").arg(module);
    }
    if let Some(file) = &profile.warm_up {
        command.arg("--warm-up").arg(file);
    }
    if args.force {
        command.arg("--force");
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !status.success() {
        bail!("runtime profile {name}: the build failed ({status})");
    }
    Ok(())
}
