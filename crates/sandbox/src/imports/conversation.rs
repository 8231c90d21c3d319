//! The conversation helpers (SPEC §4): the host holds the snapshot and the effects; a
//! host's panic is caught as the job's `failed`.

use action_protocol::ConversationReply;
use wasmtime::Result;

use super::unwinding;
use crate::bindings::conversation;
use crate::host::ConversationCall;
use crate::state::JobState;

fn to_wit_reply(reply: ConversationReply) -> conversation::Reply {
    conversation::Reply {
        success: reply.success,
        message: reply.message,
        key: reply.key,
        value: reply.value,
        tag_id: reply.tag_id,
        event_id: reply.event_id,
    }
}

impl JobState {
    /// A conversation helper call, its host's panic caught.
    pub(crate) fn converse(&mut self, call: ConversationCall) -> Result<ConversationReply> {
        let host = &mut self.host;
        unwinding("conversation", move || host.conversation(call))
    }
}

impl conversation::Host for JobState {
    async fn present(&mut self) -> Result<bool> {
        Ok(self.converse(ConversationCall::Present)?.success)
    }

    async fn get_metadata(&mut self, key: String) -> Result<Option<String>> {
        Ok(self.converse(ConversationCall::GetMetadata { key })?.value)
    }

    async fn set_metadata(&mut self, key: String, value: String) -> Result<conversation::Reply> {
        Ok(to_wit_reply(
            self.converse(ConversationCall::SetMetadata { key, value })?,
        ))
    }

    async fn delete_metadata(&mut self, key: String) -> Result<conversation::Reply> {
        Ok(to_wit_reply(
            self.converse(ConversationCall::DeleteMetadata { key })?,
        ))
    }

    async fn add_tag(&mut self, tag: String) -> Result<conversation::Reply> {
        Ok(to_wit_reply(
            self.converse(ConversationCall::AddTag { tag })?,
        ))
    }

    async fn add_event(&mut self, event: String) -> Result<conversation::Reply> {
        Ok(to_wit_reply(
            self.converse(ConversationCall::AddEvent { event })?,
        ))
    }

    async fn hand_off(
        &mut self,
        reason: Option<String>,
        phone_destination: Option<String>,
    ) -> Result<conversation::Reply> {
        let call = ConversationCall::HandOff {
            reason,
            phone_destination,
        };
        Ok(to_wit_reply(self.converse(call)?))
    }
}
