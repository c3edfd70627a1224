//! Unwrapped secrets (key material, credential secrets) kept in memory for
//! a bounded time, so that a key or credential in steady use is not
//! unwrapped (an HKDF and an AES-GCM decryption) on every call.
//!
//! An entry is served only while it is younger than the time to live and
//! only for the very wrapped bytes it was unwrapped from, so a changed row
//! (a new secret under the same id) is never answered from a stale entry.
//! Values sit behind `Arc` in their zeroizing types: the memory is wiped
//! when the last user and the cache have both let go. Expired entries are
//! dropped by [`UnwrapCache::purge_expired`], which the daemon's
//! maintenance sweep calls, so an idle secret does not outlive its time.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Entry<V> {
    wrapped: Vec<u8>,
    value: Arc<V>,
    loaded: Instant,
}

/// A bounded map from an id to the secret unwrapped from its stored form.
pub struct UnwrapCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    ttl: Duration,
    capacity: usize,
}

impl<K, V> std::fmt::Debug for UnwrapCache<K, V> {
    /// Shows the bounds only, never an id or a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwrapCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone, V> UnwrapCache<K, V> {
    /// A cache holding at most `capacity` secrets, each for at most `ttl`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        // Never held across an await or a call out: every use is below.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The secret for `id` stored as `wrapped`: from the cache if it holds
    /// a live entry unwrapped from exactly these bytes, otherwise from
    /// `unwrap` (whose result is then kept).
    pub fn get_or_unwrap<Q, E>(
        &self,
        id: &Q,
        wrapped: &[u8],
        unwrap: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        if let Some(e) = self.lock().get(id)
            && e.wrapped == wrapped
            && now.duration_since(e.loaded) < self.ttl
        {
            return Ok(Arc::clone(&e.value));
        }
        // Unwrapped outside the lock: two callers may both unwrap on a miss,
        // which is harmless.
        let value = Arc::new(unwrap()?);
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(id) {
            map.retain(|_, e| now.duration_since(e.loaded) < self.ttl);
            // Still full of live entries: drop the oldest one rather than
            // empty the cache, which would make every caller unwrap again.
            if map.len() >= self.capacity
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.loaded)
                    .map(|(k, _)| k.clone())
            {
                map.remove::<K>(&oldest);
            }
        }
        map.insert(
            id.to_owned(),
            Entry {
                wrapped: wrapped.to_vec(),
                value: Arc::clone(&value),
                loaded: now,
            },
        );
        Ok(value)
    }

    /// Drops every entry whose id matches (for example the versions of a
    /// destroyed key).
    pub fn forget(&self, matches: impl Fn(&K) -> bool) {
        self.lock().retain(|k, _| !matches(k));
    }

    /// Drops every entry older than the time to live.
    pub fn purge_expired(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|_, e| now.duration_since(e.loaded) < self.ttl);
    }

    /// How many secrets are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn counting(calls: &Cell<u32>, v: u32) -> impl FnOnce() -> Result<u32, ()> + '_ {
        move || {
            calls.set(calls.get() + 1);
            Ok(v)
        }
    }

    #[test]
    fn a_live_entry_for_the_same_wrapped_bytes_is_served_without_unwrapping() {
        let c: UnwrapCache<String, u32> = UnwrapCache::new(Duration::from_secs(60), 8);
        let calls = Cell::new(0);
        assert_eq!(
            *c.get_or_unwrap("a", b"w1", counting(&calls, 1)).unwrap(),
            1
        );
        assert_eq!(
            *c.get_or_unwrap("a", b"w1", counting(&calls, 9)).unwrap(),
            1
        );
        assert_eq!(calls.get(), 1);
        // New wrapped bytes under the same id: unwrapped again, never stale.
        assert_eq!(
            *c.get_or_unwrap("a", b"w2", counting(&calls, 2)).unwrap(),
            2
        );
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn expired_entries_are_unwrapped_again_and_purged() {
        let c: UnwrapCache<String, u32> = UnwrapCache::new(Duration::ZERO, 8);
        let calls = Cell::new(0);
        c.get_or_unwrap("a", b"w", counting(&calls, 1)).unwrap();
        c.get_or_unwrap("a", b"w", counting(&calls, 1)).unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(c.len(), 1);
        c.purge_expired();
        assert!(c.is_empty());
        // Purging keeps what is still live.
        let live: UnwrapCache<String, u32> = UnwrapCache::new(Duration::from_secs(60), 8);
        live.get_or_unwrap("a", b"w", counting(&calls, 1)).unwrap();
        live.purge_expired();
        assert_eq!(live.len(), 1);
    }

    #[test]
    fn failures_are_not_kept_and_capacity_is_a_bound() {
        let c: UnwrapCache<String, u32> = UnwrapCache::new(Duration::from_secs(60), 3);
        assert!(
            c.get_or_unwrap("bad", b"w", || Err::<u32, _>("no"))
                .is_err()
        );
        assert!(c.is_empty());
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            c.get_or_unwrap(*id, b"w", || Ok::<_, ()>(u32::try_from(i).unwrap()))
                .unwrap();
            assert!(c.len() <= 3);
        }
        // The newest entries survive a full cache, one oldest at a time.
        let calls = Cell::new(0);
        for id in ["c", "d", "e"] {
            c.get_or_unwrap(id, b"w", counting(&calls, 9)).unwrap();
        }
        assert_eq!(calls.get(), 0, "the three newest entries were kept");
        c.get_or_unwrap("a", b"w", counting(&calls, 9)).unwrap();
        assert_eq!(calls.get(), 1, "the oldest was evicted");
        c.get_or_unwrap("e", b"w", counting(&calls, 9)).unwrap();
        assert_eq!(calls.get(), 1, "evicting for a made room by one entry only");
        c.get_or_unwrap("d", b"w", counting(&calls, 9)).unwrap();
        assert_eq!(calls.get(), 1, "d, the oldest left, was kept too");
        c.get_or_unwrap("c", b"w", counting(&calls, 9)).unwrap();
        assert_eq!(calls.get(), 2, "c, the oldest, was the one evicted");
        c.forget(|k| k == "e");
        let calls = Cell::new(0);
        c.get_or_unwrap("e", b"w", counting(&calls, 7)).unwrap();
        assert_eq!(calls.get(), 1, "a forgotten entry is unwrapped again");
    }
}
