//! Turning what came out of the instance (an output, a script error, a trap) into a result.

use action_protocol::{ErrorInfo, ErrorKind, LimitKind, Logs, Stats, Status};
use serde_json::Value;
use wasmtime::Trap;

use crate::bindings::types::{self, JobOutput, ScriptError};
use crate::config::JobLimits;
use crate::state::{HostPanic, LimitTrap};

/// What one job produced; the caller adds job id, effects and trace to make a `JobResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: Status,
    pub output: Value,
    pub error: Option<ErrorInfo>,
    pub logs: Logs,
    pub stats: Stats,
    /// The host call whose host panicked, when one did: the outcome is then `failed` (a bug
    /// of the worker, caught at the call; the caller counts and logs it).
    pub host_panic: Option<&'static str>,
}

impl RunOutcome {
    pub(crate) fn new(status: Status, error: Option<ErrorInfo>) -> Self {
        Self {
            status,
            output: Value::Null,
            error,
            logs: Logs::default(),
            stats: Stats::default(),
            host_panic: None,
        }
    }

    pub(crate) fn limit(kind: LimitKind, message: impl Into<String>) -> Self {
        Self::new(Status::LimitExceeded, Some(ErrorInfo::limit(kind, message)))
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(
            Status::Failed,
            Some(ErrorInfo::new(ErrorKind::Internal, message)),
        )
    }
}

pub(crate) fn from_script_error(error: ScriptError, limits: &JobLimits) -> RunOutcome {
    let kind = match error.kind {
        types::ErrorKind::Exception => ErrorKind::Exception,
        types::ErrorKind::Syntax => ErrorKind::Syntax,
        types::ErrorKind::MissingEntrypoint => ErrorKind::MissingEntrypoint,
        types::ErrorKind::InvalidOutput => ErrorKind::InvalidOutput,
        types::ErrorKind::OutputTooLarge => return output_too_large(None, limits),
    };
    let mut info = ErrorInfo::new(kind, error.message);
    info.traceback = error.traceback;
    RunOutcome::new(Status::ActionError, Some(info))
}

fn output_too_large(bytes: Option<usize>, limits: &JobLimits) -> RunOutcome {
    let size = bytes.map(|b| format!(" ({b} bytes)")).unwrap_or_default();
    RunOutcome::limit(
        LimitKind::Output,
        format!(
            "output limit: the encoded output{size} is over the limit of {} bytes",
            limits.output_bytes
        ),
    )
}

/// The guest's answer, checked again: it is as untrusted as the script that ran in it.
pub(crate) fn from_output(out: JobOutput, limits: &JobLimits) -> RunOutcome {
    match out.outcome {
        Err(error) => from_script_error(error, limits),
        Ok(text) if text.len() > limits.output_bytes as usize => {
            output_too_large(Some(text.len()), limits)
        }
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(value) => RunOutcome {
                output: value,
                ..RunOutcome::new(Status::Ok, None)
            },
            Err(e) => RunOutcome::new(
                Status::ActionError,
                Some(ErrorInfo::new(
                    ErrorKind::InvalidOutput,
                    format!("the runtime returned output that is not JSON: {e}"),
                )),
            ),
        },
    }
}

/// A call into the instance failed: a limit, or a bug of the runtime.
pub(crate) fn from_trap(error: &wasmtime::Error, limits: &JobLimits) -> RunOutcome {
    if let Some(trap) = error.downcast_ref::<LimitTrap>() {
        return RunOutcome::limit(trap.kind, trap.message.clone());
    }
    if let Some(&HostPanic { call }) = error.downcast_ref::<HostPanic>() {
        return RunOutcome {
            host_panic: Some(call),
            ..RunOutcome::failed(format!(
                "internal error of the worker while answering the host call {call}: a bug of \
                 the worker, not a fault of the action; it is logged with this job's id"
            ))
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunOutcome::limit(
            LimitKind::Fuel,
            format!(
                "fuel limit: the action used all of its {} units of fuel (about {:.1} s of CPU)",
                limits.fuel,
                limits.fuel as f64 / JobLimits::FUEL_PER_SECOND as f64
            ),
        ),
        Some(Trap::StackOverflow) => RunOutcome::limit(
            LimitKind::Stack,
            "stack limit: the action overflowed the WebAssembly stack",
        ),
        Some(Trap::Interrupt) => time_limit(limits),
        _ => RunOutcome::failed(format!("the Python runtime trapped: {error:#}")),
    }
}

pub(crate) fn time_limit(limits: &JobLimits) -> RunOutcome {
    RunOutcome::limit(
        LimitKind::Time,
        format!(
            "time limit: the job ran for more than {} ms",
            limits.timeout.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_checks_the_output_again() {
        let limits = JobLimits {
            output_bytes: 4,
            ..JobLimits::default()
        };
        let big = from_output(
            JobOutput {
                outcome: Ok("\"abcdef\"".into()),
            },
            &limits,
        );
        assert_eq!(big.status, Status::LimitExceeded);
        let bad = from_output(
            JobOutput {
                outcome: Ok("{x".into()),
            },
            &limits,
        );
        assert_eq!(bad.error.map(|e| e.kind), Some(ErrorKind::InvalidOutput));
        let ok = from_output(
            JobOutput {
                outcome: Ok("[1]".into()),
            },
            &limits,
        );
        assert_eq!(ok.output, serde_json::json!([1]));
    }
}
