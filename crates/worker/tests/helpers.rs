//! The helpers from real Python actions, through the binary (SPEC §4).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::{Value, json};

use action_worker_tests as common;

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
        "by_epiphany": is_holiday("DE", state="BY", check_date="2026-01-06"),
        "by_region": is_holiday("DE", region="BY", check_date="2026-01-06"),
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
    assert_eq!(o["by_region"], true);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_helpers_enforce_their_limits_from_python() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
def execute_action(context):
    out = {}
    out["read"] = get_conversation_metadata(context, "plan")
    out["long_key"] = set_conversation_metadata(context, "k" * 201, "v")["success"]
    out["long_value"] = set_conversation_metadata(context, "big", "v" * 50001)["success"]
    out["number"] = set_conversation_metadata(context, "count", 7)
    out["overlay"] = get_conversation_metadata(context, "count")
    out["full"] = [set_conversation_metadata(context, f"key{i}", "v")["success"] for i in range(200)].count(False)
    out["delete_missing"] = delete_conversation_metadata(context, "nope")
    out["delete"] = delete_conversation_metadata(context, "plan")["success"]
    out["tag_again"] = add_conversation_tag(context, "vip")
    out["long_tag"] = add_conversation_tag(context, "t" * 101)["success"]
    out["event"] = add_conversation_event(context, "Customer asked for a refund")["success"]
    out["long_event"] = add_conversation_event(context, "e" * 1001)["success"]
    out["bad_phone"] = hand_off_conversation(context, reason="angry", phone_destination="6912345678")["success"]
    out["hand_off"] = hand_off_conversation(context, reason="angry", phone_destination="+306912345678")
    out["again"] = hand_off_conversation(context)
    try:
        set_conversation_metadata(context, "k", {"a": 1})
    except TypeError as exc:
        out["type_error"] = str(exc)
    return out
"#;
    let conversation = json!({"id": "c9", "metadata": {"plan": "gold"}, "tags": ["vip"]});
    let config = common::write_config(dir.path(), "");
    let script = dir.path().join("limits.py");
    std::fs::write(&script, source).unwrap();
    let file = dir.path().join("conversation.json");
    std::fs::write(&file, conversation.to_string()).unwrap();
    let args = ["--conversation", file.to_str().unwrap(), "--test"];
    let result = common::run_script(&config, &script, &args, &[]).await.0;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["read"], "gold");
    assert_eq!(o["long_key"], false);
    assert_eq!(o["long_value"], false);
    assert_eq!(
        o["number"],
        json!({"success": true, "message": "metadata set", "key": "count", "value": "7"})
    );
    assert_eq!(o["overlay"], "7");
    assert_eq!(
        o["full"], 2,
        "plan + count + 198 new keys fill 200; the last two fail"
    );
    assert_eq!(
        o["delete_missing"],
        json!({"success": false, "message": "key not found"})
    );
    assert_eq!(o["delete"], true);
    assert_eq!(o["tag_again"]["success"], true);
    assert_eq!(o["long_tag"], false);
    assert_eq!(o["event"], true);
    assert_eq!(o["long_event"], false);
    assert_eq!(o["bad_phone"], false);
    assert_eq!(
        o["hand_off"],
        json!({"success": true, "message": "handed off"})
    );
    assert_eq!(
        o["again"],
        json!({"success": true, "message": "already handed off"})
    );
    assert!(o["type_error"].as_str().unwrap().contains("not dict"));
    let effects = result["effects"].as_array().unwrap();
    assert!(
        effects.iter().all(|e| e["test"] == true),
        "a test job's effects are flagged"
    );
    let kinds: Vec<&str> = effects
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "set_metadata").count(), 199);
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["delete_metadata", "add_event", "hand_off"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_effect_cap_a_helper_answers_success_false_and_the_job_goes_on() {
    // The script of issue 13 that tagged until its time ran out: now 1,000 effects at most
    // (limits.max_effects), then success False saying so, and the job ends normally.
    let dir = tempfile::tempdir().unwrap();
    let source = r#"
def execute_action(context):
    replies = [add_conversation_tag(context, f"tag-{i}") for i in range(3000)]
    refused = [r for r in replies if not r["success"]]
    # A tag already there records nothing and still succeeds, past the cap too.
    again = add_conversation_tag(context, "tag-5")
    return {"added": len(replies) - len(refused), "refused": len(refused),
            "message": refused[0]["message"], "again": again["success"],
            "event": add_conversation_event(context, "one more")["success"]}
"#;
    let result = run(dir.path(), source, Some(json!({"id": "c1", "tags": []}))).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    assert_eq!(o["added"], 1000);
    assert_eq!(o["refused"], 2000);
    assert_eq!(
        o["message"],
        "effect limit: a job may record 1000 effects, and this one has; nothing was changed"
    );
    assert_eq!(o["again"], true);
    assert_eq!(o["event"], false);
    assert_eq!(result["effects"].as_array().unwrap().len(), 1000);
}
