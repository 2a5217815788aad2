//! The in-process backend: a bounded map with per-entry expiry.
//!
//! Used by `credmesh dev` and single-machine installs, where there is no Redis and only one
//! process to keep consistent. Every method takes `now` so the expiry rules are tested by moving
//! a clock, not by sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A bounded key-value map whose entries expire.
///
/// Deliberate simplification: this is not an LRU. When the map is full it first drops every
/// expired entry, and if that frees nothing it drops arbitrary entries (in hash order) down to
/// about 15/16 of the bound. Dropping a batch keeps the cost of the full scan amortised over
/// many inserts; for a cache of signed documents that are cheap to fetch again, which entries
/// go matters much less than bounding memory.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    max_entries: usize,
}

#[derive(Debug)]
struct Entry {
    /// Shared, so a read holds the lock for a reference count, not for a copy: every
    /// replica's gateway reads the same few hot entries from all its workers at once.
    value: Arc<[u8]>,
    /// `None` when `now + ttl` does not fit in an `Instant`: never expires.
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

impl MemoryStore {
    pub(crate) fn new(max_entries: usize) -> MemoryStore {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            // A bound of zero would make every insert evict itself; one entry is the minimum.
            max_entries: max_entries.max(1),
        }
    }

    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Vec<u8>> {
        let mut entries = self.lock();
        let value = match entries.get(key) {
            Some(entry) if entry.is_live(now) => Some(Arc::clone(&entry.value)),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        };
        drop(entries);
        value.map(|v| v.to_vec())
    }

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Duration, now: Instant) {
        let mut entries = self.lock();
        self.insert(&mut entries, key, value, ttl, now);
    }

    /// Inserts only when there is no live entry; the check and the insert hold one lock, so two
    /// callers racing for the same key cannot both win.
    pub(crate) fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) -> bool {
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|e| e.is_live(now)) {
            return false;
        }
        self.insert(&mut entries, key, value, ttl, now);
        true
    }

    pub(crate) fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn insert(
        &self,
        entries: &mut HashMap<String, Entry>,
        key: &str,
        value: &[u8],
        ttl: Duration,
        now: Instant,
    ) {
        if !entries.contains_key(key) && entries.len() >= self.max_entries {
            self.make_room(entries, now);
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: Arc::from(value),
                expires_at: now.checked_add(ttl),
            },
        );
    }

    fn make_room(&self, entries: &mut HashMap<String, Entry>, now: Instant) {
        entries.retain(|_, e| e.is_live(now));
        if entries.len() < self.max_entries {
            return;
        }
        let target = self.max_entries - (self.max_entries / 16).max(1);
        let excess = entries.len() - target;
        let victims: Vec<String> = entries.keys().take(excess).cloned().collect();
        for key in victims {
            entries.remove(&key);
        }
    }

    /// A panic while holding the lock cannot leave the map half-updated (every mutation is a
    /// single `HashMap` call), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_is_a_hit_until_its_ttl_passes_and_a_miss_after() {
        let store = MemoryStore::new(10);
        let t0 = Instant::now();
        store.set("k", b"v", Duration::from_secs(1), t0);
        assert_eq!(
            store.get("k", t0 + Duration::from_millis(999)),
            Some(b"v".to_vec())
        );
        assert_eq!(store.get("k", t0 + Duration::from_secs(1)), None);
        assert_eq!(store.len(), 0, "an expired entry is dropped when read");
    }

    #[test]
    fn set_if_absent_wins_once_and_again_after_expiry() {
        let store = MemoryStore::new(10);
        let t0 = Instant::now();
        assert!(store.set_if_absent("nonce", b"1", MINUTE, t0));
        assert!(!store.set_if_absent("nonce", b"2", MINUTE, t0));
        assert_eq!(store.get("nonce", t0), Some(b"1".to_vec()));
        assert!(store.set_if_absent("nonce", b"3", MINUTE, t0 + MINUTE));
    }

    #[test]
    fn a_full_store_evicts_expired_entries_before_live_ones() {
        let store = MemoryStore::new(4);
        let t0 = Instant::now();
        store.set("short-1", b"", Duration::from_secs(1), t0);
        store.set("short-2", b"", Duration::from_secs(1), t0);
        store.set("long-1", b"", MINUTE, t0);
        store.set("long-2", b"", MINUTE, t0);
        let later = t0 + Duration::from_secs(2);
        store.set("new", b"", MINUTE, later);
        for key in ["long-1", "long-2", "new"] {
            assert!(
                store.get(key, later).is_some(),
                "{key} should have survived"
            );
        }
    }

    #[test]
    fn a_full_store_of_live_entries_stays_within_its_bound() {
        let store = MemoryStore::new(32);
        let t0 = Instant::now();
        for i in 0..1000 {
            store.set(&format!("k{i}"), b"v", MINUTE, t0);
            assert!(store.len() <= 32);
        }
        assert!(store.get("k999", t0).is_some(), "the newest entry is kept");
    }

    #[test]
    fn overwriting_a_key_in_a_full_store_evicts_nothing() {
        let store = MemoryStore::new(2);
        let t0 = Instant::now();
        store.set("a", b"1", MINUTE, t0);
        store.set("b", b"1", MINUTE, t0);
        store.set("a", b"2", MINUTE, t0);
        assert_eq!(store.get("a", t0), Some(b"2".to_vec()));
        assert_eq!(store.get("b", t0), Some(b"1".to_vec()));
    }

    #[test]
    fn a_ttl_too_large_for_the_clock_never_expires() {
        let store = MemoryStore::new(2);
        let t0 = Instant::now();
        store.set("k", b"v", Duration::MAX, t0);
        assert!(store.get("k", t0 + MINUTE).is_some());
    }
}
