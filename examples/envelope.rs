//! Envelope encryption against a running kmsd, by hand, in ~100 lines.
//!
//! `encrypt KEY IN OUT`: asks kmsd for a data key under KEY
//! (GenerateDataKey), encrypts IN locally with it (AES-256-GCM), and writes
//! OUT = wrapped data key + nonce + ciphertext. The plaintext data key is
//! zeroized as soon as it has been used; only its wrapped form is stored.
//!
//! `decrypt IN OUT`: asks kmsd to unwrap the data key (Decrypt) and decrypts
//! locally. The encrypted file's name (not its directory) is bound as
//! encryption context (OUT's when encrypting, IN's when decrypting), so an
//! encrypted file renamed, or swapped for one of another name, is refused.
//!
//! Credentials come from `kmsd-data/credentials`, profile `default`
//! (override with KMS_CREDENTIALS_FILE and KMS_PROFILE).
//!
//! File layout: u32 BE length of the wrapped key || wrapped key ||
//! 12-byte nonce || AES-256-GCM ciphertext and tag.

use std::collections::HashMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, anyhow, bail};
use kmsd::client::{self, BearerAuth, KmsClient};
use kmsd::pb;
use zeroize::Zeroizing;

async fn client() -> anyhow::Result<KmsClient> {
    let file =
        std::env::var("KMS_CREDENTIALS_FILE").unwrap_or_else(|_| "kmsd-data/credentials".into());
    let profile_name = std::env::var("KMS_PROFILE").unwrap_or_else(|_| "default".into());
    let profile = kmsd::profile::load(Path::new(&file), &profile_name)?;
    let auth = BearerAuth::new(&profile.access_key_id, &profile.secret_access_key, None)?;
    Ok(client::clients(client::connect(&profile.endpoint).await?, auth).0)
}

/// The encryption context: binds the ciphertext to the name of the file
/// that holds it.
fn context(encrypted_file: &str) -> HashMap<String, String> {
    let name = Path::new(encrypted_file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    HashMap::from([("file".to_owned(), name)])
}

async fn encrypt(key: &str, input: &str, output: &str) -> anyhow::Result<()> {
    let plaintext =
        Zeroizing::new(std::fs::read(input).with_context(|| format!("reading {input}"))?);
    let dk = client()
        .await?
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: key.to_owned(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: context(output),
            ..Default::default()
        })
        .await?
        .into_inner();
    let data_key = Zeroizing::new(dk.plaintext);
    let cipher =
        Aes256Gcm::new_from_slice(&data_key).map_err(|_| anyhow!("data key is not 32 bytes"))?;
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("OS RNG: {e}"))?;
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext.as_slice())
        .map_err(|_| anyhow!("encryption failed"))?;
    drop(cipher);
    drop(data_key); // zeroized here: from now on only the wrapped key exists.
    let mut out = Vec::with_capacity(4 + dk.ciphertext_blob.len() + 12 + ct.len());
    out.extend_from_slice(&u32::try_from(dk.ciphertext_blob.len())?.to_be_bytes());
    out.extend_from_slice(&dk.ciphertext_blob);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    std::fs::write(output, out).with_context(|| format!("writing {output}"))?;
    println!("encrypted {input} -> {output} under {}", dk.key_id);
    Ok(())
}

async fn decrypt(input: &str, output: &str) -> anyhow::Result<()> {
    let file = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let (len, rest) = file
        .split_first_chunk::<4>()
        .ok_or_else(|| anyhow!("{input} is too short"))?;
    let len = usize::try_from(u32::from_be_bytes(*len))?;
    if rest.len() < len + 12 {
        bail!("{input} is truncated");
    }
    let (wrapped, rest) = rest.split_at(len);
    let (nonce, ct) = rest.split_at(12);
    let dk = client()
        .await?
        .decrypt(pb::DecryptRequest {
            ciphertext_blob: wrapped.to_vec(),
            encryption_context: context(input),
            ..Default::default()
        })
        .await
        .map_err(|s| match client::ApiError::from(&s).code {
            client::ErrorCode::InvalidCiphertext => anyhow!(
                "kmsd would not unwrap {input}'s data key (renamed, swapped or altered?): {}",
                s.message()
            ),
            code => anyhow!("Decrypt failed: {code}: {}", s.message()),
        })?
        .into_inner();
    let data_key = Zeroizing::new(dk.plaintext);
    let cipher =
        Aes256Gcm::new_from_slice(&data_key).map_err(|_| anyhow!("data key is not 32 bytes"))?;
    let plaintext = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| anyhow!("{input} was altered"))?,
    );
    std::fs::write(output, plaintext.as_slice()).with_context(|| format!("writing {output}"))?;
    println!("decrypted {input} -> {output} with {}", dk.key_id);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["encrypt", key, input, output] => encrypt(key, input, output).await,
        ["decrypt", input, output] => decrypt(input, output).await,
        _ => bail!("usage: envelope encrypt KEY IN OUT | envelope decrypt IN OUT"),
    }
}
