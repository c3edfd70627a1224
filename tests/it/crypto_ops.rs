//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey
//! (with and without plaintext), GenerateRandom, and the refusal of every
//! altered ciphertext.

use std::collections::HashMap;

use kmsd::client::KmsClient;
use kmsd::pb;
use tonic::Code;

use crate::common::{TestDaemon, assert_err, error_name};
use crate::util::*;

const SYMMETRIC: i32 = pb::EncryptionAlgorithmSpec::SymmetricDefault as i32;

#[tokio::test]
async fn encrypt_decrypt_round_trip_with_and_without_context() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    // Without context.
    let pt = random_bytes(100);
    let e = encrypt(&mut kms, &m.key_id, &pt, &ctx(&[])).await.unwrap();
    assert_eq!(e.key_id, m.arn, "Encrypt answers the key ARN");
    assert_eq!(e.encryption_algorithm, SYMMETRIC);
    assert_eq!(
        e.ciphertext_blob.len(),
        65 + pt.len() + 16,
        "v1 blob layout"
    );
    assert_eq!(e.ciphertext_blob[0], 1, "format version 1");
    assert_eq!(blob_key_id(&e.ciphertext_blob).to_string(), m.key_id);
    assert_eq!(blob_version(&e.ciphertext_blob), 1);
    let out = decrypt(&mut kms, &e.ciphertext_blob, &ctx(&[]))
        .await
        .unwrap();
    assert_eq!(out.plaintext, pt);
    assert_eq!(out.key_id, m.arn, "Decrypt answers the key ARN");
    assert_eq!(out.encryption_algorithm, SYMMETRIC);

    // Two encryptions of the same plaintext differ (random salt and nonce).
    let e2 = encrypt(&mut kms, &m.key_id, &pt, &ctx(&[])).await.unwrap();
    assert_ne!(e.ciphertext_blob, e2.ciphertext_blob);

    // With context; the order of entries does not matter.
    let c = ctx(&[("tenant", "acme"), ("purpose", "test"), ("empty", "")]);
    let e = encrypt(&mut kms, &m.key_id, &pt, &c).await.unwrap();
    let out = decrypt(&mut kms, &e.ciphertext_blob, &c).await.unwrap();
    assert_eq!(out.plaintext, pt);
    let reordered: HashMap<String, String> = c
        .clone()
        .into_iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        decrypt(&mut kms, &e.ciphertext_blob, &reordered)
            .await
            .unwrap()
            .plaintext,
        pt
    );
    // ... and is required.
    assert_err(
        decrypt(&mut kms, &e.ciphertext_blob, &ctx(&[])).await,
        Code::InvalidArgument,
        "InvalidCiphertextException",
    );

    // Encrypt by ARN, alias name and alias ARN; Decrypt with key_id as key ARN.
    create_alias(&mut kms, "alias/rt", &m.key_id).await.unwrap();
    let alias_arn = format!("arn:aws:kms:us-east-1:{}:alias/rt", d.admin.account_id);
    for k in [m.arn.clone(), "alias/rt".to_owned(), alias_arn] {
        let e = encrypt(&mut kms, &k, b"by ref", &ctx(&[]))
            .await
            .unwrap_or_else(|s| panic!("{k}: {s:?}"));
        assert_eq!(e.key_id, m.arn);
        let out = decrypt_with_key(&mut kms, &e.ciphertext_blob, Some(&m.arn), &ctx(&[]))
            .await
            .unwrap();
        assert_eq!(out.plaintext, b"by ref");
    }

    // The only algorithm may be named explicitly.
    let r = kms
        .encrypt(pb::EncryptRequest {
            key_id: m.key_id.clone(),
            plaintext: b"x".to_vec(),
            encryption_algorithm: Some(SYMMETRIC),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.into_inner().encryption_algorithm, SYMMETRIC);
    // Any other value is refused.
    let r = kms
        .encrypt(pb::EncryptRequest {
            key_id: m.key_id.clone(),
            plaintext: b"x".to_vec(),
            encryption_algorithm: Some(7),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
}

#[tokio::test]
async fn encrypt_plaintext_size_bounds() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    for n in [1, 4096] {
        let pt = random_bytes(n);
        let blob = encrypt_ok(&mut kms, &m.key_id, &pt).await;
        assert_eq!(decrypt_ok(&mut kms, &blob).await, pt, "{n} bytes");
    }
    for n in [0, 4097] {
        assert_err(
            encrypt(&mut kms, &m.key_id, &vec![7u8; n], &ctx(&[])).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
}

#[tokio::test]
async fn disabled_key_refuses_cryptographic_operations() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &m.key_id, b"made while enabled").await;
    let blob_other = encrypt_ok(&mut kms, &other.key_id, b"other").await;
    disable(&mut kms, &m.key_id).await;

    assert_err(
        encrypt(&mut kms, &m.key_id, b"x", &ctx(&[])).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    assert_err(
        decrypt(&mut kms, &blob, &ctx(&[])).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    assert_err(
        generate_data_key(&mut kms, &m.key_id, Some(pb::DataKeySpec::Aes256), None).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    let r = kms
        .generate_data_key_without_plaintext(pb::GenerateDataKeyWithoutPlaintextRequest {
            key_id: m.key_id.clone(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "DisabledException");
    // ReEncrypt from and to a disabled key.
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            destination_key_id: other.key_id.clone(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "DisabledException");
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob_other.clone(),
            destination_key_id: m.key_id.clone(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "DisabledException");

    enable(&mut kms, &m.key_id).await;
    assert_eq!(decrypt_ok(&mut kms, &blob).await, b"made while enabled");
}

#[tokio::test]
async fn pending_key_refuses_cryptographic_operations() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &m.key_id, b"made before").await;
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();

    assert_err(
        encrypt(&mut kms, &m.key_id, b"x", &ctx(&[])).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert_err(
        decrypt(&mut kms, &blob, &ctx(&[])).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    assert_err(
        generate_data_key(&mut kms, &m.key_id, None, Some(32)).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    let r = kms
        .generate_data_key_without_plaintext(pb::GenerateDataKeyWithoutPlaintextRequest {
            key_id: m.key_id.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            destination_key_id: other.key_id.clone(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
}

#[tokio::test]
async fn decrypt_with_key_id_checks_the_blobs_key() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/a", &a.key_id).await.unwrap();
    create_alias(&mut kms, "alias/b", &b.key_id).await.unwrap();
    let blob = encrypt_ok(&mut kms, &a.key_id, b"under a").await;

    for wrong in [b.key_id.clone(), b.arn.clone(), "alias/b".to_owned()] {
        assert_err(
            decrypt_with_key(&mut kms, &blob, Some(&wrong), &ctx(&[])).await,
            Code::InvalidArgument,
            "IncorrectKeyException",
        );
    }
    let alias_arn = format!("arn:aws:kms:us-east-1:{}:alias/a", d.admin.account_id);
    for right in [
        a.key_id.clone(),
        a.arn.clone(),
        "alias/a".to_owned(),
        alias_arn,
    ] {
        let out = decrypt_with_key(&mut kms, &blob, Some(&right), &ctx(&[]))
            .await
            .unwrap_or_else(|s| panic!("{right}: {s:?}"));
        assert_eq!(out.plaintext, b"under a");
        assert_eq!(out.key_id, a.arn);
    }
    // A key id that does not exist at all.
    assert_err(
        decrypt_with_key(
            &mut kms,
            &blob,
            Some(&uuid::Uuid::new_v4().to_string()),
            &ctx(&[]),
        )
        .await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn generate_data_key_sizes_and_round_trip() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    for (spec, n, len) in [
        (Some(pb::DataKeySpec::Aes256), None, 32),
        (Some(pb::DataKeySpec::Aes128), None, 16),
        (None, Some(1), 1),
        (None, Some(1024), 1024),
    ] {
        let r = generate_data_key(&mut kms, &m.key_id, spec, n)
            .await
            .unwrap();
        assert_eq!(r.plaintext.len(), len, "{spec:?} {n:?}");
        assert_eq!(r.key_id, m.arn);
        assert_eq!(r.ciphertext_blob.len(), 65 + len + 16);
        let back = decrypt(&mut kms, &r.ciphertext_blob, &ctx(&[]))
            .await
            .unwrap();
        assert_eq!(
            back.plaintext, r.plaintext,
            "the blob holds the returned data key"
        );
        assert_eq!(back.key_id, m.arn);
    }

    // Two data keys differ.
    let x = generate_data_key(&mut kms, &m.key_id, Some(pb::DataKeySpec::Aes256), None)
        .await
        .unwrap();
    let y = generate_data_key(&mut kms, &m.key_id, Some(pb::DataKeySpec::Aes256), None)
        .await
        .unwrap();
    assert_ne!(x.plaintext, y.plaintext);

    // With an encryption context.
    let c = ctx(&[("file", "report.pdf")]);
    let r = kms
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: "alias/nope".into(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: c.clone(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    let r = kms
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: m.key_id.clone(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: c.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decrypt(&mut kms, &r.ciphertext_blob, &c)
            .await
            .unwrap()
            .plaintext,
        r.plaintext
    );
    assert_err(
        decrypt(&mut kms, &r.ciphertext_blob, &ctx(&[])).await,
        Code::InvalidArgument,
        "InvalidCiphertextException",
    );

    // Both, neither, out of range.
    for (spec, n) in [
        (Some(pb::DataKeySpec::Aes256), Some(32)),
        (None, None),
        (None, Some(0)),
        (None, Some(1025)),
        (None, Some(-1)),
    ] {
        assert_err(
            generate_data_key(&mut kms, &m.key_id, spec, n).await,
            Code::InvalidArgument,
            "ValidationException",
        );
        let r = kms
            .generate_data_key_without_plaintext(pb::GenerateDataKeyWithoutPlaintextRequest {
                key_id: m.key_id.clone(),
                key_spec: spec.map(|s| s as i32),
                number_of_bytes: n,
                ..Default::default()
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
}

#[tokio::test]
async fn generate_data_key_without_plaintext() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    for (spec, n, len) in [
        (Some(pb::DataKeySpec::Aes256), None, 32),
        (Some(pb::DataKeySpec::Aes128), None, 16),
        (None, Some(64), 64),
    ] {
        let c = ctx(&[("k", "v")]);
        let r = kms
            .generate_data_key_without_plaintext(pb::GenerateDataKeyWithoutPlaintextRequest {
                key_id: m.key_id.clone(),
                key_spec: spec.map(|s| s as i32),
                number_of_bytes: n,
                encryption_context: c.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.key_id, m.arn);
        let back = decrypt(&mut kms, &r.ciphertext_blob, &c).await.unwrap();
        assert_eq!(back.plaintext.len(), len);
    }
}

#[tokio::test]
async fn generate_random_bounds() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    for n in [1, 2, 32, 1023, 1024] {
        let r = kms
            .generate_random(pb::GenerateRandomRequest { number_of_bytes: n })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.plaintext.len(), usize::try_from(n).unwrap());
    }
    let a = kms
        .generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 32,
        })
        .await
        .unwrap()
        .into_inner();
    let b = kms
        .generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(a.plaintext, b.plaintext);
    assert_ne!(a.plaintext, vec![0u8; 32]);
    for n in [0, 1025, -1] {
        let r = kms
            .generate_random(pb::GenerateRandomRequest { number_of_bytes: n })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }
}

#[tokio::test]
async fn re_encrypt_to_another_key_and_context() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let src = create_key(&mut kms).await;
    let dst = create_key(&mut kms).await;
    let src_ctx = ctx(&[("stage", "one")]);
    let dst_ctx = ctx(&[("stage", "two"), ("extra", "yes")]);
    let pt = random_bytes(48);
    let blob = encrypt(&mut kms, &src.key_id, &pt, &src_ctx)
        .await
        .unwrap()
        .ciphertext_blob;

    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            source_encryption_context: src_ctx.clone(),
            source_key_id: Some(src.key_id.clone()),
            destination_key_id: dst.key_id.clone(),
            destination_encryption_context: dst_ctx.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.source_key_id, src.arn);
    assert_eq!(r.key_id, dst.arn);
    assert_eq!(r.source_encryption_algorithm, SYMMETRIC);
    assert_eq!(r.destination_encryption_algorithm, SYMMETRIC);
    assert_eq!(blob_key_id(&r.ciphertext_blob).to_string(), dst.key_id);
    assert!(!crate::common::contains(&r.ciphertext_blob, &pt));

    let out = decrypt(&mut kms, &r.ciphertext_blob, &dst_ctx)
        .await
        .unwrap();
    assert_eq!(out.plaintext, pt);
    assert_eq!(out.key_id, dst.arn);
    // The new blob needs the new context, not the old one.
    assert_err(
        decrypt(&mut kms, &r.ciphertext_blob, &src_ctx).await,
        Code::InvalidArgument,
        "InvalidCiphertextException",
    );
    // The old blob still decrypts.
    assert_eq!(
        decrypt(&mut kms, &blob, &src_ctx).await.unwrap().plaintext,
        pt
    );

    // Without source_key_id, to the same key, dropping the context.
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            source_encryption_context: src_ctx.clone(),
            destination_key_id: "alias/missing".into(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            source_encryption_context: src_ctx.clone(),
            destination_key_id: src.arn.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decrypt_ok(&mut kms, &r.ciphertext_blob).await, pt);
}

#[tokio::test]
async fn re_encrypt_checks_source_context_and_key() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let src = create_key(&mut kms).await;
    let dst = create_key(&mut kms).await;
    let src_ctx = ctx(&[("stage", "one")]);
    let blob = encrypt(&mut kms, &src.key_id, b"payload", &src_ctx)
        .await
        .unwrap()
        .ciphertext_blob;

    for wrong in [
        ctx(&[]),
        ctx(&[("stage", "two")]),
        ctx(&[("stage", "one"), ("x", "y")]),
    ] {
        let r = kms
            .re_encrypt(pb::ReEncryptRequest {
                ciphertext_blob: blob.clone(),
                source_encryption_context: wrong,
                destination_key_id: dst.key_id.clone(),
                ..Default::default()
            })
            .await;
        assert_err(r, Code::InvalidArgument, "InvalidCiphertextException");
    }
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            source_encryption_context: src_ctx.clone(),
            source_key_id: Some(dst.key_id.clone()),
            destination_key_id: dst.key_id.clone(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "IncorrectKeyException");
    // A destination is required.
    let r = kms
        .re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: blob.clone(),
            source_encryption_context: src_ctx.clone(),
            destination_key_id: String::new(),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
}

/// What a Decrypt of an altered blob answered, for the assertion message.
fn outcome<T>(r: &Result<T, tonic::Status>) -> String {
    match r {
        Ok(_) => "success".into(),
        Err(s) => format!("{:?}/{}", s.code(), error_name(s)),
    }
}

async fn expect_invalid(kms: &mut KmsClient, blob: &[u8], c: &HashMap<String, String>, what: &str) {
    let r = decrypt(kms, blob, c).await;
    assert!(
        matches!(&r, Err(s) if s.code() == Code::InvalidArgument
            && error_name(s) == "InvalidCiphertextException"),
        "{what}: expected InvalidCiphertextException, got {}",
        outcome(&r)
    );
}

/// Every single-bit change of a blob is refused with
/// InvalidCiphertextException and one message (DESIGN.md section 5: "reveals
/// nothing more"). The 65-byte header and the context are authenticated as
/// AAD, the body and tag by GCM; a changed key id (bytes 1..17) names a key
/// that does not exist, and a changed material version (17..21) a version
/// that does not exist, and neither may say so.
#[tokio::test]
async fn every_bit_flip_is_refused() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    // A second key, so that "the wrong key exists" is also a possibility.
    create_key(&mut kms).await;
    let c = ctx(&[("purpose", "tamper")]);
    let pt = b"nineteen byte text!";
    let blob = encrypt(&mut kms, &m.key_id, pt, &c)
        .await
        .unwrap()
        .ciphertext_blob;
    assert_eq!(blob.len(), 100);

    let mut messages = std::collections::BTreeSet::new();
    for byte in 0..blob.len() {
        for bit in 0..8 {
            let mut t = blob.clone();
            t[byte] ^= 1 << bit;
            let r = decrypt(&mut kms, &t, &c).await;
            let ok = match &r {
                Err(s) => {
                    messages.insert(s.message().to_owned());
                    s.code() == Code::InvalidArgument
                        && error_name(s) == "InvalidCiphertextException"
                }
                Ok(_) => false,
            };
            assert!(ok, "byte {byte} bit {bit}: got {}", outcome(&r));
        }
    }
    assert_eq!(
        messages.len(),
        1,
        "one message for every change: {messages:?}"
    );
    // The original is intact.
    assert_eq!(decrypt(&mut kms, &blob, &c).await.unwrap().plaintext, pt);
}

#[tokio::test]
async fn truncated_and_oversized_blobs_are_refused() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &m.key_id, b"some plaintext bytes").await;
    let n = blob.len();
    for len in [1, 16, 17, 20, 21, 52, 53, 64, 65, 66, 80, n - 16, n - 1] {
        expect_invalid(
            &mut kms,
            &blob[..len],
            &ctx(&[]),
            &format!("truncated to {len}"),
        )
        .await;
    }
    // Bytes appended, or a tag cut off the end and the rest shifted.
    let mut longer = blob.clone();
    longer.push(0);
    expect_invalid(&mut kms, &longer, &ctx(&[]), "one byte appended").await;
    // With the first byte removed, the key id's first byte becomes the
    // version byte; when it happens to be 0x01 the shifted header is well
    // formed and names a key that does not exist, which is refused alike.
    expect_invalid(&mut kms, &blob[1..], &ctx(&[]), "first byte removed").await;

    // Empty and over 6144 bytes: bad parameters.
    assert_err(
        decrypt(&mut kms, &[], &ctx(&[])).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    let mut huge = blob.clone();
    huge.resize(6145, 0);
    assert_err(
        decrypt(&mut kms, &huge, &ctx(&[])).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    // 6144 bytes is a size that may be sent (it is then refused as altered).
    huge.truncate(6144);
    expect_invalid(&mut kms, &huge, &ctx(&[]), "padded to 6144").await;
}

#[tokio::test]
async fn wrong_encryption_context_is_refused() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let c = ctx(&[("a", "1"), ("b", "2")]);
    let blob = encrypt(&mut kms, &m.key_id, b"bound", &c)
        .await
        .unwrap()
        .ciphertext_blob;

    let cases = [
        ("extra entry", ctx(&[("a", "1"), ("b", "2"), ("c", "3")])),
        ("missing entry", ctx(&[("a", "1")])),
        ("missing context", ctx(&[])),
        ("changed value", ctx(&[("a", "1"), ("b", "3")])),
        ("changed key", ctx(&[("a", "1"), ("B", "2")])),
        ("swapped values", ctx(&[("a", "2"), ("b", "1")])),
        // Same concatenation of keys and values, split differently.
        (
            "shifted boundary",
            ctx(&[("a", "1b"), ("b", ""), ("c", "2")]),
        ),
    ];
    for (what, wrong) in cases {
        expect_invalid(&mut kms, &blob, &wrong, what).await;
    }
    // A blob made without context refuses any context.
    let plain = encrypt_ok(&mut kms, &m.key_id, b"unbound").await;
    expect_invalid(&mut kms, &plain, &ctx(&[("a", "1")]), "context added").await;
    assert_eq!(
        decrypt(&mut kms, &blob, &c).await.unwrap().plaintext,
        b"bound"
    );
}

/// The header is authenticated: a blob relabelled with another existing
/// key's id, or with another existing version of its own key, is refused.
#[tokio::test]
async fn relabelled_blobs_are_refused() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let a = create_key(&mut kms).await;
    let b = create_key(&mut kms).await;
    let blob = encrypt_ok(&mut kms, &a.key_id, b"labelled a").await;

    let mut to_b = blob.clone();
    to_b[1..17].copy_from_slice(uuid::Uuid::parse_str(&b.key_id).unwrap().as_bytes());
    expect_invalid(&mut kms, &to_b, &ctx(&[]), "relabelled to key b").await;
    let r = decrypt_with_key(&mut kms, &to_b, Some(&b.key_id), &ctx(&[])).await;
    assert_err(r, Code::InvalidArgument, "InvalidCiphertextException");

    kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
        key_id: a.key_id.clone(),
    })
    .await
    .unwrap();
    let mut to_v2 = blob.clone();
    to_v2[17..21].copy_from_slice(&2u32.to_be_bytes());
    expect_invalid(&mut kms, &to_v2, &ctx(&[]), "relabelled to version 2").await;
    for v in [0u32, 3, u32::MAX] {
        let mut t = blob.clone();
        t[17..21].copy_from_slice(&v.to_be_bytes());
        expect_invalid(&mut kms, &t, &ctx(&[]), &format!("version {v}")).await;
    }
    let mut t = blob.clone();
    t[0] = 2;
    expect_invalid(&mut kms, &t, &ctx(&[]), "format version 2").await;
    // The same body and tag under a fresh salt and nonce.
    let other = encrypt_ok(&mut kms, &a.key_id, b"labelled a").await;
    let mut spliced = other[..65].to_vec();
    spliced.extend_from_slice(&blob[65..]);
    expect_invalid(&mut kms, &spliced, &ctx(&[]), "header of another blob").await;
    assert_eq!(decrypt_ok(&mut kms, &blob).await, b"labelled a");
}

/// Condition keys ignore case, so a context whose keys differ only by case
/// could hide one value from a `kms:EncryptionContext:` condition: refused.
#[tokio::test]
async fn context_keys_differing_only_by_case_are_refused() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let both = ctx(&[("Dept", "secret"), ("dept", "x")]);
    assert_err(
        encrypt(&mut kms, &m.key_id, b"x", &both).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    let r = kms
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: m.key_id.clone(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: both,
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
    // Distinct keys of any case are fine.
    encrypt(
        &mut kms,
        &m.key_id,
        b"x",
        &ctx(&[("Dept", "a"), ("Team", "b")]),
    )
    .await
    .unwrap();
}
