//! A job's conversation by its id (`conversation_id`): asked of the workflow engine over
//! NATS, scoped by tenant, through the job's journal when it has one (a redelivery or a
//! replay reads the conversation the first run saw).
//!
//! The protocol the engine serves, on `nats.conversation_subject`
//! (`<prefix>.conversations.get` by default), JSON both ways:
//! request `{"tenant": "acme" | null, "conversation_id": "c-123"}`; answer the conversation
//! object of SPEC §3 (`{"id", "metadata", "tags", ...}`), or `{"error": "why"}` for an id the
//! engine does not know for that tenant.

use std::time::Duration;

use action_protocol::Job;
use serde_json::{Map, Value, json};

use crate::journal::{CallKey, CallPlan, JobJournal, text_answer, text_answer_of};

/// Where conversations are asked for.
#[derive(Clone)]
pub struct Conversations {
    pub client: async_nats::Client,
    pub subject: String,
    pub timeout: Duration,
}

impl Conversations {
    /// `job` with its conversation in place of its `conversation_id` (as it is, without
    /// one); or why it cannot have it, for its `rejected` result.
    pub async fn fill(
        this: Option<&Self>,
        job: &Job,
        journal: Option<&JobJournal>,
    ) -> Result<Option<Job>, String> {
        let Some(id) = &job.conversation_id else {
            return Ok(None);
        };
        let call = CallKey::new(
            "conversation",
            "",
            "",
            &[
                job.tenant.as_deref().unwrap_or_default().as_bytes(),
                id.as_bytes(),
            ],
        );
        let answer = match journal.map(|journal| (journal, journal.plan(&call))) {
            Some((_, (_, CallPlan::Replay(answer)))) => text_answer_of(&answer)
                .unwrap_or_else(|| Err("the journal's conversation cannot be read".into())),
            Some((_, (_, CallPlan::Refuse))) => {
                Err("replay: the journal has no conversation for this job".into())
            }
            Some((journal, (n, CallPlan::Send { .. }))) => {
                fetch_journaled(this, job, journal, n, &call).await
            }
            _ => fetch(this, job.tenant.as_deref(), id).await,
        };
        let conversation = answer.and_then(|text| parse(&text, id))?;
        let mut job = job.clone();
        job.conversation = Some(conversation);
        job.conversation_id = None;
        Ok(Some(job))
    }
}

/// [`fetch`], journaled as call `n`.
async fn fetch_journaled(
    this: Option<&Conversations>,
    job: &Job,
    journal: &JobJournal,
    n: u32,
    call: &CallKey,
) -> Result<String, String> {
    journal
        .sending(n, call)
        .await
        .map_err(|e| format!("{e}; the conversation was not fetched"))?;
    let id = job.conversation_id.as_deref().unwrap_or_default();
    let answer = fetch(this, job.tenant.as_deref(), id).await;
    if let Err(error) = journal.answered(n, call, text_answer(&answer)).await {
        tracing::warn!(%error, "the conversation was not journaled");
    }
    answer
}

/// The engine's answer, as text.
async fn fetch(
    this: Option<&Conversations>,
    tenant: Option<&str>,
    id: &str,
) -> Result<String, String> {
    let Some(this) = this else {
        return Err("conversation_id: this worker has no NATS connection to ask the workflow engine for conversations; send the conversation itself".into());
    };
    let request = json!({"tenant": tenant, "conversation_id": id}).to_string();
    let asked = this.client.request(this.subject.clone(), request.into());
    match tokio::time::timeout(this.timeout, asked).await {
        Err(_) => Err(format!(
            "conversation_id: the workflow engine did not answer on {} within {} ms",
            this.subject,
            this.timeout.as_millis()
        )),
        Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
            Err(format!(
                "conversation_id: no workflow engine answers on {} (no responders)",
                this.subject
            ))
        }
        Ok(Err(error)) => Err(format!(
            "conversation_id: cannot ask the workflow engine on {}: {error}",
            this.subject
        )),
        Ok(Ok(message)) => Ok(String::from_utf8_lossy(&message.payload).into_owned()),
    }
}

/// The conversation in the engine's answer, or why not.
fn parse(text: &str, id: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(answer)) if answer.contains_key("error") => Err(format!(
            "conversation_id: {id:?} is not a conversation the workflow engine knows: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        )),
        Ok(Value::Object(conversation)) => Ok(conversation),
        _ => Err(format!(
            "conversation_id: the workflow engine's answer for {id:?} is not a JSON object"
        )),
    }
}
