//! Why a sandbox could not be set up: a leaf that the cache and the sandbox both name.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot read the Python runtime at {path}: {source} (build it with `make runtime`)")]
    ReadRuntime {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot compile the Python runtime {path}: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("cannot set up the sandbox: {0}")]
    Setup(String),
}
