//! Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
//! EnableKey/DisableKey, ScheduleKeyDeletion/CancelKeyDeletion, and the
//! isolation of accounts.

use std::collections::HashSet;

use kmsd::pb;
use tonic::Code;

use crate::common::{TestDaemon, assert_err};
use crate::util::*;

fn policy_for(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

#[tokio::test]
async fn create_key_returns_complete_metadata() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let before = now_ms(&d);
    let m = create_key_described(&mut kms, "payments key").await;
    let acct = &d.admin.account_id;

    let id = uuid::Uuid::parse_str(&m.key_id).expect("key_id is a UUID");
    assert_eq!(
        m.key_id,
        id.to_string(),
        "key_id is the hyphenated lower-case UUID"
    );
    assert_eq!(
        m.arn,
        format!("arn:aws:kms:us-east-1:{acct}:key/{}", m.key_id)
    );
    assert_eq!(&m.aws_account_id, acct);
    assert_eq!(m.key_state, pb::KeyState::Enabled as i32);
    assert!(m.enabled);
    assert_eq!(m.description, "payments key");
    assert_eq!(m.key_usage, pb::KeyUsage::EncryptDecrypt as i32);
    assert_eq!(m.key_spec, pb::KeySpec::SymmetricDefault as i32);
    assert_eq!(m.origin, pb::OriginType::AwsKms as i32);
    assert_eq!(m.key_manager, pb::KeyManagerType::Customer as i32);
    assert_eq!(
        m.encryption_algorithms,
        vec![pb::EncryptionAlgorithmSpec::SymmetricDefault as i32]
    );
    assert_eq!(m.deletion_date, None);
    assert_eq!(m.pending_deletion_window_in_days, None);
    assert!(!m.key_rotation_enabled);
    assert_eq!(m.next_rotation_date, None);
    assert_eq!(m.current_key_material_version, 1);
    let created = ts_ms(m.creation_date.as_ref().expect("creation_date"));
    assert!(
        created >= before - 1000 && created <= now_ms(&d) + 1000,
        "creation_date {created} is the daemon clock's now ({before})"
    );

    // Explicit usage and spec are accepted.
    let m2 = create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            key_usage: Some(pb::KeyUsage::EncryptDecrypt as i32),
            key_spec: Some(pb::KeySpec::SymmetricDefault as i32),
            ..Default::default()
        },
    )
    .await;
    assert_ne!(m2.key_id, m.key_id, "each key gets a new id");
    assert_eq!(m2.description, "", "no description is the empty string");

    // DescribeKey returns the same metadata.
    let again = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(again, m);
}

#[tokio::test]
async fn create_key_validates_description() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let longest = "d".repeat(8192);
    let m = create_key_described(&mut kms, &longest).await;
    assert_eq!(m.description.len(), 8192);
    let r = kms
        .create_key(pb::CreateKeyRequest {
            description: Some("d".repeat(8193)),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
    assert_eq!(
        all_key_ids(&mut kms).await,
        vec![m.key_id],
        "no key was created"
    );
}

#[tokio::test]
async fn create_key_validates_policy() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let good = policy_for(&d.admin.account_id);

    // A valid policy is accepted, even padded to exactly 32 KiB.
    create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            policy: Some(good.clone()),
            ..Default::default()
        },
    )
    .await;
    let padded = format!("{good}{}", " ".repeat(32 * 1024 - good.len()));
    assert_eq!(padded.len(), 32 * 1024);
    create_key_with(
        &mut kms,
        pb::CreateKeyRequest {
            policy: Some(padded.clone()),
            ..Default::default()
        },
    )
    .await;

    // Over 32 KiB.
    let r = kms
        .create_key(pb::CreateKeyRequest {
            policy: Some(format!("{padded} ")),
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "MalformedPolicyDocumentException");

    // Not JSON, or JSON but not a policy.
    for bad in ["not json", "{", "[]", r#"{"Version":"2012-10-17"}"#] {
        let r = kms
            .create_key(pb::CreateKeyRequest {
                policy: Some(bad.to_owned()),
                ..Default::default()
            })
            .await;
        assert_err(r, Code::InvalidArgument, "MalformedPolicyDocumentException");
    }

    // key_administrators or key_users together with a policy.
    let admin_arn = format!("arn:aws:iam::{}:user/admin", d.admin.account_id);
    let r = kms
        .create_key(pb::CreateKeyRequest {
            policy: Some(good.clone()),
            key_administrators: vec![admin_arn.clone()],
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
    let r = kms
        .create_key(pb::CreateKeyRequest {
            policy: Some(good),
            key_users: vec![admin_arn],
            ..Default::default()
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");

    assert_eq!(
        all_key_ids(&mut kms).await.len(),
        2,
        "refused requests created nothing"
    );
}

#[tokio::test]
async fn describe_key_by_id_arn_alias_and_alias_arn() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    let _other = create_key(&mut kms).await;
    create_alias(&mut kms, "alias/describe-me", &m.key_id)
        .await
        .unwrap();
    let alias_arn = format!(
        "arn:aws:kms:us-east-1:{}:alias/describe-me",
        d.admin.account_id
    );
    for r in [
        m.key_id.clone(),
        m.arn.clone(),
        "alias/describe-me".to_owned(),
        alias_arn,
    ] {
        let got = describe(&mut kms, &r)
            .await
            .unwrap_or_else(|e| panic!("{r}: {e:?}"));
        assert_eq!(got.key_id, m.key_id, "by {r}");
        assert_eq!(got.arn, m.arn, "by {r}");
    }
}

#[tokio::test]
async fn describe_unknown_key_is_not_found() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    create_key(&mut kms).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_err(
        describe(&mut kms, &unknown).await,
        Code::NotFound,
        "NotFoundException",
    );
    let arn = format!("arn:aws:kms:us-east-1:{}:key/{unknown}", d.admin.account_id);
    assert_err(
        describe(&mut kms, &arn).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        describe(&mut kms, "alias/does-not-exist").await,
        Code::NotFound,
        "NotFoundException",
    );
    // Not a key id at all: AWS answers NotFoundException ("Invalid keyId").
    assert_err(
        describe(&mut kms, "not-a-key").await,
        Code::NotFound,
        "NotFoundException",
    );
    // Empty: a missing required parameter.
    assert_err(
        describe(&mut kms, "").await,
        Code::InvalidArgument,
        "ValidationException",
    );
}

#[tokio::test]
async fn list_keys_pages_with_limit_and_marker() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let mut created = HashSet::new();
    for _ in 0..5 {
        created.insert(create_key(&mut kms).await.key_id);
    }

    // Everything in one page by default.
    let all = kms
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!all.truncated);
    assert_eq!(all.next_marker, None);
    assert_eq!(all.keys.len(), 5);
    for k in &all.keys {
        assert!(created.contains(&k.key_id));
        assert_eq!(
            k.key_arn,
            format!(
                "arn:aws:kms:us-east-1:{}:key/{}",
                d.admin.account_id, k.key_id
            )
        );
    }

    // Pages of two: 2, 2, 1.
    let mut seen = Vec::new();
    let mut marker = None;
    let mut sizes = Vec::new();
    loop {
        let page = kms
            .list_keys(pb::ListKeysRequest {
                limit: Some(2),
                marker: marker.take(),
            })
            .await
            .unwrap()
            .into_inner();
        sizes.push(page.keys.len());
        seen.extend(page.keys.into_iter().map(|k| k.key_id));
        if page.truncated {
            marker = Some(page.next_marker.expect("a truncated page has next_marker"));
        } else {
            assert_eq!(page.next_marker, None, "the last page has no next_marker");
            break;
        }
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(seen.len(), 5, "no key twice: {seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);

    // Exactly `limit` keys left: not truncated.
    let page = kms
        .list_keys(pb::ListKeysRequest {
            limit: Some(5),
            marker: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.keys.len(), 5);
    assert!(!page.truncated);

    // Bounds of limit.
    for limit in [1, 1000] {
        kms.list_keys(pb::ListKeysRequest {
            limit: Some(limit),
            marker: None,
        })
        .await
        .unwrap_or_else(|e| panic!("limit {limit}: {e:?}"));
    }
    for limit in [0, 1001, -1] {
        let r = kms
            .list_keys(pb::ListKeysRequest {
                limit: Some(limit),
                marker: None,
            })
            .await;
        assert_err(r, Code::InvalidArgument, "ValidationException");
    }

    // Markers the daemon never issued.
    for bad in ["!!not a marker!!", "Zm9vYmFy", "\u{e9}t\u{e9}"] {
        let r = kms
            .list_keys(pb::ListKeysRequest {
                limit: None,
                marker: Some(bad.to_owned()),
            })
            .await;
        assert_err(r, Code::InvalidArgument, "InvalidMarkerException");
    }
}

#[tokio::test]
async fn update_key_description() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key_described(&mut kms, "old").await;
    kms.update_key_description(pb::UpdateKeyDescriptionRequest {
        key_id: m.key_id.clone(),
        description: "new".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        describe(&mut kms, &m.key_id).await.unwrap().description,
        "new"
    );

    // By ARN, to the empty string.
    kms.update_key_description(pb::UpdateKeyDescriptionRequest {
        key_id: m.arn.clone(),
        description: String::new(),
    })
    .await
    .unwrap();
    assert_eq!(describe(&mut kms, &m.key_id).await.unwrap().description, "");

    let r = kms
        .update_key_description(pb::UpdateKeyDescriptionRequest {
            key_id: m.key_id.clone(),
            description: "x".repeat(8193),
        })
        .await;
    assert_err(r, Code::InvalidArgument, "ValidationException");
    let r = kms
        .update_key_description(pb::UpdateKeyDescriptionRequest {
            key_id: uuid::Uuid::new_v4().to_string(),
            description: "x".into(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
}

#[tokio::test]
async fn enable_and_disable() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    disable(&mut kms, &m.key_id).await;
    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::Disabled as i32);
    assert!(!got.enabled);
    // Disabling twice is harmless, as in AWS.
    disable(&mut kms, &m.key_id).await;

    enable(&mut kms, &m.arn).await;
    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::Enabled as i32);
    assert!(got.enabled);
    enable(&mut kms, &m.key_id).await;
    encrypt_ok(&mut kms, &m.key_id, b"usable again").await;

    let r = kms
        .disable_key(pb::DisableKeyRequest {
            key_id: uuid::Uuid::new_v4().to_string(),
        })
        .await;
    assert_err(r, Code::NotFound, "NotFoundException");
}

#[tokio::test]
async fn schedule_key_deletion_window_bounds_and_default() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;

    for days in [6, 31, 0, -7] {
        assert_err(
            schedule_deletion(&mut kms, &m.key_id, Some(days)).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert_eq!(
        describe(&mut kms, &m.key_id).await.unwrap().key_state,
        pb::KeyState::Enabled as i32,
        "a refused schedule changes nothing"
    );

    let now = now_ms(&d);
    let r = schedule_deletion(&mut kms, &m.key_id, None).await.unwrap();
    assert_eq!(r.key_id, m.arn, "ScheduleKeyDeletion answers the key ARN");
    assert_eq!(r.key_state, pb::KeyState::PendingDeletion as i32);
    assert_eq!(r.pending_window_in_days, 30);
    let date = ts_ms(r.deletion_date.as_ref().expect("deletion_date"));
    assert_eq!(
        date,
        now + 30 * 86_400_000,
        "deletion date is now + 30 days"
    );

    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::PendingDeletion as i32);
    assert!(!got.enabled);
    assert_eq!(got.deletion_date.as_ref().map(ts_ms), Some(date));
    // A pending key is still listed.
    assert_eq!(all_key_ids(&mut kms).await, vec![m.key_id.clone()]);

    // The bounds themselves are accepted.
    for days in [7, 30] {
        let k = create_key(&mut kms).await;
        let r = schedule_deletion(&mut kms, &k.arn, Some(days))
            .await
            .unwrap();
        assert_eq!(r.pending_window_in_days, days);
        assert_eq!(
            ts_ms(r.deletion_date.as_ref().unwrap()),
            now_ms(&d) + i64::from(days) * 86_400_000
        );
    }

    // A disabled key may be scheduled too.
    let k = create_key(&mut kms).await;
    disable(&mut kms, &k.key_id).await;
    schedule_deletion(&mut kms, &k.key_id, Some(7))
        .await
        .unwrap();

    assert_err(
        schedule_deletion(&mut kms, &uuid::Uuid::new_v4().to_string(), None).await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn pending_key_refuses_state_changes() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();

    let r = kms
        .enable_key(pb::EnableKeyRequest {
            key_id: m.key_id.clone(),
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    let r = kms
        .disable_key(pb::DisableKeyRequest {
            key_id: m.key_id.clone(),
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    assert_err(
        schedule_deletion(&mut kms, &m.key_id, Some(10)).await,
        Code::FailedPrecondition,
        "KMSInvalidStateException",
    );
    let r = kms
        .update_key_description(pb::UpdateKeyDescriptionRequest {
            key_id: m.key_id.clone(),
            description: "x".into(),
        })
        .await;
    assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");

    // Still pending, with the original window.
    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::PendingDeletion as i32);
    assert_eq!(
        got.deletion_date.as_ref().map(ts_ms),
        Some(ts_ms(&m.creation_date.unwrap()) + 7 * 86_400_000)
    );
}

#[tokio::test]
async fn cancel_key_deletion_returns_to_disabled() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key(&mut kms).await;
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();

    let r = kms
        .cancel_key_deletion(pb::CancelKeyDeletionRequest {
            key_id: m.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.key_id, m.arn, "CancelKeyDeletion answers the key ARN");

    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::Disabled as i32);
    assert!(!got.enabled);
    assert_eq!(got.deletion_date, None);
    assert_eq!(got.pending_deletion_window_in_days, None);
    assert_err(
        encrypt(&mut kms, &m.key_id, b"x", &ctx(&[])).await,
        Code::FailedPrecondition,
        "DisabledException",
    );

    enable(&mut kms, &m.key_id).await;
    let blob = encrypt_ok(&mut kms, &m.key_id, b"usable").await;
    assert_eq!(decrypt_ok(&mut kms, &blob).await, b"usable");

    // Cancelling a key that is not pending.
    for state in ["enabled", "disabled"] {
        if state == "disabled" {
            disable(&mut kms, &m.key_id).await;
        }
        let r = kms
            .cancel_key_deletion(pb::CancelKeyDeletionRequest {
                key_id: m.key_id.clone(),
            })
            .await;
        assert_err(r, Code::FailedPrecondition, "KMSInvalidStateException");
    }

    // And it can be scheduled again.
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
}

#[tokio::test]
async fn other_accounts_keys_are_invisible_and_refused() {
    let d = TestDaemon::start().await;
    let mut admin = d.admin_kms().await;
    let mine = create_key(&mut admin).await;

    let other = new_account(&d, "other").await;
    assert_ne!(other.account_id, d.admin.account_id);
    let mut theirs_kms = d.kms_client(&other).await;
    let theirs = create_key(&mut theirs_kms).await;
    assert_eq!(theirs.aws_account_id, other.account_id);
    assert_eq!(
        theirs.arn,
        format!(
            "arn:aws:kms:us-east-1:{}:key/{}",
            other.account_id, theirs.key_id
        )
    );
    create_alias(&mut theirs_kms, "alias/theirs", &theirs.key_id)
        .await
        .unwrap();

    // By bare id: looked up in the caller's own account, so not found.
    assert_err(
        describe(&mut admin, &theirs.key_id).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        encrypt(&mut admin, &theirs.key_id, b"x", &ctx(&[])).await,
        Code::NotFound,
        "NotFoundException",
    );
    // An alias name is in the caller's own account too.
    assert_err(
        describe(&mut admin, "alias/theirs").await,
        Code::NotFound,
        "NotFoundException",
    );

    // Not listed.
    let listed = all_key_ids(&mut admin).await;
    assert_eq!(listed, vec![mine.key_id.clone()]);
    assert_eq!(
        all_key_ids(&mut theirs_kms).await,
        vec![theirs.key_id.clone()]
    );

    // By ARN: found, but no policy lets another account in.
    assert_err(
        describe(&mut admin, &theirs.arn).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        encrypt(&mut admin, &theirs.arn, b"x", &ctx(&[])).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let r = admin
        .disable_key(pb::DisableKeyRequest {
            key_id: theirs.arn.clone(),
        })
        .await;
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
    assert_err(
        schedule_deletion(&mut admin, &theirs.arn, Some(7)).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let alias_arn = format!("arn:aws:kms:us-east-1:{}:alias/theirs", other.account_id);
    assert_err(
        describe(&mut admin, &alias_arn).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // A blob of theirs names their key: decrypting it is refused too.
    let blob = encrypt_ok(&mut theirs_kms, &theirs.key_id, b"secret of theirs").await;
    assert_err(
        decrypt(&mut admin, &blob, &ctx(&[])).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // Nothing changed for them.
    let got = describe(&mut theirs_kms, &theirs.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::Enabled as i32);
    // And the other direction holds too.
    assert_err(
        describe(&mut theirs_kms, &mine.key_id).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        describe(&mut theirs_kms, &mine.arn).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
}

/// AWS accepts only a key id or key ARN (not an alias) for the operations
/// that change a key's state: EnableKey, DisableKey, ScheduleKeyDeletion,
/// CancelKeyDeletion, UpdateKeyDescription ("Specify the key ID or key ARN
/// of the KMS key"). Accepting an alias is dangerous here: an alias can be
/// retargeted, so a deletion scheduled "by alias" may hit another key.
#[tokio::test]
async fn state_changes_refuse_aliases() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let m = create_key_described(&mut kms, "by id only").await;
    create_alias(&mut kms, "alias/target", &m.key_id)
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:us-east-1:{}:alias/target", d.admin.account_id);

    let refused = |what: &str, r: Result<(), tonic::Status>| match r {
        Ok(()) => panic!("{what} accepted an alias"),
        Err(s) => assert!(
            matches!(s.code(), Code::InvalidArgument | Code::NotFound),
            "{what}: {s:?}"
        ),
    };
    for alias in ["alias/target", alias_arn.as_str()] {
        let r = kms
            .disable_key(pb::DisableKeyRequest {
                key_id: alias.to_owned(),
            })
            .await
            .map(|_| ());
        refused(&format!("DisableKey({alias})"), r);
        let r = kms
            .update_key_description(pb::UpdateKeyDescriptionRequest {
                key_id: alias.to_owned(),
                description: "changed".into(),
            })
            .await
            .map(|_| ());
        refused(&format!("UpdateKeyDescription({alias})"), r);
        let r = schedule_deletion(&mut kms, alias, Some(7))
            .await
            .map(|_| ());
        refused(&format!("ScheduleKeyDeletion({alias})"), r);
    }
    let got = describe(&mut kms, &m.key_id).await.unwrap();
    assert_eq!(got.key_state, pb::KeyState::Enabled as i32);
    assert_eq!(got.description, "by id only");

    disable(&mut kms, &m.key_id).await;
    let r = kms
        .enable_key(pb::EnableKeyRequest {
            key_id: "alias/target".into(),
        })
        .await
        .map(|_| ());
    refused("EnableKey(alias)", r);
    schedule_deletion(&mut kms, &m.key_id, Some(7))
        .await
        .unwrap();
    let r = kms
        .cancel_key_deletion(pb::CancelKeyDeletionRequest {
            key_id: "alias/target".into(),
        })
        .await
        .map(|_| ());
    refused("CancelKeyDeletion(alias)", r);
    assert_eq!(
        describe(&mut kms, &m.key_id).await.unwrap().key_state,
        pb::KeyState::PendingDeletion as i32
    );
}
