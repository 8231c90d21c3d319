//! The helpers from real Python actions, through the binary (SPEC §4).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::{Value, json};

mod common;

async fn run(dir: &Path, source: &str, conversation: Option<Value>) -> Value {
    let config = common::write_config(dir, "");
    let script = dir.join("helperTest.py");
    std::fs::write(&script, source).unwrap();
    let file = dir.join("conversation.json");
    let file_arg = file.to_string_lossy().into_owned();
    let mut args = vec![];
    if let Some(conversation) = conversation {
        std::fs::write(&file, conversation.to_string()).unwrap();
        args.extend(["--conversation", file_arg.as_str()]);
    }
    common::run_script(&config, &script, &args, &[]).await.0
}

const AB: &str = r#"
def execute_action(context):
    first = get_ab_test_variant(context, "greeting", ["formal", {"name": "casual", "weight": 3}, {"name": "never", "weight": 0}])
    again = get_ab_test_variant(context, "greeting", ["formal", "casual"])
    errors = []
    for bad in ([], [{"weight": 1}], [{"name": "a", "weight": -1}], [{"name": "a", "weight": 0}], "ab"):
        try:
            get_ab_test_variant(context, "t", bad)
        except ValueError as exc:
            errors.append(str(exc))
    return {"first": first, "again": again, "errors": len(errors),
            "meta": get_conversation_metadata(context, "ab_test:greeting")}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_variants_are_weighted_deterministic_and_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let mut counts = std::collections::HashMap::new();
    for i in 0..12 {
        let conversation = json!({"id": format!("conv-{i}"), "metadata": {}, "tags": []});
        let result = run(dir.path(), AB, Some(conversation.clone())).await;
        assert_eq!(result["status"], "ok", "{result}");
        let out = &result["output"];
        assert_eq!(out["first"], out["again"], "sticky within a run");
        assert_eq!(out["meta"], out["first"]);
        assert_eq!(out["errors"], 5);
        assert_ne!(out["first"], "never", "weight 0 is never chosen");
        let variant = out["first"].as_str().unwrap().to_string();
        let effects = result["effects"].as_array().unwrap();
        assert_eq!(effects.len(), 3, "{result}");
        assert_eq!(
            effects[0],
            json!({"type": "set_metadata", "key": "ab_test:greeting", "value": variant})
        );
        assert_eq!(effects[1]["tag"], format!("ab:greeting:{variant}"));
        assert_eq!(
            effects[2]["event"],
            format!("A/B test 'greeting': assigned variant '{variant}'")
        );
        // The same conversation gets the same variant on another run.
        let rerun = run(dir.path(), AB, Some(conversation)).await;
        assert_eq!(rerun["output"]["first"], out["first"]);
        *counts.entry(variant).or_insert(0) += 1;
    }
    assert_eq!(
        counts.len(),
        2,
        "both weighted variants appear over 12 conversations: {counts:?}"
    );

    // A conversation that already has the metadata keeps it, and nothing is recorded.
    let conversation = json!({"id": "c", "metadata": {"ab_test:greeting": "formal"}, "tags": []});
    let result = run(dir.path(), AB, Some(conversation)).await;
    assert_eq!(result["output"]["first"], "formal");
    assert_eq!(result["effects"], json!([]));
}
