//! The action-worker's own parts: configuration, the job host that joins the sandbox to the
//! egress policy and the helpers, job execution for API and Python actions, and the CLI.
//! The binary (`src/main.rs`) only parses the command line and installs logging; the
//! benchmarks drive [`execute::Executor`] directly.

pub mod admin;
pub mod cli;
pub mod config;
pub mod connect;
pub mod durable;
pub mod embedded;
pub mod execute;
pub mod guard;
pub mod host;
pub mod limits;
pub mod metrics;
pub mod processes;
pub mod registry;
pub mod secrets;
pub mod serve;
pub mod wire;
