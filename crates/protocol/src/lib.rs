//! The action-worker's vocabulary: action definitions (SPEC §2), jobs and results (SPEC §5),
//! their JSON and MessagePack encodings, and loading definitions from disk.
//!
//! This crate does no I/O beyond reading a definition file and knows nothing of NATS,
//! HTTP or wasmtime: every other crate speaks through these types.

pub mod api;
mod context;
mod definition;
mod encoding;
mod error;
mod helper;
mod http;
mod job;
mod load;
pub mod render;
mod result;
pub mod template;

pub use api::{ApiSpec, ApiTemplates, BodyTemplate, HttpMethod, required_arguments};
pub use context::build_context;
pub use definition::{
    ActionDefinition, ActionKind, ActionLimits, DEFAULT_RUNTIME, ParameterSpec, PythonSpec,
    RUNTIME_NAME_RULE, is_valid_action_name, is_valid_runtime_name,
};
pub use encoding::{DecodeError, Encoding};
pub use error::DefinitionError;
pub use helper::ConversationReply;
pub use http::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};
pub use job::{ActionRef, Job, JobError, MAX_JOB_ID_CHARS, is_valid_tenant};
pub use load::{LoadError, load_action};
pub use render::{RenderError, RenderedRequest, render};
pub use result::{
    ErrorInfo, ErrorKind, JobResult, LimitKind, Logs, Stats, Status, TraceEntry, millis,
};
