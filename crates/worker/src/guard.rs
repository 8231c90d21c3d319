//! The job's boundary: whatever happens on a job's path, the job is answered.
//!
//! A panic is a bug of the worker, never a fault of the action, and never a reason to leave a
//! caller waiting. Every stage of a job's path (decode, resolve, run, a host call, encode,
//! store) runs under [`guarded`] or [`guarded_sync`]: a panic there is caught, counted in
//! `action_worker_job_panics_total{stage}`, logged at error level with the job id (the span's
//! `job_id`), and turned into [`Panicked`], which the caller answers as a `failed` result
//! ([`failed`]: `error.kind = "internal"`, a message that names the stage and holds no
//! payload and no secret). The slot of the job is an owned permit held by the job's task, so
//! it is released by the unwind like any other value.
//!
//! The panic's own message is not logged: it can quote the text that caused it (a string
//! sliced inside a character prints the string), and that text may be a customer's data.
//! [`install_hook`] logs where the panic happened instead, and a backtrace when
//! `RUST_BACKTRACE` asks for one.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use action_protocol::{ErrorInfo, ErrorKind, JobResult, Status};
use futures_util::FutureExt;

/// Where on a job's path a panic happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Resolve,
    Run,
    /// A call from the action to the host (`http.send`, `conversation.add-tag`, …).
    HostCall(&'static str),
    Encode,
    Store,
}

impl Stage {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Resolve => "resolve",
            Self::Run => "run",
            Self::HostCall(_) => "host_call",
            Self::Encode => "encode",
            Self::Store => "store",
        }
    }

    /// What the worker was doing, for the result's message.
    pub fn doing(self) -> String {
        match self {
            Self::Decode => "decoding the job".into(),
            Self::Resolve => "resolving the action".into(),
            Self::Run => "running the action".into(),
            Self::HostCall(call) => format!("answering the host call {call}"),
            Self::Encode => "encoding the result".into(),
            Self::Store => "storing the result".into(),
        }
    }
}

/// A panic caught at `stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panicked(pub Stage);

/// Counts and logs a panic caught at `stage` (here, or by the sandbox at a host call); the
/// panic hook has already logged where it happened.
pub fn note(stage: Stage) {
    crate::metrics::global().panicked(stage.as_str());
    tracing::error!(
        stage = stage.as_str(),
        "a panic while {}: the job is answered failed and the worker carries on",
        stage.doing()
    );
}

impl Panicked {
    fn caught(stage: Stage) -> Self {
        note(stage);
        Self(stage)
    }

    /// The message of the `failed` result.
    pub fn message(self) -> String {
        format!(
            "internal error of the worker while {}: a bug of the worker, not a fault of the \
             action; it is logged with this job's id",
            self.0.doing()
        )
    }
}

/// The `failed` result of a job whose path panicked.
pub fn failed(job_id: &str, action: &str, panicked: Panicked) -> JobResult {
    JobResult::empty(
        job_id,
        action,
        Status::Failed,
        Some(ErrorInfo::new(ErrorKind::Internal, panicked.message())),
    )
}

/// Runs `work`, catching a panic of any poll of it as [`Panicked`] at `stage`.
pub async fn guarded<F: Future>(stage: Stage, work: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|_| Panicked::caught(stage))
}

/// [`guarded`] for a stage that does not wait.
pub fn guarded_sync<T>(stage: Stage, work: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|_| Panicked::caught(stage))
}

/// Replaces the default panic hook (which prints the panic's message on stderr) by an
/// error-level log line with the location, inside the span of the job that panicked.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "an unknown place".into());
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
            _ => String::new(),
        };
        tracing::error!(
            %location,
            thread = std::thread::current().name().unwrap_or("unnamed"),
            "panic at {location} (its message is not logged: it may quote job data){backtrace}"
        );
    }));
}

/// Test builds only (feature `fault-injection`): a panic at `point` for the jobs that ask for
/// it, to prove that every stage is guarded. `ACTION_WORKER_INJECT_PANIC` lists the points
/// that may panic (`decode,resolve,run,http_send,conversation,llm,sheets,encode,store`), and a
/// job asks with `panic-at-<point>` in `marker` (its id; its payload for `decode`). Release
/// builds compile this to nothing.
#[cfg(feature = "fault-injection")]
#[allow(clippy::panic)] // Its one purpose is to panic, in test builds.
pub fn inject(point: &str, marker: &[u8]) {
    let Ok(points) = std::env::var("ACTION_WORKER_INJECT_PANIC") else {
        return;
    };
    let asked = format!("panic-at-{point}");
    if points.split(',').any(|p| p.trim() == point)
        && marker.windows(asked.len()).any(|w| w == asked.as_bytes())
    {
        panic!("injected fault at {point}");
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_point: &str, _marker: &[u8]) {}

/// Test builds only (feature `fault-injection`): the worker process exits at once at `point`
/// of a job whose id holds `halt-me`, when `ACTION_WORKER_HALT_AT` names it (`call:N`: as
/// outside call N starts; `sent:N`: call N was made and its answer is not journaled yet), as
/// a worker killed there would. Release builds compile this to nothing.
#[cfg(feature = "fault-injection")]
pub fn halt(point: &str, job_id: &str) {
    let Ok(at) = std::env::var("ACTION_WORKER_HALT_AT") else {
        return;
    };
    if at == point && job_id.contains("halt-me") {
        tracing::warn!(point, "halting the worker (ACTION_WORKER_HALT_AT)");
        std::process::exit(137);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn halt(_point: &str, _job_id: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)] // The panic is what is tested.
    fn a_panic_becomes_a_failed_result_naming_the_stage_and_nothing_else() {
        let caught = guarded_sync(Stage::Decode, || -> u32 {
            panic!("secret value 12345 in a customer's text")
        })
        .unwrap_err();
        assert_eq!(caught, Panicked(Stage::Decode));
        let result = failed("job-1", "getOrder", caught);
        assert_eq!(result.status, Status::Failed);
        let error = result.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(
            error.message.contains("decoding the job"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("12345"));
        assert_eq!(result.output, serde_json::Value::Null);
        assert_eq!(guarded_sync(Stage::Encode, || 7), Ok(7));
    }

    #[tokio::test]
    #[allow(clippy::panic)] // The panic is what is tested.
    async fn a_panic_in_any_poll_of_a_future_is_caught() {
        let caught = guarded(Stage::HostCall("http.send"), async {
            tokio::task::yield_now().await;
            panic!("late")
        })
        .await;
        let caught: Result<(), _> = caught;
        assert_eq!(caught, Err(Panicked(Stage::HostCall("http.send"))));
        assert!(
            caught
                .unwrap_err()
                .message()
                .contains("answering the host call http.send")
        );
    }
}
