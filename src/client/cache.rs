//! A data-key cache, as the AWS Encryption SDK's caching materials
//! manager: many small messages share one data key instead of costing one
//! GenerateDataKey (or Decrypt) call each, within limits on the key's age,
//! the messages and the bytes it encrypts.
//!
//! Sharing a data key is safe in the envelope format because each message
//! derives its own segment key and nonces from the data key and a fresh
//! random 8-byte nonce prefix; the message limit (at most 2^20) keeps the
//! chance of two messages drawing the same prefix below 2^-25.
//!
//! The cost is the one the SDK documents: within `max_age`, a revoked
//! permission or a disabled key does not stop the holder of a cached key.
//! Cached keys are zeroized when evicted, expired or when the cache drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crypto::secret::SecretBytes;

/// The largest `max_messages` a cache accepts.
pub const MAX_MESSAGES_PER_KEY: u64 = 1 << 20;

/// The cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// A data key is not used after this long.
    pub max_age: Duration,
    /// Messages one data key may encrypt (1 to 2^20).
    pub max_messages: u64,
    /// Plaintext bytes one data key may encrypt.
    pub max_bytes: u64,
    /// Entries kept; the oldest goes first.
    pub capacity: usize,
}

impl Default for CacheLimits {
    /// Five minutes, 1000 messages, 1 GiB, 100 entries.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_messages: 1000,
            max_bytes: 1 << 30,
            capacity: 100,
        }
    }
}

/// A data key for encryption: its plaintext, its wrapped form and the
/// CMK it was made under.
#[derive(Debug, Clone)]
pub struct Materials {
    /// The data key (zeroized when the last holder drops it).
    pub data_key: Arc<SecretBytes>,
    /// The CMK's ARN.
    pub key_arn: String,
    /// GenerateDataKey's ciphertext blob.
    pub wrapped_key: Vec<u8>,
}

struct EncryptEntry {
    materials: Materials,
    created: Instant,
    messages: u64,
    bytes: u64,
}

struct DecryptEntry {
    data_key: Arc<SecretBytes>,
    created: Instant,
}

#[derive(Default)]
struct Inner {
    encrypt: HashMap<(String, Vec<u8>), EncryptEntry>,
    decrypt: HashMap<(String, Vec<u8>, Vec<u8>), DecryptEntry>,
    hits: u64,
    misses: u64,
}

/// A bounded, thread-safe data-key cache; share it with an `Arc`.
pub struct DataKeyCache {
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why limits were refused.
#[derive(Debug, thiserror::Error)]
#[error("cache limits: {0}")]
pub struct LimitsError(&'static str);

impl DataKeyCache {
    /// A cache with these limits.
    pub fn new(limits: CacheLimits) -> Result<Self, LimitsError> {
        if !(1..=MAX_MESSAGES_PER_KEY).contains(&limits.max_messages) {
            return Err(LimitsError("max_messages must be 1 to 2^20"));
        }
        if limits.capacity == 0 || limits.max_age.is_zero() {
            return Err(LimitsError("capacity and max_age must be positive"));
        }
        Ok(Self {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The limits.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps inconsistent (each
        // update is one insert or remove), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cached materials for encrypting `size` more bytes under `key_id`
    /// with `context` (its canonical bytes), if an entry has room left;
    /// the use is counted. An entry that is too old or used up is dropped.
    pub fn encryption_materials(
        &self,
        key_id: &str,
        context: &[u8],
        size: u64,
    ) -> Option<Materials> {
        let mut g = self.lock();
        let k = (key_id.to_owned(), context.to_vec());
        let usable = match g.encrypt.get_mut(&k) {
            Some(e)
                if e.created.elapsed() < self.limits.max_age
                    && e.messages < self.limits.max_messages
                    && e.bytes.saturating_add(size) <= self.limits.max_bytes =>
            {
                e.messages += 1;
                e.bytes += size;
                Some(e.materials.clone())
            }
            Some(_) => {
                g.encrypt.remove(&k);
                None
            }
            None => None,
        };
        if usable.is_some() {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        usable
    }

    /// Keeps fresh materials, already used for one message of `size` bytes.
    /// A message larger than `max_bytes` is not cached.
    pub fn put_encryption_materials(&self, key_id: &str, context: &[u8], m: Materials, size: u64) {
        if size > self.limits.max_bytes || self.limits.max_messages < 2 {
            return;
        }
        let mut g = self.lock();
        if g.encrypt.len() + g.decrypt.len() >= self.limits.capacity {
            Self::evict_oldest(&mut g);
        }
        g.encrypt.insert(
            (key_id.to_owned(), context.to_vec()),
            EncryptEntry {
                materials: m,
                created: Instant::now(),
                messages: 1,
                bytes: size,
            },
        );
    }

    /// The cached plaintext of a wrapped data key, for an envelope header
    /// naming `key_arn` and `context` exactly as when it was cached.
    pub fn decryption_key(
        &self,
        key_arn: &str,
        wrapped_key: &[u8],
        context: &[u8],
    ) -> Option<Arc<SecretBytes>> {
        let mut g = self.lock();
        let k = (key_arn.to_owned(), wrapped_key.to_vec(), context.to_vec());
        let found = match g.decrypt.get(&k) {
            Some(e) if e.created.elapsed() < self.limits.max_age => Some(e.data_key.clone()),
            Some(_) => {
                g.decrypt.remove(&k);
                None
            }
            None => None,
        };
        if found.is_some() {
            g.hits += 1;
        } else {
            g.misses += 1;
        }
        found
    }

    /// Keeps an unwrapped data key that KMS Decrypt returned.
    pub fn put_decryption_key(
        &self,
        key_arn: &str,
        wrapped_key: &[u8],
        context: &[u8],
        data_key: Arc<SecretBytes>,
    ) {
        let mut g = self.lock();
        if g.encrypt.len() + g.decrypt.len() >= self.limits.capacity {
            Self::evict_oldest(&mut g);
        }
        g.decrypt.insert(
            (key_arn.to_owned(), wrapped_key.to_vec(), context.to_vec()),
            DecryptEntry {
                data_key,
                created: Instant::now(),
            },
        );
    }

    fn evict_oldest(g: &mut Inner) {
        let oldest_enc = g
            .encrypt
            .iter()
            .min_by_key(|(_, e)| e.created)
            .map(|(k, e)| (k.clone(), e.created));
        let oldest_dec = g
            .decrypt
            .iter()
            .min_by_key(|(_, e)| e.created)
            .map(|(k, e)| (k.clone(), e.created));
        match (oldest_enc, oldest_dec) {
            (Some((k, a)), Some((_, b))) if a <= b => {
                g.encrypt.remove(&k);
            }
            (_, Some((k, _))) => {
                g.decrypt.remove(&k);
            }
            (Some((k, _)), None) => {
                g.encrypt.remove(&k);
            }
            (None, None) => {}
        }
    }

    /// Entries dropped now, their keys zeroized as their last holder lets go.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.encrypt.clear();
        g.decrypt.clear();
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        let g = self.lock();
        (g.hits, g.misses)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.encrypt.len() + g.decrypt.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn materials(tag: u8) -> Materials {
        Materials {
            data_key: Arc::new(SecretBytes::new(vec![tag; 32])),
            key_arn: "arn".into(),
            wrapped_key: vec![tag],
        }
    }

    fn cache(max_messages: u64, max_bytes: u64, capacity: usize) -> DataKeyCache {
        DataKeyCache::new(CacheLimits {
            max_age: Duration::from_secs(60),
            max_messages,
            max_bytes,
            capacity,
        })
        .unwrap()
    }

    #[test]
    fn a_key_serves_up_to_its_message_limit() {
        let c = cache(3, 1 << 20, 10);
        assert!(c.encryption_materials("k", b"ctx", 10).is_none());
        c.put_encryption_materials("k", b"ctx", materials(1), 10);
        assert_eq!(
            c.encryption_materials("k", b"ctx", 10).unwrap().wrapped_key,
            [1]
        );
        assert_eq!(
            c.encryption_materials("k", b"ctx", 10).unwrap().wrapped_key,
            [1]
        );
        // Three messages done: the fourth needs a new key.
        assert!(c.encryption_materials("k", b"ctx", 10).is_none());
        assert!(c.is_empty());
        assert_eq!(c.stats(), (2, 2));
    }

    #[test]
    fn the_byte_limit_and_the_context_are_respected() {
        let c = cache(100, 100, 10);
        c.put_encryption_materials("k", b"a", materials(1), 60);
        assert!(
            c.encryption_materials("k", b"b", 1).is_none(),
            "other context"
        );
        assert!(
            c.encryption_materials("other", b"a", 1).is_none(),
            "other key"
        );
        assert!(
            c.encryption_materials("k", b"a", 41).is_none(),
            "60 + 41 > 100"
        );
        // A message larger than the limit is never cached.
        let held = c.len();
        c.put_encryption_materials("k2", b"a", materials(2), 101);
        assert_eq!(c.len(), held);
        c.put_encryption_materials("k", b"a", materials(2), 101);
        assert!(c.encryption_materials("k", b"a", 1).is_none());
    }

    #[test]
    fn entries_expire() {
        let c = DataKeyCache::new(CacheLimits {
            max_age: Duration::from_millis(300),
            ..CacheLimits::default()
        })
        .unwrap();
        c.put_encryption_materials("k", b"", materials(1), 1);
        c.put_decryption_key("arn", b"w", b"", Arc::new(SecretBytes::new(vec![1; 32])));
        assert!(c.decryption_key("arn", b"w", b"").is_some());
        std::thread::sleep(Duration::from_millis(350));
        assert!(c.encryption_materials("k", b"", 1).is_none());
        assert!(c.decryption_key("arn", b"w", b"").is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn decryption_keys_match_arn_wrapped_key_and_context() {
        let c = cache(10, 1 << 20, 10);
        c.put_decryption_key("arn", b"w", b"ctx", Arc::new(SecretBytes::new(vec![7; 32])));
        assert!(c.decryption_key("arn", b"w", b"other").is_none());
        assert!(c.decryption_key("arn2", b"w", b"ctx").is_none());
        assert!(c.decryption_key("arn", b"x", b"ctx").is_none());
        assert_eq!(
            c.decryption_key("arn", b"w", b"ctx")
                .unwrap()
                .expose_secret(),
            &[7; 32]
        );
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let c = cache(10, 1 << 20, 2);
        c.put_encryption_materials("a", b"", materials(1), 1);
        std::thread::sleep(Duration::from_millis(2));
        c.put_encryption_materials("b", b"", materials(2), 1);
        std::thread::sleep(Duration::from_millis(2));
        c.put_encryption_materials("c", b"", materials(3), 1);
        assert_eq!(c.len(), 2);
        assert!(c.encryption_materials("a", b"", 1).is_none());
        assert!(c.encryption_materials("c", b"", 1).is_some());
    }

    #[test]
    fn limits_are_checked() {
        for bad in [
            CacheLimits {
                max_messages: 0,
                ..CacheLimits::default()
            },
            CacheLimits {
                max_messages: MAX_MESSAGES_PER_KEY + 1,
                ..CacheLimits::default()
            },
            CacheLimits {
                capacity: 0,
                ..CacheLimits::default()
            },
        ] {
            assert!(DataKeyCache::new(bad).is_err());
        }
    }
}
