//! Property tests of decoding over arbitrary bytes and hostile shapes (STYLE habit 14): jobs
//! and definitions in JSON and MessagePack never panic and never take the stack or the heap,
//! whatever the payload claims; what decodes validates without a panic; a job survives its
//! own encoding; an inline action's `python.runtime` is accepted only by the profile rule.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use action_protocol::{ActionDefinition, Encoding, Job, JobResult};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn both() -> [Encoding; 2] {
    [Encoding::Json, Encoding::MsgPack]
}

/// Decodes `bytes` as a job and as a definition in both encodings; validates what decodes.
fn decode_everything(bytes: &[u8]) {
    for encoding in both() {
        if let Ok(job) = encoding.decode::<Job>(bytes) {
            let _ = job.validate();
        }
        if let Ok(definition) = encoding.decode::<ActionDefinition>(bytes) {
            let _ = definition.validate();
        }
        let _ = encoding.decode::<JobResult>(bytes);
    }
}

fn sample_job() -> Value {
    json!({"id": "jöb-1", "tenant": "acme", "test": true, "timeout_ms": 500,
           "action": {"name": "getOrder", "type": "api", "description": "Σ",
                      "api": {"base_url": "https://a.test", "path": "/o/$id", "method": "POST",
                              "headers": {"X": "${id}"}, "body": {"q": "$id"}}},
           "args": {"id": "Ζωή", "n": [1, 2.5, null, {"k": "é"}]},
           "conversation": {"id": "c", "tags": ["😀"]}, "reply_to": "r.1"})
}

/// Any JSON value, nested a few levels, with arbitrary Unicode strings.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn every_truncation_and_corruption_of_a_job_is_an_answer(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
        for encoding in both() {
            let mut bytes = encoding.encode(&sample_job());
            if !bytes.is_empty() {
                let at = flip % bytes.len();
                bytes[at] ^= 1 << bit;
            }
            decode_everything(&bytes);
            bytes.truncate(cut.min(bytes.len()));
            decode_everything(&bytes);
        }
    }

    #[test]
    fn a_job_with_arbitrary_text_survives_its_encoding(
        id in any::<String>(), tenant in any::<String>(), args in prop::collection::btree_map(any::<String>(), value(), 0..5),
        conversation in value(),
    ) {
        let job = json!({"id": id, "tenant": tenant, "action": {"name": "x"},
                         "args": args.into_iter().collect::<Map<String, Value>>(),
                         "conversation": if conversation.is_object() { conversation } else { Value::Null }});
        let job: Job = serde_json::from_value(job).unwrap();
        let _ = job.validate();
        for encoding in both() {
            let bytes = encoding.encode(&job);
            prop_assert_eq!(&encoding.decode::<Job>(&bytes).unwrap(), &job);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `python.runtime` is a job's text (an inline action names its profile): whatever it
    /// holds, the definition validates without a panic, and it is accepted only as a name of
    /// the profile rule, so it can be shown in an error and looked up as is.
    #[test]
    fn an_arbitrary_runtime_name_is_accepted_only_by_the_rule(
        name in prop_oneof![any::<String>(), "[a-z][a-z0-9_-]{0,70}", "[ -~]{0,8}"]
    ) {
        let definition: ActionDefinition = serde_json::from_value(json!({"name": "a",
            "type": "python", "python": {"code": "x = 1", "runtime": name}})).unwrap();
        let rule = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        match definition.validate() {
            Ok(()) => {
                prop_assert!(rule, "{name:?} accepted");
                prop_assert_eq!(definition.python_runtime(), name.as_str());
            }
            Err(e) => {
                prop_assert!(!rule, "{name:?} refused: {e}");
                prop_assert_eq!(e.field.as_str(), "python.runtime");
            }
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [129usize, 10_000, 1_000_000] {
        // A bare array, and a job whose argument is one.
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(Encoding::Json.decode::<Value>(json.as_bytes()).is_err());
        let job = format!(r#"{{"id":"j","action":{{"name":"a"}},"args":{{"x":{json}}}}}"#);
        assert!(Encoding::Json.decode::<Job>(job.as_bytes()).is_err());
        // MessagePack: fixarray of one element, nested.
        let mut msgpack = vec![0x91u8; depth];
        msgpack.push(0xc0);
        assert!(Encoding::MsgPack.decode::<Value>(&msgpack).is_err());
        let mut job =
            rmp_serde::to_vec_named(&json!({"id": "j", "action": {"name": "a"}})).unwrap();
        // Replace the map header (0x82) by one with a third entry, "args": {"x": <deep>}.
        job[0] = 0x83;
        job.extend(rmp_serde::to_vec(&"args").unwrap());
        job.extend([0x81]);
        job.extend(rmp_serde::to_vec(&"x").unwrap());
        job.extend(&msgpack);
        let error = Encoding::MsgPack.decode::<Job>(&job).unwrap_err();
        assert!(error.to_string().contains("depth"), "{error}");
    }
    // Within the limit, nesting decodes.
    let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(Encoding::Json.decode::<Value>(fine.as_bytes()).is_ok());
    let mut fine = vec![0x91u8; 100];
    fine.push(0xc0);
    assert!(Encoding::MsgPack.decode::<Value>(&fine).is_ok());
}

#[test]
fn lengths_that_claim_gigabytes_are_errors_without_the_allocation() {
    let claims: [&[u8]; 5] = [
        &[0xdf, 0xff, 0xff, 0xff, 0xff],          // map32 of 4 Gi entries
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],    // array32 of 4 Gi items
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],    // str32 of 4 GiB
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], // bin32 of 4 GiB
        &[0x81, 0xa2, b'i', b'd', 0xdb, 0x7f, 0xff, 0xff, 0xff], // {"id": str of 2 GiB}
    ];
    for bytes in claims {
        assert!(
            Encoding::MsgPack.decode::<Value>(bytes).is_err(),
            "{bytes:?}"
        );
        assert!(Encoding::MsgPack.decode::<Job>(bytes).is_err(), "{bytes:?}");
    }
}

#[test]
fn invalid_utf8_is_an_error_in_both_encodings() {
    let json = b"{\"id\":\"\xff\xfe\",\"action\":{\"name\":\"a\"}}";
    assert!(Encoding::Json.decode::<Job>(json).is_err());
    // {"id": <str of 2 bytes that are not UTF-8>, "action": {"name": "a"}}
    let mut msgpack = vec![0x82, 0xa2, b'i', b'd', 0xa2, 0xff, 0xfe];
    msgpack.extend(rmp_serde::to_vec(&"action").unwrap());
    msgpack.extend(rmp_serde::to_vec_named(&json!({"name": "a"})).unwrap());
    assert!(Encoding::MsgPack.decode::<Job>(&msgpack).is_err());
}
