//! Wrapping of secrets at rest under keys derived from the root key.
//!
//! A wrapped secret is `nonce (12) || AES-256-GCM ciphertext || tag (16)`,
//! under `HKDF-SHA256(root key, info = label || binding)`, with `binding`
//! also as AAD, so a wrapped value cannot be moved to another row.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use uuid::Uuid;

use super::{Error, KeyMaterial, RootKey, Secret, hkdf32, labels, rng, secret::SecretBytes};

const NONCE_LEN: usize = 12;

fn cipher(root: &RootKey, label: &[u8], binding: &[u8]) -> Aes256Gcm {
    let k = hkdf32(None, root.expose_secret(), &[label, binding]);
    Aes256Gcm::new(k.expose_secret().into())
}

/// Wraps `secret` for storage.
pub fn wrap(root: &RootKey, label: &[u8], binding: &[u8], secret: &[u8]) -> Result<Vec<u8>, Error> {
    let nonce = rng::array::<NONCE_LEN>()?;
    let ct = cipher(root, label, binding)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: binding,
            },
        )
        .map_err(|_| Error::InvalidCiphertext)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Unwraps a value made by [`wrap`] with the same label and binding.
pub fn unwrap(
    root: &RootKey,
    label: &[u8],
    binding: &[u8],
    wrapped: &[u8],
) -> Result<SecretBytes, Error> {
    let (nonce, ct) = wrapped
        .split_at_checked(NONCE_LEN)
        .ok_or(Error::InvalidCiphertext)?;
    cipher(root, label, binding)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: binding,
            },
        )
        .map(SecretBytes::new)
        .map_err(|_| Error::InvalidCiphertext)
}

fn material_binding(key_id: &Uuid, version: u32) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..16].copy_from_slice(key_id.as_bytes());
    b[16..].copy_from_slice(&version.to_be_bytes());
    b
}

/// Wraps one version of a CMK's material, bound to its key id and version.
pub fn wrap_key_material(
    root: &RootKey,
    key_id: &Uuid,
    version: u32,
    material: &KeyMaterial,
) -> Result<Vec<u8>, Error> {
    wrap(
        root,
        labels::WRAP_V1,
        &material_binding(key_id, version),
        material.expose_secret(),
    )
}

/// Unwraps one version of a CMK's material.
pub fn unwrap_key_material(
    root: &RootKey,
    key_id: &Uuid,
    version: u32,
    wrapped: &[u8],
) -> Result<KeyMaterial, Error> {
    let bytes = unwrap(
        root,
        labels::WRAP_V1,
        &material_binding(key_id, version),
        wrapped,
    )?;
    Secret::from_slice(bytes.expose_secret()).ok_or(Error::InvalidCiphertext)
}

/// Wraps a credential secret, bound to its access key id.
pub fn wrap_credential(
    root: &RootKey,
    access_key_id: &str,
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    wrap(root, labels::SECRET_V1, access_key_id.as_bytes(), secret)
}

/// Unwraps a credential secret.
pub fn unwrap_credential(
    root: &RootKey,
    access_key_id: &str,
    wrapped: &[u8],
) -> Result<SecretBytes, Error> {
    unwrap(root, labels::SECRET_V1, access_key_id.as_bytes(), wrapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_round_trips_and_is_bound_to_id_and_version() {
        let root = RootKey::from_bytes([7; 32]);
        let id = Uuid::new_v4();
        let m = KeyMaterial::random().unwrap();
        let w = wrap_key_material(&root, &id, 1, &m).unwrap();
        assert_eq!(w.len(), 12 + 32 + 16);
        assert!(!w.windows(32).any(|win| win == m.expose_secret()));
        let back = unwrap_key_material(&root, &id, 1, &w).unwrap();
        assert_eq!(back.expose_secret(), m.expose_secret());
        assert!(unwrap_key_material(&root, &id, 2, &w).is_err());
        assert!(unwrap_key_material(&root, &Uuid::new_v4(), 1, &w).is_err());
        assert!(unwrap_key_material(&RootKey::from_bytes([8; 32]), &id, 1, &w).is_err());
        assert!(unwrap_key_material(&root, &id, 1, &w[..10]).is_err());
    }

    #[test]
    fn credential_round_trips() {
        let root = RootKey::from_bytes([1; 32]);
        let w = wrap_credential(&root, "AKIAEXAMPLE", b"secret").unwrap();
        assert_eq!(
            unwrap_credential(&root, "AKIAEXAMPLE", &w)
                .unwrap()
                .expose_secret(),
            b"secret"
        );
        assert!(unwrap_credential(&root, "AKIAOTHER", &w).is_err());
    }
}
