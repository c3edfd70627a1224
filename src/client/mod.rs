//! The Rust client of kmsd.
//!
//! - [`Client`]: a typed async client over the generated stubs, with
//!   credentials (`authorization: Bearer <access-key-id>:<secret>`, and the
//!   session token of temporary credentials), retries with backoff for
//!   throttling and an unreachable daemon ([`RetryPolicy`]), and failures as
//!   [`ApiError`] whose [`ErrorCode`] is the AWS error name as an enum.
//! - [`Envelope`]: envelope encryption of byte slices and streams, with an
//!   optional [`DataKeyCache`].
//! - The raw stubs ([`KmsClient`], [`IdentityClient`], [`AuditClient`]) for
//!   everything else.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use zeroize::Zeroizing;

mod cache;
mod envelope;
mod error;
mod retry;
mod typed;

pub use cache::{CacheLimits, DataKeyCache, LimitsError, MAX_MESSAGES_PER_KEY, Materials};
pub use envelope::{Envelope, EnvelopeError, decrypt_stream, encrypt_stream};
pub use error::{ApiError, ErrorCode};
pub use retry::RetryPolicy;
pub use typed::{Client, DataKey, Decrypted};

use crate::pb::audit_service_client::AuditServiceClient;
use crate::pb::identity_service_client::IdentityServiceClient;
use crate::pb::key_management_service_client::KeyManagementServiceClient;

/// Adds the bearer credentials to each request.
#[derive(Clone)]
pub struct BearerAuth {
    header: MetadataValue<Ascii>,
    session_token: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth([redacted])")
    }
}

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Credentials with characters a header cannot carry.
    #[error("the access key id or secret contains characters not allowed in a header")]
    BadCredentials,
    /// The endpoint is not a valid URI.
    #[error("invalid endpoint '{0}'")]
    BadEndpoint(String),
    /// An `https://` endpoint without a CA certificate to trust.
    #[error(
        "{0} uses TLS: give the CA certificate to trust (ca_file in the profile, --ca-file or KMS_CA_FILE)"
    )]
    NoCa(String),
    /// The CA certificate file could not be read.
    #[error("cannot read the CA certificate {0}")]
    Ca(String),
    /// The credentials file or profile could not be read.
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// The connection failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

impl BearerAuth {
    /// Credentials from an access key pair and an optional session token.
    pub fn new(
        access_key_id: &str,
        secret: &str,
        session_token: Option<&str>,
    ) -> Result<Self, ClientError> {
        let value = Zeroizing::new(format!("Bearer {access_key_id}:{secret}"));
        let mut header: MetadataValue<Ascii> =
            value.parse().map_err(|_| ClientError::BadCredentials)?;
        header.set_sensitive(true);
        let session_token = match session_token {
            Some(t) => {
                let mut v: MetadataValue<Ascii> =
                    t.parse().map_err(|_| ClientError::BadCredentials)?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            header,
            session_token,
        })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut()
            .insert("authorization", self.header.clone());
        if let Some(t) = &self.session_token {
            req.metadata_mut().insert("x-kms-session-token", t.clone());
        }
        Ok(req)
    }
}

/// A KeyManagementService client with credentials.
pub type KmsClient = KeyManagementServiceClient<InterceptedService<Channel, BearerAuth>>;
/// An IdentityService client with credentials.
pub type IdentityClient = IdentityServiceClient<InterceptedService<Channel, BearerAuth>>;
/// An AuditService client with credentials.
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, BearerAuth>>;

/// Connects to a plaintext endpoint (e.g. `http://127.0.0.1:7878`).
pub async fn connect(endpoint: &str) -> Result<Channel, ClientError> {
    connect_with(endpoint, None).await
}

/// Whether `endpoint` asks for TLS (its scheme is `https`, in any case, as
/// URI schemes are case-insensitive).
pub fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// The endpoint, with TLS trusting `ca_pem` when it is `https://`.
fn endpoint(endpoint: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, ClientError> {
    let e = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|_| ClientError::BadEndpoint(endpoint.to_owned()))?
        .tcp_nodelay(true);
    match (is_https(endpoint), ca_pem) {
        (true, Some(ca)) => e
            .tls_config(crate::tls::client_config(ca))
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            }),
        (true, None) => Err(ClientError::NoCa(endpoint.to_owned())),
        (false, _) => Ok(e),
    }
}

/// Connects to `endpoint`; an `https://` endpoint needs `ca_pem`, the
/// PEM certificate to trust (kmsd dev --tls writes it to
/// `<data dir>/tls/cert.pem`).
pub async fn connect_with(endpoint: &str, ca_pem: Option<&[u8]>) -> Result<Channel, ClientError> {
    self::endpoint(endpoint, ca_pem)?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// A channel that connects on first use (and reconnects after a failure),
/// so a client can be made before the daemon is up.
pub fn connect_lazy(endpoint: &str) -> Result<Channel, ClientError> {
    connect_lazy_with(endpoint, None)
}

/// [`connect_lazy`] for an `https://` endpoint too, trusting `ca_pem`.
pub fn connect_lazy_with(endpoint: &str, ca_pem: Option<&[u8]>) -> Result<Channel, ClientError> {
    Ok(self::endpoint(endpoint, ca_pem)?.connect_lazy())
}

/// Reads a CA certificate file.
pub fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Ca(format!("{}: {e}", path.display())))
}

/// Both clients over one channel.
pub fn clients(channel: Channel, auth: BearerAuth) -> (KmsClient, IdentityClient) {
    (
        KeyManagementServiceClient::with_interceptor(channel.clone(), auth.clone()),
        IdentityServiceClient::with_interceptor(channel, auth),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_recognised_in_any_case() {
        for tls in [
            "https://127.0.0.1:7878",
            "HTTPS://kms.internal",
            "Https://x",
        ] {
            assert!(is_https(tls), "{tls}");
        }
        for plain in ["http://127.0.0.1:7878", "https:/x", "", "httpsx://", "é"] {
            assert!(!is_https(plain), "{plain}");
        }
    }
}
