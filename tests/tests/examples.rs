//! Every shipped example loads, and each Python example with sample arguments runs to `ok`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use action_worker_tests::{repo_root, worker};

#[test]
fn every_example_inspects_and_the_python_ones_run() {
    let dir = repo_root().join("examples/actions");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        // A .py beside a .toml of the same name is that definition's script.
        if ext == "py" && path.with_extension("toml").exists() {
            continue;
        }
        if !matches!(ext, "py" | "toml" | "json") || path.to_string_lossy().ends_with(".args.json")
        {
            continue;
        }
        let rel = path
            .strip_prefix(repo_root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let out = worker(&["inspect", &rel]);
        assert!(
            out.status.success(),
            "inspect {rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args_file = path.with_extension("args.json");
        if args_file.exists() {
            let args = std::fs::read_to_string(&args_file).unwrap();
            let out = worker(&["run", &rel, "--args-json", &args]);
            let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(result["status"], "ok", "run {rel}: {result}");
        }
        checked += 1;
    }
    assert!(checked >= 1, "no examples found in {}", dir.display());
}
