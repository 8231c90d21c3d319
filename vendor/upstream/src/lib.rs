//! Nothing: this package only names the upstream wasmtime crate (see Cargo.toml).
