//! Envelope encryption for applications: one data key per message from
//! GenerateDataKey (or from a [`DataKeyCache`]), local AES-256-GCM in the
//! streaming format of [`crate::envelope`], and KMS Decrypt (or the cache)
//! to open it. Data keys are zeroized after use.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use super::KmsClient;
use super::cache::{DataKeyCache, Materials};
use super::error::ApiError;
use super::retry::RetryPolicy;
use crate::crypto::EncryptionContext;
use crate::crypto::secret::SecretBytes;
use crate::pb;

/// Why an envelope operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// KMS refused GenerateDataKey or Decrypt.
    #[error(transparent)]
    Kms(#[from] ApiError),
    /// The envelope is malformed or was altered.
    #[error(transparent)]
    Format(#[from] crate::envelope::Error),
    /// The envelope's context lacks an entry the caller required.
    #[error("the envelope's encryption context does not contain {0}")]
    ContextMismatch(String),
}

/// Encrypts and decrypts envelopes through one KMS client.
#[derive(Clone)]
pub struct Envelope {
    kms: KmsClient,
    retry: RetryPolicy,
    cache: Option<Arc<DataKeyCache>>,
    segment_size: u32,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("retry", &self.retry)
            .field("cache", &self.cache)
            .field("segment_size", &self.segment_size)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// Envelopes through `kms`, with default retries, no cache and 64 KiB
    /// segments.
    pub fn new(kms: KmsClient) -> Self {
        Self {
            kms,
            retry: RetryPolicy::default(),
            cache: None,
            segment_size: crate::envelope::DEFAULT_SEGMENT,
        }
    }

    /// Retries KMS calls with this policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Shares data keys through `cache` (see [`DataKeyCache`] for the trade-off).
    pub fn with_cache(mut self, cache: Arc<DataKeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Plaintext bytes per segment (1 KiB to 16 MiB).
    pub fn with_segment_size(mut self, segment_size: u32) -> Self {
        self.segment_size = segment_size;
        self
    }

    /// A data key for a message of `size` bytes (unknown: not cached).
    async fn materials(
        &self,
        key_id: &str,
        context: &HashMap<String, String>,
        canonical: &[u8],
        size: Option<u64>,
    ) -> Result<Materials, EnvelopeError> {
        if let (Some(cache), Some(size)) = (&self.cache, size)
            && let Some(m) = cache.encryption_materials(key_id, canonical, size)
        {
            return Ok(m);
        }
        let dk = self
            .retry
            .run(|| {
                let mut kms = self.kms.clone();
                let request = pb::GenerateDataKeyRequest {
                    key_id: key_id.to_owned(),
                    key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                    encryption_context: context.clone(),
                    ..Default::default()
                };
                async move { kms.generate_data_key(request).await }
            })
            .await?;
        let m = Materials {
            data_key: Arc::new(SecretBytes::new(dk.plaintext)),
            key_arn: dk.key_id,
            wrapped_key: dk.ciphertext_blob,
        };
        if let (Some(cache), Some(size)) = (&self.cache, size) {
            cache.put_encryption_materials(key_id, canonical, m.clone(), size);
        }
        Ok(m)
    }

    /// Encrypts a stream of any size with constant memory. `size_hint`, the
    /// input's length if known, lets the data-key cache serve it.
    pub async fn encrypt_stream<R, W>(
        &self,
        key_id: &str,
        context: HashMap<String, String>,
        input: &mut R,
        output: &mut W,
        size_hint: Option<u64>,
    ) -> Result<u64, EnvelopeError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let ctx = EncryptionContext::from(context.clone());
        let canonical = ctx.canonical_bytes();
        let m = self
            .materials(key_id, &context, &canonical, size_hint)
            .await?;
        Ok(crate::envelope::encrypt(
            input,
            output,
            &m.data_key,
            &m.key_arn,
            m.wrapped_key,
            ctx,
            self.segment_size,
        )
        .await?)
    }

    /// Encrypts a byte slice into one envelope.
    pub async fn encrypt(
        &self,
        key_id: &str,
        context: HashMap<String, String>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / 1024 + 512);
        let mut input = plaintext;
        self.encrypt_stream(
            key_id,
            context,
            &mut input,
            &mut out,
            Some(plaintext.len() as u64),
        )
        .await?;
        Ok(out)
    }

    /// Decrypts an envelope stream. Its header's context must contain every
    /// `expected` pair; KMS Decrypt (or the cache) unwraps the data key, the
    /// key commitment is checked, and each segment is authenticated before
    /// it is written. On error, what was written must be discarded.
    pub async fn decrypt_stream<R, W>(
        &self,
        expected: &HashMap<String, String>,
        input: &mut R,
        output: &mut W,
    ) -> Result<u64, EnvelopeError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        crate::envelope::decrypt(input, output, |header| async move {
            for (k, v) in expected {
                if header.context.entries().get(k) != Some(v) {
                    return Err(EnvelopeError::ContextMismatch(format!("{k}={v}")));
                }
            }
            let canonical = header.context.canonical_bytes();
            if let Some(cache) = &self.cache
                && let Some(k) =
                    cache.decryption_key(&header.key_arn, &header.wrapped_key, &canonical)
            {
                return Ok(SecretBytes::new(k.expose_secret().to_vec()));
            }
            let context: HashMap<String, String> =
                header.context.entries().clone().into_iter().collect();
            let r = self
                .retry
                .run(|| {
                    let mut kms = self.kms.clone();
                    let request = pb::DecryptRequest {
                        ciphertext_blob: header.wrapped_key.clone(),
                        key_id: Some(header.key_arn.clone()),
                        encryption_context: context.clone(),
                        ..Default::default()
                    };
                    async move { kms.decrypt(request).await }
                })
                .await?;
            let data_key = SecretBytes::new(r.plaintext);
            if let Some(cache) = &self.cache {
                cache.put_decryption_key(
                    &header.key_arn,
                    &header.wrapped_key,
                    &canonical,
                    Arc::new(SecretBytes::new(data_key.expose_secret().to_vec())),
                );
            }
            Ok(data_key)
        })
        .await
    }

    /// Decrypts one envelope held in memory; the plaintext is zeroized when
    /// dropped.
    pub async fn decrypt(
        &self,
        expected: &HashMap<String, String>,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let mut out = Zeroizing::new(Vec::with_capacity(envelope.len()));
        let mut input = envelope;
        self.decrypt_stream(expected, &mut input, &mut *out).await?;
        Ok(out)
    }
}

/// Encrypts a stream of any size: one GenerateDataKey call, then local
/// AES-256-GCM in segments. The data key is zeroized when this returns.
pub async fn encrypt_stream<R, W>(
    kms: &mut KmsClient,
    key_id: &str,
    context: HashMap<String, String>,
    input: &mut R,
    output: &mut W,
    segment_size: u32,
) -> Result<u64, EnvelopeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    Envelope::new(kms.clone())
        .with_segment_size(segment_size)
        .encrypt_stream(key_id, context, input, output, None)
        .await
}

/// Decrypts an envelope stream (see [`Envelope::decrypt_stream`]).
pub async fn decrypt_stream<R, W>(
    kms: &mut KmsClient,
    expected: &HashMap<String, String>,
    input: &mut R,
    output: &mut W,
) -> Result<u64, EnvelopeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    Envelope::new(kms.clone())
        .decrypt_stream(expected, input, output)
        .await
}
