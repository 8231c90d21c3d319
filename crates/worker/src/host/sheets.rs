//! `add_google_sheets_row` on the host side: the configured service account, the sheet's
//! header row (cached for the job), a trace entry.

use std::time::Instant;

use action_protocol::{TraceEntry, millis};

use super::JobHost;
use super::journal::Before;
use crate::journal::{CallKey, text_answer, text_answer_of};

impl JobHost {
    pub(super) async fn append_row(
        &mut self,
        sheet_id: String,
        row_json: String,
        deadline: Instant,
    ) -> Result<String, String> {
        let Some(sheets) = self.services.sheets.clone() else {
            return Err(
                "Google Sheets is not configured: set [sheets] service_account_file in worker.toml"
                    .into(),
            );
        };
        if let Some(full) = self.trace_full() {
            return Err(full);
        }
        self.inject("sheets");
        let data: serde_json::Value =
            serde_json::from_str(&row_json).map_err(|e| format!("data: {e}"))?;
        let started = Instant::now();
        let call = self.call_key(|| {
            CallKey::new(
                "sheets",
                "POST",
                &sheets.config.base_url,
                &[sheet_id.as_bytes(), row_json.as_bytes()],
            )
        });
        let answer = match self.before_call(call, text_answer_of).await {
            Before::Answered(answer) => answer,
            Before::Refused(message) => Err(message),
            Before::Live(ticket) => {
                let answer = sheets
                    .append_row(
                        &self.services.egress,
                        &sheet_id,
                        &data,
                        &mut self.sheet_headers,
                        deadline,
                    )
                    .await;
                self.after_call(ticket, text_answer(&answer)).await;
                answer
            }
        };
        self.trace.push(TraceEntry {
            kind: "sheets".into(),
            method: Some("POST".into()),
            url: Some(format!(
                "{}/v4/spreadsheets/{sheet_id}/values/A1:append",
                sheets.config.base_url
            )),
            ms: millis(started.elapsed()),
            error: answer.as_ref().err().cloned(),
            journal: self.journal_note.take().map(str::to_string),
            ..TraceEntry::default()
        });
        answer
    }
}
