//! Types that hold secrets: no `Clone`, no `Display`, a `Debug` that prints
//! `[redacted]`, zeroized on drop, and readable only through
//! `expose_secret()` so that every use can be found with grep.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// A fixed-size secret, such as a key.
pub struct Secret<const N: usize>(Zeroizing<[u8; N]>);

impl<const N: usize> Secret<N> {
    /// An all-zero secret, to be filled in place.
    pub fn zero() -> Self {
        Self(Zeroizing::new([0u8; N]))
    }

    /// A secret filled from the operating system's RNG.
    pub fn random() -> Result<Self, super::Error> {
        let mut s = Self::zero();
        super::rng::fill(s.expose_secret_mut())?;
        Ok(s)
    }

    /// Copies a slice of exactly `N` bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut s = Self::zero();
        if bytes.len() != N {
            return None;
        }
        s.expose_secret_mut().copy_from_slice(bytes);
        Some(s)
    }

    /// The secret bytes. Every caller is a place where the secret is used.
    pub fn expose_secret(&self) -> &[u8; N] {
        &self.0
    }

    /// The secret bytes, mutably, for filling in place.
    pub fn expose_secret_mut(&mut self) -> &mut [u8; N] {
        &mut self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// One version of a customer master key's material: 32 bytes, only ever in
/// memory, unwrapped from the store when used.
pub type KeyMaterial = Secret<32>;

/// Variable-length secret bytes: plaintexts, data keys, credential secrets.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of the bytes; they are zeroized when this is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `len` bytes from the operating system's RNG.
    pub fn random(len: usize) -> Result<Self, super::Error> {
        let mut v = Zeroizing::new(vec![0u8; len]);
        super::rng::fill(&mut v)?;
        Ok(Self(v))
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Gives the bytes up, for a transport that must send them (the caller
    /// asked for them: a Decrypt or GenerateDataKey response).
    pub fn into_exposed(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }

    /// Number of bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {} bytes])", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(Secret<32>: Clone, fmt::Display);
    static_assertions::assert_not_impl_any!(SecretBytes: Clone, fmt::Display);

    #[test]
    fn debug_never_prints_bytes() {
        let s = Secret::<4>::from_slice(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
        let b = SecretBytes::new(b"canary-plaintext".to_vec());
        let out = format!("{s:?} {b:?}");
        assert!(!out.contains("222") && !out.contains("de") && !out.contains("canary"));
        assert!(out.contains("redacted"));
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
