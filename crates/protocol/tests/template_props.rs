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
