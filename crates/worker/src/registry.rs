//! The registry (SPEC §6): KV bucket `ACTIONS`, one definition per key `<tenant>.<name>`, or
//! `<name>` for jobs without a tenant. A job that names an action is looked up under its own
//! tenant only: there is no fallback to another tenant's or to the tenant-less keys, so a job
//! of one tenant never runs another tenant's action.
//!
//! The worker keeps every definition it has seen, parsed and validated, by key and revision,
//! and follows the bucket with a watcher: a put or a delete reaches the cache as soon as the
//! watcher delivers it (well under a millisecond on one server). A key the cache has never
//! seen is read from the bucket, so a job right after its action's first put finds it. A job
//! that pins `revision` gets exactly that revision, from the bucket's history when it is not
//! the current one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use action_protocol::ActionDefinition;
use anyhow::Context;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;

pub const BUCKET: &str = "ACTIONS";
/// Revisions of each key kept in the bucket (for jobs that pin one), when the worker
/// creates it.
pub const HISTORY: i64 = 10;

/// The registry key of `name` for `tenant`.
pub fn key(tenant: Option<&str>, name: &str) -> String {
    match tenant {
        Some(tenant) => format!("{tenant}.{name}"),
        None => name.to_string(),
    }
}

/// What the cache knows of a key: a definition, one that is stored but invalid (jobs naming
/// it are rejected with the reason), or a deletion.
#[derive(Debug, Clone)]
enum Known {
    Action(Arc<ActionDefinition>),
    Invalid(String),
    Deleted,
}

#[derive(Debug, Clone)]
struct Cached {
    revision: u64,
    known: Known,
}

/// Parses and checks one stored value of `key`.
fn parse(key: &str, value: &[u8]) -> Known {
    let name = key.rsplit('.').next().unwrap_or(key);
    let definition: ActionDefinition = match serde_json::from_slice(value) {
        Ok(definition) => definition,
        Err(e) => return Known::Invalid(format!("the stored definition is not valid: {e}")),
    };
    if let Err(e) = definition.validate() {
        return Known::Invalid(format!("the stored definition is not valid: {e}"));
    }
    if definition.name != name {
        return Known::Invalid(format!(
            "the stored definition is named {:?}, not {name:?}",
            definition.name
        ));
    }
    Known::Action(Arc::new(definition))
}

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// No such action (or revision) for the job's tenant, or a stored value that is not a
    /// definition: the job is `rejected`.
    Rejected(String),
    /// The bucket could not be read (an outage, a leader election): the worker's fault, not
    /// the job's, so the job is `failed` and a durable one is tried again.
    Unavailable(String),
}

pub struct Registry {
    store: kv::Store,
    current: RwLock<HashMap<String, Cached>>,
    /// Pinned revisions that are not the current one, by (key, revision).
    pinned: RwLock<HashMap<(String, u64), Known>>,
    /// The newest revision the watch delivered: a new watch resumes after it.
    watched: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// The bucket, created (with `replicas` replicas) if absent.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> anyhow::Result<Arc<Self>> {
        let store = match js.get_key_value(BUCKET).await {
            Ok(store) => store,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: BUCKET.into(),
                    description: "action-worker: action definitions by <tenant>.<name>".into(),
                    history: HISTORY,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .with_context(|| format!("cannot create the KV bucket {BUCKET}"))?,
        };
        Ok(Arc::new(Self {
            store,
            current: RwLock::default(),
            pinned: RwLock::default(),
            watched: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    fn remember(&self, key: &str, revision: u64, known: Known) {
        if let Ok(mut current) = self.current.write() {
            let newer = current.get(key).is_none_or(|c| c.revision < revision);
            if newer {
                current.insert(key.to_string(), Cached { revision, known });
            }
        }
    }

    /// Follows the bucket until the process ends. A broken watch is started again after the
    /// last revision it delivered, so no update in between is missed; before the first
    /// update there is nothing to resume from, so the cache is emptied instead and whatever
    /// changed is read from the bucket on next use.
    pub fn follow(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        let registry = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let last = registry.watched.load(Ordering::SeqCst);
                let watch = if last > 0 {
                    registry.store.watch_all_from_revision(last + 1).await
                } else {
                    if !first && let Ok(mut current) = registry.current.write() {
                        current.clear();
                    }
                    registry.store.watch_all().await
                };
                first = false;
                match watch {
                    Ok(mut watch) => {
                        while let Some(entry) = watch.next().await {
                            match entry {
                                Ok(entry) => {
                                    registry.apply(&entry);
                                    registry.watched.fetch_max(entry.revision, Ordering::SeqCst);
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "the registry watch failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot watch the registry"),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    fn apply(&self, entry: &kv::Entry) {
        let known = match entry.operation {
            kv::Operation::Put => parse(&entry.key, &entry.value),
            kv::Operation::Delete | kv::Operation::Purge => Known::Deleted,
        };
        tracing::debug!(key = %entry.key, revision = entry.revision, "registry update");
        self.remember(&entry.key, entry.revision, known);
    }

    fn cached(&self, key: &str) -> Option<Cached> {
        self.current.read().ok()?.get(key).cloned()
    }

    /// The definition a job of `tenant` means by `name` (and `revision`, when pinned), or the
    /// reason it cannot run, for a `rejected` result.
    pub async fn resolve(
        &self,
        tenant: Option<&str>,
        name: &str,
        revision: Option<u64>,
    ) -> Result<(u64, Arc<ActionDefinition>), ResolveError> {
        let key = key(tenant, name);
        let whose = match tenant {
            Some(tenant) => format!("tenant {tenant:?}"),
            None => "jobs without a tenant".to_string(),
        };
        let unknown = || format!("unknown action {name:?}: not in the registry for {whose}");
        let answer = |revision: u64, known: Known| match known {
            Known::Action(definition) => Ok((revision, definition)),
            Known::Invalid(reason) => Err(ResolveError::Rejected(format!(
                "action {name:?} (revision {revision}): {reason}"
            ))),
            Known::Deleted => Err(ResolveError::Rejected(unknown())),
        };
        let cached = match self.cached(&key) {
            Some(cached) => Some(cached),
            None => {
                let entry = self.store.entry(key.as_str()).await.map_err(|e| {
                    ResolveError::Unavailable(format!("cannot read the registry: {e}"))
                })?;
                entry.map(|entry| {
                    self.apply(&entry);
                    self.cached(&key).unwrap_or(Cached {
                        revision: entry.revision,
                        known: Known::Deleted,
                    })
                })
            }
        };
        let Some(wanted) = revision else {
            return match cached {
                Some(cached) => answer(cached.revision, cached.known),
                None => Err(ResolveError::Rejected(unknown())),
            };
        };
        if let Some(cached) = &cached
            && cached.revision == wanted
        {
            return answer(wanted, cached.known.clone());
        }
        let pinned = self
            .pinned
            .read()
            .ok()
            .and_then(|p| p.get(&(key.clone(), wanted)).cloned());
        let known = match pinned {
            Some(known) => known,
            None => {
                let entry = self
                    .store
                    .entry_for_revision(key.as_str(), wanted)
                    .await
                    .map_err(|e| {
                        ResolveError::Unavailable(format!("cannot read the registry: {e}"))
                    })?;
                let known = match entry {
                    Some(entry) if entry.operation == kv::Operation::Put => {
                        parse(&entry.key, &entry.value)
                    }
                    _ => {
                        let current = cached
                            .map(|c| format!(" (current: {})", c.revision))
                            .unwrap_or_default();
                        return Err(ResolveError::Rejected(format!(
                            "revision {wanted} of action {name:?} is not in the registry for {whose}{current}"
                        )));
                    }
                };
                if let Ok(mut pinned) = self.pinned.write() {
                    pinned.insert((key, wanted), known.clone());
                }
                known
            }
        };
        answer(wanted, known)
    }
}

#[cfg(test)]
mod props {
    //! Registry keys and stored values over arbitrary Unicode and bytes: a key that a valid
    //! job can form has one reading, and no stored value panics the parser.
    use action_protocol::{is_valid_action_name, is_valid_tenant};
    use proptest::prelude::*;

    use super::*;

    fn tenant() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_.-]{0,8}",
            "[a-z]{1,5}\\.[a-z]{1,5}"
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][A-Za-z0-9]{0,3}",
            "[ab]{1,2}",
            any::<String>(),
            "[a-z][A-Za-z0-9.é]{0,8}"
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn a_valid_tenant_and_name_make_a_key_with_one_reading(
            tenant in prop::option::of(tenant()), name in name(), other in prop::option::of(tenant()), other_name in name(),
        ) {
            let valid = |t: &Option<String>, n: &str| {
                t.as_deref().is_none_or(is_valid_tenant) && is_valid_action_name(n)
            };
            if !(valid(&tenant, &name) && valid(&other, &other_name)) {
                // A job with either is rejected before any lookup.
                return Ok(());
            }
            let key_a = key(tenant.as_deref(), &name);
            let key_b = key(other.as_deref(), &other_name);
            // Two different (tenant, name) pairs never share a key.
            prop_assert_eq!(key_a == key_b, tenant == other && name == other_name);
            prop_assert_eq!(key_a.rsplit('.').next(), Some(name.as_str()));
        }

        #[test]
        fn any_stored_value_parses_or_is_invalid_with_a_reason(
            key in any::<String>(), value in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Known::Invalid(reason) = parse(&key, &value) {
                prop_assert!(reason.starts_with("the stored definition is"), "{}", reason);
            }
        }
    }
}
