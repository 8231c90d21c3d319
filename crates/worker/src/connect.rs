//! The one way this binary connects to NATS, for `serve`, `submit` and `actions`: the
//! authentication and TLS of `[nats]` (SPEC §6), checked before anything starts, and an
//! error that says which key to look at when the server says no.
//!
//! Authentication is at most one of: a `.creds` file (user JWT + NKey seed, decentralised
//! auth), an NKey seed file, a token, or a user and password. TLS is required by
//! `nats.tls_required`, a `tls://` URL, or any `tls_*` file; `tls_ca_file` replaces the system
//! roots, `tls_cert_file` + `tls_key_file` is a client certificate. Secrets are read from their
//! files or environment variables here, and go nowhere but the connection.

use std::path::{Path, PathBuf};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, rustls};

use crate::config::{NatsSection, Secret};

/// Set when the worker has finished with NATS (every job answered, about to stop its
/// embedded server): connection events after that are not news.
static CLOSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks the process's NATS connections as closing (see `CLOSING`).
pub fn closing() {
    CLOSING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// How the worker proves who it is, with the secret read.
enum Auth {
    None,
    Credentials(Secret),
    NKey(Secret),
    Token {
        key: &'static str,
        token: Secret,
    },
    UserPassword {
        key: &'static str,
        user: String,
        password: Secret,
    },
}

impl Auth {
    /// The keys to check when the server refuses.
    fn keys(&self) -> String {
        match self {
            Self::None => {
                "nats.credentials_file, nats.nkey_seed_file, nats.token or nats.user".to_string()
            }
            Self::Credentials(_) => "nats.credentials_file".to_string(),
            Self::NKey(_) => "nats.nkey_seed_file".to_string(),
            Self::Token { key, .. } => key.to_string(),
            Self::UserPassword { key, .. } => format!("nats.user/{key}"),
        }
    }
}

/// The TLS settings, files checked.
struct Tls {
    required: bool,
    ca: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
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

/// Checks `[nats]`'s authentication and TLS settings: at most one method, the pairs
/// complete, the files readable and of the right kind, the environment variables set. Part of
/// [`crate::config::WorkerConfig::settings`], so `check-config` and every command see it.
pub fn check(nats: &NatsSection) -> anyhow::Result<()> {
    auth(nats)?;
    tls(nats)?;
    Ok(())
}

/// Connects to `url` with `options` (name, timeouts: the caller's) plus `[nats]`'s
/// authentication and TLS, logging disconnections and reconnections; the client reconnects
/// on its own for as long as it lives. The initial connection is tried once: wrong
/// credentials fail at start, saying so.
pub async fn connect(
    url: &str,
    nats: &NatsSection,
    options: ConnectOptions,
) -> Result<Client, ConnectFailed> {
    let auth = auth(nats).map_err(ConnectFailed::config)?;
    let tls = tls(nats).map_err(ConnectFailed::config)?;
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
    options.connect(url).await.map_err(|error| {
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

/// Reads `path` for `key`, naming both on failure.
fn read(key: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{key}: cannot read {}: {e}", path.display()))
}

/// The value of the environment variable named by `key`.
fn from_env(key: &str, name: &str) -> anyhow::Result<Secret> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        Ok(_) => anyhow::bail!("{key}: the environment variable {name} is empty"),
        Err(_) => anyhow::bail!("{key}: the environment variable {name} is not set"),
    }
}

/// An NKey seed: 58 base32 characters starting with `S` (a user's: `SU`).
fn is_seed(text: &str) -> bool {
    text.len() == 58
        && text.starts_with('S')
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn auth(nats: &NatsSection) -> anyhow::Result<Auth> {
    if nats.token.is_some() && nats.token_env.is_some() {
        anyhow::bail!("nats.token and nats.token_env: set one, not both");
    }
    if nats.password.is_some() && nats.password_env.is_some() {
        anyhow::bail!("nats.password and nats.password_env: set one, not both");
    }
    let has_password = nats.password.is_some() || nats.password_env.is_some();
    match (&nats.user, has_password) {
        (Some(_), false) => {
            anyhow::bail!("nats.password (or nats.password_env): missing (nats.user is set)")
        }
        (None, true) => anyhow::bail!("nats.user: missing (a password is set)"),
        _ => {}
    }
    let methods: Vec<&str> = [
        (nats.credentials_file.is_some(), "nats.credentials_file"),
        (nats.nkey_seed_file.is_some(), "nats.nkey_seed_file"),
        (nats.token.is_some(), "nats.token"),
        (nats.token_env.is_some(), "nats.token_env"),
        (nats.user.is_some(), "nats.user"),
    ]
    .into_iter()
    .filter_map(|(set, key)| set.then_some(key))
    .collect();
    if methods.len() > 1 {
        anyhow::bail!(
            "{}: set one authentication method (a credentials file, an NKey seed, a token, or \
             a user and password), not {}",
            methods.join(" and "),
            methods.len()
        );
    }
    if let Some(path) = &nats.credentials_file {
        let key = "nats.credentials_file";
        let text = read(key, path)?;
        // Parsing it here (JWT and seed) makes a bad file a configuration error, before any
        // connection.
        ConnectOptions::new().credentials(&text).map_err(|e| {
            anyhow::anyhow!(
                "{key}: {} is not a NATS credentials file (user JWT and NKey seed, as nsc \
                 writes them): {e}",
                path.display()
            )
        })?;
        return Ok(Auth::Credentials(Secret::new(text)));
    }
    if let Some(path) = &nats.nkey_seed_file {
        let key = "nats.nkey_seed_file";
        let text = read(key, path)?;
        let seed = text.trim();
        if !is_seed(seed) {
            anyhow::bail!(
                "{key}: {} does not hold an NKey seed (58 characters starting with S, as \
                 `nk -gen user` prints it)",
                path.display()
            );
        }
        return Ok(Auth::NKey(Secret::new(seed)));
    }
    if let Some(token) = &nats.token {
        if token.expose().is_empty() {
            anyhow::bail!("nats.token: is empty");
        }
        return Ok(Auth::Token {
            key: "nats.token",
            token: token.clone(),
        });
    }
    if let Some(name) = &nats.token_env {
        return Ok(Auth::Token {
            key: "nats.token_env",
            token: from_env("nats.token_env", name)?,
        });
    }
    if let Some(user) = &nats.user {
        if user.is_empty() {
            anyhow::bail!("nats.user: is empty");
        }
        let (key, password) = match (&nats.password, &nats.password_env) {
            (Some(password), _) => ("nats.password", password.clone()),
            (None, Some(name)) => ("nats.password_env", from_env("nats.password_env", name)?),
            (None, None) => anyhow::bail!("nats.password: missing (nats.user is set)"),
        };
        return Ok(Auth::UserPassword {
            key,
            user: user.clone(),
            password,
        });
    }
    Ok(Auth::None)
}

fn tls(nats: &NatsSection) -> anyhow::Result<Tls> {
    let client = match (&nats.tls_cert_file, &nats.tls_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (Some(_), None) => anyhow::bail!("nats.tls_key_file: missing (nats.tls_cert_file is set)"),
        (None, Some(_)) => anyhow::bail!("nats.tls_cert_file: missing (nats.tls_key_file is set)"),
        (None, None) => None,
    };
    for (key, path, marker) in [
        (
            "nats.tls_ca_file",
            nats.tls_ca_file.as_ref(),
            "CERTIFICATE-----",
        ),
        (
            "nats.tls_cert_file",
            nats.tls_cert_file.as_ref(),
            "CERTIFICATE-----",
        ),
        (
            "nats.tls_key_file",
            nats.tls_key_file.as_ref(),
            "PRIVATE KEY-----",
        ),
    ] {
        if let Some(path) = path {
            let text = read(key, path)?;
            if !text.contains(marker) {
                anyhow::bail!(
                    "{key}: {} holds no PEM {}",
                    path.display(),
                    if marker.starts_with("CERT") {
                        "certificate"
                    } else {
                        "private key"
                    }
                );
            }
        }
    }
    let tls_url = nats
        .url
        .as_deref()
        .is_some_and(|url| url.split(',').any(|u| u.trim().starts_with("tls://")));
    Ok(Tls {
        required: nats.tls_required || tls_url || nats.tls_ca_file.is_some() || client.is_some(),
        ca: nats.tls_ca_file.clone(),
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(toml: &str) -> NatsSection {
        toml::from_str(toml).unwrap()
    }

    fn err(toml: &str) -> String {
        format!("{:#}", check(&nats(toml)).unwrap_err())
    }

    #[test]
    fn at_most_one_authentication_method() {
        let e = err("token = \"t\"\nuser = \"u\"\npassword = \"p\"\n");
        assert!(e.starts_with("nats.token and nats.user: set one"), "{e}");
        let e = err("token = \"t\"\ntoken_env = \"T\"\n");
        assert!(e.starts_with("nats.token and nats.token_env"), "{e}");
        let e = err("user = \"u\"\n");
        assert!(
            e.starts_with("nats.password (or nats.password_env): missing"),
            "{e}"
        );
        let e = err("password = \"p\"\n");
        assert!(e.starts_with("nats.user: missing"), "{e}");
        check(&nats("user = \"u\"\npassword = \"p\"\n")).unwrap();
        check(&nats("")).unwrap();
    }

    #[test]
    fn files_must_exist_and_be_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.creds");
        let e = err(&format!("credentials_file = {:?}\n", missing));
        assert!(e.starts_with("nats.credentials_file: cannot read"), "{e}");
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key\n").unwrap();
        let e = err(&format!("credentials_file = {:?}\n", junk));
        assert!(e.contains("is not a NATS credentials file"), "{e}");
        let e = err(&format!("nkey_seed_file = {:?}\n", junk));
        assert!(e.contains("does not hold an NKey seed"), "{e}");
        let e = err(&format!("tls_ca_file = {:?}\n", junk));
        assert!(
            e.starts_with("nats.tls_ca_file:") && e.contains("no PEM"),
            "{e}"
        );
        let e = err(&format!("tls_cert_file = {:?}\n", junk));
        assert!(e.starts_with("nats.tls_key_file: missing"), "{e}");
        let e = err(&format!("tls_key_file = {:?}\n", junk));
        assert!(e.starts_with("nats.tls_cert_file: missing"), "{e}");
        let seed = dir.path().join("seed.nk");
        std::fs::write(
            &seed,
            "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n",
        )
        .unwrap();
        check(&nats(&format!("nkey_seed_file = {:?}\n", seed))).unwrap();
    }

    #[test]
    fn environment_variables_must_be_set() {
        let e = err("token_env = \"ACTION_WORKER_TEST_SURELY_UNSET\"\n");
        assert_eq!(
            e,
            "nats.token_env: the environment variable ACTION_WORKER_TEST_SURELY_UNSET is not set"
        );
        let e = err("user = \"u\"\npassword_env = \"ACTION_WORKER_TEST_SURELY_UNSET\"\n");
        assert!(
            e.starts_with("nats.password_env: the environment variable"),
            "{e}"
        );
    }

    #[test]
    fn tls_is_required_by_the_url_the_flag_or_any_file() {
        assert!(!tls(&nats("url = \"nats://a:4222\"\n")).unwrap().required);
        assert!(tls(&nats("url = \"tls://a:4222\"\n")).unwrap().required);
        assert!(tls(&nats("tls_required = true\n")).unwrap().required);
    }
}
