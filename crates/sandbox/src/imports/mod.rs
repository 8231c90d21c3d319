//! The host side of every WIT import, one module per interface: each converts the WIT
//! records to the vocabulary of `action-protocol` and back, and runs its call through
//! [`bounded`] (the job's deadline, a host's panic caught) or [`unwinding`].
//!
//! A new helper is one WIT interface (`wit/world.wit`), its Python stub
//! (`python-runtime/helpers.py`), a method of [`crate::ActionHost`], and one module here.

pub(crate) mod conversation;
pub(crate) mod http;
pub(crate) mod llm;
pub(crate) mod logs;
pub(crate) mod sheets;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use action_protocol::LimitKind;
use futures_util::FutureExt;
use tokio::time::timeout_at;
use wasmtime::Result;

use crate::state::{HostPanic, JobState, LimitTrap};

/// The shared WIT types carry no functions.
impl crate::bindings::types::Host for JobState {}

/// Every host call: `work` bounded by the job's deadline (`what` names the call in the time
/// limit's message), and a panic of the host caught as [`HostPanic`] for `call`.
pub(crate) async fn bounded<T>(
    deadline: Instant,
    call: &'static str,
    what: &str,
    work: impl Future<Output = T>,
) -> Result<T> {
    match timeout_at(deadline.into(), AssertUnwindSafe(work).catch_unwind()).await {
        Err(_elapsed) => Err(LimitTrap::new(
            LimitKind::Time,
            format!("time limit: the job's deadline passed during {what}"),
        )
        .into()),
        Ok(Err(_panic)) => Err(HostPanic { call }.into()),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// A host call that does not wait, with a panic caught as [`HostPanic`].
pub(crate) fn unwinding<T>(call: &'static str, work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(|_| HostPanic { call }.into())
}
