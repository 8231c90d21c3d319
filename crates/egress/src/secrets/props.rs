//! Property tests of the secret scanner and redaction over arbitrary Unicode and bytes
//! (STYLE habit 14): never a panic, every reference found on character boundaries, and no
//! secret value left in anything redacted.

use proptest::prelude::*;

use super::*;

/// Arbitrary text, often holding whole or broken references next to multi-byte characters
/// (the bug of issue 13: `{{secrets.` followed by `é` sliced inside the `é`).
fn text_with_references() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("{{secrets.".to_string()),
        Just("%7b%7Bsecrets.".to_string()),
        Just("%7B%7Bsecrets.".to_string()),
        Just("}}".to_string()),
        Just("%7D%7d".to_string()),
        Just("{".to_string()),
        Just("%".to_string()),
        "[A-Z_]{1,6}",
        "[éü€😀Ωλ\u{301}]{1,3}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Secret values drawn from characters that never occur in a mark `[secret:NAME]` (names
/// here are upper-case letters): a replacement can then neither hide nor create a value.
fn value() -> impl Strategy<Value = String> {
    "[#~^éü€😀0-9]{6,12}"
}

/// Arbitrary text that cannot open a reference (no `{`, no `%`).
fn without_openings() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|text| text.replace(['{', '%'], ""))
}

const NAMES: [&str; 3] = ["ERP_KEY", "TOKEN", "OTHER"];

fn store_of(values: &[String]) -> SecretStore {
    let mut store = SecretStore::default();
    for (name, value) in NAMES.iter().zip(values) {
        store.insert(
            Some("acme"),
            name,
            Secret {
                value: value.clone(),
                hosts: vec!["api.example.com".into()],
            },
        );
    }
    store
}

fn carried_of(values: &[String]) -> Vec<CarriedSecret> {
    NAMES
        .iter()
        .zip(values)
        .map(|(name, value)| CarriedSecret {
            name: (*name).to_string(),
            hosts: vec!["api.example.com".into()],
            value: value.clone(),
        })
        .collect()
}

fn leaks(text: &str, values: &[String]) -> bool {
    values
        .iter()
        .any(|v| text.contains(v.as_str()) || text.contains(&percent_encode(v)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn the_scanner_never_panics_and_finds_references_on_boundaries(text in text_with_references()) {
        for found in find_refs(&text) {
            prop_assert!(text.is_char_boundary(found.start) && text.is_char_boundary(found.end));
            let spelled = &text[found.start..found.end];
            let plain = format!("{{{{secrets.{}}}}}", found.name);
            let percent = format!("%7B%7Bsecrets.{}%7D%7D", found.name);
            prop_assert!(
                spelled == plain || spelled.eq_ignore_ascii_case(&percent),
                "{:?} is not a reference", spelled
            );
        }
        let marked = mark_references(&text);
        prop_assert!(find_refs(&marked).is_empty(), "{:?} still holds a reference", marked);
        let mut carried = vec![];
        let _ = store_of(&["#1#1#1".into(), "~2~2~2".into(), "^3^3^3".into()])
            .render(Some("acme"), "api.example.com", &text, &mut carried);
    }

    #[test]
    fn a_rendered_text_shows_every_reference_as_a_mark_and_no_value(
        pieces in prop::collection::vec((without_openings(), 0usize..3, any::<bool>()), 1..6),
        values in prop::collection::vec(value(), 3),
    ) {
        let mut text = String::new();
        let mut expected_value = String::new();
        let mut expected_marked = String::new();
        for (between, which, percent) in &pieces {
            text.push_str(between);
            expected_value.push_str(between);
            expected_marked.push_str(between);
            let name = NAMES[*which];
            if *percent {
                text.push_str(&format!("%7B%7Bsecrets.{name}%7D%7D"));
                expected_value.push_str(&percent_encode(&values[*which]));
            } else {
                text.push_str(&format!("{{{{secrets.{name}}}}}"));
                expected_value.push_str(&values[*which]);
            }
            expected_marked.push_str(&format!("[secret:{name}]"));
        }
        prop_assume!(!leaks(&text, &values));
        let mut carried = vec![];
        let rendered = store_of(&values)
            .render(Some("acme"), "api.example.com", &text, &mut carried)
            .unwrap();
        prop_assert_eq!(&rendered.value, &expected_value);
        prop_assert_eq!(&rendered.redacted, &expected_marked);
        prop_assert_eq!(mark_references(&text), expected_marked.clone());
        prop_assert!(!leaks(&rendered.redacted, &values));
        // What comes back carrying the values is redacted to the same marks.
        prop_assert!(!leaks(&redact_text(&rendered.value, &carried), &values));
        // Another host never gets a value.
        let refused = store_of(&values).render(Some("acme"), "attacker.test", &text, &mut vec![]);
        let wrong_host = matches!(refused, Err(SecretError::WrongHost { .. }));
        prop_assert!(wrong_host, "{:?}", refused);
    }

    #[test]
    fn redaction_leaves_no_value_in_text_or_bytes(
        pieces in prop::collection::vec((any::<String>(), 0usize..3, any::<bool>()), 0..6),
        noise in prop::collection::vec(any::<u8>(), 0..64),
        values in prop::collection::vec(value(), 3),
    ) {
        let carried = carried_of(&values);
        let mut text = String::new();
        for (between, which, percent) in &pieces {
            text.push_str(between);
            if *percent {
                text.push_str(&percent_encode(&values[*which]));
            } else {
                text.push_str(&values[*which]);
            }
        }
        prop_assert!(!leaks(&redact_text(&text, &carried), &values));
        let mut bytes = noise.clone();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&noise);
        let redacted = redact_bytes(bytes, &carried);
        for value in &values {
            prop_assert!(!redacted.windows(value.len()).any(|w| w == value.as_bytes()));
        }
    }
}
