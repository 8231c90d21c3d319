//! `llm.classify`: the host asks the configured model; bounded by the job's deadline.

use wasmtime::Result;

use super::bounded;
use crate::bindings::llm;
use crate::state::JobState;

impl llm::Host for JobState {
    async fn classify(
        &mut self,
        prompt: String,
        input: String,
        options: Vec<String>,
    ) -> Result<Result<String, String>> {
        let deadline = self.deadline;
        let call = self.host.llm_classify(prompt, input, options, deadline);
        bounded(deadline, "llm.classify", "an LLM call", call).await
    }
}
