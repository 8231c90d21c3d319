//! Host bindings generated from `wit/world.wit`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "action-runtime",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use action_worker::runtime::{conversation, http, llm, logs, sheets, types};
