//! The `run`, `inspect` and `check-config` commands, through the real binary.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use action_worker_tests as common;

use std::process::{Command, Output};

use common::repo_root as root;
use serde_json::{Value, json};

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_action-worker"))
        .current_dir(root())
        .args(["--config", "worker.toml"])
        .args(args)
        .env("ACTION_WORKER_LOG", "error")
        .output()
        .expect("run the binary")
}

fn result_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn run_prints_the_result_and_exits_zero_for_ok() {
    let out = worker(&[
        "run",
        "examples/actions/orderSummary.toml",
        "--args-json",
        r#"{"items": [{"name": "Tea", "price": 2.5, "qty": 2}, {"name": "Cake", "price": "3.10"}]}"#,
        "--arg",
        "customerName=Maria",
    ]);
    let result = result_of(&out);
    assert!(out.status.success(), "{result}");
    assert_eq!(result["status"], "ok");
    assert_eq!(
        result["output"],
        json!({"customer": "Maria", "lines": ["2 x Tea", "1 x Cake"], "total": "8.10"})
    );
    assert_eq!(result["logs"]["stdout"], "summarising 2 items\n");
    assert_eq!(result["action"], "orderSummary");
    assert!(result["stats"]["fuel_used"].as_u64().unwrap() > 0);
}

#[test]
fn run_exits_non_zero_with_the_error_for_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lookup.py");
    std::fs::write(
        &script,
        "def execute_action(context):\n    return context['args']['orderId']\n",
    )
    .unwrap();
    let out = worker(&["run", script.to_str().unwrap(), "--test"]);
    assert_eq!(out.status.code(), Some(1));
    let result = result_of(&out);
    assert_eq!(result["status"], "action_error");
    assert_eq!(result["error"]["message"], "KeyError: 'orderId'");
    assert!(
        result["error"]["traceback"]
            .as_str()
            .unwrap()
            .contains("lookup.py\", line 2")
    );
    assert_eq!(result["test"], true);
}

#[test]
fn run_gives_the_script_its_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("lastMessage.py");
    std::fs::write(
        &script,
        "def execute_action(c):\n    return c['conversation']['messages'][-1]['content']\n",
    )
    .unwrap();
    let conv = dir.path().join("conv.json");
    std::fs::write(
        &conv,
        r#"{"id": "c1", "messages": [{"sender": "customer", "content": "where is my order?"}]}"#,
    )
    .unwrap();
    let out = worker(&[
        "run",
        script.to_str().unwrap(),
        "--conversation",
        conv.to_str().unwrap(),
    ]);
    assert_eq!(result_of(&out)["output"], "where is my order?");
}

#[test]
fn bad_input_is_named() {
    let out = worker(&["run", "examples/actions/nope.py"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = worker(&[
        "run",
        "examples/actions/orderSummary.toml",
        "--args-json",
        "[]",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args-json must be a JSON object"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[limits]\nfuel_budget = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_action-worker"))
        .args(["--config", cfg.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fuel_budget"));
    assert!(worker(&["check-config"]).status.success());
}

#[test]
fn inspect_prints_the_tool_definition() {
    let out = worker(&["inspect", "examples/actions/orderSummary.toml"]);
    assert!(out.status.success());
    let report = result_of(&out);
    assert_eq!(report["name"], "orderSummary");
    assert_eq!(report["required_arguments"], json!(["items"]));
    let function = &report["tool"]["function"];
    assert_eq!(
        function["parameters"]["properties"]["items"]["type"],
        "array"
    );
    assert_eq!(function["parameters"]["required"], json!(["items"]));
}
