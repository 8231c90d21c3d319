//! LLM classification over an OpenAI-compatible chat-completions endpoint (SPEC §4).
//!
//! The model is asked for a JSON object `{"answer": <one of the options>}` under a strict
//! JSON-schema response format whose `answer` is an `enum` of the options; the answer is then
//! checked again here, and an invalid one is asked for again, up to `max_attempts`. Requests go
//! through the egress crate; the API key is a secret reference, resolved (and bound to the
//! provider's host) by egress, never seen by the guest.

use std::time::{Duration, Instant};

use action_egress::{CallOptions, Egress, SecretStore};
use action_protocol::HttpRequest;
use serde_json::{Value, json};

/// `[llm]` of `worker.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// The name of the (tenant-less) secret holding the API key, sent as a bearer token.
    pub api_key_secret: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// Requests per classification when the model answers outside the options.
    pub max_attempts: u32,
    /// Classifications per job.
    pub max_calls_per_job: u32,
}

/// One classification's outcome and what it cost, for the trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub status: Option<u16>,
    pub bytes: u64,
}

fn system_prompt(prompt: &str, options: &[String]) -> String {
    format!(
        "You are a classifier. Read the user's message and answer with a JSON object \
         {{\"answer\": <one of the allowed values>}} and nothing else.\n\
         Allowed values: {}.\nInstruction: {prompt}",
        serde_json::to_string(options).unwrap_or_default()
    )
}

fn request_body(model: &str, prompt: &str, input: &str, options: &[String]) -> Value {
    json!({
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system_prompt(prompt, options)},
            {"role": "user", "content": input},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "classification",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": "string", "enum": options}},
                    "required": ["answer"],
                    "additionalProperties": false,
                },
            },
        },
    })
}

/// The answer in a chat-completions response, if it is one of `options`.
fn answer_of(body: &Value, options: &[String]) -> Result<String, String> {
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| "the response has no choices[0].message.content".to_string())?;
    let parsed: Value = serde_json::from_str(content.trim())
        .map_err(|_| format!("the model's answer is not JSON: {:.80}", content))?;
    let answer = parsed["answer"]
        .as_str()
        .ok_or_else(|| "the model's answer has no \"answer\" string".to_string())?;
    if options.iter().any(|o| o == answer) {
        Ok(answer.to_string())
    } else {
        Err(format!(
            "the model answered {answer:?}, which is not one of the options"
        ))
    }
}

/// What a script asks: its instruction, the input (JSON text when it was not a str) and the
/// allowed answers.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub prompt: &'a str,
    pub input: &'a str,
    pub options: &'a [String],
}

#[derive(Debug, Clone)]
pub struct LlmClient {
    pub config: LlmConfig,
}

impl LlmClient {
    /// Classifies `input`; every failure is an `Err` with a message for the script.
    pub async fn classify(
        &self,
        egress: &Egress,
        secrets: &SecretStore,
        question: Question<'_>,
        deadline: Instant,
        usage: &mut Usage,
    ) -> Result<String, String> {
        let Question {
            prompt,
            input,
            options,
        } = question;
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let body = serde_json::to_vec(&request_body(&self.config.model, prompt, input, options))
            .map_err(|e| e.to_string())?;
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if let Some(name) = &self.config.api_key_secret {
            headers.push((
                "Authorization".into(),
                format!("Bearer {{{{secrets.{name}}}}}"),
            ));
        }
        let mut last_error = String::new();
        for _ in 0..self.config.max_attempts.max(1) {
            usage.requests += 1;
            let request = HttpRequest {
                headers: headers.clone(),
                body: Some(body.clone()),
                timeout: Some(self.config.timeout),
                follow_redirects: false,
                ..HttpRequest::new("POST", url.clone())
            };
            let options_call = CallOptions {
                deadline,
                allowed_hosts: &[],
                // The provider's key is the platform's: resolved outside any tenant.
                secrets: Some((secrets, None)),
            };
            let response = egress
                .send(request, options_call)
                .await
                .map_err(|e| format!("LLM request failed: {e}"))?;
            usage.status = Some(response.status);
            usage.bytes += response.body.len() as u64;
            if !(200..300).contains(&response.status) {
                return Err(format!(
                    "the LLM provider answered HTTP {}",
                    response.status
                ));
            }
            let parsed: Value = serde_json::from_slice(&response.body)
                .map_err(|_| "the LLM provider's response is not JSON".to_string())?;
            usage.prompt_tokens += parsed["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
            usage.completion_tokens += parsed["usage"]["completion_tokens"].as_u64().unwrap_or(0);
            match answer_of(&parsed, options) {
                Ok(answer) => return Ok(answer),
                Err(e) => last_error = e,
            }
        }
        Err(format!(
            "no valid answer after {} attempts: {last_error}",
            self.config.max_attempts.max(1)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<String> {
        vec!["billing".into(), "shipping".into()]
    }

    #[test]
    fn the_request_constrains_the_answer_to_the_options() {
        let body = request_body("m", "Which team?", "where is my parcel", &options());
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"],
            json!(["billing", "shipping"])
        );
        assert_eq!(body["messages"][1]["content"], "where is my parcel");
        assert!(
            body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("Which team?")
        );
    }

    #[test]
    fn answers_are_checked_against_the_options() {
        let wrap = |content: &str| json!({"choices": [{"message": {"content": content}}]});
        assert_eq!(
            answer_of(&wrap(r#"{"answer": "shipping"}"#), &options()),
            Ok("shipping".into())
        );
        assert!(
            answer_of(&wrap(r#"{"answer": "legal"}"#), &options())
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            answer_of(&wrap("shipping!"), &options())
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(answer_of(&json!({}), &options()).is_err());
    }
}
