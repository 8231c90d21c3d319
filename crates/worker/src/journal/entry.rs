//! What a journal holds: its entries as they are written, and the record they add up to.
//!
//! Entries are written in batches (one JetStream message each, in order); the record is the
//! entries folded in that order. An entry at a position replaces the one there and every
//! one after it, so a run that diverged from the journal, or an input written again,
//! overwrites what it no longer follows.

use action_protocol::{HttpError, HttpErrorKind, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One entry of a job's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    /// The job as it arrived, the action it ran, and the delivery: the start of a record
    /// (what came before it is another run's).
    Input {
        job: Value,
        action: Value,
        attempt: u32,
    },
    /// The action a later delivery ran, when it is not the one of the `input` (the registry
    /// moved on between deliveries): the record goes on, with this action.
    Action { action: Value },
    /// Outside call `n` is about to be sent.
    Sending { n: u32, call: CallKey },
    /// Outside call `n`'s answer, as the job received it.
    Answer {
        n: u32,
        call: CallKey,
        answer: Value,
    },
    /// The run no longer followed the journal from call `at`.
    Diverged { at: u32 },
    /// Wall-clock readings (nanoseconds since the epoch) from reading number `from`.
    Wall { from: u32, ns: Vec<u64> },
    /// Monotonic-clock readings (nanoseconds) from reading number `from`.
    Monotonic { from: u32, ns: Vec<u64> },
    /// Random bytes the job drew, from byte `from` of what it drew.
    Random { from: u64, bytes: String },
}

/// What an outside call asked, as the journal compares it: its kind (`http`, `llm`,
/// `sheets`), method and URL (secret references as written, never values), and a digest of
/// the rest (headers and body; prompt, input and options; sheet and row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallKey {
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    pub digest: String,
}

impl CallKey {
    /// A key over `parts`, each length-prefixed so that no two different lists digest alike.
    pub fn new(kind: &str, method: &str, url: &str, parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        Self {
            kind: kind.into(),
            method: method.into(),
            url: url.into(),
            digest: format!("sha256:{}", hex::encode(hash.finalize())),
        }
    }
}

/// One outside call of the record: what it asked, and its answer if one was journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    pub call: CallKey,
    pub answer: Option<Value>,
}

/// The journal's entries folded into one run's record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// The job, its action and delivery, from the last `input` entry.
    pub input: Option<(Value, Value, u32)>,
    pub calls: Vec<RecordedCall>,
    pub wall: Vec<u64>,
    pub monotonic: Vec<u64>,
    pub random: Vec<u8>,
}

impl Record {
    /// The record after `entry`.
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Input {
                job,
                action,
                attempt,
            } => {
                *self = Self {
                    input: Some((job, action, attempt)),
                    ..Self::default()
                }
            }
            Entry::Action { action } => {
                if let Some(input) = &mut self.input {
                    input.1 = action;
                }
            }
            Entry::Sending { n, call } => self.put_call(n, call, None),
            Entry::Answer { n, call, answer } => self.put_call(n, call, Some(answer)),
            Entry::Diverged { at } => self.calls.truncate(at as usize),
            Entry::Wall { from, ns } => overwrite(&mut self.wall, from as usize, ns),
            Entry::Monotonic { from, ns } => overwrite(&mut self.monotonic, from as usize, ns),
            Entry::Random { from, bytes } => {
                let from = usize::try_from(from).unwrap_or(usize::MAX);
                overwrite(&mut self.random, from, decode_bytes(&bytes));
            }
        }
    }

    fn put_call(&mut self, n: u32, call: CallKey, answer: Option<Value>) {
        let n = n as usize;
        if n > self.calls.len() {
            return; // A gap: not written by this worker; ignored.
        }
        self.calls.truncate(n);
        self.calls.push(RecordedCall { call, answer });
    }
}

/// `list` with `items` at `from` and nothing after them (items past its end are dropped if
/// `from` leaves a gap).
fn overwrite<T>(list: &mut Vec<T>, from: usize, items: Vec<T>) {
    if from > list.len() {
        return;
    }
    list.truncate(from);
    list.extend(items);
}

/// `bytes` as an entry holds them.
pub fn encode_bytes(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// [`encode_bytes`] read back (nothing if it is not base64).
pub fn decode_bytes(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap_or_default()
}

/// An HTTP call's answer as the journal holds it: the response exactly as the job received
/// it (secrets already redacted by egress), or the error.
pub fn http_answer(answer: &Result<HttpResponse, HttpError>) -> Value {
    match answer {
        Ok(r) => json!({"response": {
            "status": r.status, "reason": r.reason, "url": r.url,
            "headers": r.headers, "body": BASE64.encode(&r.body),
            "elapsed_us": u64::try_from(r.elapsed.as_micros()).unwrap_or(u64::MAX),
            "secrets": r.secrets,
        }}),
        Err(e) => json!({"error": {"kind": e.kind.as_str(), "rule": e.rule, "message": e.message}}),
    }
}

/// [`http_answer`] read back; `None` if it is not one.
pub fn http_answer_of(value: &Value) -> Option<Result<HttpResponse, HttpError>> {
    if let Some(e) = value.get("error") {
        let kind = HttpErrorKind::from_label(e.get("kind")?.as_str()?)?;
        return Some(Err(HttpError {
            kind,
            rule: e.get("rule").and_then(Value::as_str).map(str::to_string),
            message: e.get("message")?.as_str()?.to_string(),
        }));
    }
    let r = value.get("response")?;
    Some(Ok(HttpResponse {
        status: u16::try_from(r.get("status")?.as_u64()?).ok()?,
        reason: r.get("reason")?.as_str()?.to_string(),
        url: r.get("url")?.as_str()?.to_string(),
        headers: serde_json::from_value(r.get("headers")?.clone()).ok()?,
        body: BASE64.decode(r.get("body")?.as_str()?).ok()?,
        elapsed: std::time::Duration::from_micros(r.get("elapsed_us")?.as_u64()?),
        secrets: serde_json::from_value(r.get("secrets")?.clone()).ok()?,
    }))
}

/// A helper's answer (an LLM classification, a Sheets append) as the journal holds it.
pub fn text_answer(answer: &Result<String, String>) -> Value {
    match answer {
        Ok(text) => json!({"ok": text}),
        Err(message) => json!({"error": message}),
    }
}

/// [`text_answer`] read back; `None` if it is not one.
pub fn text_answer_of(value: &Value) -> Option<Result<String, String>> {
    if let Some(text) = value.get("ok") {
        return Some(Ok(text.as_str()?.to_string()));
    }
    Some(Err(value.get("error")?.as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(digest: &str) -> CallKey {
        CallKey::new("http", "POST", "https://x.test/", &[digest.as_bytes()])
    }

    #[test]
    fn a_later_entry_replaces_its_position_and_what_follows() {
        let mut record = Record::default();
        let entries = [
            Entry::Input {
                job: json!({"id": "j"}),
                action: json!({}),
                attempt: 1,
            },
            Entry::Sending {
                n: 0,
                call: key("a"),
            },
            Entry::Answer {
                n: 0,
                call: key("a"),
                answer: json!({"ok": "1"}),
            },
            Entry::Sending {
                n: 1,
                call: key("b"),
            },
            Entry::Wall {
                from: 0,
                ns: vec![5, 6],
            },
            Entry::Random {
                from: 0,
                bytes: encode_bytes(&[1, 2, 3]),
            },
            Entry::Diverged { at: 1 },
            Entry::Sending {
                n: 1,
                call: key("c"),
            },
            Entry::Wall {
                from: 1,
                ns: vec![9],
            },
            Entry::Random {
                from: 2,
                bytes: encode_bytes(&[7]),
            },
        ];
        for entry in entries {
            record.apply(entry);
        }
        assert_eq!(record.calls.len(), 2);
        assert_eq!(record.calls[0].answer, Some(json!({"ok": "1"})));
        assert_eq!(record.calls[1].call, key("c"));
        assert_eq!(record.calls[1].answer, None);
        assert_eq!(record.wall, vec![5, 9]);
        assert_eq!(record.random, vec![1, 2, 7]);
        record.apply(Entry::Input {
            job: json!({"id": "j"}),
            action: json!({}),
            attempt: 2,
        });
        assert!(record.calls.is_empty() && record.wall.is_empty());
        // A later delivery's action (the registry moved on) keeps the record going.
        record.apply(Entry::Sending {
            n: 0,
            call: key("a"),
        });
        record.apply(Entry::Action {
            action: json!({"v": 2}),
        });
        assert_eq!(record.calls.len(), 1);
        assert_eq!(record.input.map(|input| input.1), Some(json!({"v": 2})));
    }

    #[test]
    fn answers_read_back_as_written() {
        let response = HttpResponse {
            status: 201,
            reason: "Created".into(),
            url: "https://x.test/a".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: vec![0, 159, 146, 150, b'{'],
            elapsed: std::time::Duration::from_micros(1234),
            secrets: vec!["KEY".into()],
        };
        let answers = [
            Ok(response),
            Err(HttpError::denied("loopback", "no")),
            Err(HttpError::new(HttpErrorKind::Timeout, "slow")),
        ];
        for answer in answers {
            assert_eq!(http_answer_of(&http_answer(&answer)), Some(answer));
        }
        for answer in [Ok("yes".to_string()), Err("down".to_string())] {
            assert_eq!(text_answer_of(&text_answer(&answer)), Some(answer));
        }
        assert_eq!(http_answer_of(&json!({"other": 1})), None);
    }

    proptest::proptest! {
        /// Any bytes in a journal's messages fold without a panic (a journal is read back
        /// from a stream that others may write to).
        #[test]
        fn any_entry_text_folds_without_a_panic(text in ".{0,200}") {
            let mut record = Record::default();
            if let Ok(entries) = serde_json::from_str::<Vec<Entry>>(&text) {
                for entry in entries {
                    record.apply(entry);
                }
            }
            for call in &record.calls {
                if let Some(answer) = &call.answer {
                    let _ = http_answer_of(answer);
                    let _ = text_answer_of(answer);
                }
            }
        }
    }
}
