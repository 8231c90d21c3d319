//! Compiled scripts, kept by source so that a job does not pay for `compile()` again.
//!
//! The bytes are `marshal` output of the runtime's own `compile` export, which compiles
//! without executing anything: no user code runs in the instance that produces them, so no
//! job can plant code that a later job (of any tenant with the same source) would load.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

pub(crate) type ScriptKey = [u8; 32];

pub(crate) fn script_key(filename: &str, source: &str) -> ScriptKey {
    let mut hasher = Sha256::new();
    hasher.update(filename.as_bytes());
    hasher.update([0]);
    hasher.update(source.as_bytes());
    hasher.finalize().into()
}

/// A bounded map: the oldest entry goes first.
#[derive(Debug)]
pub(crate) struct ScriptCache {
    capacity: usize,
    entries: Mutex<IndexMap<ScriptKey, Arc<[u8]>>>,
}

impl ScriptCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(IndexMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &ScriptKey) -> Option<Arc<[u8]>> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn insert(&self, key: ScriptKey, code: Arc<[u8]>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(&key) {
                entries.shift_remove_index(0);
            }
            entries.insert(key, code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entry_leaves_first() {
        let cache = ScriptCache::new(2);
        let (a, b, c) = (
            script_key("a.py", "1"),
            script_key("b.py", "1"),
            script_key("a.py", "2"),
        );
        assert_ne!(a, c);
        cache.insert(a, Arc::from(&b"a"[..]));
        cache.insert(b, Arc::from(&b"b"[..]));
        cache.insert(c, Arc::from(&b"c"[..]));
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.get(&b).as_deref(), Some(&b"b"[..]));
        assert_eq!(cache.get(&c).as_deref(), Some(&b"c"[..]));
    }
}
