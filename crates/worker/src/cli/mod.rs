//! The subcommands besides `serve`.

pub mod actions;
pub mod inspect;
pub mod replay;
pub mod run;
pub mod submit;
