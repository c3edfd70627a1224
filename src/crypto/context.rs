//! The encryption context: non-secret key/value pairs bound to a ciphertext
//! as additional authenticated data, and their canonical encoding.

use std::collections::{BTreeMap, HashMap};

/// An encryption context, kept sorted by key so that its encoding does not
/// depend on the order in which a client sent the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the canonical encoding: for each entry in key order, the key
    /// and then the value, each as a u32 big-endian length and UTF-8 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            for s in [k, v] {
                // Lengths are bounded by the API's validation far below u32::MAX.
                out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// The canonical encoding as a new vector.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }
}

impl From<HashMap<String, String>> for EncryptionContext {
    fn from(m: HashMap<String, String>) -> Self {
        Self(m.into_iter().collect())
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(m: BTreeMap<String, String>) -> Self {
        Self(m)
    }
}

impl<const N: usize> From<[(&str, &str); N]> for EncryptionContext {
    fn from(a: [(&str, &str); N]) -> Self {
        Self(
            a.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_sorted_and_length_prefixed() {
        let a = EncryptionContext::from([("b", "2"), ("a", "1")]);
        let b = EncryptionContext::from([("a", "1"), ("b", "2")]);
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
        assert_eq!(
            a.canonical_bytes(),
            [
                &[0, 0, 0, 1][..],
                b"a",
                &[0, 0, 0, 1],
                b"1",
                &[0, 0, 0, 1],
                b"b",
                &[0, 0, 0, 1],
                b"2"
            ]
            .concat()
        );
    }

    #[test]
    fn no_ambiguity_between_splits() {
        let a = EncryptionContext::from([("ab", "c")]);
        let b = EncryptionContext::from([("a", "bc")]);
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }
}
