//! The compiled runtime component, cached on disk.
//!
//! Cranelift needs seconds to compile CPython; loading a serialized compilation takes
//! milliseconds. The cache file's name carries a digest of the component's bytes and a hash of
//! every engine setting that affects compiled code (`Engine::precompile_compatibility_hash`),
//! so a stale entry is never picked up: a rebuilt runtime or a changed setting simply misses.
//! wasmtime also checks the compatibility header of what it loads; a file that fails that
//! check, or is corrupt, is compiled again and replaced.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::SandboxError;

/// The cache file for `wasm` under `dir`.
pub fn cache_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let digest = Sha256::digest(wasm);
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let settings = hasher.finish();
    dir.join(format!(
        "runtime-{}-{settings:016x}.cwasm",
        hex::encode(&digest[..16])
    ))
}

/// How the component was obtained, for logs and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    Compiled,
    FromCache,
}

/// Loads the component at `wasm_path`, from the cache when a valid entry exists.
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, LoadKind), SandboxError> {
    let wasm = std::fs::read(wasm_path).map_err(|source| SandboxError::ReadRuntime {
        path: wasm_path.to_path_buf(),
        source,
    })?;
    let Some(dir) = cache_dir else {
        return Ok((compile(engine, &wasm, wasm_path)?, LoadKind::Compiled));
    };
    let path = cache_path(engine, &wasm, dir);
    if path.exists() {
        match deserialize(engine, &path) {
            Ok(component) => return Ok((component, LoadKind::FromCache)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding an unusable compile cache entry")
            }
        }
    }
    let component = compile(engine, &wasm, wasm_path)?;
    if let Err(error) = store(&component, dir, &path) {
        tracing::warn!(path = %path.display(), %error, "could not write the compile cache");
    }
    Ok((component, LoadKind::Compiled))
}

fn compile(engine: &Engine, wasm: &[u8], path: &Path) -> Result<Component, SandboxError> {
    Component::new(engine, wasm).map_err(|e| SandboxError::Compile {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    })
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output. The file is in
    // the worker's private cache directory, written only by `store` below (atomically, by
    // rename), and named by the digest of the component and the engine settings; wasmtime
    // still checks its header for version and setting compatibility.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(component: &Component, dir: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(dir.join(format!(".tmp-{}-{nanos}", std::process::id())))
}
