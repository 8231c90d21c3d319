//! `logs.write`: the script's stdout and stderr, kept by the host within one budget of bytes.

use action_protocol::Logs;
use wasmtime::Result;

use crate::bindings::logs;
use crate::state::JobState;

/// stdout and stderr of the job, sharing one budget of bytes.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    pub(crate) logs: Logs,
    pub(crate) limit: usize,
}

impl LogBuffer {
    pub(crate) fn write(&mut self, channel: logs::Channel, text: &str) {
        let used = self.logs.stdout.len() + self.logs.stderr.len();
        let room = self.limit.saturating_sub(used);
        let mut end = text.len().min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if end < text.len() {
            self.logs.truncated = true;
        }
        let target = match channel {
            logs::Channel::Stdout => &mut self.logs.stdout,
            logs::Channel::Stderr => &mut self.logs.stderr,
        };
        target.push_str(&text[..end]);
    }
}

impl logs::Host for JobState {
    async fn write(&mut self, channel: logs::Channel, text: String) -> Result<()> {
        self.logs.write(channel, &text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_cut_on_a_character_boundary_across_both_streams() {
        let mut buffer = LogBuffer {
            limit: 5,
            ..LogBuffer::default()
        };
        buffer.write(logs::Channel::Stdout, "ééé");
        buffer.write(logs::Channel::Stderr, "abc");
        assert_eq!(buffer.logs.stdout, "éé");
        assert_eq!(buffer.logs.stderr, "a");
        assert!(buffer.logs.truncated);
        let mut buffer = LogBuffer {
            limit: 5,
            ..LogBuffer::default()
        };
        buffer.write(logs::Channel::Stdout, "ab");
        buffer.write(logs::Channel::Stderr, "cde");
        assert!(!buffer.logs.truncated);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Log capture over arbitrary Unicode: never a panic, never over the limit, always
        /// whole characters, and `truncated` exactly when something was dropped.
        #[test]
        fn logs_keep_whole_characters_within_their_limit(
            writes in proptest::collection::vec((proptest::prelude::any::<bool>(), proptest::prelude::any::<String>()), 0..8),
            limit in 0usize..64,
        ) {
            let mut buffer = LogBuffer { limit, ..LogBuffer::default() };
            let mut given = 0;
            for (stdout, text) in &writes {
                let channel = if *stdout { logs::Channel::Stdout } else { logs::Channel::Stderr };
                buffer.write(channel, text);
                given += text.len();
            }
            let kept = buffer.logs.stdout.len() + buffer.logs.stderr.len();
            proptest::prop_assert!(kept <= limit);
            proptest::prop_assert_eq!(buffer.logs.truncated, kept < given);
        }
    }
}
