//! Conversation helpers: the job's snapshot, overlaid by this run's writes, and the effects
//! the engine will apply (SPEC §4).

use action_protocol::ConversationReply as Reply;
use indexmap::{IndexMap, IndexSet};
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
/// Effects a job records unless [`Conversation::limit_effects`] says otherwise.
pub const DEFAULT_MAX_EFFECTS: usize = 1000;

#[derive(Debug, Clone)]
pub struct Conversation {
    /// Keys and tags are hashed: a duplicate check takes constant time however many a
    /// script adds.
    metadata: IndexMap<String, String>,
    tags: IndexSet<String>,
    handed_off: bool,
    effects: Vec<Value>,
    max_effects: usize,
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
            max_effects: DEFAULT_MAX_EFFECTS,
            job_id: job_id.into(),
            test,
            counter: 0,
        }
    }

    /// At most `max` effects for this job (`limits.max_effects`).
    pub fn limit_effects(mut self, max: usize) -> Self {
        self.max_effects = max;
        self
    }

    /// Why a change cannot be recorded, when the job has recorded all it may.
    fn full(&self) -> Option<Reply> {
        (self.effects.len() >= self.max_effects).then(|| {
            Reply::fail(format!(
                "effect limit: a job may record {} effects, and this one has; nothing was changed",
                self.max_effects
            ))
        })
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
        if let Some(full) = self.full() {
            return with(full);
        }
        self.metadata.insert(key.to_string(), value.to_string());
        self.record(json!({"type": "set_metadata", "key": key, "value": value}));
        with(Reply::ok("metadata set"))
    }

    pub fn delete_metadata(&mut self, key: &str) -> Reply {
        if !self.metadata.contains_key(key) {
            return Reply::fail("key not found");
        }
        if let Some(full) = self.full() {
            return full;
        }
        self.metadata.shift_remove(key);
        self.record(json!({"type": "delete_metadata", "key": key}));
        Reply::ok("metadata deleted")
    }

    pub fn add_tag(&mut self, tag: &str) -> Reply {
        if tag.trim().is_empty() || chars(tag) > MAX_TAG_CHARS {
            return Reply::fail(format!("tag must be 1 to {MAX_TAG_CHARS} characters"));
        }
        if self.tags.contains(tag) {
            return Reply {
                tag_id: Some(tag.to_string()),
                ..Reply::ok("tag already present")
            };
        }
        if let Some(full) = self.full() {
            return full;
        }
        self.tags.insert(tag.to_string());
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
        if let Some(full) = self.full() {
            return full;
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
        if let Some(full) = self.full() {
            return full;
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

    #[test]
    fn past_the_effect_limit_a_change_answers_success_false_and_changes_nothing() {
        let mut c = conversation(false).limit_effects(3);
        assert!(c.add_tag("a").success);
        assert!(c.add_event("e").success);
        assert!(c.set_metadata("k", "v").success);
        for reply in [
            c.add_tag("b"),
            c.add_event("e2"),
            c.set_metadata("k2", "v"),
            c.delete_metadata("k"),
            c.hand_off(None, None),
        ] {
            assert!(!reply.success, "{reply:?}");
            assert!(
                reply
                    .message
                    .starts_with("effect limit: a job may record 3 effects")
            );
        }
        // Nothing changed: the reads still see the state before the refused calls.
        assert_eq!(c.get_metadata("k").as_deref(), Some("v"));
        assert_eq!(c.get_metadata("k2"), None);
        // A call that records nothing still succeeds.
        assert!(c.add_tag("a").success);
        assert_eq!(c.into_effects().len(), 3);
    }
}

#[cfg(test)]
mod props {
    //! The helpers' argument checks over arbitrary Unicode: never a panic, lengths counted
    //! in characters (not bytes), and what is stored is what was given.
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zé😀Ω]{0,120}",
            "\\PC{95,105}",
            Just(String::new()),
            Just(" ".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn helper_arguments_are_checked_by_characters(
            key in text(), value in text(), tag in text(), event in text(), reason in text(), phone in text(),
        ) {
            let snapshot = json!({"metadata": {key.clone(): value.clone()}, "tags": [tag.clone()]});
            let mut c = Conversation::from_snapshot(snapshot.as_object().unwrap(), "j", false);
            let reply = c.set_metadata(&key, &value);
            let key_fits = !key.is_empty() && key.chars().count() <= MAX_KEY_CHARS;
            prop_assert_eq!(reply.success, key_fits && value.chars().count() <= MAX_VALUE_CHARS);
            prop_assert_eq!(c.get_metadata(&key), Some(value.clone()));
            let reply = c.add_tag(&tag);
            let tag_fits = !tag.trim().is_empty() && tag.chars().count() <= MAX_TAG_CHARS;
            prop_assert_eq!(reply.success, tag_fits);
            prop_assert!(reply.success || reply.message.contains("characters"));
            let reply = c.add_event(&event);
            prop_assert_eq!(reply.success, !event.trim().is_empty() && event.chars().count() <= MAX_EVENT_CHARS);
            let reply = c.hand_off(Some(&reason), Some(&phone));
            if reply.success {
                prop_assert!(reason.chars().count() <= MAX_REASON_CHARS && is_e164(&phone));
            }
            prop_assert!(c.delete_metadata(&key).success);
            prop_assert!(c.effects().len() <= 5);
        }
    }
}
