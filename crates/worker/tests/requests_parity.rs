//! The `requests` differential suite: every idiom of tests/requests_parity/idioms.py runs
//! under real `requests` (pinned in .venv) in native CPython and under the sandbox's
//! `requests` (through the binary and the egress policy), against one real loopback server
//! (tests/requests_parity/server.py); their observations are compared. Every difference must
//! be listed in docs/actions.md (table "`requests`: what differs"), every listed one must still
//! differ, and at least 95 % must be identical. The count is printed.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use action_worker_tests as common;

/// The loopback server, killed when the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server() -> (Server, String) {
    let root = common::repo_root();
    let mut child = Command::new("python3")
        .arg(root.join("tests/requests_parity/server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the loopback server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the server said {line:?}"))
        .to_string();
    (Server(child), format!("http://127.0.0.1:{port}"))
}

fn native(base: &str) -> serde_json::Map<String, Value> {
    let root = common::repo_root();
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/requests_parity/idioms.py"))
        .arg(base)
        .output()
        .expect("the project's .venv (make venv): real requests");
    assert!(
        out.status.success(),
        "native run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(map) => map,
        other => panic!("native observations: {other}"),
    }
}

async fn sandboxed(base: &str) -> serde_json::Map<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    // ~110 calls in one job: the per-job call limits raised for it.
    let config = common::write_config(
        dir.path(),
        "[limits]\ntimeout_ms = 60000\nfuel = 56000000000\nmax_http_calls = 300\nmax_trace_entries = 400\n[limits.max]\nmax_http_calls = 300\ntimeout_ms = 120000\nfuel = 56000000000\n",
    );
    let script = common::repo_root().join("tests/requests_parity/idioms.py");
    let args = format!("{{\"base\": \"{base}\"}}");
    let (result, _) = common::run_script(&config, &script, &["--args-json", &args], &[]).await;
    assert_eq!(result["status"], "ok", "{result}");
    match &result["output"] {
        Value::Object(map) => map.clone(),
        other => panic!("sandbox observations: {other}"),
    }
}

/// The idioms docs/actions.md lists as differing: the first cell of each row of the table
/// under the heading "`requests`: what differs", one `code` name per row.
fn documented_differences() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(common::repo_root().join("docs/actions.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("`requests`: what differs"))
        .expect("docs/actions.md has a section \"`requests`: what differs\"");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_the_sandbox_behaves_as_real_requests() {
    let (_server, base) = start_server();
    let native = native(&base);
    let sandboxed = sandboxed(&base).await;
    assert!(native.len() >= 60, "only {} idioms", native.len());
    assert_eq!(
        native.keys().collect::<Vec<_>>(),
        sandboxed.keys().collect::<Vec<_>>(),
        "the same idioms ran on both sides"
    );
    let differing: BTreeSet<String> = native
        .iter()
        .filter(|(name, seen)| sandboxed.get(*name) != Some(*seen))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &differing {
        eprintln!(
            "differs: {name}\n  requests: {}\n  sandbox:  {}",
            native[name], sandboxed[name]
        );
    }
    let identical = native.len() - differing.len();
    let share = identical as f64 / native.len() as f64;
    common::report(&format!(
        "requests parity: {identical} of {} idioms identical ({:.1} %); differing: {}",
        native.len(),
        share * 100.0,
        differing.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let documented = documented_differences();
    let undocumented: Vec<_> = differing.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "differences not listed in docs/actions.md: {undocumented:?}"
    );
    let stale: Vec<_> = documented.difference(&differing).collect();
    assert!(
        stale.is_empty(),
        "docs/actions.md lists as differing what now behaves the same: {stale:?}"
    );
    assert!(share >= 0.95, "only {:.1} % identical", share * 100.0);
}
