//! The subcommands besides `serve`.

pub mod actions;
pub mod check;
pub mod inspect;
pub mod replay;
pub mod run;
pub mod runtime;
pub mod stubs;
pub mod submit;
