//! The root key: 32 random bytes in a file of mode 0600 under the data
//! directory. Everything at rest that is secret is wrapped under keys derived
//! from it; without it the database is useless.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Error, Secret};

/// The daemon's root key, held only in zeroizing memory.
#[derive(Debug)]
pub struct RootKey(Secret<32>);

impl RootKey {
    /// Reads the root key from `path`, refusing a file that others can read
    /// or that is not exactly 32 bytes.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let err = |reason: String| Error::RootKeyFile {
            path: path.to_owned(),
            reason,
        };
        if let Some(mode) = crate::private_file::too_open(path).map_err(|e| err(e.to_string()))? {
            return Err(err(format!(
                "mode is {mode:o}; it must not be open to group or others (chmod 600)"
            )));
        }
        let bytes = zeroize::Zeroizing::new(fs::read(path).map_err(|e| err(e.to_string()))?);
        Secret::from_slice(&bytes)
            .map(Self)
            .ok_or_else(|| err(format!("must hold exactly 32 bytes, holds {}", bytes.len())))
    }

    /// Creates a new random root key at `path` (mode 0600, durably written).
    /// Fails if the file already exists.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let err = |e: std::io::Error| Error::RootKeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let key = Secret::<32>::random()?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        f.write_all(key.expose_secret()).map_err(err)?;
        f.sync_all().map_err(err)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(Self(key))
    }

    /// Loads the key at `path`, creating it first if there is none.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), Error> {
        if path.exists() {
            Ok((Self::load(path)?, false))
        } else {
            Ok((Self::create(path)?, true))
        }
    }

    /// A root key from given bytes (tests and tools).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut s = Secret::zero();
        *s.expose_secret_mut() = bytes;
        Self(s)
    }

    pub(super) fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl RootKey {
    /// A keyed, deterministic 32-byte tag of `data` under a key derived from
    /// the root key for `label` (HKDF-SHA256 used as a PRF). Used where the
    /// daemon must later recognise a value it issued, such as a grant token,
    /// without storing it.
    pub fn tag(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        *super::hkdf32(None, self.expose_secret(), &[label, data]).expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_with_mode_0600_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        let k = RootKey::create(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k2 = RootKey::load(&p).unwrap();
        assert_eq!(k.expose_secret(), k2.expose_secret());
        assert!(RootKey::create(&p).is_err(), "never overwrites a root key");
    }

    #[test]
    fn refuses_world_readable_or_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("root.key");
        RootKey::create(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(RootKey::load(&p).is_err());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, [1u8; 31]).unwrap();
        assert!(RootKey::load(&p).is_err());
    }
}
