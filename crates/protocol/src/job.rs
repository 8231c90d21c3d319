//! Jobs (SPEC §5): what the workflow engine asks the worker to run.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::definition::ActionDefinition;
use crate::error::DefinitionError;

/// Longest job id, in characters.
pub const MAX_JOB_ID_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub action: ActionRef,
    #[serde(default)]
    pub args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Map<String, Value>>,
    #[serde(default)]
    pub test: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The job's conversation by its id, fetched from the workflow engine before the job
    /// runs, in place of `conversation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Journal this job's host calls even on the request-reply path, so that it can be
    /// replayed (durable jobs are always journaled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
    /// Run the journaled job of this id again, offline, against its recorded answers (a
    /// test job): `action` is then a new definition to try, or a reference by the recorded
    /// action's name for the action as it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// The action of a job: carried whole, or named for lookup in the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ActionRef {
    Inline(Box<ActionDefinition>),
    Named {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<u64>,
    },
}

impl ActionRef {
    pub fn name(&self) -> &str {
        match self {
            Self::Inline(def) => &def.name,
            Self::Named { name, .. } => name,
        }
    }
}

// A definition has a `type`; a reference has only `name` and `revision`. Deciding on that key
// gives the error of the form that was meant, where serde's untagged enums say only that
// nothing matched.
impl<'de> Deserialize<'de> for ActionRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Map::<String, Value>::deserialize(deserializer)?;
        if value.contains_key("type") {
            return ActionDefinition::deserialize(Value::Object(value))
                .map(|def| Self::Inline(Box::new(def)))
                .map_err(de::Error::custom);
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            name: String,
            #[serde(default)]
            revision: Option<u64>,
        }
        let named = Named::deserialize(Value::Object(value)).map_err(|e| {
            de::Error::custom(format!(
                "an action is a definition (with \"type\") or a reference {{\"name\", \"revision\"?}}: {e}"
            ))
        })?;
        Ok(Self::Named {
            name: named.name,
            revision: named.revision,
        })
    }
}

/// A job that decoded but breaks a rule; the worker answers it with `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("id: must be 1 to {MAX_JOB_ID_CHARS} characters, got {0}")]
    BadId(usize),
    #[error("timeout_ms: must be at least 1")]
    ZeroTimeout,
    #[error("tenant: {0:?} is not 1 to 64 letters, digits, '_' or '-'")]
    BadTenant(String),
    #[error("action.name: {0:?} is not a camelCase name matching ^[a-z][A-Za-z0-9]{{0,63}}$")]
    BadName(String),
    #[error("action.{0}")]
    Definition(#[from] DefinitionError),
    #[error("conversation_id: give a conversation or its id, not both")]
    ConversationTwice,
    #[error("{0}: must be 1 to {MAX_JOB_ID_CHARS} characters, got {1}")]
    BadReference(&'static str, usize),
}

/// A tenant scopes registry keys (`<tenant>.<name>`) and secrets: letters, digits, `_` and
/// `-`, so that it is one token of a NATS subject or KV key and never contains a dot.
pub fn is_valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Job {
    pub fn validate(&self) -> Result<(), JobError> {
        let id_chars = self.id.chars().count();
        if id_chars == 0 || id_chars > MAX_JOB_ID_CHARS {
            return Err(JobError::BadId(id_chars));
        }
        if self.timeout_ms == Some(0) {
            return Err(JobError::ZeroTimeout);
        }
        if self.conversation.is_some() && self.conversation_id.is_some() {
            return Err(JobError::ConversationTwice);
        }
        for (field, value) in [
            ("conversation_id", &self.conversation_id),
            ("replay", &self.replay),
        ] {
            let chars = value.as_deref().map_or(1, |v| v.chars().count());
            if chars == 0 || chars > MAX_JOB_ID_CHARS {
                return Err(JobError::BadReference(field, chars));
            }
        }
        if let Some(tenant) = &self.tenant
            && !is_valid_tenant(tenant)
        {
            return Err(JobError::BadTenant(tenant.clone()));
        }
        match &self.action {
            ActionRef::Inline(def) => def.validate()?,
            // A name is one token of the registry key `<tenant>.<name>`: a dotted name would
            // reach another tenant's key.
            ActionRef::Named { name, .. } if !crate::definition::is_valid_action_name(name) => {
                return Err(JobError::BadName(name.clone()));
            }
            ActionRef::Named { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_is_inline_or_named() {
        let job: Job =
            serde_json::from_str(r#"{"id":"j1","action":{"name":"getOrder","revision":3}}"#)
                .unwrap();
        assert_eq!(
            job.action,
            ActionRef::Named {
                name: "getOrder".into(),
                revision: Some(3)
            }
        );
        let job: Job = serde_json::from_str(
            r#"{"id":"j1","action":{"name":"a","type":"python","python":{"code":"x=1"}}}"#,
        )
        .unwrap();
        assert!(matches!(job.action, ActionRef::Inline(_)));
        let err = serde_json::from_str::<Job>(r#"{"id":"j1","action":{"name":"a","code":"x"}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `code`"), "{err}");
    }

    #[test]
    fn a_conversation_is_given_or_named_not_both_and_references_are_bounded() {
        let job: Job = serde_json::from_str(
            r#"{"id":"j","action":{"name":"a"},"conversation_id":"c-1","record":true}"#,
        )
        .unwrap();
        assert_eq!(job.validate(), Ok(()));
        assert!(job.record);
        let mut both = job.clone();
        both.conversation = Some(Map::new());
        assert_eq!(both.validate(), Err(JobError::ConversationTwice));
        let mut empty = job.clone();
        empty.replay = Some(String::new());
        assert_eq!(empty.validate(), Err(JobError::BadReference("replay", 0)));
        let mut long = job;
        long.conversation_id = Some("c".repeat(129));
        assert_eq!(
            long.validate(),
            Err(JobError::BadReference("conversation_id", 129))
        );
        // Absent, the new fields are not written: a job reads back as it was sent.
        let plain: Job = serde_json::from_str(r#"{"id":"j","action":{"name":"a"}}"#).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(
            !text.contains("record") && !text.contains("replay"),
            "{text}"
        );
    }

    #[test]
    fn ids_are_bounded() {
        let mut job: Job = serde_json::from_str(r#"{"id":"","action":{"name":"a"}}"#).unwrap();
        assert_eq!(job.validate(), Err(JobError::BadId(0)));
        job.id = "x".repeat(129);
        assert_eq!(job.validate(), Err(JobError::BadId(129)));
        job.id = "x".repeat(128);
        assert_eq!(job.validate(), Ok(()));
        job.tenant = Some("acme.other".into());
        assert_eq!(
            job.validate(),
            Err(JobError::BadTenant("acme.other".into()))
        );
        job.tenant = Some("acme-2_b".into());
        assert_eq!(job.validate(), Ok(()));
        job.tenant = None;
        job.action = ActionRef::Named {
            name: "acme.getOrder".into(),
            revision: None,
        };
        assert_eq!(
            job.validate(),
            Err(JobError::BadName("acme.getOrder".into()))
        );
    }
}
