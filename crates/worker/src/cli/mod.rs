//! The subcommands besides `serve`.

pub mod inspect;
pub mod run;
pub mod submit;
