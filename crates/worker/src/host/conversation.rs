//! The conversation helpers on the host side: the job's snapshot and its effects, bounded
//! by `limits.max_effects`.

use action_sandbox::{ConversationCall, ConversationReply};

use super::JobHost;

impl JobHost {
    pub(super) fn converse(&mut self, call: ConversationCall) -> ConversationReply {
        self.inject("conversation");
        let Some(conversation) = self.conversation.as_mut() else {
            return ConversationReply::no_conversation();
        };
        match call {
            ConversationCall::Present => ConversationReply {
                success: true,
                ..Default::default()
            },
            ConversationCall::GetMetadata { key } => ConversationReply {
                success: true,
                value: conversation.get_metadata(&key),
                ..Default::default()
            },
            ConversationCall::SetMetadata { key, value } => conversation.set_metadata(&key, &value),
            ConversationCall::DeleteMetadata { key } => conversation.delete_metadata(&key),
            ConversationCall::AddTag { tag } => conversation.add_tag(&tag),
            ConversationCall::AddEvent { event } => conversation.add_event(&event),
            ConversationCall::HandOff {
                reason,
                phone_destination,
            } => conversation.hand_off(reason.as_deref(), phone_destination.as_deref()),
        }
    }
}
