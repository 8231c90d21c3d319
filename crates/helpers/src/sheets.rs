//! `add_google_sheets_row` (SPEC §4): Sheets API v4 `spreadsheets.values.append` with
//! `valueInputOption=USER_ENTERED`, authorised by a service account through the OAuth 2.0
//! JWT-bearer grant (RFC 7523). The token is cached, process-wide, until a minute before it
//! expires; a dict row is mapped to the sheet's header row, read once per sheet per job.
//! Every request goes through the egress crate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use action_egress::{CallOptions, Egress};
use action_protocol::HttpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";

/// `[sheets]` of `worker.toml`, with the service-account key loaded.
pub struct SheetsConfig {
    /// `https://sheets.googleapis.com` by default.
    pub base_url: String,
    /// The key's `token_uri` unless overridden.
    pub token_url: String,
    pub client_email: String,
    key: RsaKeyPair,
    pub timeout: Duration,
}

impl std::fmt::Debug for SheetsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetsConfig")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

impl SheetsConfig {
    /// Reads a service-account key (the JSON Google issues).
    pub fn from_key_json(
        key_json: &str,
        base_url: Option<String>,
        token_url: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let key: Value = serde_json::from_str(key_json)
            .map_err(|e| format!("the service-account key is not JSON: {e}"))?;
        let field = |name: &str| {
            key[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("the service-account key has no {name}"))
        };
        let pem = field("private_key")?;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(der.trim())
            .map_err(|e| format!("private_key is not PEM: {e}"))?;
        let key_pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not a PKCS#8 RSA key: {e}"))?;
        Ok(Self {
            base_url: base_url.unwrap_or_else(|| "https://sheets.googleapis.com".into()),
            token_url: match token_url {
                Some(url) => url,
                None => field("token_uri")?,
            },
            client_email: field("client_email")?,
            key: key_pair,
            timeout,
        })
    }
}

#[derive(Debug)]
pub struct SheetsClient {
    pub config: SheetsConfig,
    token: Mutex<Option<(String, Instant)>>,
}

/// The header rows read in one job, by sheet.
pub type HeaderCache = HashMap<String, Vec<String>>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Percent-encodes a path segment (the sheet id comes from the script).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl SheetsClient {
    pub fn new(config: SheetsConfig) -> Self {
        Self {
            config,
            token: Mutex::new(None),
        }
    }

    /// The signed assertion of the JWT-bearer grant.
    pub fn assertion(&self, issued_at: u64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
        let claims = URL_SAFE_NO_PAD.encode(
            json!({
                "iss": self.config.client_email,
                "scope": SCOPE,
                "aud": self.config.token_url,
                "iat": issued_at,
                "exp": issued_at + 3600,
            })
            .to_string(),
        );
        let input = format!("{header}.{claims}");
        let mut signature = vec![0; self.config.key.public().modulus_len()];
        self.config
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "could not sign the token request".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    async fn send(
        &self,
        egress: &Egress,
        request: HttpRequest,
        deadline: Instant,
    ) -> Result<Value, String> {
        let options = CallOptions {
            deadline,
            allowed_hosts: &[],
            secrets: None,
        };
        let request = HttpRequest {
            timeout: Some(self.config.timeout),
            follow_redirects: false,
            ..request
        };
        let url = request.url.clone();
        let response = egress
            .send(request, options)
            .await
            .map_err(|e| format!("Google Sheets request failed: {e}"))?;
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        if !(200..300).contains(&response.status) {
            let detail = body["error"]["message"]
                .as_str()
                .or(body["error_description"].as_str())
                .unwrap_or("");
            return Err(format!("{url} answered HTTP {} {detail}", response.status)
                .trim_end()
                .to_string());
        }
        Ok(body)
    }

    async fn access_token(&self, egress: &Egress, deadline: Instant) -> Result<String, String> {
        if let Ok(guard) = self.token.lock()
            && let Some((token, expires)) = guard.as_ref()
            && Instant::now() + Duration::from_secs(60) < *expires
        {
            return Ok(token.clone());
        }
        let assertion = self.assertion(now_secs())?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let request = HttpRequest {
            headers: vec![(
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: Some(form.into_bytes()),
            ..HttpRequest::new("POST", self.config.token_url.clone())
        };
        let body = self.send(egress, request, deadline).await?;
        let token = body["access_token"]
            .as_str()
            .ok_or("the token endpoint returned no access_token")?
            .to_string();
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        if let Ok(mut guard) = self.token.lock() {
            *guard = Some((token.clone(), Instant::now() + lifetime));
        }
        Ok(token)
    }

    fn authorized(
        &self,
        token: &str,
        method: &str,
        url: String,
        body: Option<Vec<u8>>,
    ) -> HttpRequest {
        let mut headers = vec![("Authorization".to_string(), format!("Bearer {token}"))];
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        HttpRequest {
            headers,
            body,
            ..HttpRequest::new(method, url)
        }
    }

    /// Appends one row; `data` is a list (the row) or an object (matched to the header row).
    /// Returns the `updatedRange`.
    pub async fn append_row(
        &self,
        egress: &Egress,
        sheet_id: &str,
        data: &Value,
        headers: &mut HeaderCache,
        deadline: Instant,
    ) -> Result<String, String> {
        if sheet_id.is_empty() {
            return Err("sheet_id is empty".into());
        }
        let token = self.access_token(egress, deadline).await?;
        let base = format!(
            "{}/v4/spreadsheets/{}/values",
            self.config.base_url.trim_end_matches('/'),
            segment(sheet_id)
        );
        let row: Vec<Value> = match data {
            Value::Array(items) => items.clone(),
            Value::Object(map) => {
                if !headers.contains_key(sheet_id) {
                    let request = self.authorized(&token, "GET", format!("{base}/1%3A1"), None);
                    let body = self.send(egress, request, deadline).await?;
                    let names = body["values"][0]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|v| v.as_str().unwrap_or("").to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    headers.insert(sheet_id.to_string(), names);
                }
                let header = &headers[sheet_id];
                if header.is_empty() {
                    return Err("the sheet has no header row to match the dict's keys to".into());
                }
                let unknown: Vec<&str> = map
                    .keys()
                    .filter(|k| !header.contains(k))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    return Err(format!(
                        "keys not in the sheet's header row: {}",
                        unknown.join(", ")
                    ));
                }
                header
                    .iter()
                    .map(|h| map.get(h).cloned().unwrap_or(Value::String(String::new())))
                    .collect()
            }
            _ => {
                return Err(
                    "data must be a list (one row) or a dict (matched to the header row)".into(),
                );
            }
        };
        let body = serde_json::to_vec(&json!({"values": [row]})).map_err(|e| e.to_string())?;
        let url =
            format!("{base}/A1:append?valueInputOption=USER_ENTERED&insertDataOption=INSERT_ROWS");
        let request = self.authorized(&token, "POST", url, Some(body));
        let answer = self.send(egress, request, deadline).await?;
        answer["updates"]["updatedRange"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "the append response has no updates.updatedRange".into())
    }
}
