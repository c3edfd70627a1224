//! Small helpers shared by the area tests: key creation, the common
//! cryptographic calls, contexts, random bytes, another account, polling.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kmsd::client::KmsClient;
use kmsd::clock::Clock;
use kmsd::pb;
use tonic::Status;

use crate::common::{Creds, TestDaemon};

/// A key with default parameters; its metadata.
pub async fn create_key(kms: &mut KmsClient) -> pb::KeyMetadata {
    create_key_with(kms, pb::CreateKeyRequest::default()).await
}

/// A key with a description; its metadata.
pub async fn create_key_described(kms: &mut KmsClient, description: &str) -> pb::KeyMetadata {
    create_key_with(
        kms,
        pb::CreateKeyRequest {
            description: Some(description.to_owned()),
            ..Default::default()
        },
    )
    .await
}

/// A key from a full request; its metadata.
pub async fn create_key_with(kms: &mut KmsClient, req: pb::CreateKeyRequest) -> pb::KeyMetadata {
    kms.create_key(req)
        .await
        .expect("CreateKey")
        .into_inner()
        .key_metadata
        .expect("CreateKey returns key_metadata")
}

/// DescribeKey's metadata, or the failure.
pub async fn describe(kms: &mut KmsClient, key_id: &str) -> Result<pb::KeyMetadata, Status> {
    kms.describe_key(pb::DescribeKeyRequest {
        key_id: key_id.to_owned(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().key_metadata.expect("key_metadata"))
}

/// An encryption context from pairs.
pub fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Encrypt.
pub async fn encrypt(
    kms: &mut KmsClient,
    key_id: &str,
    plaintext: &[u8],
    context: &HashMap<String, String>,
) -> Result<pb::EncryptResponse, Status> {
    kms.encrypt(pb::EncryptRequest {
        key_id: key_id.to_owned(),
        plaintext: plaintext.to_vec(),
        encryption_context: context.clone(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Encrypt that must succeed; the blob.
pub async fn encrypt_ok(kms: &mut KmsClient, key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    encrypt(kms, key_id, plaintext, &HashMap::new())
        .await
        .expect("Encrypt")
        .ciphertext_blob
}

/// Decrypt (no key id).
pub async fn decrypt(
    kms: &mut KmsClient,
    blob: &[u8],
    context: &HashMap<String, String>,
) -> Result<pb::DecryptResponse, Status> {
    decrypt_with_key(kms, blob, None, context).await
}

/// Decrypt with an optional key id.
pub async fn decrypt_with_key(
    kms: &mut KmsClient,
    blob: &[u8],
    key_id: Option<&str>,
    context: &HashMap<String, String>,
) -> Result<pb::DecryptResponse, Status> {
    kms.decrypt(pb::DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        key_id: key_id.map(str::to_owned),
        encryption_context: context.clone(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Decrypt without context that must succeed; the plaintext.
pub async fn decrypt_ok(kms: &mut KmsClient, blob: &[u8]) -> Vec<u8> {
    decrypt(kms, blob, &HashMap::new())
        .await
        .expect("Decrypt")
        .plaintext
}

/// GenerateDataKey with a key spec or a byte count.
pub async fn generate_data_key(
    kms: &mut KmsClient,
    key_id: &str,
    key_spec: Option<pb::DataKeySpec>,
    number_of_bytes: Option<i32>,
) -> Result<pb::GenerateDataKeyResponse, Status> {
    kms.generate_data_key(pb::GenerateDataKeyRequest {
        key_id: key_id.to_owned(),
        key_spec: key_spec.map(|s| s as i32),
        number_of_bytes,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// DisableKey that must succeed.
pub async fn disable(kms: &mut KmsClient, key_id: &str) {
    kms.disable_key(pb::DisableKeyRequest {
        key_id: key_id.to_owned(),
    })
    .await
    .expect("DisableKey");
}

/// EnableKey that must succeed.
pub async fn enable(kms: &mut KmsClient, key_id: &str) {
    kms.enable_key(pb::EnableKeyRequest {
        key_id: key_id.to_owned(),
    })
    .await
    .expect("EnableKey");
}

/// ScheduleKeyDeletion.
pub async fn schedule_deletion(
    kms: &mut KmsClient,
    key_id: &str,
    days: Option<i32>,
) -> Result<pb::ScheduleKeyDeletionResponse, Status> {
    kms.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
        key_id: key_id.to_owned(),
        pending_window_in_days: days,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// CreateAlias.
pub async fn create_alias(kms: &mut KmsClient, name: &str, target: &str) -> Result<(), Status> {
    kms.create_alias(pb::CreateAliasRequest {
        alias_name: name.to_owned(),
        target_key_id: target.to_owned(),
    })
    .await
    .map(|_| ())
}

/// Every alias of the caller's account (all pages).
pub async fn all_aliases(kms: &mut KmsClient) -> Vec<pb::AliasListEntry> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_aliases(pb::ListAliasesRequest {
                key_id: None,
                limit: None,
                marker: marker.take(),
            })
            .await
            .expect("ListAliases")
            .into_inner();
        out.extend(page.aliases);
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => return out,
        }
    }
}

/// Every key id of the caller's account (all pages).
pub async fn all_key_ids(kms: &mut KmsClient) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_keys(pb::ListKeysRequest {
                limit: Some(1000),
                marker: marker.take(),
            })
            .await
            .expect("ListKeys")
            .into_inner();
        out.extend(page.keys.into_iter().map(|k| k.key_id));
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => return out,
        }
    }
}

/// `n` bytes from the OS RNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).expect("OS RNG");
    v
}

/// A fresh account made by the operator; its root credentials.
pub async fn new_account(d: &TestDaemon, name: &str) -> Creds {
    let mut iam = d.identity_client(&d.operator).await;
    let r = iam
        .create_account(pb::CreateAccountRequest {
            account_name: name.to_owned(),
        })
        .await
        .expect("CreateAccount by the operator")
        .into_inner();
    let c = r.root_credentials.expect("root_credentials");
    Creds {
        account_id: r.account_id,
        access_key_id: c.access_key_id,
        secret: c.secret_access_key,
    }
}

/// The daemon clock's current time in milliseconds since the epoch.
pub fn now_ms(d: &TestDaemon) -> i64 {
    d.clock.now().0
}

/// A protobuf timestamp in milliseconds since the epoch.
pub fn ts_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn poll_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The key material version a v1 blob names (bytes 17..21, big-endian).
pub fn blob_version(blob: &[u8]) -> u32 {
    u32::from_be_bytes(
        blob[17..21]
            .try_into()
            .expect("a blob of at least 21 bytes"),
    )
}

/// The key id a v1 blob names (bytes 1..17).
pub fn blob_key_id(blob: &[u8]) -> uuid::Uuid {
    uuid::Uuid::from_slice(&blob[1..17]).expect("16 bytes")
}

/// Gives a user of the daemon's first account an inline policy allowing
/// every KMS action on every key (as the account root).
pub async fn allow_all_kms(d: &TestDaemon, user: &str) {
    d.identity_client(&d.root)
        .await
        .put_user_policy(pb::PutPrincipalPolicyRequest {
            principal_name: user.to_owned(),
            policy_name: "kms-all".to_owned(),
            policy_document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#
                .to_owned(),
        })
        .await
        .expect("PutUserPolicy");
}
