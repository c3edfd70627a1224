//! Cryptography: the root key, wrapping of key material and credentials at
//! rest, and the version-1 ciphertext blob.
//!
//! This module owns every use of AES-GCM and HKDF in the daemon. It does no
//! I/O beyond reading and creating the root key file, and it never logs.
//! Failures are deliberately coarse so that they give no oracle.

pub mod blob;
pub mod context;
pub mod rng;
pub mod root;
pub mod secret;
pub mod unwrapped;
pub mod wrap;

pub use blob::{BLOB_HEADER_LEN, BlobHeader};
pub use context::EncryptionContext;
pub use root::RootKey;
pub use secret::{KeyMaterial, Secret};

/// HKDF `info` labels. Changing one makes every existing blob undecryptable.
pub mod labels {
    /// Derives the key that wraps one version of a CMK's material.
    pub const WRAP_V1: &[u8] = b"kmsd wrap v1";
    /// Derives the per-message key of a version-1 ciphertext blob.
    pub const ENCRYPT_V1: &[u8] = b"kmsd encrypt v1";
    /// Derives the key that wraps a stored credential secret.
    pub const SECRET_V1: &[u8] = b"kmsd secret v1";
    /// Derives the key that wraps a user's TOTP secret.
    pub const MFA_V1: &[u8] = b"kmsd mfa v1";
    /// Derives the verifier in a grant token.
    pub const GRANT_TOKEN_V1: &[u8] = b"kmsd grant token v1";
}

/// Why a cryptographic operation failed. Deliberately says no more.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a well-formed blob, was tampered with, was made
    /// under another key or context, or was truncated.
    #[error(
        "the ciphertext is invalid, was altered, or does not match the key or encryption context"
    )]
    InvalidCiphertext,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Rng,
    /// The root key file is missing, unreadable, of the wrong size, or readable by others.
    #[error("root key file {path}: {reason}")]
    RootKeyFile {
        /// Path of the file.
        path: std::path::PathBuf,
        /// What is wrong with it (never its contents).
        reason: String,
    },
}

/// Derives 32 bytes with HKDF-SHA256.
fn hkdf32(salt: Option<&[u8]>, ikm: &[u8], info: &[&[u8]]) -> Secret<32> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(salt, ikm);
    let mut out = Secret::<32>::zero();
    // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit, so expand cannot fail.
    hk.expand_multi_info(info, out.expose_secret_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5869, test case 1.
    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0b_u8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf32(Some(&salt), &ikm, &[&info]);
        let expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf";
        assert_eq!(hex(okm.expose_secret()), expected);
    }

    /// RFC 5869, test case 3 (no salt, empty info), first 32 bytes.
    #[test]
    fn hkdf_matches_rfc5869_case_3() {
        let ikm = [0x0b_u8; 22];
        let okm = hkdf32(None, &ikm, &[]);
        let expected = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d";
        assert_eq!(hex(okm.expose_secret()), expected);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
