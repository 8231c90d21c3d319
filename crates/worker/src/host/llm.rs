//! `llm_classify_*` on the host side: the configured model, its per-job call cap, a trace
//! entry with the token counts.

use std::time::Instant;

use action_helpers::{LlmClient, Question, Usage};
use action_protocol::{TraceEntry, millis};

use super::JobHost;
use super::journal::Before;
use crate::journal::{CallKey, text_answer, text_answer_of};

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
        let call = self.call_key(|| {
            CallKey::new(
                "llm",
                "",
                &llm.config.base_url,
                &[
                    prompt.as_bytes(),
                    input.as_bytes(),
                    options.join("\n").as_bytes(),
                ],
            )
        });
        let question = Question {
            prompt: &prompt,
            input: &input,
            options: &options,
        };
        let answer = match self.before_call(call, text_answer_of).await {
            Before::Answered(answer) => answer,
            Before::Refused(message) => Err(message),
            Before::Live(ticket) => {
                let answer = self.ask(&llm, question, deadline, &mut usage).await;
                self.after_call(ticket, text_answer(&answer)).await;
                answer
            }
        };
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
            journal: self.journal_note.take().map(str::to_string),
            ..TraceEntry::default()
        });
        answer
    }

    /// The question, put to the configured model.
    async fn ask(
        &self,
        llm: &LlmClient,
        question: Question<'_>,
        deadline: Instant,
        usage: &mut Usage,
    ) -> Result<String, String> {
        let services = &self.services;
        llm.classify(
            &services.egress,
            &services.secrets,
            question,
            deadline,
            usage,
        )
        .await
    }
}
