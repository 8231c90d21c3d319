//! `llm_classify_*` on the host side: the configured model, its per-job call cap, a trace
//! entry with the token counts.

use std::time::Instant;

use action_helpers::{Question, Usage};
use action_protocol::{TraceEntry, millis};

use super::JobHost;

impl JobHost {
    pub(super) async fn classify(
        &mut self,
        prompt: String,
        input: String,
        options: Vec<String>,
        deadline: Instant,
    ) -> Result<String, String> {
        let Some(llm) = self.services.llm.clone() else {
            return Err(
                "LLM classification is not configured: set [llm] base_url and model in worker.toml"
                    .into(),
            );
        };
        if let Some(full) = self.trace_full() {
            return Err(full);
        }
        self.inject("llm");
        if self.llm_calls >= llm.config.max_calls_per_job {
            return Err(format!(
                "LLM call limit: an action may classify {} times per job",
                llm.config.max_calls_per_job
            ));
        }
        self.llm_calls += 1;
        let started = Instant::now();
        let mut usage = Usage::default();
        let question = Question {
            prompt: &prompt,
            input: &input,
            options: &options,
        };
        let services = &self.services;
        let answer = llm
            .classify(
                &services.egress,
                &services.secrets,
                question,
                deadline,
                &mut usage,
            )
            .await;
        self.trace.push(TraceEntry {
            kind: "llm".into(),
            method: Some("POST".into()),
            url: Some(format!(
                "{}/chat/completions",
                llm.config.base_url.trim_end_matches('/')
            )),
            status: usage.status,
            bytes: usage.bytes,
            ms: millis(started.elapsed()),
            error: answer.as_ref().err().cloned(),
            prompt_tokens: Some(usage.prompt_tokens),
            completion_tokens: Some(usage.completion_tokens),
            ..TraceEntry::default()
        });
        answer
    }
}
