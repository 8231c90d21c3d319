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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_holiday_knows_countries_states_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
import datetime
def execute_action(context):
    def err(fn):
        try:
            fn()
        except ValueError as exc:
            return str(exc)
        return "no error"
    return {
        "gb_christmas": is_holiday("GB", check_date="2026-12-25"),
        "gb_ordinary": is_holiday("GB", check_date=datetime.date(2026, 12, 23)),
        "us_july4": is_holiday("US", check_date=datetime.datetime(2026, 7, 4, 15, 30)),
        "tx_independence": is_holiday("US", state="TX", check_date="2026-03-02"),
        "us_federal_same_day": is_holiday("US", check_date="2026-03-02"),
        "by_epiphany": is_holiday("DE", region="BY", check_date="2026-01-06"),
        "be_epiphany": is_holiday("DE", state="BE", check_date="2026-01-06"),
        "iso_subdivision": is_holiday("DE", state="DE-BY", check_date="2026-01-06"),
        "today": isinstance(is_holiday("GR"), bool),
        "unknown_country": err(lambda: is_holiday("XX")),
        "unknown_state": err(lambda: is_holiday("US", state="ZZ")),
        "bad_date": err(lambda: is_holiday("GB", check_date="25/12/2026")),
    }
"#;
    let result = run(dir.path(), source, None).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["gb_christmas"], true);
    assert_eq!(o["gb_ordinary"], false);
    assert_eq!(o["us_july4"], true);
    assert_eq!(o["tx_independence"], true);
    assert_eq!(o["us_federal_same_day"], false);
    assert_eq!(o["by_epiphany"], true);
    assert_eq!(o["be_epiphany"], false);
    assert_eq!(o["iso_subdivision"], true);
    assert_eq!(o["today"], true);
    assert!(
        o["unknown_country"]
            .as_str()
            .unwrap()
            .starts_with("unknown country 'XX'"),
        "{o}"
    );
    assert!(
        o["unknown_state"]
            .as_str()
            .unwrap()
            .starts_with("unknown subdivision 'ZZ' of US"),
        "{o}"
    );
    assert!(
        o["bad_date"].as_str().unwrap().contains("not an ISO date"),
        "{o}"
    );
    println!(
        "is_holiday job: fuel {} memory peak {}",
        result["stats"]["fuel_used"], result["stats"]["memory_peak_bytes"]
    );
}
