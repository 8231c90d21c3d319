//! `action-worker stubs [DIR]`: the type stubs of the action runtime, for editors. Without
//! DIR, prints `action_runtime.pyi`; with DIR, writes it and `__builtins__.pyi` (which makes
//! the helpers and `Context` globals for pyright-based editors) into DIR.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// The stubs, as shipped in python-runtime/stubs.
pub const FILES: &[(&str, &str)] = &[
    (
        "action_runtime.pyi",
        include_str!("../../../../python-runtime/stubs/action_runtime.pyi"),
    ),
    (
        "__builtins__.pyi",
        include_str!("../../../../python-runtime/stubs/__builtins__.pyi"),
    ),
];

#[derive(Debug, clap::Args)]
pub struct StubsArgs {
    /// Writes the stub files into this directory (created if missing) instead of printing.
    pub dir: Option<PathBuf>,
}

pub fn main(args: StubsArgs) -> anyhow::Result<ExitCode> {
    let Some(dir) = args.dir else {
        print!("{}", FILES[0].1);
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in FILES {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
