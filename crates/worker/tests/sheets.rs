//! `add_google_sheets_row` against a local server that speaks Google's protocols: the OAuth
//! 2.0 JWT-bearer token exchange (the JWT's signature checked with the test key's public
//! half, its claims checked) and Sheets API v4 `values.get` / `values.append`.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use action_worker_tests as common;

const CLIENT_EMAIL: &str = "sheets-writer@action-worker-tests.iam.gserviceaccount.com";

#[derive(Default)]
struct Google {
    tokens_issued: usize,
    header_reads: usize,
    appended: Vec<(String, HashMap<String, String>, Value)>,
}

type Shared = Arc<Mutex<Google>>;

fn fixture(name: &str) -> std::path::PathBuf {
    common::repo_root()
        .join("crates/worker/tests/fixtures")
        .join(name)
}

fn check_bearer(headers: &HeaderMap) -> Result<(), (StatusCode, axum::Json<Value>)> {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer ya29.test-token")
    {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "message": "bad token"}})),
        ))
    }
}

async fn google() -> (SocketAddr, Shared) {
    let shared = Shared::default();
    let public_key = std::fs::read(fixture("test-service-account.pub.der")).unwrap();
    let app = Router::new()
        .route(
            "/token",
            post(move |State(g): State<Shared>, body: String| {
                let public_key = public_key.clone();
                async move {
                    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    assert_eq!(form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
                    let parts: Vec<&str> = form["assertion"].split('.').collect();
                    assert_eq!(parts.len(), 3);
                    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
                    assert_eq!(header["alg"], "RS256");
                    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
                    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &public_key);
                    if key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).is_err() {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_grant", "error_description": "bad signature"})));
                    }
                    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
                    assert_eq!(claims["iss"], CLIENT_EMAIL);
                    assert_eq!(claims["scope"], "https://www.googleapis.com/auth/spreadsheets");
                    assert!(claims["aud"].as_str().unwrap().ends_with("/token"));
                    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
                    g.lock().unwrap().tokens_issued += 1;
                    (StatusCode::OK, axum::Json(json!({"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"})))
                }
            }),
        )
        .route(
            "/v4/spreadsheets/{id}/values/{range}",
            get(|State(g): State<Shared>, UrlPath((id, range)): UrlPath<(String, String)>, headers: HeaderMap| async move {
                check_bearer(&headers)?;
                assert_eq!(id, "sheet-123");
                assert_eq!(range, "1:1");
                g.lock().unwrap().header_reads += 1;
                Ok::<_, (StatusCode, axum::Json<Value>)>(axum::Json(
                    json!({"range": "Sheet1!A1:C1", "majorDimension": "ROWS", "values": [["Name", "Email", "Amount"]]}),
                ))
            })
            .post(
                |State(g): State<Shared>,
                 UrlPath((id, range)): UrlPath<(String, String)>,
                 Query(query): Query<HashMap<String, String>>,
                 headers: HeaderMap,
                 axum::Json(body): axum::Json<Value>| async move {
                    check_bearer(&headers)?;
                    assert_eq!(range, "A1:append");
                    assert_eq!(query["valueInputOption"], "USER_ENTERED");
                    let mut g = g.lock().unwrap();
                    g.appended.push((id.clone(), query, body));
                    let row = 4 + g.appended.len();
                    Ok::<_, (StatusCode, axum::Json<Value>)>(axum::Json(json!({
                        "spreadsheetId": id, "tableRange": "Sheet1!A1:C4",
                        "updates": {"spreadsheetId": id, "updatedRange": format!("Sheet1!A{row}:C{row}"), "updatedRows": 1}
                    })))
                },
            ),
        )
        .with_state(shared.clone());
    (common::serve(app, "127.0.0.1:0").await, shared)
}

async fn run(dir: &Path, source: &str, addr: Option<SocketAddr>) -> Value {
    let extra = match addr {
        Some(addr) => format!(
            "[sheets]\nservice_account_file = \"{}\"\nbase_url = \"http://{addr}\"\ntoken_url = \"http://{addr}/token\"\n",
            fixture("test-service-account.json").display()
        ),
        None => String::new(),
    };
    let config = common::write_config(dir, &extra);
    let script = dir.join("sheetRow.py");
    std::fs::write(&script, source).unwrap();
    common::run_script(&config, &script, &[], &[]).await.0
}

const SCRIPT: &str = r#"
def execute_action(context):
    return [
        add_google_sheets_row("sheet-123", ["Maria", "maria@example.com", 12.5]),
        add_google_sheets_row("sheet-123", {"Email": "nikos@example.com", "Name": "Nikos"}),
        add_google_sheets_row("sheet-123", {"Amount": 3, "Name": "Eleni"}),
        add_google_sheets_row("sheet-123", {"Phone": "123"}),
    ]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_append_with_a_service_account_token() {
    let (addr, google) = google().await;
    let dir = tempfile::tempdir().unwrap();
    let result = run(dir.path(), SCRIPT, Some(addr)).await;
    assert_eq!(result["status"], "ok", "{result}");
    let out = result["output"].as_array().unwrap();
    assert_eq!(
        out[0],
        json!({"success": true, "updatedRange": "Sheet1!A5:C5"})
    );
    assert_eq!(
        out[1],
        json!({"success": true, "updatedRange": "Sheet1!A6:C6"})
    );
    assert_eq!(out[2]["success"], true);
    assert_eq!(out[3]["success"], false);
    assert!(
        out[3]["message"]
            .as_str()
            .unwrap()
            .contains("keys not in the sheet's header row: Phone"),
        "{}",
        out[3]
    );
    let g = google.lock().unwrap();
    assert_eq!(g.tokens_issued, 1, "the token is cached");
    assert_eq!(
        g.header_reads, 1,
        "the header row is read once per sheet per job"
    );
    assert_eq!(
        g.appended[0].2,
        json!({"values": [["Maria", "maria@example.com", 12.5]]})
    );
    assert_eq!(
        g.appended[1].2,
        json!({"values": [["Nikos", "nikos@example.com", ""]]})
    );
    assert_eq!(g.appended[2].2, json!({"values": [["Eleni", "", 3]]}));
    assert!(
        result["trace"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["kind"] == "sheets")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_the_helper_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(
        dir.path(),
        "def execute_action(c):\n    return add_google_sheets_row('s', ['a'])\n",
        None,
    )
    .await;
    assert_eq!(result["output"]["success"], false, "{result}");
    assert!(
        result["output"]["message"]
            .as_str()
            .unwrap()
            .contains("[sheets] service_account_file")
    );
}
