//! The one way this binary connects to NATS, for `serve`, `submit` and `actions`: the
//! authentication and TLS of `[nats]` (SPEC §6), checked before anything starts, and an
//! error that says which key to look at when the server says no.
//!
//! Authentication is at most one of: a `.creds` file (user JWT + NKey seed, decentralised
//! auth), an NKey seed file, a token, or a user and password. TLS is required by
//! `nats.tls_required`, a `tls://` URL, or any `tls_*` file; `tls_ca_file` replaces the system
//! roots, `tls_cert_file` + `tls_key_file` is a client certificate. Secrets are read from their
//! files or environment variables here, and go nowhere but the connection.

use async_nats::{Client, ConnectErrorKind, ConnectOptions, rustls};

use crate::config::{Auth, NatsAccess};

/// Set when the worker has finished with NATS (every job answered, about to stop its
/// embedded server): connection events after that are not news.
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the process's NATS connections as closing (see `CLOSING`).
pub fn closing() {
    CLOSING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Why a connection failed; `unreachable` when no server answered (rather than one that
/// refused), so that the CLI can ask whether the worker runs.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectFailed {
    pub message: String,
    pub unreachable: bool,
}

impl ConnectFailed {
    fn config(error: anyhow::Error) -> Self {
        Self {
            message: format!("{error:#}"),
            unreachable: false,
        }
    }
}

/// The servers of `url`: one, or a cluster's, comma-separated. The client also learns the
/// cluster's other servers from each server it connects to, and reconnects among them.
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connects to `url` (one server, or several comma-separated: a cluster) with `options` (name, timeouts: the caller's) plus `[nats]`'s
/// authentication and TLS (read once, with the configuration: [`NatsAccess`]), logging disconnections and reconnections; the client reconnects
/// on its own for as long as it lives. The initial connection is tried once: wrong
/// credentials fail at start, saying so.
pub async fn connect(
    url: &str,
    access: &NatsAccess,
    options: ConnectOptions,
) -> Result<Client, ConnectFailed> {
    let NatsAccess { auth, tls } = access;
    let mut options = options.event_callback(|event| async move {
        // Once the worker has stopped, its own embedded server going away is expected.
        if CLOSING.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::debug!(event = %event, "NATS, while closing");
            return;
        }
        match event {
            async_nats::Event::Connected => tracing::info!("connected to NATS"),
            async_nats::Event::Disconnected => {
                tracing::warn!("disconnected from NATS; reconnecting")
            }
            other => tracing::info!(event = %other, "NATS"),
        }
    });
    options = match &auth {
        Auth::None => options,
        Auth::Credentials(text) => options
            .credentials(text.expose())
            .map_err(|e| ConnectFailed::config(anyhow::anyhow!("nats.credentials_file: {e}")))?,
        Auth::NKey(seed) => options.nkey(seed.expose().to_string()),
        Auth::Token { token, .. } => options.token(token.expose().to_string()),
        Auth::UserPassword { user, password, .. } => {
            options.user_and_password(user.clone(), password.expose().to_string())
        }
    };
    if tls.required {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &tls.client {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options.connect(servers(url).as_slice()).await.map_err(|error| {
        let tls_error = rustls_error(&error);
        let (message, unreachable) = match error.kind() {
            ConnectErrorKind::AuthorizationViolation => match auth {
                Auth::None => (
                    format!(
                        "NATS at {url} requires credentials (authorization violation): set one of {}",
                        auth.keys()
                    ),
                    false,
                ),
                _ => (
                    format!(
                        "NATS at {url} refused the credentials (authorization violation): check {}",
                        auth.keys()
                    ),
                    false,
                ),
            },
            ConnectErrorKind::Authentication => (
                format!(
                    "NATS at {url}: cannot sign the server's challenge with {}: {error}",
                    auth.keys()
                ),
                false,
            ),
            // The TLS handshake's failures arrive as I/O errors wrapping rustls's.
            _ if tls_error.is_some() || error.kind() == ConnectErrorKind::Tls => {
                let hint = match (tls_error, &tls.ca) {
                    (Some(rustls::Error::AlertReceived(_)), _) => {
                        "the server refused the handshake: if it verifies clients' \
                         certificates, set nats.tls_cert_file and nats.tls_key_file to one \
                         signed by a CA it trusts"
                    }
                    (_, Some(_)) => {
                        "is the server's certificate signed by nats.tls_ca_file, and issued for \
                         the host in the URL?"
                    }
                    (Some(rustls::Error::InvalidCertificate(_)), None) => {
                        "a server certificate from a private CA needs that CA in nats.tls_ca_file"
                    }
                    (_, None) => {
                        "does the server speak TLS? One without needs a nats:// URL, no tls_* \
                         files and nats.tls_required = false"
                    }
                };
                let what = tls_error.map_or_else(|| error.to_string(), ToString::to_string);
                (
                    format!("TLS with NATS at {url} failed: {what}: {hint}"),
                    false,
                )
            }
            _ => (format!("cannot connect to NATS at {url}: {error}"), true),
        };
        ConnectFailed {
            message,
            unreachable,
        }
    })
}

/// The rustls error behind a failed connection, if TLS failed.
fn rustls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error's source() skips the error it wraps.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}
