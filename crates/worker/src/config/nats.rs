//! `[nats]`: where jobs come from, how to connect, and the durable path's settings.

use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `[nats]`: where jobs come from (SPEC §6).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    /// The NATS server, e.g. `nats://nats.internal:4222`, or a cluster's servers
    /// comma-separated (`nats://a:4222,nats://b:4222,nats://c:4222`; the worker learns the
    /// rest of the cluster from them, as NATS clients do). Unset: `serve` starts a local
    /// nats-server with JetStream, bound to 127.0.0.1 (the embedded default).
    pub url: Option<String>,
    /// The subject prefix: `<prefix>.run`, `<prefix>.test`.
    pub subject_prefix: String,
    /// Jobs run at once; further requests wait (backpressure).
    pub max_concurrent_jobs: usize,
    /// The embedded server's binary: `nats-server` on PATH, else `.venv/bin/nats-server`.
    pub server_binary: Option<PathBuf>,
    /// The embedded server's JetStream storage.
    pub data_dir: PathBuf,
    /// The embedded server's port (`submit` finds it there); 0: any free port.
    pub embedded_port: u16,
    /// Consume durable jobs from stream `ACTIONS_JOBS` (`<prefix>.jobs.>`) as well as
    /// request-reply.
    pub durable: bool,
    /// How long a delivered durable job may go without an ack or a progress ack before
    /// JetStream hands it to another worker. A running job sends progress acks every third of it.
    pub ack_wait_ms: u64,
    /// Deliveries of a durable job that are run; the delivery after the last one is not run:
    /// it gets a `failed` result and is terminated. The consumer's max_deliver is this plus one.
    pub max_attempts: u32,
    /// How long results stay in stream `ACTIONS_RESULTS` (and a job id cannot yield another).
    pub results_max_age_s: u64,
    /// Replicas of the streams and the registry bucket the worker creates (3 in a cluster).
    pub stream_replicas: usize,
    /// Journal every durable job (stream `ACTIONS_JOURNAL`): a redelivered job then makes no
    /// journaled call twice. Off: durable jobs' calls are at least once (request-reply jobs
    /// that ask to be recorded still are).
    pub journal: bool,
    /// The most a job's journal (stream `ACTIONS_JOURNAL`) may hold, in bytes: past it the
    /// job's later calls are made without being journaled (their trace entries say so).
    pub journal_max_job_bytes: u64,
    /// Where a job's `conversation_id` is looked up: the workflow engine answers a request on
    /// this subject with the conversation (empty: `<prefix>.conversations.get`).
    pub conversation_subject: String,
    /// How long the engine may take to answer it.
    pub conversation_timeout_ms: u64,
    /// On SIGTERM/SIGINT: how long in-flight jobs may take to finish before the worker exits
    /// and leaves them to redelivery.
    pub shutdown_grace_ms: u64,
    // How the worker proves who it is: at most one of the four methods ([`super::access`]
    // checks the combinations). None: no authentication, as the embedded server wants.
    /// A `.creds` file (user JWT and NKey seed), as `nsc` writes it: decentralised auth.
    pub credentials_file: Option<PathBuf>,
    /// A file holding a user NKey seed (`SU…`); the server lists the public key.
    pub nkey_seed_file: Option<PathBuf>,
    /// A token, inline; prefer `token_env`.
    pub token: Option<Secret>,
    /// The environment variable holding the token.
    pub token_env: Option<String>,
    /// A user name, with `password` or `password_env`.
    pub user: Option<String>,
    /// The password, inline; prefer `password_env`.
    pub password: Option<Secret>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// Refuse a connection without TLS. Also implied by a `tls://` URL and by any `tls_*` file.
    pub tls_required: bool,
    /// PEM file of the CA(s) that signed the server's certificate; replaces the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

/// A configured secret (a NATS token or password). It reaches the connection alone: `Debug`
/// and `Serialize` (what `check-config` prints) show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl Default for NatsSection {
    fn default() -> Self {
        Self {
            url: None,
            subject_prefix: "actions".into(),
            max_concurrent_jobs: 16,
            server_binary: None,
            data_dir: "data/nats".into(),
            embedded_port: 4222,
            durable: true,
            ack_wait_ms: 30_000,
            max_attempts: 3,
            results_max_age_s: 86_400,
            stream_replicas: 1,
            journal: true,
            journal_max_job_bytes: 16 << 20,
            conversation_subject: String::new(),
            conversation_timeout_ms: 2_000,
            shutdown_grace_ms: 30_000,
            credentials_file: None,
            nkey_seed_file: None,
            token: None,
            token_env: None,
            user: None,
            password: None,
            password_env: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl NatsSection {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_concurrent_jobs == 0 {
            bail!("nats.max_concurrent_jobs: must be at least 1");
        }
        let prefix = &self.subject_prefix;
        if prefix.is_empty()
            || prefix.contains([' ', '*', '>'])
            || prefix.starts_with('.')
            || prefix.ends_with('.')
        {
            bail!("nats.subject_prefix: {prefix:?} is not a subject prefix such as \"actions\"");
        }
        let n = self;
        if n.ack_wait_ms < 1000 {
            bail!("nats.ack_wait_ms: {} is under 1000", n.ack_wait_ms);
        }
        if n.max_attempts == 0 || n.max_attempts > 100 {
            bail!("nats.max_attempts: {} is outside 1..=100", n.max_attempts);
        }
        if n.results_max_age_s < 300 {
            bail!(
                "nats.results_max_age_s: {} is under 300 (the streams' duplicate window is 2 minutes)",
                n.results_max_age_s
            );
        }
        if !(1..=5).contains(&n.stream_replicas) {
            bail!(
                "nats.stream_replicas: {} is outside 1..=5",
                n.stream_replicas
            );
        }
        if n.conversation_timeout_ms == 0 {
            bail!("nats.conversation_timeout_ms: must be at least 1");
        }
        Ok(())
    }

    /// The subject a job's `conversation_id` is looked up on.
    pub fn conversation_subject(&self) -> String {
        if self.conversation_subject.is_empty() {
            format!("{}.conversations.get", self.subject_prefix)
        } else {
            self.conversation_subject.clone()
        }
    }
}
