//! A thin client over the generated stubs: connects to an endpoint and
//! attaches `authorization: Bearer <access-key-id>:<secret>` to every call.
//! (The full client, with retries and envelope helpers, is kmsctl's issue.)

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use zeroize::Zeroizing;

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

/// Connects to `endpoint` (e.g. `http://127.0.0.1:7878`).
pub async fn connect(endpoint: &str) -> Result<Channel, ClientError> {
    Endpoint::from_shared(endpoint.to_owned())
        .map_err(|_| ClientError::BadEndpoint(endpoint.to_owned()))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// Both clients over one channel.
pub fn clients(channel: Channel, auth: BearerAuth) -> (KmsClient, IdentityClient) {
    (
        KeyManagementServiceClient::with_interceptor(channel.clone(), auth.clone()),
        IdentityServiceClient::with_interceptor(channel, auth),
    )
}

/// Why an envelope operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// KMS refused GenerateDataKey or Decrypt.
    #[error("{}", kms_message(.0))]
    Kms(#[from] tonic::Status),
    /// The envelope is malformed or was altered.
    #[error(transparent)]
    Format(#[from] crate::envelope::Error),
    /// The envelope's context lacks an entry the caller required.
    #[error("the envelope's encryption context does not contain {0}")]
    ContextMismatch(String),
}

fn kms_message(s: &tonic::Status) -> String {
    let name =
        crate::server::grpc::status::error_name(s).unwrap_or_else(|| format!("{:?}", s.code()));
    format!("{name}: {}", s.message())
}

/// Encrypts a stream of any size in the envelope format: one
/// GenerateDataKey call, then local AES-256-GCM in segments. The data key
/// is zeroized when this returns.
pub async fn encrypt_stream<R, W>(
    kms: &mut KmsClient,
    key_id: &str,
    context: std::collections::HashMap<String, String>,
    input: &mut R,
    output: &mut W,
    segment_size: u32,
) -> Result<u64, EnvelopeError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let dk = kms
        .generate_data_key(crate::pb::GenerateDataKeyRequest {
            key_id: key_id.to_owned(),
            key_spec: Some(crate::pb::DataKeySpec::Aes256 as i32),
            encryption_context: context.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let data_key = crate::crypto::secret::SecretBytes::new(dk.plaintext);
    Ok(crate::envelope::encrypt(
        input,
        output,
        &data_key,
        &dk.key_id,
        dk.ciphertext_blob,
        context.into(),
        segment_size,
    )
    .await?)
}

/// Decrypts an envelope: KMS Decrypt unwraps its data key (under the
/// context in its header, which must contain every `expected` pair), the
/// key commitment is checked, then each segment is authenticated before it
/// is written.
pub async fn decrypt_stream<R, W>(
    kms: &mut KmsClient,
    expected: &std::collections::HashMap<String, String>,
    input: &mut R,
    output: &mut W,
) -> Result<u64, EnvelopeError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut kms = kms.clone();
    crate::envelope::decrypt(input, output, |header| async move {
        for (k, v) in expected {
            if header.context.entries().get(k) != Some(v) {
                return Err(EnvelopeError::ContextMismatch(format!("{k}={v}")));
            }
        }
        let r = kms
            .decrypt(crate::pb::DecryptRequest {
                ciphertext_blob: header.wrapped_key,
                key_id: Some(header.key_arn),
                encryption_context: header.context.entries().clone().into_iter().collect(),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(crate::crypto::secret::SecretBytes::new(r.plaintext))
    })
    .await
}
