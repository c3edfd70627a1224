//! TLS (rustls, through tonic) for the daemon and its clients.
//!
//! The daemon serves TLS with a certificate and key in PEM files; `kmsd dev
//! --tls` makes a self-signed pair for `localhost`, `127.0.0.1` and `::1`
//! once, in `<data dir>/tls/` (mode 0700), and clients trust that
//! certificate as their CA (the `ca_file` of a profile, `--ca-file` or
//! `KMS_CA_FILE` for kmsctl).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use zeroize::Zeroizing;

/// Why TLS material could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The dev private key's file is open to group or others.
    #[error("{}: mode is {mode:o}; the private key must not be open to group or others (chmod 600)", .path.display())]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// rcgen could not make a certificate.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// The file is not PEM of the expected kind.
    #[error("{0} holds no PEM certificate or key")]
    NotPem(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A server's certificate chain and private key, in PEM. The key is
/// zeroized on drop and never printed.
pub struct ServerTls {
    cert_pem: Vec<u8>,
    key_pem: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl Clone for ServerTls {
    fn clone(&self) -> Self {
        Self {
            cert_pem: self.cert_pem.clone(),
            key_pem: Zeroizing::new(self.key_pem.to_vec()),
        }
    }
}

impl ServerTls {
    /// Reads a certificate (chain) and key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_pem = fs::read(cert).map_err(io(cert))?;
        let key_pem = Zeroizing::new(fs::read(key).map_err(io(key))?);
        if !contains(&cert_pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(TlsError::NotPem(cert.to_owned()));
        }
        if !contains(&key_pem, b"PRIVATE KEY-----") {
            return Err(TlsError::NotPem(key.to_owned()));
        }
        Ok(Self { cert_pem, key_pem })
    }

    /// A fresh self-signed certificate for `names` (DNS names or IP
    /// addresses), with a new P-256 key from the OS RNG.
    pub fn self_signed(names: &[&str]) -> Result<Self, TlsError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        Ok(Self {
            cert_pem: ck.cert.pem().into_bytes(),
            key_pem: Zeroizing::new(ck.signing_key.serialize_pem().into_bytes()),
        })
    }

    /// The development pair in `dir` (`cert.pem`, `key.pem` mode 0600),
    /// made on first use for `localhost`, `127.0.0.1` and `::1`, in a
    /// directory made mode 0700 (it holds the private key).
    pub fn dev(dir: &Path) -> Result<Self, TlsError> {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        // Earlier kmsd versions made it 0755; only its owner needs it. Not
        // through a symbolic link (whatever it points at may be shared),
        // and a directory we may not change is left as it is: `key.pem`
        // is checked on its own below.
        crate::private_file::tighten_and_warn(dir, 0o700, "the TLS directory");
        if cert.exists() && key.exists() {
            // Made 0600 by us: a wider mode means someone else may have read it.
            if let Some(mode) = crate::private_file::too_open(&key).map_err(io(&key))? {
                return Err(TlsError::TooOpen { path: key, mode });
            }
            return Self::load(&cert, &key);
        }
        let tls = Self::self_signed(&["localhost", "127.0.0.1", "::1"])?;
        write_private(&key, &tls.key_pem)?;
        write_private(&cert, &tls.cert_pem)?;
        Ok(tls)
    }

    /// The certificate, PEM: what clients trust as their CA.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// tonic's server configuration.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &*self.key_pem))
    }
}

/// A client configuration that trusts `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Writes a file atomically with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::private_file::write_atomic(path, bytes).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pair_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("tls");
        let a = ServerTls::dev(&tls_dir).unwrap();
        let b = ServerTls::dev(&tls_dir).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        // It names ::1 (an IP address SAN: tag 0x87, 16 bytes), so clients
        // verify it over IPv6 loopback too, even on hosts without one.
        let body: String = String::from_utf8_lossy(a.cert_pem())
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = data_encoding::BASE64.decode(body.as_bytes()).unwrap();
        let mut ipv6_loopback = vec![0x87, 0x10];
        ipv6_loopback.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        assert!(contains(&der, &ipv6_loopback), "no ::1 in the certificate");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(tls_dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Opened up, the key is refused rather than served.
        fs::set_permissions(tls_dir.join("key.pem"), fs::Permissions::from_mode(0o640)).unwrap();
        let refused = ServerTls::dev(&tls_dir).unwrap_err();
        assert!(
            matches!(refused, TlsError::TooOpen { mode: 0o640, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        fs::set_permissions(tls_dir.join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
        let dir_mode = fs::metadata(&tls_dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700, "the directory holding the key");
        assert!(!format!("{a:?}").contains("PRIVATE"));
        // An existing pair in a directory an older kmsd made 0755: the
        // directory is tightened when the pair is reused.
        fs::set_permissions(&tls_dir, fs::Permissions::from_mode(0o755)).unwrap();
        let c = ServerTls::dev(&tls_dir).unwrap();
        assert_eq!(c.cert_pem(), a.cert_pem(), "the pair was reused");
        let dir_mode = fs::metadata(&tls_dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700, "tightened on reuse");
        // Reached through a symbolic link, it is left as it is.
        let link = dir.path().join("tls-link");
        std::os::unix::fs::symlink(&tls_dir, &link).unwrap();
        fs::set_permissions(&tls_dir, fs::Permissions::from_mode(0o755)).unwrap();
        ServerTls::dev(&link).unwrap();
        let dir_mode = fs::metadata(&tls_dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o755, "not changed through a link");
    }

    #[test]
    fn non_pem_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c"), dir.path().join("k"));
        fs::write(&c, "not a cert").unwrap();
        fs::write(&k, "not a key").unwrap();
        assert!(matches!(ServerTls::load(&c, &k), Err(TlsError::NotPem(_))));
        // A good certificate with a bad key: the key is named.
        let good = ServerTls::self_signed(&["localhost"]).unwrap();
        fs::write(&c, good.cert_pem()).unwrap();
        assert!(matches!(ServerTls::load(&c, &k), Err(TlsError::NotPem(p)) if p == k));
    }
}
