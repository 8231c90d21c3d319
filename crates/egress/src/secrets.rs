//! Secrets: `{{secrets.NAME}}` in a request, resolved by the host at send time (SPEC §2).
//!
//! A secret belongs to a tenant (or to jobs without one) and is bound to the hosts it may be
//! sent to. The guest only ever holds the reference; the value is put in just before the
//! request leaves, only if the destination is one of the secret's hosts, and taken out again
//! (`[secret:NAME]`) of anything that comes back or is recorded: response headers and body,
//! the final URL, error messages, trace entries.

use std::collections::HashMap;

use crate::hosts::host_allowed;

/// One secret as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub value: String,
    /// Host patterns (`api.example.com`, `*.example.com`) the value may be sent to.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("value", &"[redacted]")
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// All secrets, keyed by tenant (`None`: jobs without a tenant) and name.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    entries: HashMap<(Option<String>, String), Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {name} is not defined for {scope}")]
    Unknown { name: String, scope: String },
    #[error("secret {name} may not be sent to {host} (it is bound to {bound})")]
    WrongHost {
        name: String,
        host: String,
        bound: String,
    },
}

/// A secret a request carries: its name, hosts and value (for redaction).
#[derive(Clone)]
pub struct CarriedSecret {
    pub name: String,
    pub hosts: Vec<String>,
    value: String,
}

impl std::fmt::Debug for CarriedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarriedSecret")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .finish()
    }
}

impl CarriedSecret {
    pub fn allows(&self, host: &str) -> bool {
        host_allowed(&self.hosts, host) && !self.hosts.is_empty()
    }
}

/// How a reference is spelled where it was found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// `{{secrets.NAME}}` as written.
    Plain,
    /// `%7B%7Bsecrets.NAME%7D%7D`, as `urlencode` leaves it in a query or form body.
    Percent,
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

const PLAIN_OPEN: &str = "{{secrets.";
const PERCENT_OPEN: &str = "%7B%7Bsecrets.";

/// Whether `bytes` starts with `prefix`, ASCII letters compared without case.
fn starts_with_ignore_case(bytes: &[u8], prefix: &str) -> bool {
    bytes
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// One reference found in a text: its byte range (on character boundaries), name and
/// spelling.
struct Found {
    start: usize,
    end: usize,
    name: String,
    spelling: Spelling,
}

/// Finds references in `text`. Every offset is that of an ASCII byte (`{`, `%`, a name
/// character or a closing brace), so each is a character boundary whatever else the text
/// holds (habit 14: offsets come from `find`, never from stepping one byte into a character).
fn find_refs(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut found = vec![];
    let mut from = 0;
    while let Some(offset) = text[from..].find(['{', '%']) {
        let start = from + offset;
        let rest = &bytes[start..];
        let (open, close, spelling) = if rest.starts_with(PLAIN_OPEN.as_bytes()) {
            (PLAIN_OPEN.len(), "}}", Spelling::Plain)
        } else if starts_with_ignore_case(rest, PERCENT_OPEN) {
            (PERCENT_OPEN.len(), "%7D%7D", Spelling::Percent)
        } else {
            from = start + 1;
            continue;
        };
        let name_start = start + open;
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| is_name_char(**b))
            .count();
        let name_end = name_start + name_len;
        if name_len > 0 && starts_with_ignore_case(&bytes[name_end..], close) {
            found.push(Found {
                start,
                end: name_end + close.len(),
                name: text[name_start..name_end].to_string(),
                spelling,
            });
            from = name_end + close.len();
        } else {
            from = start + 1;
        }
    }
    found
}

fn percent_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A text with its references resolved, and the same text for records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// What is sent.
    pub value: String,
    /// What is shown: each reference as `[secret:NAME]`.
    pub redacted: String,
}

impl SecretStore {
    pub fn insert(&mut self, tenant: Option<&str>, name: &str, secret: Secret) {
        self.entries
            .insert((tenant.map(str::to_string), name.to_string()), secret);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resolves the references of `text` for `tenant`, checking each against `host`.
    /// Every secret used is added to `carried` (once).
    pub fn render(
        &self,
        tenant: Option<&str>,
        host: &str,
        text: &str,
        carried: &mut Vec<CarriedSecret>,
    ) -> Result<Rendered, SecretError> {
        let refs = find_refs(text);
        if refs.is_empty() {
            return Ok(Rendered {
                value: text.to_string(),
                redacted: text.to_string(),
            });
        }
        let mut value = String::with_capacity(text.len());
        let mut redacted = String::with_capacity(text.len());
        let mut last = 0;
        for Found {
            start,
            end,
            name,
            spelling,
        } in refs
        {
            let key = (tenant.map(str::to_string), name.clone());
            let secret = self.entries.get(&key).ok_or_else(|| SecretError::Unknown {
                name: name.clone(),
                scope: tenant.map_or("jobs without a tenant".to_string(), |t| {
                    format!("tenant {t:?}")
                }),
            })?;
            let carry = CarriedSecret {
                name: name.clone(),
                hosts: secret.hosts.clone(),
                value: secret.value.clone(),
            };
            if !carry.allows(host) {
                return Err(SecretError::WrongHost {
                    name,
                    host: host.to_string(),
                    bound: secret.hosts.join(", "),
                });
            }
            value.push_str(&text[last..start]);
            redacted.push_str(&text[last..start]);
            match spelling {
                Spelling::Plain => value.push_str(&secret.value),
                Spelling::Percent => value.push_str(&percent_encode(&secret.value)),
            }
            redacted.push_str(&format!("[secret:{name}]"));
            if !carried.iter().any(|c| c.name == name) {
                carried.push(carry);
            }
            last = end;
        }
        value.push_str(&text[last..]);
        redacted.push_str(&text[last..]);
        Ok(Rendered { value, redacted })
    }
}

/// Replaces every value of `carried` (as is, and percent-encoded) in `text` by `[secret:NAME]`.
pub fn redact_text(text: &str, carried: &[CarriedSecret]) -> String {
    let mut out = text.to_string();
    for secret in carried {
        if secret.value.is_empty() {
            continue;
        }
        let mark = format!("[secret:{}]", secret.name);
        out = out.replace(&secret.value, &mark);
        let encoded = percent_encode(&secret.value);
        if encoded != secret.value {
            out = out.replace(&encoded, &mark);
        }
    }
    out
}

/// The same, over bytes (a response body need not be text).
pub fn redact_bytes(bytes: Vec<u8>, carried: &[CarriedSecret]) -> Vec<u8> {
    let mut out = bytes;
    for secret in carried {
        let needle = secret.value.as_bytes();
        if needle.is_empty() || out.len() < needle.len() {
            continue;
        }
        let mark = format!("[secret:{}]", secret.name).into_bytes();
        let mut result = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(needle) {
                result.extend_from_slice(&mark);
                i += needle.len();
            } else {
                result.push(out[i]);
                i += 1;
            }
        }
        out = result;
    }
    out
}

/// `text` with each reference shown as `[secret:NAME]`, nothing resolved: how a request's
/// URL appears in traces and logs.
pub fn mark_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for Found {
        start, end, name, ..
    } in find_refs(text)
    {
        out.push_str(&text[last..start]);
        out.push_str(&format!("[secret:{name}]"));
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SecretStore {
        let mut store = SecretStore::default();
        store.insert(
            Some("acme"),
            "ERP_KEY",
            Secret {
                value: "s3cr3t/+".into(),
                hosts: vec!["erp.example.com".into()],
            },
        );
        store.insert(
            Some("globex"),
            "ERP_KEY",
            Secret {
                value: "other".into(),
                hosts: vec!["*.example.com".into()],
            },
        );
        store.insert(
            None,
            "SHARED",
            Secret {
                value: "plain".into(),
                hosts: vec!["api.example.com".into()],
            },
        );
        store
    }

    #[test]
    fn references_resolve_within_the_tenant_and_show_redacted() {
        let mut carried = vec![];
        let r = store()
            .render(
                Some("acme"),
                "erp.example.com",
                "Bearer {{secrets.ERP_KEY}}",
                &mut carried,
            )
            .unwrap();
        assert_eq!(r.value, "Bearer s3cr3t/+");
        assert_eq!(r.redacted, "Bearer [secret:ERP_KEY]");
        assert_eq!(carried.len(), 1);
        let r = store()
            .render(
                Some("acme"),
                "erp.example.com",
                "/x?k=%7B%7Bsecrets.ERP_KEY%7D%7D&a=1",
                &mut carried,
            )
            .unwrap();
        assert_eq!(r.value, "/x?k=s3cr3t%2F%2B&a=1");
        assert_eq!(carried.len(), 1, "a secret is carried once");
    }

    #[test]
    fn another_tenants_secret_cannot_be_named() {
        let err = store()
            .render(
                Some("globex"),
                "erp.example.com",
                "{{secrets.SHARED}}",
                &mut vec![],
            )
            .unwrap_err();
        assert!(matches!(err, SecretError::Unknown { .. }), "{err}");
        let err = store()
            .render(None, "erp.example.com", "{{secrets.ERP_KEY}}", &mut vec![])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret ERP_KEY is not defined for jobs without a tenant"
        );
        // The same name in another tenant is that tenant's own value.
        let r = store()
            .render(
                Some("globex"),
                "x.example.com",
                "{{secrets.ERP_KEY}}",
                &mut vec![],
            )
            .unwrap();
        assert_eq!(r.value, "other");
    }

    #[test]
    fn a_secret_goes_only_to_its_hosts() {
        let err = store()
            .render(
                Some("acme"),
                "attacker.net",
                "{{secrets.ERP_KEY}}",
                &mut vec![],
            )
            .unwrap_err();
        assert!(matches!(err, SecretError::WrongHost { .. }), "{err}");
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn echoes_are_redacted_in_text_and_bytes() {
        let mut carried = vec![];
        store()
            .render(
                Some("acme"),
                "erp.example.com",
                "{{secrets.ERP_KEY}}",
                &mut carried,
            )
            .unwrap();
        assert_eq!(
            redact_text("got s3cr3t/+ and s3cr3t%2F%2B", &carried),
            "got [secret:ERP_KEY] and [secret:ERP_KEY]"
        );
        assert_eq!(
            redact_bytes(b"xs3cr3t/+y".to_vec(), &carried),
            b"x[secret:ERP_KEY]y".to_vec()
        );
        assert_eq!(
            find_refs("{{secrets.}} {{secrets.A B}} {secrets.C}").len(),
            0
        );
    }
}
