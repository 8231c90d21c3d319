//! `[nats]`'s authentication and TLS, read once when the configuration loads: at most one
//! method, the pairs complete, the files readable and of the right kind, the environment
//! variables set. [`crate::connect`] uses what is read here.

use std::path::{Path, PathBuf};

use super::{NatsSection, Secret};

/// How the worker proves who it is to NATS, and its TLS settings.
#[derive(Clone)]
pub struct NatsAccess {
    pub auth: Auth,
    pub tls: Tls,
}

impl std::fmt::Debug for NatsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAccess")
            .field("auth", &self.auth.keys())
            .field("tls_required", &self.tls.required)
            .finish_non_exhaustive()
    }
}

impl NatsAccess {
    /// Reads `[nats]`'s authentication and TLS, naming the key of anything wrong.
    pub fn read(nats: &NatsSection) -> anyhow::Result<Self> {
        Ok(Self {
            auth: auth(nats)?,
            tls: tls(nats)?,
        })
    }
}

/// How the worker proves who it is, with the secret read.
#[derive(Clone)]
pub enum Auth {
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
    pub fn keys(&self) -> String {
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
#[derive(Clone)]
pub struct Tls {
    pub required: bool,
    pub ca: Option<PathBuf>,
    pub client: Option<(PathBuf, PathBuf)>,
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
        async_nats::ConnectOptions::new()
            .credentials(&text)
            .map_err(|e| {
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
        format!("{:#}", NatsAccess::read(&nats(toml)).unwrap_err())
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
        NatsAccess::read(&nats("user = \"u\"\npassword = \"p\"\n")).unwrap();
        NatsAccess::read(&nats("")).unwrap();
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
        NatsAccess::read(&nats(&format!("nkey_seed_file = {:?}\n", seed))).unwrap();
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
