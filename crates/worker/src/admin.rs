//! The admin HTTP port (`[admin] listen`): `/healthz` (the process is alive), `/readyz` (NATS
//! connected, runtime loaded and warm, not stopping) and `/metrics` (Prometheus text format).
//! It starts before anything slow, so a probe gets an answer while the runtime compiles.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// What `/readyz` and the slot gauges look at, filled in as `serve` starts.
#[derive(Debug, Default)]
pub struct Status {
    /// The runtime is compiled (or loaded from the cache) and a warm-up job ran.
    pub warm: AtomicBool,
    pub stopping: AtomicBool,
    pub client: OnceLock<async_nats::Client>,
    pub scheduler: OnceLock<Arc<crate::scheduler::Scheduler>>,
    /// The durable streams, when the worker takes durable jobs (the queue depth by tenant).
    pub durable: OnceLock<Arc<crate::durable::Durable>>,
    /// The other worker processes, whose readiness and metrics this port includes.
    pub children: OnceLock<Arc<crate::processes::Children>>,
}

impl Status {
    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("stopping");
        }
        if !self.warm.load(Ordering::Relaxed) {
            return Err("starting: the Python runtime is loading");
        }
        match self.client.get().map(|c| c.connection_state()) {
            Some(async_nats::connection::State::Connected) => Ok(()),
            Some(_) => Err("NATS is disconnected; reconnecting"),
            None => Err("starting: not connected to NATS yet"),
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let mut answer = status.readiness().map_err(str::to_string);
    if answer.is_ok()
        && let Some(children) = status.children.get()
    {
        answer = children.readiness().await;
    }
    match answer {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(status): State<Arc<Status>>) -> impl IntoResponse {
    let (total, free) = status
        .scheduler
        .get()
        .map(|s| (s.slots(), s.free()))
        .unwrap_or((0, 0));
    let mut text = crate::metrics::global().render(total, free);
    if let Some(children) = status.children.get() {
        let mut texts = vec![text];
        texts.extend(children.metrics().await);
        text = crate::processes::merge(&texts);
    }
    // The stream's depth is the same seen from every process: the first one says it.
    if let Some(durable) = status.durable.get()
        && !crate::processes::is_child()
    {
        let pending = tokio::time::timeout(Duration::from_secs(2), durable.pending_by_tenant());
        match pending.await {
            Ok(Ok(pending)) => text.push_str(&crate::metrics::render_pending(&pending)),
            Ok(Err(error)) => tracing::debug!(%error, "cannot read the durable queue depth"),
            Err(_) => tracing::debug!("the durable queue depth took over 2 s"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Binds `listen` and serves until the process ends; returns the bound address.
pub async fn start(listen: SocketAddr, status: Arc<Status>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("admin.listen: cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the admin HTTP server stopped");
        }
    });
    Ok(bound)
}
