//! Property tests: no argument string changes the shape of an API action's request.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use action_protocol::{ApiSpec, RenderError, render};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn spec() -> ApiSpec {
    serde_json::from_value(json!({
        "base_url": "https://api.example.com/v1",
        "path": "/stores/$store/items/${item}",
        "method": "POST",
        "query": {"lang": "$lang", "fixed": "yes"},
        "headers": {"X-Customer": "$customer", "Authorization": "Bearer {{secrets.KEY}}"},
        "body": {"item": "$item", "note": "from $customer", "list": ["$lang", 1]}
    }))
    .unwrap()
}

fn shape(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("s"),
        Value::Number(_) => json!(0),
        Value::Bool(_) => json!(false),
        Value::Null => Value::Null,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arguments_never_change_the_request_shape(
        store in any::<String>(), item in any::<String>(), lang in any::<String>(), customer in any::<String>()
    ) {
        let mut args = Map::new();
        for (k, v) in [("store", &store), ("item", &item), ("lang", &lang), ("customer", &customer)] {
            args.insert(k.to_string(), Value::String(v.clone()));
        }
        match render(&spec(), &args) {
            Ok(r) => {
                let url = url::Url::parse(&r.url).unwrap();
                prop_assert_eq!(url.host_str(), Some("api.example.com"));
                prop_assert_eq!(url.scheme(), "https");
                let segments: Vec<&str> = url.path_segments().unwrap().collect();
                prop_assert_eq!(segments.len(), 5, "{}", r.url);
                prop_assert_eq!(segments[0], "v1");
                prop_assert_eq!(segments[1], "stores");
                prop_assert_eq!(segments[3], "items");
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                prop_assert_eq!(pairs.len(), 2);
                prop_assert_eq!(&pairs[0], &("lang".to_string(), lang.clone()));
                prop_assert_eq!(&pairs[1], &("fixed".to_string(), "yes".to_string()));
                prop_assert!(url.fragment().is_none());
                prop_assert_eq!(r.headers.len(), 2);
                prop_assert_eq!(&r.headers[0].1, &customer);
                let body = r.body.unwrap();
                prop_assert_eq!(shape(&body), json!({"item": "s", "note": "s", "list": ["s", 0]}));
                prop_assert_eq!(&body["item"], &Value::String(item.clone()));
            }
            Err(RenderError::Invalid { name, .. }) => {
                // Only the refusals the rules name: dot or empty path segments, CR/LF/NUL headers.
                match name.as_str() {
                    "store" => prop_assert!(store.is_empty() || store == "." || store == ".."),
                    "item" => prop_assert!(item.is_empty() || item == "." || item == ".."),
                    // A header carries Latin-1 text without control characters.
                    "customer" => {
                        let unfit = customer.chars().any(|c| {
                            let code = u32::from(c);
                            code > 0xff || (code < 0x20 && c != '\t') || code == 0x7f
                        });
                        prop_assert!(unfit, "{:?} was refused", customer);
                    }
                    other => prop_assert!(false, "unexpected refusal of {}", other),
                }
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
    }
}

/// Template text: arbitrary Unicode, often with `$`, `${`, `$$`, `{{` and `}}` in it.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("$".to_string()),
        Just("$$".to_string()),
        Just("${".to_string()),
        Just("}".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{{secrets.KEY}}".to_string()),
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        "[éΩ😀\u{301}]{1,3}",
    ];
    prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Parsing never panics; what parses has well-formed variable names, and its text
    /// pieces put back with the variables give the template's meaning again.
    #[test]
    fn any_template_text_parses_or_is_an_error_naming_its_field(text in template_text()) {
        match action_protocol::template::Template::parse("api.path", &text) {
            Ok(template) => {
                for var in template.vars() {
                    let mut chars = var.chars();
                    let first = chars.next().unwrap();
                    prop_assert!(first.is_ascii_alphabetic() || first == '_');
                    prop_assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'));
                }
                // No variable: the text is the template, `$$` read as `$`.
                if template.vars().next().is_none() && !text.contains("$$") {
                    let literal: String = template
                        .pieces
                        .iter()
                        .map(|p| match p {
                            action_protocol::template::Piece::Text(t) => t.as_str(),
                            action_protocol::template::Piece::Var(_) => "",
                        })
                        .collect();
                    prop_assert_eq!(literal, text);
                }
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("api.path: "), "{}", message);
                prop_assert!(message.contains(" at column "), "{}", message);
            }
        }
    }

    /// A definition with arbitrary template text validates or is refused, never panics, and
    /// a valid one renders with arbitrary arguments or names what is wrong.
    #[test]
    fn any_definition_validates_and_renders_without_a_panic(
        path in template_text(), header in template_text(), body in template_text(),
        arg in any::<String>(),
    ) {
        let definition = json!({
            "name": "anyAction", "type": "api",
            "api": {"base_url": "https://api.example.com", "path": path, "method": "POST",
                    "headers": {"X-Any": header}, "body": {"text": body}}
        });
        let Ok(definition) = serde_json::from_value::<action_protocol::ActionDefinition>(definition) else {
            return Ok(());
        };
        if definition.validate().is_ok() {
            let api = definition.api.as_ref().unwrap();
            let args: Map<String, Value> = action_protocol::required_arguments(api)
                .into_iter()
                .map(|name| (name, Value::String(arg.clone())))
                .collect();
            if let Ok(request) = render(api, &args) {
                let url = url::Url::parse(&request.url);
                prop_assert!(url.is_ok(), "{}", request.url);
                let url = url.unwrap();
                prop_assert_eq!(url.host_str(), Some("api.example.com"));
                prop_assert_eq!(request.headers.len(), 1);
            }
        }
    }
}
