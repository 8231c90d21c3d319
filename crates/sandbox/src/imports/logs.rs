//! `logs.write`: the script's stdout and stderr, kept by the host within one budget of bytes
//! ([`crate::state::LogBuffer`]).

use wasmtime::Result;

use crate::bindings::logs;
use crate::state::JobState;

impl logs::Host for JobState {
    async fn write(&mut self, channel: logs::Channel, text: String) -> Result<()> {
        self.logs.write(channel, &text);
        Ok(())
    }
}
