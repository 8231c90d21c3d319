//! Conversation helpers: the job's snapshot, overlaid by this run's writes, and the effects
//! the engine will apply (SPEC §4).

use action_protocol::ConversationReply as Reply;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// Longest metadata key, in characters.
pub const MAX_KEY_CHARS: usize = 200;
/// Longest metadata value, in characters.
pub const MAX_VALUE_CHARS: usize = 50_000;
/// Most metadata keys a conversation holds.
pub const MAX_KEYS: usize = 200;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 100;
/// Longest event, in characters.
pub const MAX_EVENT_CHARS: usize = 1000;
/// Longest hand-off reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone)]
pub struct Conversation {
    metadata: IndexMap<String, String>,
    tags: Vec<String>,
    handed_off: bool,
    effects: Vec<Value>,
    job_id: String,
    test: bool,
    counter: u32,
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// `+` then 2 to 15 digits, the first not 0.
fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

impl Conversation {
    /// The job's conversation object (SPEC §3): `metadata` (str → str) and `tags` are read;
    /// values of other types in `metadata` are kept as their JSON text.
    pub fn from_snapshot(snapshot: &Map<String, Value>, job_id: &str, test: bool) -> Self {
        let metadata = snapshot
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tags = snapshot
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            metadata,
            tags,
            handed_off: false,
            effects: vec![],
            job_id: job_id.into(),
            test,
            counter: 0,
        }
    }

    /// The effects recorded so far, in call order.
    pub fn effects(&self) -> &[Value] {
        &self.effects
    }

    pub fn into_effects(self) -> Vec<Value> {
        self.effects
    }

    fn record(&mut self, mut effect: Value) {
        if self.test
            && let Some(map) = effect.as_object_mut()
        {
            map.insert("test".into(), Value::Bool(true));
        }
        self.effects.push(effect);
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{}:{kind}:{}", self.job_id, self.counter)
    }

    pub fn get_metadata(&self, key: &str) -> Option<String> {
        self.metadata.get(key).cloned()
    }

    pub fn set_metadata(&mut self, key: &str, value: &str) -> Reply {
        let with = |mut r: Reply| {
            r.key = Some(key.to_string());
            r.value = Some(value.to_string());
            r
        };
        if key.is_empty() || chars(key) > MAX_KEY_CHARS {
            return with(Reply::fail(format!(
                "key must be 1 to {MAX_KEY_CHARS} characters"
            )));
        }
        if chars(value) > MAX_VALUE_CHARS {
            return with(Reply::fail(format!(
                "value is longer than {MAX_VALUE_CHARS} characters"
            )));
        }
        if !self.metadata.contains_key(key) && self.metadata.len() >= MAX_KEYS {
            return with(Reply::fail(format!(
                "the conversation already has {MAX_KEYS} metadata keys"
            )));
        }
        self.metadata.insert(key.to_string(), value.to_string());
        self.record(json!({"type": "set_metadata", "key": key, "value": value}));
        with(Reply::ok("metadata set"))
    }

    pub fn delete_metadata(&mut self, key: &str) -> Reply {
        if self.metadata.shift_remove(key).is_none() {
            return Reply::fail("key not found");
        }
        self.record(json!({"type": "delete_metadata", "key": key}));
        Reply::ok("metadata deleted")
    }

    pub fn add_tag(&mut self, tag: &str) -> Reply {
        if tag.trim().is_empty() || chars(tag) > MAX_TAG_CHARS {
            return Reply::fail(format!("tag must be 1 to {MAX_TAG_CHARS} characters"));
        }
        if self.tags.iter().any(|t| t == tag) {
            return Reply {
                tag_id: Some(tag.to_string()),
                ..Reply::ok("tag already present")
            };
        }
        self.tags.push(tag.to_string());
        let id = self.next_id("tag");
        self.record(json!({"type": "add_tag", "tag": tag, "tagId": id}));
        Reply {
            tag_id: Some(id),
            ..Reply::ok("tag added")
        }
    }

    pub fn add_event(&mut self, event: &str) -> Reply {
        if event.trim().is_empty() || chars(event) > MAX_EVENT_CHARS {
            return Reply::fail(format!("event must be 1 to {MAX_EVENT_CHARS} characters"));
        }
        let id = self.next_id("event");
        self.record(json!({"type": "add_event", "event": event, "eventId": id}));
        Reply {
            event_id: Some(id),
            ..Reply::ok("event added")
        }
    }

    pub fn hand_off(&mut self, reason: Option<&str>, phone: Option<&str>) -> Reply {
        if self.handed_off {
            return Reply::ok("already handed off");
        }
        if reason.is_some_and(|r| chars(r) > MAX_REASON_CHARS) {
            return Reply::fail(format!(
                "reason is longer than {MAX_REASON_CHARS} characters"
            ));
        }
        if let Some(phone) = phone
            && !is_e164(phone)
        {
            return Reply::fail(format!(
                "phone_destination {phone:?} is not an E.164 number such as +306912345678"
            ));
        }
        self.handed_off = true;
        self.record(json!({"type": "hand_off", "reason": reason, "phoneDestination": phone}));
        Reply::ok("handed off")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(test: bool) -> Conversation {
        let snapshot = json!({"id": "c1", "metadata": {"plan": "gold", "n": 3}, "tags": ["vip"]});
        Conversation::from_snapshot(snapshot.as_object().unwrap(), "job1", test)
    }

    #[test]
    fn reads_see_the_snapshot_overlaid_by_writes() {
        let mut c = conversation(false);
        assert_eq!(c.get_metadata("plan").as_deref(), Some("gold"));
        assert_eq!(c.get_metadata("n").as_deref(), Some("3"));
        assert!(c.set_metadata("plan", "silver").success);
        assert_eq!(c.get_metadata("plan").as_deref(), Some("silver"));
        assert!(c.delete_metadata("plan").success);
        assert_eq!(c.get_metadata("plan"), None);
        let missing = c.delete_metadata("plan");
        assert_eq!(
            (missing.success, missing.message.as_str()),
            (false, "key not found")
        );
        assert_eq!(c.effects().len(), 2);
    }

    #[test]
    fn limits_answer_success_false() {
        let mut c = conversation(false);
        assert!(!c.set_metadata(&"k".repeat(201), "v").success);
        assert!(c.set_metadata(&"k".repeat(200), "v").success);
        assert!(!c.set_metadata("big", &"v".repeat(50_001)).success);
        for i in 0..197 {
            assert!(c.set_metadata(&format!("key{i}"), "v").success, "{i}");
        }
        let full = c.set_metadata("one-too-many", "v");
        assert!(!full.success && full.message.contains("200"), "{full:?}");
        assert!(c.set_metadata("plan", "overwrite is fine").success);
        assert!(!c.add_tag(&"t".repeat(101)).success);
        assert!(!c.add_event(&"e".repeat(1001)).success);
        assert!(!c.hand_off(Some(&"r".repeat(501)), None).success);
        assert!(!c.hand_off(None, Some("6912345678")).success);
    }

    #[test]
    fn tags_and_hand_offs_are_idempotent() {
        let mut c = conversation(true);
        assert_eq!(c.add_tag("vip").message, "tag already present");
        assert!(c.add_tag("refunded").tag_id.is_some());
        assert!(c.hand_off(Some("angry"), Some("+306912345678")).success);
        assert_eq!(c.hand_off(None, None).message, "already handed off");
        let effects = c.into_effects();
        assert_eq!(effects.len(), 2);
        assert_eq!(effects[0]["type"], "add_tag");
        assert_eq!(
            effects[1],
            json!({"type": "hand_off", "reason": "angry", "phoneDestination": "+306912345678", "test": true})
        );
    }
}
