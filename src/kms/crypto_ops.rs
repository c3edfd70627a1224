//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey
//! (with and without plaintext) and GenerateRandom. Plaintexts and data keys
//! stay in `SecretBytes` until the transport hands them to the caller.

use std::sync::Arc;

use uuid::Uuid;

use super::Kms;
use crate::crypto::secret::SecretBytes;
use crate::crypto::{BlobHeader, EncryptionContext, KeyMaterial, blob, wrap};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::KeyRecord;

/// Largest Encrypt plaintext.
pub const MAX_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob accepted.
pub const MAX_CIPHERTEXT: usize = 6144;
/// Largest data key or random byte string.
pub const MAX_RANDOM: usize = 1024;
/// Most grant tokens in one request.
pub const MAX_GRANT_TOKENS: usize = 10;
/// Largest canonical encoding of an encryption context.
pub const MAX_CONTEXT_BYTES: usize = 8192;

/// The size of a data key, as GenerateDataKey takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeySpec {
    /// 32 bytes.
    Aes256,
    /// 16 bytes.
    Aes128,
}

/// What GenerateDataKey answers.
#[derive(Debug)]
pub struct DataKeyOutput {
    /// The data key; `None` for GenerateDataKeyWithoutPlaintext.
    pub plaintext: Option<SecretBytes>,
    /// The data key encrypted under the CMK.
    pub ciphertext_blob: Vec<u8>,
    /// The CMK's ARN.
    pub key_arn: String,
}

/// What Decrypt answers.
#[derive(Debug)]
pub struct DecryptOutput {
    /// The plaintext.
    pub plaintext: SecretBytes,
    /// The ARN of the key that decrypted it.
    pub key_arn: String,
}

/// What ReEncrypt answers.
#[derive(Debug)]
pub struct ReEncryptOutput {
    /// The new ciphertext blob.
    pub ciphertext_blob: Vec<u8>,
    /// The source key's ARN.
    pub source_key_arn: String,
    /// The destination key's ARN.
    pub key_arn: String,
}

/// Notes the call's encryption context for its audit event (first, so that
/// a call refused for it records it too) and checks the parts of a request
/// common to every cryptographic operation (grant tokens are checked to be
/// ours by `Kms::check_grant_tokens`).
fn validate_common(ctx: &EncryptionContext, grant_tokens: &[String]) -> Result<()> {
    crate::audit::notes::context(ctx);
    validate_context_and_tokens(ctx, grant_tokens)
}

/// [`validate_common`] without the note; also the check of a grant's
/// context constraints, which are encryption contexts too.
pub(super) fn validate_context_and_tokens(
    ctx: &EncryptionContext,
    grant_tokens: &[String],
) -> Result<()> {
    if grant_tokens.len() > MAX_GRANT_TOKENS {
        return Err(KmsError::validation(format!(
            "at most {MAX_GRANT_TOKENS} grant tokens may be given"
        )));
    }
    if grant_tokens.iter().any(|t| t.is_empty() || t.len() > 8192) {
        return Err(KmsError::validation(
            "each grant token must be 1 to 8192 characters",
        ));
    }
    if ctx.entries().keys().any(String::is_empty) {
        return Err(KmsError::validation(
            "encryption context keys must not be empty",
        ));
    }
    // Condition keys are case-insensitive (`kms:EncryptionContext:Dept` and
    // `...:dept` are one key), so two context keys that differ only by case
    // would let one hide the other from a policy condition.
    if keys_differ_only_by_case(ctx) {
        return Err(KmsError::validation(
            "encryption context keys must differ by more than letter case",
        ));
    }
    if ctx.canonical_bytes().len() > MAX_CONTEXT_BYTES {
        return Err(KmsError::validation(format!(
            "the encryption context must encode to at most {MAX_CONTEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The number of bytes a data key request asks for: exactly one of
/// `key_spec` and `number_of_bytes` must be given.
fn data_key_len(key_spec: Option<DataKeySpec>, number_of_bytes: Option<i32>) -> Result<usize> {
    match (key_spec, number_of_bytes) {
        (Some(DataKeySpec::Aes256), None) => Ok(32),
        (Some(DataKeySpec::Aes128), None) => Ok(16),
        (None, Some(n)) => random_len(n),
        (Some(_), Some(_)) => Err(KmsError::validation(
            "give key_spec or number_of_bytes, not both",
        )),
        (None, None) => Err(KmsError::validation(
            "one of key_spec and number_of_bytes is required",
        )),
    }
}

fn random_len(n: i32) -> Result<usize> {
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_RANDOM).contains(n))
        .ok_or_else(|| {
            KmsError::validation(format!(
                "number_of_bytes must be between 1 and {MAX_RANDOM}, got {n}"
            ))
        })
}

impl Kms {
    /// Unwraps one version of a key's material.
    async fn material(&self, key: &KeyRecord, version: u32) -> Result<Arc<KeyMaterial>> {
        let v = self
            .store
            .get_key_version(key.id, version)
            .await?
            // Said as any other refused blob is: the answer tells nothing
            // of which versions exist.
            .ok_or(crate::crypto::Error::InvalidCiphertext)?;
        // The stored row is read first (from the store's cache), so a
        // destroyed version is refused before the unwrapped cache is asked.
        self.material
            .get_or_unwrap(&(key.id, version), &v.wrapped_material, || {
                wrap::unwrap_key_material(&self.root, &key.id, version, &v.wrapped_material)
            })
            .map_err(KmsError::internal)
    }

    /// Encrypts under the key's newest material.
    async fn seal(
        &self,
        key: &KeyRecord,
        ctx: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let material = self.material(key, key.current_version).await?;
        Ok(blob::seal(
            &material,
            key.id,
            key.current_version,
            ctx,
            plaintext,
        )?)
    }

    /// Encrypt.
    pub async fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: SecretBytes,
        ctx: &EncryptionContext,
        grant_tokens: &[String],
    ) -> Result<(Vec<u8>, String)> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::validation(format!(
                "plaintext must be between 1 and {MAX_PLAINTEXT} bytes, got {}",
                plaintext.len()
            )));
        }
        validate_common(ctx, grant_tokens)?;
        self.check_grant_tokens(grant_tokens)?;
        let key = self.resolve(caller, key_id, "Encrypt", Some(ctx)).await?;
        self.check_usable(&key)?;
        let blob = self.seal(&key, ctx, plaintext.expose_secret()).await?;
        Ok((blob, self.key_arn(&key.account_id, key.id)))
    }

    /// Opens a blob for `caller`, checking `action` on its key and, if
    /// `expected_key` is given, that the blob was made under that key.
    async fn open_blob(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        ctx: &EncryptionContext,
        expected_key: Option<&str>,
        action: &str,
    ) -> Result<(SecretBytes, KeyRecord)> {
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(KmsError::validation(format!(
                "ciphertext_blob must be between 1 and {MAX_CIPHERTEXT} bytes, got {}",
                ciphertext.len()
            )));
        }
        let header = BlobHeader::parse(ciphertext)?;
        let key = match expected_key {
            Some(k) => {
                let named = self.resolve(caller, k, action, Some(ctx)).await?;
                if named.id != header.key_id {
                    return Err(KmsError::IncorrectKeyException(format!(
                        "the ciphertext was not encrypted under {}",
                        self.key_arn(&named.account_id, named.id)
                    )));
                }
                named
            }
            None => self.blob_key(caller, header.key_id, action, ctx).await?,
        };
        self.check_usable(&key)?;
        let material = self.material(&key, header.key_version).await?;
        let plaintext = blob::open(&material, &header, ciphertext, ctx)?;
        Ok((plaintext, key))
    }

    /// The key a blob names, looked up by id in whatever account owns it.
    async fn blob_key(
        &self,
        caller: &Caller,
        id: Uuid,
        action: &str,
        ctx: &EncryptionContext,
    ) -> Result<KeyRecord> {
        // A blob naming no key (altered, or its key destroyed) is refused
        // as any other altered blob is (DESIGN.md section 5): the answer
        // reveals neither the id read from it nor whether such a key exists.
        let key = self
            .store
            .get_key(id)
            .await?
            .ok_or(crate::crypto::Error::InvalidCiphertext)?;
        // Noted before the decision, so a refused attempt names the key too.
        crate::audit::notes::key(&self.key_arn(&key.account_id, key.id));
        self.authorize(caller, action, &key, Some(ctx)).await?;
        Ok(key)
    }

    /// Decrypt.
    pub async fn decrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        key_id: Option<&str>,
        ctx: &EncryptionContext,
        grant_tokens: &[String],
    ) -> Result<DecryptOutput> {
        validate_common(ctx, grant_tokens)?;
        self.check_grant_tokens(grant_tokens)?;
        let (plaintext, key) = self
            .open_blob(caller, ciphertext, ctx, key_id, "Decrypt")
            .await?;
        Ok(DecryptOutput {
            plaintext,
            key_arn: self.key_arn(&key.account_id, key.id),
        })
    }

    /// ReEncrypt: the plaintext never leaves the daemon.
    #[allow(clippy::too_many_arguments)]
    pub async fn re_encrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        source_ctx: &EncryptionContext,
        source_key_id: Option<&str>,
        destination_key_id: &str,
        destination_ctx: &EncryptionContext,
        grant_tokens: &[String],
    ) -> Result<ReEncryptOutput> {
        crate::audit::notes::destination_context(destination_ctx);
        validate_common(source_ctx, grant_tokens)?;
        self.check_grant_tokens(grant_tokens)?;
        validate_context_and_tokens(destination_ctx, &[])?;
        if destination_key_id.is_empty() {
            return Err(KmsError::validation("destination_key_id is required"));
        }
        let (plaintext, source) = self
            .open_blob(
                caller,
                ciphertext,
                source_ctx,
                source_key_id,
                "ReEncryptFrom",
            )
            .await?;
        let dest = self
            .resolve(
                caller,
                destination_key_id,
                "ReEncryptTo",
                Some(destination_ctx),
            )
            .await?;
        self.check_usable(&dest)?;
        let blob = self
            .seal(&dest, destination_ctx, plaintext.expose_secret())
            .await?;
        Ok(ReEncryptOutput {
            ciphertext_blob: blob,
            source_key_arn: self.key_arn(&source.account_id, source.id),
            key_arn: self.key_arn(&dest.account_id, dest.id),
        })
    }

    /// GenerateDataKey, or GenerateDataKeyWithoutPlaintext when
    /// `with_plaintext` is false.
    #[allow(clippy::too_many_arguments)]
    pub async fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        key_spec: Option<DataKeySpec>,
        number_of_bytes: Option<i32>,
        ctx: &EncryptionContext,
        grant_tokens: &[String],
        with_plaintext: bool,
    ) -> Result<DataKeyOutput> {
        let len = data_key_len(key_spec, number_of_bytes)?;
        validate_common(ctx, grant_tokens)?;
        self.check_grant_tokens(grant_tokens)?;
        let action = if with_plaintext {
            "GenerateDataKey"
        } else {
            "GenerateDataKeyWithoutPlaintext"
        };
        let key = self.resolve(caller, key_id, action, Some(ctx)).await?;
        self.check_usable(&key)?;
        let data_key = SecretBytes::random(len)?;
        let blob = self.seal(&key, ctx, data_key.expose_secret()).await?;
        Ok(DataKeyOutput {
            plaintext: with_plaintext.then_some(data_key),
            ciphertext_blob: blob,
            key_arn: self.key_arn(&key.account_id, key.id),
        })
    }

    /// GenerateRandom.
    pub async fn generate_random(
        &self,
        caller: &Caller,
        number_of_bytes: i32,
    ) -> Result<SecretBytes> {
        let len = random_len(number_of_bytes)?;
        self.authorize_identity(caller, "kms:GenerateRandom", "*")
            .await?;
        Ok(SecretBytes::random(len)?)
    }
}

/// Whether two keys of `ctx` differ only by letter case. A context of fewer
/// than two keys (the usual case) allocates nothing.
fn keys_differ_only_by_case(ctx: &EncryptionContext) -> bool {
    let keys = ctx.entries().keys();
    if keys.len() < 2 {
        return false;
    }
    let mut lowered = std::collections::HashSet::with_capacity(keys.len());
    !keys.into_iter().all(|k| lowered.insert(k.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_key_sizes() {
        assert_eq!(data_key_len(Some(DataKeySpec::Aes256), None).unwrap(), 32);
        assert_eq!(data_key_len(Some(DataKeySpec::Aes128), None).unwrap(), 16);
        assert_eq!(data_key_len(None, Some(1)).unwrap(), 1);
        assert_eq!(data_key_len(None, Some(1024)).unwrap(), 1024);
        for (s, n) in [
            (None, None),
            (Some(DataKeySpec::Aes256), Some(32)),
            (None, Some(0)),
            (None, Some(1025)),
            (None, Some(-1)),
        ] {
            assert!(matches!(
                data_key_len(s, n),
                Err(KmsError::ValidationException(_))
            ));
        }
    }
}
