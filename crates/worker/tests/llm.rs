//! LLM classification against a local server that speaks the chat-completions protocol
//! (request and response JSON as the real API has them): right answers, garbage, slowness,
//! failures, fallbacks, the call cap, and the helpers without `[llm]`.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use action_worker_tests as common;

type Seen = Arc<Mutex<Vec<Value>>>;

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_790_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}
    })
}

async fn provider() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                |State(seen): State<Seen>,
                 headers: HeaderMap,
                 axum::Json(request): axum::Json<Value>| async move {
                    assert_eq!(headers.get("authorization").unwrap(), "Bearer llm-key-123");
                    assert_eq!(request["model"], "test-model");
                    let options = request["response_format"]["json_schema"]["schema"]["properties"]
                        ["answer"]["enum"]
                        .clone();
                    assert!(options.is_array(), "{request}");
                    let input = request["messages"][1]["content"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let earlier = seen
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|r| r["messages"][1]["content"] == input.as_str())
                        .count();
                    seen.lock().unwrap().push(request.clone());
                    let answer = |a: &str| {
                        (
                            StatusCode::OK,
                            axum::Json(completion(&json!({"answer": a}).to_string())),
                        )
                    };
                    if input.starts_with("slow") {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    if input.starts_with("fail") {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(json!({"error": {"message": "boom"}})),
                        );
                    }
                    if input.starts_with("garbage") {
                        return (
                            StatusCode::OK,
                            axum::Json(completion("I think it is billing")),
                        );
                    }
                    if input.starts_with("wrong-then-right") && earlier == 0 {
                        return answer("legal");
                    }
                    let chosen = options
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o.as_str().unwrap())
                        .find(|o| input.contains(o) || (*o == "true" && input.contains("yes")))
                        .unwrap_or_else(|| {
                            options[options.as_array().unwrap().len() - 1]
                                .as_str()
                                .unwrap()
                        })
                        .to_string();
                    answer(&chosen)
                },
            ),
        )
        .with_state(seen.clone());
    (common::serve(app, "127.0.0.1:0").await, seen)
}

async fn run(dir: &Path, source: &str, llm: Option<(SocketAddr, u32)>) -> Value {
    let secrets = dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"LLM_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"llm-key-123\"\n",
    )
    .unwrap();
    let mut extra = format!("[secrets]\nfile = \"{}\"\n", secrets.display());
    if let Some((addr, cap)) = llm {
        extra.push_str(&format!(
            "[llm]\nbase_url = \"http://{addr}/v1\"\nmodel = \"test-model\"\napi_key_secret = \"LLM_KEY\"\n\
             timeout_ms = 500\nmax_attempts = 2\nmax_calls_per_job = {cap}\n"
        ));
    }
    let config = common::write_config(dir, &extra);
    let script = dir.join("classify.py");
    std::fs::write(&script, source).unwrap();
    common::run_script(&config, &script, &[], &[]).await.0
}

const SCRIPT: &str = r#"
def execute_action(context):
    out = {}
    out["category"] = llm_classify_category("Which team?", "my shipping is late", ["billing", "shipping"])
    out["binary"] = llm_classify_binary("Is the customer angry?", "yes, furious")
    out["json_input"] = llm_classify_category("Which team?", {"text": "shipping please", "n": 2}, ["billing", "shipping"])
    out["retry"] = llm_classify_category("Which team?", "wrong-then-right billing", ["billing", "shipping"])
    out["garbage_fallback"] = llm_classify_category("Which team?", "garbage", ["billing", "shipping"], fallback="unknown")
    out["fail_fallback"] = llm_classify_binary("Angry?", "fail", fallback=False)
    out["slow_fallback"] = llm_classify_binary("Angry?", "slow", fallback=True)
    try:
        llm_classify_category("Which team?", "garbage again", ["billing", "shipping"])
        out["raises"] = "no"
    except RuntimeError as exc:
        out["raises"] = str(exc)
    try:
        llm_classify_category("Which team?", "x", ["only"])
    except ValueError as exc:
        out["too_few"] = str(exc)
    return out
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_answers_falls_back_and_raises_as_the_spec_says() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), SCRIPT, Some((addr, 20))).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["category"], "shipping");
    assert_eq!(o["binary"], true);
    assert_eq!(o["json_input"], "shipping");
    assert_eq!(o["retry"], "billing");
    assert_eq!(o["garbage_fallback"], "unknown");
    assert_eq!(o["fail_fallback"], false);
    assert_eq!(o["slow_fallback"], true);
    assert!(
        o["raises"]
            .as_str()
            .unwrap()
            .contains("no valid answer after 2 attempts"),
        "{o}"
    );
    assert_eq!(
        o["too_few"],
        "options must be a list of at least 2 categories"
    );
    // Non-str input went as JSON; the key never reached the result.
    let requests = seen.lock().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["messages"][1]["content"] == r#"{"text": "shipping please", "n": 2}"#)
    );
    assert!(!result.to_string().contains("llm-key-123"));
    let llm: Vec<&Value> = result["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "llm")
        .collect();
    assert_eq!(llm.len(), 8);
    assert_eq!(llm[0]["prompt_tokens"], 42);
    assert_eq!(llm[0]["completion_tokens"], 7);
    assert_eq!(
        llm[3]["prompt_tokens"], 84,
        "the retry's tokens are counted too"
    );
    assert!(
        llm[6]["error"]
            .as_str()
            .unwrap()
            .contains("LLM request failed"),
        "{}",
        llm[6]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_job_cap_and_a_missing_configuration_are_named() {
    let (addr, _) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
def execute_action(context):
    first = llm_classify_binary("?", "yes")
    second = llm_classify_binary("?", "yes", fallback=False)
    try:
        llm_classify_binary("?", "yes")
    except RuntimeError as exc:
        return [first, second, str(exc)]
"#;
    let result = run(dir.path(), source, Some((addr, 1))).await;
    let o = result["output"].as_array().unwrap();
    assert_eq!(o[0], true);
    assert_eq!(o[1], false);
    assert!(
        o[2].as_str().unwrap().contains("LLM call limit"),
        "{result}"
    );

    let result = run(dir.path(), source, None).await;
    assert_eq!(result["status"], "action_error", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not configured") && message.contains("[llm]"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_trace_cap_a_call_is_not_made_and_the_job_goes_on() {
    let (addr, seen) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"LLM_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"llm-key-123\"\n",
    )
    .unwrap();
    // 25 outside calls per job (at least the HTTP cap), 40 classifications allowed: the
    // trace cap is the one met.
    let extra = format!(
        "[secrets]\nfile = \"{}\"\n[limits]\nmax_trace_entries = 25\n[limits.max]\nmax_http_calls = 25\n\
         [llm]\nbase_url = \"http://{addr}/v1\"\nmodel = \"test-model\"\napi_key_secret = \"LLM_KEY\"\n\
         max_calls_per_job = 40\n",
        secrets.display()
    );
    let config = common::write_config(dir.path(), &extra);
    let script = dir.path().join("many.py");
    std::fs::write(
        &script,
        r#"
def execute_action(context):
    answers = [llm_classify_binary("?", "yes", fallback="skipped") for _ in range(30)]
    try:
        llm_classify_binary("?", "yes")
    except RuntimeError as exc:
        return {"answered": answers.count(True), "fell_back": answers.count("skipped"), "error": str(exc)}
"#,
    )
    .unwrap();
    let result = common::run_script(&config, &script, &[], &[]).await.0;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"]["answered"], 25);
    assert_eq!(result["output"]["fell_back"], 5);
    assert!(
        result["output"]["error"]
            .as_str()
            .unwrap()
            .contains("trace limit: a job may make 25 outside calls"),
        "{result}"
    );
    assert_eq!(result["trace"].as_array().unwrap().len(), 25);
    assert_eq!(
        seen.lock().unwrap().len(),
        25,
        "no call past the cap was made"
    );
}
