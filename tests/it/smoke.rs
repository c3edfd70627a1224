//! The shortest path through the daemon: a key, a round trip, an identity.

use kmsd::pb;

use crate::common::TestDaemon;

#[tokio::test]
async fn create_encrypt_decrypt_round_trip() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = kms
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner();
    let meta = key.key_metadata.unwrap();
    assert_eq!(meta.key_state, pb::KeyState::Enabled as i32);
    let ct = kms
        .encrypt(pb::EncryptRequest {
            key_id: meta.key_id.clone(),
            plaintext: b"hello".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ct.key_id, meta.arn);
    let pt = kms
        .decrypt(pb::DecryptRequest {
            ciphertext_blob: ct.ciphertext_blob,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pt.plaintext, b"hello");
    let mut iam = d.identity_client(&d.admin).await;
    let me = iam
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.account, d.admin.account_id);
    assert!(me.arn.ends_with(":user/admin"), "{}", me.arn);
}
