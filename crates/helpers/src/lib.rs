//! The helpers a Python action calls as globals (SPEC §4), on the host side: the state they
//! read, the rules they enforce, the effects they record, and the LLM client (whose requests
//! go through the egress crate). No wasmtime: the sandbox's bindings reach these through the
//! worker's `ActionHost`.

pub mod conversation;
pub mod llm;
pub mod sheets;

pub use conversation::Conversation;
pub use llm::{LlmClient, LlmConfig, Question, Usage};
pub use sheets::{HeaderCache, SheetsClient, SheetsConfig};
