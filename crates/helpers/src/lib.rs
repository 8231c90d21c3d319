//! The helpers a Python action calls as globals (SPEC §4), on the host side: the state they
//! read, the rules they enforce and the effects they record. No I/O, no wasmtime: the
//! sandbox's bindings call into these types through the worker's `ActionHost`.

pub mod conversation;

pub use conversation::{Conversation, Reply};
