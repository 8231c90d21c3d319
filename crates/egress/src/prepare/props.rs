//! Property tests of request preparation over arbitrary Unicode and bytes: never a panic; a
//! prepared request keeps its host, its headers and its body; a refusal names the rule.

use proptest::prelude::*;

use super::*;
use crate::secrets::Secret;
use action_protocol::HttpErrorKind;

fn store() -> SecretStore {
    let mut store = SecretStore::default();
    store.insert(
        Some("acme"),
        "KEY",
        Secret {
            value: "v@l/ue?#é".into(),
            hosts: vec!["api.example.com".into()],
        },
    );
    store
}

/// Text that is sometimes a secret reference or holds characters of every width.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("{{secrets.KEY}}".to_string()),
        Just("%7B%7Bsecrets.KEY%7D%7D".to_string()),
        "[ -~]{0,8}",
        "[é\u{ff}\u{100}Ω😀\t\r\n\0]{1,3}",
    ];
    prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat())
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z][A-Za-z0-9-]{0,12}", any::<String>(),]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_prepared_request_keeps_its_host_headers_and_body(
        path in text(),
        query in text(),
        headers in prop::collection::vec((header_name(), text()), 0..4),
        body in prop::option::of(prop_oneof![
            text().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
        ]),
        method in prop_oneof![Just("get".to_string()), Just("POST".to_string()), any::<String>()],
    ) {
        let request = HttpRequest {
            headers: headers.clone(),
            body: body.clone(),
            ..HttpRequest::new(method, format!("https://api.example.com/{path}?{query}"))
        };
        let mut carried = vec![];
        match prepare(&request, Some((&store(), Some("acme"))), "ua/1", &mut carried) {
            Ok(prepared) => {
                prop_assert_eq!(prepared.url.host_str(), Some("api.example.com"));
                prop_assert_eq!(prepared.url.scheme(), "https");
                let has_agent = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("user-agent"));
                prop_assert_eq!(prepared.headers.len(), headers.len() + usize::from(!has_agent));
                for ((name, value), (sent_name, sent_value)) in headers.iter().zip(&prepared.headers) {
                    prop_assert!(sent_name.as_str().eq_ignore_ascii_case(name));
                    let rendered = value
                        .replace("{{secrets.KEY}}", "v@l/ue?#é")
                        .replace("%7B%7Bsecrets.KEY%7D%7D", "v%40l%2Fue%3F%23%C3%A9");
                    prop_assert_eq!(latin1_text(sent_value.as_bytes()), rendered);
                }
                match (&body, &prepared.body) {
                    (None, None) => {}
                    (Some(sent), Some(prepared)) => {
                        if !sent.windows(9).any(|w| w == b"secrets.K") {
                            prop_assert_eq!(sent, prepared);
                        }
                    }
                    other => prop_assert!(false, "body changed: {:?}", other),
                }
            }
            Err(HttpError { kind: HttpErrorKind::InvalidRequest, message, .. }) => {
                prop_assert!(
                    message.starts_with("method ")
                        || message.starts_with("header ")
                        || message.contains("https://api.example.com/"),
                    "{}", message
                );
                if message.starts_with("header ") && message.contains("not Latin-1") {
                    prop_assert!(headers.iter().any(|(_, v)| v.chars().any(|c| u32::from(c) > 0xff)));
                }
            }
            // A reference to a secret this tenant does not have (`{{secrets.KEYX}}`).
            Err(HttpError { kind: HttpErrorKind::Denied, rule: Some(rule), message }) if rule == "secret" => {
                prop_assert!(message.contains("is not defined for tenant"), "{}", message);
            }
            Err(other) => prop_assert!(false, "unexpected refusal: {}", other),
        }
    }

    #[test]
    fn header_values_are_latin_1_or_refused(value in text()) {
        let name = HeaderName::from_static("x-test");
        let fits = value.chars().all(|c| {
            let code = u32::from(c);
            code <= 0xff && (code >= 0x20 || c == '\t') && code != 0x7f
        });
        match header_value(&name, &value) {
            Ok(sent) => {
                prop_assert!(fits, "{:?} was accepted", value);
                prop_assert_eq!(latin1_text(sent.as_bytes()), value);
            }
            Err(error) => {
                prop_assert!(!fits, "{:?} was refused: {}", value, error);
                prop_assert!(error.to_string().contains("header x-test"));
            }
        }
    }
}
