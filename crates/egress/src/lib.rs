//! Every outbound HTTP request of the worker goes through this crate: Python actions'
//! `requests`, API actions, LLM and Sheets calls (SPEC §7).
//!
//! It allows http and https only; resolves names itself and checks every address against the
//! deny list ([`policy`]) before connecting, and connects only to the addresses it checked;
//! follows redirects itself (at most `max_redirects`), checking each hop and dropping
//! credentials when the host changes; reads response bodies up to a cap; and bounds every
//! wait by the caller's timeout and the job's deadline. It does not count calls per job (the
//! sandbox does) and knows nothing of NATS or wasmtime.

mod client;
mod hosts;
pub mod policy;
mod prepare;
mod resolve;
pub mod secrets;

pub use client::{CallOptions, Egress, EgressConfig};
pub use hosts::host_allowed;
pub use resolve::{NameResolver, ResolveError, StaticResolver, SystemResolver};
pub use secrets::{Secret, SecretStore, mark_references};
