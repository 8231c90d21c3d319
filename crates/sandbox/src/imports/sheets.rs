//! `sheets.append-row`: the host appends one row to a Google Sheet; bounded by the job's
//! deadline.

use wasmtime::Result;

use super::bounded;
use crate::bindings::sheets;
use crate::state::JobState;

impl sheets::Host for JobState {
    async fn append_row(
        &mut self,
        sheet_id: String,
        row_json: String,
    ) -> Result<Result<String, String>> {
        let deadline = self.deadline;
        let call = self.host.sheets_append(sheet_id, row_json, deadline);
        bounded(deadline, "sheets.append-row", "a Google Sheets call", call).await
    }
}
