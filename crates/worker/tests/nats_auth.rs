//! Secure NATS connections against a real nats-server that requires them: a token, a user and
//! password, an NKey, a `.creds` file (operator mode, JWTs signed here with NKeys), TLS with a
//! private CA, and a client certificate. For each, `serve` with the right settings serves a job
//! that `submit` sends with the same settings, and `serve` with wrong ones exits at start
//! saying why.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use sha2::Digest;

use action_worker_tests as common;
use common::nats::{Nats, Worker};

const SCRIPT: &str =
    "def execute_action(context):\n    return {'double': context['args']['x'] * 2}\n";

/// `action-worker --config CONFIG ARGS…` with `env` added; its output.
async fn worker_command(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_action-worker"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("the command did not end within 90 s")
        .unwrap()
}

/// `submit` of a small Python action with `extra` settings in a fresh `worker.toml` under
/// `dir`; its output.
async fn submit(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Output {
    std::fs::create_dir_all(dir).unwrap();
    let config = common::write_config(dir, extra);
    let script = dir.join("double.py");
    std::fs::write(&script, SCRIPT).unwrap();
    worker_command(
        &config,
        &[
            "submit",
            script.to_str().unwrap(),
            "--args-json",
            r#"{"x": 21}"#,
        ],
        env,
    )
    .await
}

/// Asserts that `submit` got the job's result from the worker.
fn assert_served(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout={stdout} stderr={stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"], json!({"double": 42}));
}

/// Asserts that the command failed, and returns its stderr.
fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "it should have failed: stdout={} stderr={stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// `serve` with `extra` settings, which must exit at start; its stderr.
async fn serve_fails(dir: &Path, extra: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let config = common::write_config(dir, extra);
    failure(&worker_command(&config, &["serve"], &[]).await)
}

fn nats_section(url: &str, settings: &str) -> String {
    format!("[nats]\nurl = \"{url}\"\n{settings}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        "authorization { token: \"s3cret-token\" }",
    )
    .await;
    let url = &nats.url;
    let _worker = Worker::start(
        &dir.path().join("worker"),
        &nats_section(url, "token = \"s3cret-token\"\n"),
    )
    .await;

    // submit: the token from token_env, and from the ACTION_WORKER__ override.
    let out = submit(
        &dir.path().join("s1"),
        &nats_section(url, "token_env = \"TEST_NATS_TOKEN\"\n"),
        &[("TEST_NATS_TOKEN", "s3cret-token")],
    )
    .await;
    assert_served(&out);
    let out = submit(
        &dir.path().join("s2"),
        &nats_section(url, ""),
        &[("ACTION_WORKER__NATS__TOKEN", "s3cret-token")],
    )
    .await;
    assert_served(&out);

    // Without a token, and with a wrong one.
    let err = failure(&submit(&dir.path().join("s3"), &nats_section(url, ""), &[]).await);
    assert!(
        err.contains(&format!(
            "NATS at {url} requires credentials (authorization violation)"
        )),
        "{err}"
    );
    assert!(!err.contains("is `action-worker serve` running"), "{err}");
    let err = serve_fails(
        &dir.path().join("w2"),
        &nats_section(url, "token = \"wrong\"\n"),
    )
    .await;
    assert!(
        err.contains(&format!(
            "NATS at {url} refused the credentials (authorization violation): check nats.token"
        )),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the token must not be printed: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        "authorization { users = [ { user: \"worker\", password: \"pw-4711\" } ] }",
    )
    .await;
    let url = &nats.url;
    let _worker = Worker::start(
        &dir.path().join("worker"),
        &nats_section(url, "user = \"worker\"\npassword = \"pw-4711\"\n"),
    )
    .await;
    let out = submit(
        &dir.path().join("s1"),
        &nats_section(
            url,
            "user = \"worker\"\npassword_env = \"TEST_NATS_PASSWORD\"\n",
        ),
        &[("TEST_NATS_PASSWORD", "pw-4711")],
    )
    .await;
    assert_served(&out);

    let err = serve_fails(
        &dir.path().join("w2"),
        &nats_section(url, "user = \"worker\"\npassword = \"pw-0000\"\n"),
    )
    .await;
    assert!(
        err.contains(&format!(
            "NATS at {url} refused the credentials (authorization violation): check nats.user/nats.password"
        )),
        "{err}"
    );
    assert!(!err.contains("pw-0000"), "{err}");
    let err = failure(
        &submit(
            &dir.path().join("s2"),
            &nats_section(
                url,
                "user = \"worker\"\npassword_env = \"TEST_NATS_PASSWORD\"\n",
            ),
            &[("TEST_NATS_PASSWORD", "pw-0000")],
        )
        .await,
    );
    assert!(err.contains("check nats.user/nats.password_env"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey() {
    let dir = tempfile::tempdir().unwrap();
    let user = KeyPair::new_user();
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        &format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
            user.public_key()
        ),
    )
    .await;
    let url = &nats.url;
    let seed = dir.path().join("worker.nk");
    std::fs::write(&seed, format!("{}\n", user.seed().unwrap())).unwrap();
    let settings = format!("nkey_seed_file = {:?}\n", seed.display().to_string());
    let _worker = Worker::start(&dir.path().join("worker"), &nats_section(url, &settings)).await;
    assert_served(&submit(&dir.path().join("s1"), &nats_section(url, &settings), &[]).await);

    let stranger = dir.path().join("stranger.nk");
    std::fs::write(&stranger, KeyPair::new_user().seed().unwrap()).unwrap();
    let err = serve_fails(
        &dir.path().join("w2"),
        &nats_section(
            url,
            &format!("nkey_seed_file = {:?}\n", stranger.display().to_string()),
        ),
    )
    .await;
    assert!(
        err.contains(
            "refused the credentials (authorization violation): check nats.nkey_seed_file"
        ),
        "{err}"
    );
}

/// A JWT as nats-io/jwt (v2) encodes one: header, claims, an Ed25519 signature by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "ed25519-nkey"}).to_string());
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({"jti": "", "iat": iat, "iss": issuer.public_key(), "name": name,
                            "sub": subject, "nats": nats});
    // The id is the base32 SHA-256 of the claims without it.
    let hash = sha2::Sha256::digest(claims.to_string().as_bytes());
    claims["jti"] = Value::String(data_encoding::BASE32_NOPAD.encode(&hash));
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = issuer
        .sign(format!("{header}.{claims}").as_bytes())
        .unwrap();
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A `.creds` file as `nsc` writes it: the user's JWT and seed.
fn creds(path: &Path, user_jwt: &str, user: &KeyPair) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

fn user_claims() -> Value {
    json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    // Decentralised auth: an operator, a system account and an account it signs (JetStream
    // enabled), a user the account signs; the server trusts the operator and knows the
    // accounts.
    let operator = KeyPair::new_operator();
    let system = KeyPair::new_account();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let limits = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                        "wildcards": true, "conn": -1, "leaf": -1,
                        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "workers",
        json!({"limits": limits, "default_permissions": {"pub": {}, "sub": {}},
               "type": "account", "version": 2}),
    );
    let user_jwt = jwt(&account, &user.public_key(), "worker", user_claims());
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        &format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}",
            system.public_key(),
            system.public_key(),
            account.public_key()
        ),
    )
    .await;
    let url = &nats.url;
    let good = creds(&dir.path().join("worker.creds"), &user_jwt, &user);
    let settings = format!("credentials_file = {:?}\n", good.display().to_string());
    let _worker = Worker::start(&dir.path().join("worker"), &nats_section(url, &settings)).await;
    assert_served(&submit(&dir.path().join("s1"), &nats_section(url, &settings), &[]).await);

    // A user signed by an account the server does not know.
    let stranger_account = KeyPair::new_account();
    let stranger = KeyPair::new_user();
    let stranger_jwt = jwt(
        &stranger_account,
        &stranger.public_key(),
        "stranger",
        user_claims(),
    );
    let bad = creds(&dir.path().join("stranger.creds"), &stranger_jwt, &stranger);
    let err = serve_fails(
        &dir.path().join("w2"),
        &nats_section(
            url,
            &format!("credentials_file = {:?}\n", bad.display().to_string()),
        ),
    )
    .await;
    assert!(
        err.contains(
            "refused the credentials (authorization violation): check nats.credentials_file"
        ),
        "{err}"
    );
}

/// A private CA and, signed by it, a server certificate for 127.0.0.1 and localhost and a
/// client certificate; PEM files in `dir`: ca.pem, server.pem, server.key, client.pem,
/// client.key.
fn certificates(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    std::fs::create_dir_all(dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "action-worker test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    for (name, sans, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

fn path(dir: &Path, name: &str) -> String {
    format!("{:?}", dir.join(name).display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certificates(&pki);
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        &format!(
            "tls {{ cert_file: {}, key_file: {} }}",
            path(&pki, "server.pem"),
            path(&pki, "server.key")
        ),
    )
    .await;
    let url = &nats.url;
    let settings = format!("tls_ca_file = {}\n", path(&pki, "ca.pem"));
    let _worker = Worker::start(&dir.path().join("worker"), &nats_section(url, &settings)).await;
    assert_served(&submit(&dir.path().join("s1"), &nats_section(url, &settings), &[]).await);
    // A tls:// URL with the CA from the environment.
    let tls_url = url.replace("nats://", "tls://");
    assert_served(
        &submit(
            &dir.path().join("s2"),
            &nats_section(&tls_url, ""),
            &[(
                "ACTION_WORKER__NATS__TLS_CA_FILE",
                pki.join("ca.pem").to_str().unwrap(),
            )],
        )
        .await,
    );

    // Without the CA, the server's certificate is not trusted.
    let err = serve_fails(&dir.path().join("w2"), &nats_section(&tls_url, "")).await;
    assert!(
        err.contains(&format!("TLS with NATS at {tls_url} failed"))
            && err.contains("nats.tls_ca_file"),
        "{err}"
    );
    // Nor with another CA.
    let other = dir.path().join("other");
    certificates(&other);
    let err = serve_fails(
        &dir.path().join("w3"),
        &nats_section(url, &format!("tls_ca_file = {}\n", path(&other, "ca.pem"))),
    )
    .await;
    assert!(
        err.contains(&format!("TLS with NATS at {url} failed"))
            && err.contains("signed by nats.tls_ca_file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    certificates(&pki);
    let nats = Nats::start_with_config(
        &dir.path().join("nats"),
        &format!(
            "tls {{ cert_file: {}, key_file: {}, ca_file: {}, verify: true }}",
            path(&pki, "server.pem"),
            path(&pki, "server.key"),
            path(&pki, "ca.pem")
        ),
    )
    .await;
    let url = &nats.url;
    let settings = format!(
        "tls_ca_file = {}\ntls_cert_file = {}\ntls_key_file = {}\n",
        path(&pki, "ca.pem"),
        path(&pki, "client.pem"),
        path(&pki, "client.key")
    );
    let _worker = Worker::start(&dir.path().join("worker"), &nats_section(url, &settings)).await;
    assert_served(&submit(&dir.path().join("s1"), &nats_section(url, &settings), &[]).await);

    let err = serve_fails(
        &dir.path().join("w2"),
        &nats_section(url, &format!("tls_ca_file = {}\n", path(&pki, "ca.pem"))),
    )
    .await;
    assert!(
        err.contains(&format!("TLS with NATS at {url} failed"))
            && err.contains("set nats.tls_cert_file and nats.tls_key_file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_bad_settings_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path(),
        "[nats]\nurl = \"nats://127.0.0.1:1\"\nuser = \"worker\"\npassword = \"pw-4711\"\n",
    );
    let out = worker_command(&config, &["check-config"], &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("password = \"[redacted]\""), "{stdout}");
    assert!(!stdout.contains("pw-4711"), "{stdout}");

    let out = worker_command(
        &config,
        &["check-config"],
        &[
            ("ACTION_WORKER__NATS__URL", "nats://elsewhere:4222"),
            ("ACTION_WORKER__LIMITS__MAX__FUEL", "60000000000"),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "ok (with ACTION_WORKER__LIMITS__MAX__FUEL, ACTION_WORKER__NATS__URL from the environment)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("url = \"nats://elsewhere:4222\""),
        "{stdout}"
    );
    assert!(stdout.contains("fuel = 60000000000"), "{stdout}");

    let out = worker_command(
        &config,
        &["check-config"],
        &[("ACTION_WORKER__NATS__TOKEN", "t0ken")],
    )
    .await;
    let err = failure(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("nats.token and nats.user: set one authentication method"),
        "{err}"
    );
    assert!(!err.contains("t0ken") && !err.contains("pw-4711"), "{err}");

    let out = worker_command(
        &config,
        &["check-config"],
        &[("ACTION_WORKER__NATS__URLL", "x")],
    )
    .await;
    assert!(
        failure(&out).contains("ACTION_WORKER__NATS__URLL: unknown key nats.urll"),
        "{out:?}"
    );
}
