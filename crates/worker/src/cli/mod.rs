//! The subcommands that run without NATS.

pub mod inspect;
pub mod run;
