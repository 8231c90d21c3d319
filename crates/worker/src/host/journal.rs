//! An outside call through the job's journal ([`crate::journal`]): answered from it when it
//! holds the answer, else sent, with the journal written before the call goes out and again
//! before the job sees the answer.

use std::sync::Arc;

use serde_json::Value;

use super::JobHost;
use crate::journal::{CallKey, CallPlan, JobJournal};

/// What the journal says about a call before it is made.
pub(super) enum Before<T> {
    /// The journaled answer: the call is not made.
    Answered(T),
    /// Not made: why (a replay without the answer, or the journal cannot be written).
    Refused(String),
    /// Make it, then journal its answer with [`JobHost::after_call`].
    Live(Option<Ticket>),
}

/// A live call's place in the journal.
pub(super) struct Ticket {
    n: u32,
    call: CallKey,
}

impl JobHost {
    pub fn with_journal(mut self, journal: Option<Arc<JobJournal>>) -> Self {
        self.journal = journal;
        self
    }

    /// A call's key, made only for a job with a journal (a digest is not free).
    pub(super) fn call_key(&self, make: impl FnOnce() -> CallKey) -> Option<CallKey> {
        self.journal.as_ref().map(|_| make())
    }

    /// The journal's word on the next call, which asks `call` ([`Self::call_key`]); `read`
    /// reads a journaled answer. Leaves the note for the call's trace entry in
    /// `journal_note`.
    pub(super) async fn before_call<T>(
        &mut self,
        call: Option<CallKey>,
        read: fn(&Value) -> Option<T>,
    ) -> Before<T> {
        let (Some(journal), Some(call)) = (self.journal.clone(), call) else {
            self.halt_at("call");
            return Before::Live(None);
        };
        let (n, plan) = journal.plan(&call);
        self.journal_note = plan.note();
        self.halt_at(&format!("call:{n}"));
        match plan {
            CallPlan::Replay(answer) => match read(&answer) {
                Some(answer) => Before::Answered(answer),
                None => Before::Refused(format!(
                    "the journal's answer to call {n} cannot be read; the call was not made"
                )),
            },
            CallPlan::Refuse => Before::Refused(format!(
                "replay: the journal has no answer for call {n} ({} {}), and a replay sends \
                 nothing",
                call.method, call.url
            )),
            CallPlan::Unjournaled => Before::Live(None),
            CallPlan::Send { .. } => match journal.sending(n, &call).await {
                Ok(()) => Before::Live(Some(Ticket { n, call })),
                Err(error) => Before::Refused(format!("{error}; the call was not made")),
            },
        }
    }

    /// Journals a live call's answer before the job sees it. A journal that cannot be
    /// written does not take the answer from the job: the call was made.
    pub(super) async fn after_call(&mut self, ticket: Option<Ticket>, answer: Value) {
        let (Some(journal), Some(ticket)) = (self.journal.clone(), ticket) else {
            return;
        };
        self.halt_at(&format!("sent:{}", ticket.n));
        if let Err(error) = journal.answered(ticket.n, &ticket.call, answer).await {
            tracing::warn!(%error, call = ticket.n, "a call's answer was not journaled: a redelivery would send it again");
        }
    }

    /// Where the journal tests may stop the worker (a no-op in a release).
    fn halt_at(&self, point: &str) {
        crate::guard::halt(point, &self.scope.job_id);
    }
}
