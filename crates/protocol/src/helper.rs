//! What a conversation helper answers (SPEC §4), shared by the host side that computes it
//! (`action-helpers`) and the sandbox that hands it to the guest.

/// The answer of a conversation helper; the guest turns it into the documented dict.
/// `present()` answers in `success`, `get_conversation_metadata` in `value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationReply {
    pub success: bool,
    pub message: String,
    pub key: Option<String>,
    pub value: Option<String>,
    pub tag_id: Option<String>,
    pub event_id: Option<String>,
}

impl ConversationReply {
    pub fn ok(message: &str) -> Self {
        Self {
            success: true,
            message: message.into(),
            ..Self::default()
        }
    }

    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
            ..Self::default()
        }
    }

    /// What every helper answers for a job without a conversation.
    pub fn no_conversation() -> Self {
        Self::fail("no conversation")
    }
}
