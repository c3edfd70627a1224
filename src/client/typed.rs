//! [`Client`]: typed calls for the operations applications make, each
//! retried by the client's [`RetryPolicy`], with plaintexts and data keys
//! returned in zeroizing types; and [`Client::kms`]/[`Client::call`] for
//! every other RPC.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;

use tonic::{Response, Status};

use super::error::ApiError;
use super::retry::RetryPolicy;
use super::{AuditClient, BearerAuth, ClientError, Envelope, IdentityClient, KmsClient};
use crate::crypto::secret::SecretBytes;
use crate::pb;

/// A connection to kmsd with credentials; cheap to clone (clones share the
/// HTTP/2 connection).
#[derive(Clone)]
pub struct Client {
    kms: KmsClient,
    iam: IdentityClient,
    audit: AuditClient,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A data key from GenerateDataKey.
#[derive(Debug)]
pub struct DataKey {
    /// The ARN of the CMK it was made under.
    pub key_id: String,
    /// The plaintext data key; zeroized when dropped.
    pub plaintext: SecretBytes,
    /// The data key wrapped under the CMK: store this.
    pub ciphertext_blob: Vec<u8>,
}

/// What Decrypt returned.
#[derive(Debug)]
pub struct Decrypted {
    /// The ARN of the CMK that decrypted it.
    pub key_id: String,
    /// The plaintext; zeroized when dropped.
    pub plaintext: SecretBytes,
}

impl Client {
    /// Connects to `endpoint` with `auth`.
    pub async fn connect(endpoint: &str, auth: BearerAuth) -> Result<Self, ClientError> {
        Ok(Self::over(super::connect(endpoint).await?, auth))
    }

    /// A client whose connection is made on first use and remade after a
    /// failure: with retries, calls ride out a daemon restart.
    pub fn connect_lazy(endpoint: &str, auth: BearerAuth) -> Result<Self, ClientError> {
        Ok(Self::over(super::connect_lazy(endpoint)?, auth))
    }

    /// Connects to `endpoint`, trusting `ca_pem` when it is `https://`.
    pub async fn connect_with(
        endpoint: &str,
        ca_pem: Option<&[u8]>,
        auth: BearerAuth,
    ) -> Result<Self, ClientError> {
        Ok(Self::over(
            super::connect_with(endpoint, ca_pem).await?,
            auth,
        ))
    }

    /// [`Self::connect_lazy`], trusting `ca_pem` when `endpoint` is `https://`.
    pub fn connect_lazy_with(
        endpoint: &str,
        ca_pem: Option<&[u8]>,
        auth: BearerAuth,
    ) -> Result<Self, ClientError> {
        Ok(Self::over(
            super::connect_lazy_with(endpoint, ca_pem)?,
            auth,
        ))
    }

    /// A client over an existing channel.
    pub fn over(channel: tonic::transport::Channel, auth: BearerAuth) -> Self {
        Self {
            kms: pb::key_management_service_client::KeyManagementServiceClient::with_interceptor(
                channel.clone(),
                auth.clone(),
            ),
            iam: pb::identity_service_client::IdentityServiceClient::with_interceptor(
                channel.clone(),
                auth.clone(),
            ),
            audit: pb::audit_service_client::AuditServiceClient::with_interceptor(channel, auth),
            retry: RetryPolicy::default(),
        }
    }

    /// Connects with a profile of a credentials file (the INI `kmsd dev`
    /// writes): its endpoint, access key and session token.
    pub async fn from_profile(path: &Path, profile: &str) -> Result<Self, ClientError> {
        let p = crate::profile::load(path, profile)?;
        let auth = BearerAuth::new(
            &p.access_key_id,
            &p.secret_access_key,
            p.session_token.as_ref().map(|t| t.as_str()),
        )?;
        let ca = p.ca_file.as_deref().map(super::read_ca).transpose()?;
        Ok(Self::over(
            super::connect_with(&p.endpoint, ca.as_deref()).await?,
            auth,
        ))
    }

    /// Uses `retry` for every call made through this client.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The raw KeyManagementService stub.
    pub fn kms(&self) -> KmsClient {
        self.kms.clone()
    }

    /// The raw IdentityService stub.
    pub fn iam(&self) -> IdentityClient {
        self.iam.clone()
    }

    /// The raw AuditService stub.
    pub fn audit(&self) -> AuditClient {
        self.audit.clone()
    }

    /// Envelope encryption through this client (same retry policy).
    pub fn envelope(&self) -> Envelope {
        Envelope::new(self.kms()).with_retry(self.retry)
    }

    /// Any KeyManagementService call, with retries:
    /// `client.call(|mut kms| async move { kms.list_keys(req).await })`.
    /// `f` is called once per attempt, so it must build its request anew.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut(KmsClient) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.retry.run(|| f(self.kms.clone())).await
    }

    /// Creates a symmetric key with a description; returns its metadata.
    pub async fn create_key(&self, description: &str) -> Result<pb::KeyMetadata, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::CreateKeyRequest {
                    description: Some(description.to_owned()),
                    ..Default::default()
                };
                async move { kms.create_key(request).await }
            })
            .await?;
        Ok(r.key_metadata.unwrap_or_default())
    }

    /// Describes a key (id, ARN or alias).
    pub async fn describe_key(&self, key_id: &str) -> Result<pb::KeyMetadata, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::DescribeKeyRequest {
                    key_id: key_id.to_owned(),
                    grant_tokens: vec![],
                };
                async move { kms.describe_key(request).await }
            })
            .await?;
        Ok(r.key_metadata.unwrap_or_default())
    }

    /// Encrypts up to 4096 bytes under a key; returns the ciphertext blob.
    pub async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &HashMap<String, String>,
    ) -> Result<Vec<u8>, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::EncryptRequest {
                    key_id: key_id.to_owned(),
                    plaintext: plaintext.to_vec(),
                    encryption_context: context.clone(),
                    ..Default::default()
                };
                async move { kms.encrypt(request).await }
            })
            .await?;
        Ok(r.ciphertext_blob)
    }

    /// Decrypts a ciphertext blob made under `context`.
    pub async fn decrypt(
        &self,
        ciphertext_blob: &[u8],
        context: &HashMap<String, String>,
    ) -> Result<Decrypted, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::DecryptRequest {
                    ciphertext_blob: ciphertext_blob.to_vec(),
                    encryption_context: context.clone(),
                    ..Default::default()
                };
                async move { kms.decrypt(request).await }
            })
            .await?;
        Ok(Decrypted {
            key_id: r.key_id,
            plaintext: SecretBytes::new(r.plaintext),
        })
    }

    /// A fresh AES-256 data key under `key_id`.
    pub async fn generate_data_key(
        &self,
        key_id: &str,
        context: &HashMap<String, String>,
    ) -> Result<DataKey, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::GenerateDataKeyRequest {
                    key_id: key_id.to_owned(),
                    key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                    encryption_context: context.clone(),
                    ..Default::default()
                };
                async move { kms.generate_data_key(request).await }
            })
            .await?;
        Ok(DataKey {
            key_id: r.key_id,
            plaintext: SecretBytes::new(r.plaintext),
            ciphertext_blob: r.ciphertext_blob,
        })
    }

    /// Moves a ciphertext blob under another key (or context) inside kmsd.
    pub async fn re_encrypt(
        &self,
        ciphertext_blob: &[u8],
        source_context: &HashMap<String, String>,
        destination_key_id: &str,
        destination_context: &HashMap<String, String>,
    ) -> Result<Vec<u8>, ApiError> {
        let r = self
            .call(|mut kms| {
                let request = pb::ReEncryptRequest {
                    ciphertext_blob: ciphertext_blob.to_vec(),
                    source_encryption_context: source_context.clone(),
                    destination_key_id: destination_key_id.to_owned(),
                    destination_encryption_context: destination_context.clone(),
                    ..Default::default()
                };
                async move { kms.re_encrypt(request).await }
            })
            .await?;
        Ok(r.ciphertext_blob)
    }

    /// `n` random bytes from kmsd's RNG.
    pub async fn generate_random(&self, n: i32) -> Result<SecretBytes, ApiError> {
        let r = self
            .call(|mut kms| async move {
                kms.generate_random(pb::GenerateRandomRequest { number_of_bytes: n })
                    .await
            })
            .await?;
        Ok(SecretBytes::new(r.plaintext))
    }

    /// Who the credentials belong to.
    pub async fn caller_identity(&self) -> Result<pb::GetCallerIdentityResponse, ApiError> {
        self.retry
            .run(|| {
                let mut iam = self.iam.clone();
                async move {
                    iam.get_caller_identity(pb::GetCallerIdentityRequest {})
                        .await
                }
            })
            .await
    }
}
