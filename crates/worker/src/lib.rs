//! The action-worker's own parts: configuration; one job [`pipeline`] (resolve → limits →
//! run → stamp → count) behind two thin transports ([`request_reply`], [`durable`]) that a
//! [`server::Server`] starts, runs and drains; the job [`host`] that joins the sandbox to the
//! egress policy and the helpers; and the CLI. The binary (`src/main.rs`) only parses the
//! command line and installs logging; the benchmarks drive the pipeline directly.

pub mod admin;
pub mod cli;
pub mod config;
pub mod connect;
pub mod conversations;
pub mod cpu;
pub mod durable;
pub mod embedded;
pub mod execute;
pub mod guard;
pub mod host;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod processes;
pub mod registry;
pub mod replay;
pub mod request_reply;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod telemetry;
pub mod wire;
pub mod worker;
