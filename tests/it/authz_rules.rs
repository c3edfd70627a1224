//! Authorization rules beyond the matrix: explicit deny wins, conditions
//! (each with an allowing and a denying case), cross-account access, the
//! policy lockout check, malformed policies, the key-policy RPCs, groups,
//! and the identity-only checks of CreateKey and ListKeys.

use std::time::Duration;

use kmsd::client::KmsClient;
use kmsd::clock::{Clock, Timestamp};
use kmsd::pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::authz_util::*;
use crate::common::{TestDaemon, assert_err};
use crate::util::*;

/// The statement that keeps the account root (and, through it, IAM) in.
fn root_statement(acct: &str) -> Value {
    json!({
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": root_arn(acct)},
        "Action": "kms:*",
        "Resource": "*"
    })
}

/// A key policy of the root statement plus `statements`.
fn key_policy_with_root(acct: &str, statements: &[Value]) -> String {
    let mut all = vec![root_statement(acct)];
    all.extend_from_slice(statements);
    policy_doc(Value::Array(all))
}

/// A key created by the account root with `policy`; its ARN.
async fn key_with_policy(root: &mut KmsClient, policy: &str) -> String {
    create_key_with(
        root,
        pb::CreateKeyRequest {
            policy: Some(policy.to_owned()),
            ..Default::default()
        },
    )
    .await
    .arn
}

/// A key with separate administrators and users, created by the root.
async fn admins_users_key(root: &mut KmsClient, admins: &[String], users: &[String]) -> String {
    create_key_with(
        root,
        pb::CreateKeyRequest {
            key_administrators: admins.to_vec(),
            key_users: users.to_vec(),
            ..Default::default()
        },
    )
    .await
    .arn
}

async fn encrypt_with(
    kms: &mut KmsClient,
    key: &str,
    context: &[(&str, &str)],
) -> Result<pb::EncryptResponse, tonic::Status> {
    encrypt(kms, key, b"rules", &ctx(context)).await
}

async fn key_state(kms: &mut KmsClient, key: &str) -> pb::KeyState {
    let m = describe(kms, key).await.expect("DescribeKey");
    pb::KeyState::try_from(m.key_state).expect("known state")
}

// ---------------------------------------------------------------------------
// Explicit deny
// ---------------------------------------------------------------------------

/// Issue 3's example: an administrator with full access plus one identity
/// policy denying ScheduleKeyDeletion cannot schedule deletion; everything
/// else it may do still works, and dropping the deny lets it through.
#[tokio::test]
async fn identity_deny_beats_key_policy_allow() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let keyadmin = new_user(&d, &d.root, "keyadmin").await;
    let admin_arn = user_arn(&acct, "keyadmin");
    put_user_policy(&d, &d.root, "keyadmin", "full", &allow_identity("*"))
        .await
        .unwrap();
    put_user_policy(
        &d,
        &d.root,
        "keyadmin",
        "no-deletion",
        &deny_identity("kms:ScheduleKeyDeletion"),
    )
    .await
    .unwrap();
    let key = admins_users_key(&mut root, std::slice::from_ref(&admin_arn), &[]).await;
    let mut kms = d.kms_client(&keyadmin).await;

    assert_denied(
        schedule_deletion(&mut kms, &key, Some(7)).await,
        &admin_arn,
        "kms:ScheduleKeyDeletion",
        &key,
    );
    assert_eq!(key_state(&mut root, &key).await, pb::KeyState::Enabled);

    // The other administrative rights are intact.
    describe(&mut kms, &key).await.expect("DescribeKey");
    disable(&mut kms, &key).await;
    enable(&mut kms, &key).await;
    kms.tag_resource(pb::TagResourceRequest {
        key_id: key.clone(),
        tags: vec![pb::Tag {
            tag_key: "team".into(),
            tag_value: "sec".into(),
        }],
    })
    .await
    .expect("TagResource");
    let policy = get_key_policy(&mut kms, &key).await.expect("GetKeyPolicy");
    put_key_policy(&mut kms, &key, &policy, false)
        .await
        .expect("PutKeyPolicy");

    // Without the deny, the administrator may schedule deletion.
    d.identity_client(&d.root)
        .await
        .delete_user_policy(pb::DeletePrincipalPolicyRequest {
            principal_name: "keyadmin".into(),
            policy_name: "no-deletion".into(),
        })
        .await
        .unwrap();
    schedule_deletion(&mut kms, &key, Some(7))
        .await
        .expect("ScheduleKeyDeletion once the deny is gone");
}

/// A Deny in the key policy beats the administrators' Allow, and a Deny for
/// everyone binds even the account root.
#[tokio::test]
async fn key_policy_deny_beats_allow() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let keyadmin = new_user(&d, &d.root, "keyadmin").await;
    let admin_arn = user_arn(&acct, "keyadmin");
    let policy = key_policy_with_root(
        &acct,
        &[
            json!({"Sid": "Admins", "Effect": "Allow", "Principal": {"AWS": admin_arn},
                   "Action": ["kms:Describe*", "kms:Disable*", "kms:Enable*", "kms:Put*",
                              "kms:Get*", "kms:TagResource"], "Resource": "*"}),
            json!({"Sid": "NoDisable", "Effect": "Deny", "Principal": {"AWS": admin_arn},
                   "Action": "kms:DisableKey", "Resource": "*"}),
            json!({"Sid": "NobodyDeletes", "Effect": "Deny", "Principal": "*",
                   "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}),
        ],
    );
    let key = key_with_policy(&mut root, &policy).await;
    let mut kms = d.kms_client(&keyadmin).await;

    assert_denied(
        kms.disable_key(pb::DisableKeyRequest {
            key_id: key.clone(),
        })
        .await,
        &admin_arn,
        "kms:DisableKey",
        &key,
    );
    assert_eq!(key_state(&mut root, &key).await, pb::KeyState::Enabled);
    describe(&mut kms, &key)
        .await
        .expect("DescribeKey still allowed");
    kms.tag_resource(pb::TagResourceRequest {
        key_id: key.clone(),
        tags: vec![pb::Tag {
            tag_key: "a".into(),
            tag_value: "b".into(),
        }],
    })
    .await
    .expect("TagResource still allowed");

    // The Deny for "*" binds the root too, and the administrator.
    assert_denied(
        schedule_deletion(&mut root, &key, Some(7)).await,
        &root_arn(&acct),
        "kms:ScheduleKeyDeletion",
        &key,
    );
    assert_denied(
        schedule_deletion(&mut kms, &key, Some(7)).await,
        &admin_arn,
        "kms:ScheduleKeyDeletion",
        &key,
    );
    assert_eq!(key_state(&mut root, &key).await, pb::KeyState::Enabled);
}

// ---------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------

/// `aws:SourceIp` is the connection's peer (127.0.0.1 here).
#[tokio::test]
async fn source_ip_condition() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let with = |op: &str, cidr: &str| {
        key_policy_with_root(
            &acct,
            &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                     "Action": "kms:Encrypt", "Resource": "*",
                     "Condition": {op: {"aws:SourceIp": cidr}}})],
        )
    };
    let key = key_with_policy(&mut root, &with("IpAddress", "127.0.0.0/8")).await;
    encrypt_with(&mut kms, &key, &[])
        .await
        .expect("IpAddress 127.0.0.0/8 allows a loopback caller");

    put_key_policy(&mut root, &key, &with("IpAddress", "10.0.0.0/8"), false)
        .await
        .unwrap();
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );

    put_key_policy(&mut root, &key, &with("NotIpAddress", "10.0.0.0/8"), false)
        .await
        .unwrap();
    encrypt_with(&mut kms, &key, &[])
        .await
        .expect("NotIpAddress 10.0.0.0/8 allows a loopback caller");

    put_key_policy(&mut root, &key, &with("NotIpAddress", "127.0.0.0/8"), false)
        .await
        .unwrap();
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );

    // A single address and a list.
    put_key_policy(&mut root, &key, &with("IpAddress", "127.0.0.1/32"), false)
        .await
        .unwrap();
    encrypt_with(&mut kms, &key, &[])
        .await
        .expect("IpAddress 127.0.0.1/32");
    let list = key_policy_with_root(
        &acct,
        &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                 "Action": "kms:Encrypt", "Resource": "*",
                 "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}})],
    );
    put_key_policy(&mut root, &key, &list, false).await.unwrap();
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );

    // In an identity policy too: a Deny outside 10.0.0.0/8 binds the admin.
    let admin_arn = user_arn(&acct, "admin");
    let mut admin = d.admin_kms().await;
    let default_key = create_key(&mut root).await.arn;
    encrypt_with(&mut admin, &default_key, &[])
        .await
        .expect("admin uses a default-policy key through its identity policy");
    let deny_outside = policy_doc(json!([{"Effect": "Deny", "Action": "kms:Encrypt",
        "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]));
    put_user_policy(&d, &d.root, "admin", "office-only", &deny_outside)
        .await
        .unwrap();
    assert_denied(
        encrypt_with(&mut admin, &default_key, &[]).await,
        &admin_arn,
        "kms:Encrypt",
        &default_key,
    );
}

/// `aws:MultiFactorAuthPresent`: true for a session assumed with a valid
/// TOTP code, false for one without, absent for a plain user.
#[tokio::test]
async fn mfa_condition() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let app_arn = role_arn(&acct, "app");
    create_role(&d, &d.root, "app", &trust_policy(&[&alice_arn]), None)
        .await
        .unwrap();
    let b32 = enable_mfa(&d, &alice).await.unwrap();
    let mfa = assume_role(&d, &alice, &app_arn, "mfa", None, Some(totp_code(&d, &b32)))
        .await
        .expect("AssumeRole with a valid code");
    let plain = assume_role(&d, &alice, &app_arn, "plain", None, None)
        .await
        .expect("AssumeRole without a code");
    let (mut mfa_kms, _) = session_clients(&d, &SessionCreds::of(&mfa)).await;
    let (mut plain_kms, _) = session_clients(&d, &SessionCreds::of(&plain)).await;
    let mut alice_kms = d.kms_client(&alice).await;
    let mfa_arn = assumed_role_arn(&acct, "app", "mfa");
    let plain_arn = assumed_role_arn(&acct, "app", "plain");

    let requiring = |value: &str| {
        key_policy_with_root(
            &acct,
            &[
                json!({"Effect": "Allow", "Principal": {"AWS": [app_arn, alice_arn]},
                     "Action": "kms:Encrypt", "Resource": "*",
                     "Condition": {"Bool": {"aws:MultiFactorAuthPresent": value}}}),
            ],
        )
    };
    let key = key_with_policy(&mut root, &requiring("true")).await;
    encrypt_with(&mut mfa_kms, &key, &[])
        .await
        .expect("the MFA session is allowed");
    assert_denied(
        encrypt_with(&mut plain_kms, &key, &[]).await,
        &plain_arn,
        "kms:Encrypt",
        &key,
    );
    // A plain user has no such key, so Bool does not match.
    assert_denied(
        encrypt_with(&mut alice_kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );

    put_key_policy(&mut root, &key, &requiring("false"), false)
        .await
        .unwrap();
    encrypt_with(&mut plain_kms, &key, &[])
        .await
        .expect("Bool false matches the session without MFA");
    assert_denied(
        encrypt_with(&mut mfa_kms, &key, &[]).await,
        &mfa_arn,
        "kms:Encrypt",
        &key,
    );
}

/// `kms:EncryptionContext:Department` with StringEquals Finance.
#[tokio::test]
async fn encryption_context_condition() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let policy = key_policy_with_root(
        &acct,
        &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                 "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
                 "Condition": {"StringEquals": {"kms:EncryptionContext:Department": "Finance"}}})],
    );
    let key = key_with_policy(&mut root, &policy).await;

    let finance = [("Department", "Finance")];
    let blob = encrypt_with(&mut kms, &key, &finance)
        .await
        .expect("Encrypt with Department=Finance")
        .ciphertext_blob;
    let back = decrypt(&mut kms, &blob, &ctx(&finance))
        .await
        .expect("Decrypt with Department=Finance");
    assert_eq!(back.plaintext, b"rules");
    encrypt_with(
        &mut kms,
        &key,
        &[("Department", "Finance"), ("Project", "x")],
    )
    .await
    .expect("another pair besides Department=Finance is fine");

    for (what, context) in [
        ("another department", vec![("Department", "HR")]),
        ("no context", vec![]),
        ("another key", vec![("Team", "Finance")]),
        ("a value differing in case", vec![("Department", "finance")]),
    ] {
        let r = encrypt_with(&mut kms, &key, &context).await;
        assert!(r.is_err(), "{what}: Encrypt must be denied");
        assert_denied(r, &alice_arn, "kms:Encrypt", &key);
    }
    assert_denied(
        decrypt(&mut kms, &blob, &ctx(&[])).await,
        &alice_arn,
        "kms:Decrypt",
        &key,
    );

    // kms:EncryptionContextKeys with a set qualifier.
    let keys_policy = key_policy_with_root(
        &acct,
        &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                 "Action": "kms:Encrypt", "Resource": "*",
                 "Condition": {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "Project"}}})],
    );
    put_key_policy(&mut root, &key, &keys_policy, false)
        .await
        .unwrap();
    encrypt_with(&mut kms, &key, &[("Project", "apollo")])
        .await
        .expect("a context with the key Project");
    assert_denied(
        encrypt_with(&mut kms, &key, &[("Department", "Finance")]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );
}

/// A time window on `aws:CurrentTime`, which is the daemon's clock.
#[tokio::test]
async fn time_window_condition() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let hour = 3_600_000;
    let t0 = d.clock.now().0;
    let window = |from_ms: i64, to_ms: i64| {
        key_policy_with_root(
            &acct,
            &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                     "Action": "kms:Encrypt", "Resource": "*",
                     "Condition": {
                         "DateGreaterThan": {"aws:CurrentTime": Timestamp(from_ms).to_rfc3339()},
                         "DateLessThan": {"aws:CurrentTime": Timestamp(to_ms).to_rfc3339()}}})],
        )
    };
    let key = key_with_policy(&mut root, &window(t0 - hour, t0 + hour)).await;
    encrypt_with(&mut kms, &key, &[])
        .await
        .expect("inside the window");

    d.advance(Duration::from_secs(2 * 3600));
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );

    // A window that has not begun yet, then has.
    put_key_policy(
        &mut root,
        &key,
        &window(t0 + 3 * hour, t0 + 5 * hour),
        false,
    )
    .await
    .unwrap();
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );
    d.advance(Duration::from_secs(2 * 3600));
    encrypt_with(&mut kms, &key, &[])
        .await
        .expect("inside the later window");
}

// ---------------------------------------------------------------------------
// Cross-account
// ---------------------------------------------------------------------------

/// Both sides must allow: A's key policy (naming B's root or B's bare id)
/// and B's identity policy.
#[tokio::test]
async fn cross_account_needs_both_sides() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    let carol = new_user(&d, &b, "carol").await;
    let bob_arn = user_arn(&b.account_id, "bob");
    let carol_arn = user_arn(&b.account_id, "carol");
    put_user_policy(&d, &b, "bob", "kms-all", &allow_identity("kms:*"))
        .await
        .unwrap();
    let mut bob_kms = d.kms_client(&bob).await;
    let mut carol_kms = d.kms_client(&carol).await;
    let mut b_root = d.kms_client(&b).await;

    let share = |principal: &str| {
        key_policy_with_root(
            &acct,
            &[
                json!({"Sid": "Share", "Effect": "Allow", "Principal": {"AWS": principal},
                     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                     "Resource": "*"}),
            ],
        )
    };
    let shared = key_with_policy(&mut root, &share(&root_arn(&b.account_id))).await;

    // Both allow.
    let blob = encrypt_with(&mut bob_kms, &shared, &[])
        .await
        .expect("A allows B, B allows bob")
        .ciphertext_blob;
    let back = decrypt_with_key(&mut bob_kms, &blob, Some(&shared), &ctx(&[]))
        .await
        .expect("Decrypt across accounts");
    assert_eq!(back.plaintext, b"rules");
    assert_eq!(
        describe(&mut bob_kms, &shared)
            .await
            .expect("DescribeKey")
            .arn,
        shared
    );
    encrypt_with(&mut b_root, &shared, &[])
        .await
        .expect("B's root needs no identity policy");
    // The key policy names only these actions.
    assert_denied(
        disable_key(&mut bob_kms, &shared).await,
        &bob_arn,
        "kms:DisableKey",
        &shared,
    );
    assert_eq!(key_state(&mut root, &shared).await, pb::KeyState::Enabled);

    // B's identity side does not allow: carol has no policy.
    assert_denied(
        encrypt_with(&mut carol_kms, &shared, &[]).await,
        &carol_arn,
        "kms:Encrypt",
        &shared,
    );
    // B's identity side allows another action only.
    put_user_policy(
        &d,
        &b,
        "carol",
        "only-describe",
        &allow_identity("kms:DescribeKey"),
    )
    .await
    .unwrap();
    describe(&mut carol_kms, &shared)
        .await
        .expect("carol may DescribeKey");
    assert_denied(
        encrypt_with(&mut carol_kms, &shared, &[]).await,
        &carol_arn,
        "kms:Encrypt",
        &shared,
    );
    // B's identity side denies.
    put_user_policy(&d, &b, "bob", "no-decrypt", &deny_identity("kms:Decrypt"))
        .await
        .unwrap();
    assert_denied(
        decrypt_with_key(&mut bob_kms, &blob, Some(&shared), &ctx(&[])).await,
        &bob_arn,
        "kms:Decrypt",
        &shared,
    );

    // A's key side does not allow: the default policy names only A.
    let private = create_key(&mut root).await.arn;
    assert_denied(
        encrypt_with(&mut bob_kms, &private, &[]).await,
        &bob_arn,
        "kms:Encrypt",
        &private,
    );
    assert_denied(
        encrypt_with(&mut b_root, &private, &[]).await,
        &root_arn(&b.account_id),
        "kms:Encrypt",
        &private,
    );

    // The account as a bare 12-digit id works like its root ARN.
    let by_id = key_with_policy(&mut root, &share(&b.account_id)).await;
    encrypt_with(&mut bob_kms, &by_id, &[])
        .await
        .expect("a key policy naming B's bare account id");
    assert_denied(
        encrypt_with(&mut carol_kms, &by_id, &[]).await,
        &carol_arn,
        "kms:Encrypt",
        &by_id,
    );
}

/// As in AWS KMS, only a key's own account manages it: a key policy
/// allowing another account `kms:*` lets that account use the key,
/// describe it, read its rotation status and work with its grants, but
/// every operation that manages the key is refused to it, to its users and
/// its root alike, and changes nothing.
#[tokio::test]
async fn another_account_may_use_a_key_but_never_manage_it() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    put_user_policy(&d, &b, "bob", "kms-all", &allow_identity("kms:*"))
        .await
        .unwrap();
    let mut bob_kms = d.kms_client(&bob).await;
    let mut b_root = d.kms_client(&b).await;
    let policy = key_policy_with_root(
        &acct,
        &[json!({"Sid": "B may do anything", "Effect": "Allow",
                 "Principal": {"AWS": root_arn(&b.account_id)},
                 "Action": "kms:*", "Resource": "*"})],
    );
    let key = key_with_policy(&mut root, &policy).await;
    let before = describe(&mut root, &key).await.unwrap();

    for (kms, principal) in [
        (&mut bob_kms, user_arn(&b.account_id, "bob")),
        (&mut b_root, root_arn(&b.account_id)),
    ] {
        encrypt_with(kms, &key, &[]).await.expect("Encrypt");
        describe(kms, &key).await.expect("DescribeKey");
        let id = || key.clone();
        kms.get_key_rotation_status(pb::GetKeyRotationStatusRequest { key_id: id() })
            .await
            .expect("GetKeyRotationStatus");
        kms.list_grants(pb::ListGrantsRequest {
            key_id: id(),
            ..Default::default()
        })
        .await
        .expect("ListGrants");

        let refused: Vec<(&str, Result<(), tonic::Status>)> = vec![
            ("DisableKey", disable_key(kms, &key).await),
            (
                "EnableKey",
                kms.enable_key(pb::EnableKeyRequest { key_id: id() })
                    .await
                    .map(drop),
            ),
            (
                "ScheduleKeyDeletion",
                kms.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
                    key_id: id(),
                    pending_window_in_days: Some(7),
                })
                .await
                .map(drop),
            ),
            (
                "CancelKeyDeletion",
                kms.cancel_key_deletion(pb::CancelKeyDeletionRequest { key_id: id() })
                    .await
                    .map(drop),
            ),
            (
                "UpdateKeyDescription",
                kms.update_key_description(pb::UpdateKeyDescriptionRequest {
                    key_id: id(),
                    description: "taken over".into(),
                })
                .await
                .map(drop),
            ),
            ("GetKeyPolicy", get_key_policy(kms, &key).await.map(drop)),
            (
                "PutKeyPolicy",
                put_key_policy(kms, &key, &policy, false).await.map(drop),
            ),
            (
                "ListKeyPolicies",
                kms.list_key_policies(pb::ListKeyPoliciesRequest {
                    key_id: id(),
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
            (
                "TagResource",
                kms.tag_resource(pb::TagResourceRequest {
                    key_id: id(),
                    tags: vec![pb::Tag {
                        tag_key: "owner".into(),
                        tag_value: "b".into(),
                    }],
                })
                .await
                .map(drop),
            ),
            (
                "ListResourceTags",
                kms.list_resource_tags(pb::ListResourceTagsRequest {
                    key_id: id(),
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
            (
                "EnableKeyRotation",
                kms.enable_key_rotation(pb::EnableKeyRotationRequest {
                    key_id: id(),
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
            (
                "RotateKeyOnDemand",
                kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest { key_id: id() })
                    .await
                    .map(drop),
            ),
            (
                "ListKeyRotations",
                kms.list_key_rotations(pb::ListKeyRotationsRequest {
                    key_id: id(),
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
            (
                "ListAliases",
                kms.list_aliases(pb::ListAliasesRequest {
                    key_id: Some(id()),
                    ..Default::default()
                })
                .await
                .map(drop),
            ),
        ];
        for (action, result) in refused {
            assert_denied(result, &principal, &format!("kms:{action}"), &key);
        }
    }
    let after = describe(&mut root, &key).await.unwrap();
    assert_eq!(after.key_state, pb::KeyState::Enabled as i32);
    assert_eq!(after.description, before.description);
    assert_eq!(after.deletion_date, None);
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), policy);
}

/// A key policy naming another account's user directly still needs that
/// user's own identity policy.
#[tokio::test]
async fn key_policy_naming_a_foreign_user_still_needs_its_identity_policy() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    let bob_arn = user_arn(&b.account_id, "bob");
    let mut bob_kms = d.kms_client(&bob).await;
    let policy = key_policy_with_root(
        &acct,
        &[json!({"Effect": "Allow", "Principal": {"AWS": bob_arn},
                 "Action": "kms:Encrypt", "Resource": "*"})],
    );
    let key = key_with_policy(&mut root, &policy).await;

    assert_denied(
        encrypt_with(&mut bob_kms, &key, &[]).await,
        &bob_arn,
        "kms:Encrypt",
        &key,
    );
    // An identity policy for another resource does not help.
    let elsewhere = policy_doc(json!([{"Effect": "Allow", "Action": "kms:Encrypt",
        "Resource": format!("arn:aws:kms:us-east-1:{acct}:key/00000000-0000-0000-0000-000000000000")}]));
    put_user_policy(&d, &b, "bob", "elsewhere", &elsewhere)
        .await
        .unwrap();
    assert_denied(
        encrypt_with(&mut bob_kms, &key, &[]).await,
        &bob_arn,
        "kms:Encrypt",
        &key,
    );
    // One naming this key's ARN does.
    let this_key =
        policy_doc(json!([{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": key}]));
    put_user_policy(&d, &b, "bob", "this-key", &this_key)
        .await
        .unwrap();
    encrypt_with(&mut bob_kms, &key, &[])
        .await
        .expect("both sides allow");
}

async fn disable_key(kms: &mut KmsClient, key: &str) -> Result<(), tonic::Status> {
    kms.disable_key(pb::DisableKeyRequest {
        key_id: key.to_owned(),
    })
    .await
    .map(|_| ())
}

// ---------------------------------------------------------------------------
// The lockout check
// ---------------------------------------------------------------------------

/// PutKeyPolicy refuses a policy that would lock the caller out, accepts it
/// with the bypass flag, after which the caller is indeed locked out.
#[tokio::test]
async fn lockout_check_and_bypass() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let keyadmin = new_user(&d, &d.root, "keyadmin").await;
    new_user(&d, &d.root, "keyuser").await;
    let admin_arn = user_arn(&acct, "keyadmin");
    let user = user_arn(&acct, "keyuser");
    let key = admins_users_key(
        &mut root,
        std::slice::from_ref(&admin_arn),
        std::slice::from_ref(&user),
    )
    .await;
    let original = get_key_policy(&mut root, &key).await.unwrap();
    let mut kms = d.kms_client(&keyadmin).await;

    // Only the user, and the administrator without Put*.
    let locking = policy_doc(json!([
        {"Effect": "Allow", "Principal": {"AWS": user}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": admin_arn},
         "Action": ["kms:Describe*", "kms:Get*"], "Resource": "*"}
    ]));
    let s = assert_err(
        put_key_policy(&mut kms, &key, &locking, false).await,
        Code::InvalidArgument,
        "MalformedPolicyDocumentException",
    );
    assert!(!s.message().is_empty());
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), original);

    // A policy that keeps the caller in is accepted without the flag.
    let keeping = policy_doc(json!([
        {"Effect": "Allow", "Principal": {"AWS": user}, "Action": "kms:Encrypt", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": admin_arn},
         "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy"], "Resource": "*"}
    ]));
    put_key_policy(&mut kms, &key, &keeping, false)
        .await
        .expect("a policy that keeps PutKeyPolicy");
    // A Deny of PutKeyPolicy for the caller locks it out too.
    let denying = policy_doc(json!([
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": admin_arn}, "Action": "kms:PutKeyPolicy", "Resource": "*"}
    ]));
    assert_err(
        put_key_policy(&mut kms, &key, &denying, false).await,
        Code::InvalidArgument,
        "MalformedPolicyDocumentException",
    );
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), keeping);

    // With the bypass flag it is accepted, and the caller is then locked out.
    put_key_policy(&mut kms, &key, &locking, true)
        .await
        .expect("bypass_policy_lockout_safety_check");
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), locking);
    assert_denied(
        put_key_policy(&mut kms, &key, &original, false).await,
        &admin_arn,
        "kms:PutKeyPolicy",
        &key,
    );
    assert_denied(
        put_key_policy(&mut kms, &key, &original, true).await,
        &admin_arn,
        "kms:PutKeyPolicy",
        &key,
    );
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), locking);
    // The account root is never locked out of its own keys.
    put_key_policy(&mut root, &key, &original, false)
        .await
        .expect("the root restores the policy");
}

/// CreateKey applies the same check to the caller: a policy under which
/// the creator could not call PutKeyPolicy needs the bypass flag.
#[tokio::test]
async fn create_key_lockout_check() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut admin = d.admin_kms().await;
    let mut root = d.kms_client(&d.root).await;
    let admin_arn = user_arn(&acct, "admin");
    let before = all_key_ids(&mut root).await.len();
    new_user(&d, &d.root, "someone").await;

    let only_other = key_policy_allowing(&[&user_arn(&acct, "someone")], &["kms:*"]);
    assert_err(
        admin
            .create_key(pb::CreateKeyRequest {
                policy: Some(only_other.clone()),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "MalformedPolicyDocumentException",
    );
    assert_eq!(all_key_ids(&mut root).await.len(), before, "no key made");

    // Through the account root statement and its identity policy, the
    // admin keeps access.
    let via_account = key_policy_allowing(&[&root_arn(&acct)], &["kms:*"]);
    let k = create_key_with(
        &mut admin,
        pb::CreateKeyRequest {
            policy: Some(via_account),
            ..Default::default()
        },
    )
    .await;
    describe(&mut admin, &k.arn).await.expect("DescribeKey");

    // Bypassed: created, and the creator is out.
    let locked = create_key_with(
        &mut admin,
        pb::CreateKeyRequest {
            policy: Some(only_other.clone()),
            bypass_policy_lockout_safety_check: true,
            ..Default::default()
        },
    )
    .await;
    assert_denied(
        describe(&mut admin, &locked.arn).await,
        &admin_arn,
        "kms:DescribeKey",
        &locked.arn,
    );
    assert_eq!(
        get_key_policy(&mut root, &locked.arn).await.unwrap(),
        only_other
    );
}

// ---------------------------------------------------------------------------
// Malformed policies and the key-policy RPCs
// ---------------------------------------------------------------------------

fn malformed_policies(acct: &str) -> Vec<(&'static str, String)> {
    let valid = key_policy_with_root(acct, &[]);
    let stmt = |s: Value| policy_doc(json!([s]));
    let root = root_arn(acct);
    vec![
        (
            "bad JSON",
            r#"{"Version": "2012-10-17", "Statement": ["#.to_owned(),
        ),
        ("not JSON at all", "allow everything".to_owned()),
        (
            "unknown Effect",
            stmt(
                json!({"Effect": "Allo", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}),
            ),
        ),
        ("empty Statement", policy_doc(json!([]))),
        (
            "Statement missing",
            json!({"Version": "2012-10-17"}).to_string(),
        ),
        (
            "Action missing",
            stmt(json!({"Effect": "Allow", "Principal": {"AWS": root}, "Resource": "*"})),
        ),
        (
            "Principal missing in a key policy",
            stmt(json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})),
        ),
        (
            "33 KiB",
            format!("{valid}{}", " ".repeat(33 * 1024 - valid.len())),
        ),
        (
            "32 KiB and a byte",
            format!("{valid}{}", " ".repeat(32 * 1024 + 1 - valid.len())),
        ),
    ]
}

#[tokio::test]
async fn malformed_policies_are_refused_by_put_key_policy() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let key = create_key(&mut root).await.arn;
    let original = get_key_policy(&mut root, &key).await.unwrap();
    let mut failures = Vec::new();
    for (what, doc) in malformed_policies(&acct) {
        for bypass in [false, true] {
            match put_key_policy(&mut root, &key, &doc, bypass).await {
                Ok(()) => failures.push(format!("{what} (bypass {bypass}): accepted")),
                Err(s) => {
                    if s.code() != Code::InvalidArgument
                        || crate::common::error_name(&s) != "MalformedPolicyDocumentException"
                        || s.message().is_empty()
                    {
                        failures.push(format!("{what} (bypass {bypass}): {s:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // No document at all is a missing parameter, not a malformed one.
    assert_err(
        put_key_policy(&mut root, &key, "", false).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), original);

    // Exactly 32 KiB is accepted and returned byte for byte.
    let valid = key_policy_with_root(&acct, &[]);
    let full = format!("{valid}{}", " ".repeat(32 * 1024 - valid.len()));
    assert_eq!(full.len(), 32 * 1024);
    put_key_policy(&mut root, &key, &full, false)
        .await
        .expect("a policy of exactly 32 KiB");
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), full);
}

#[tokio::test]
async fn malformed_policies_are_refused_by_create_key() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let before = all_key_ids(&mut root).await;
    let mut failures = Vec::new();
    for (what, doc) in malformed_policies(&acct) {
        let r = root
            .create_key(pb::CreateKeyRequest {
                policy: Some(doc),
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(s) => {
                if s.code() != Code::InvalidArgument
                    || crate::common::error_name(&s) != "MalformedPolicyDocumentException"
                {
                    failures.push(format!("{what}: {s:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_err(
        root.create_key(pb::CreateKeyRequest {
            policy: Some(String::new()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "ValidationException",
    );
    assert_eq!(all_key_ids(&mut root).await, before, "no key was made");
}

#[tokio::test]
async fn get_key_policy_returns_exactly_what_was_put() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;

    // Unusual but valid: single statement object, odd spacing and order.
    let doc = format!(
        "{{\n  \"Statement\" : {{ \"Resource\":\"*\", \"Action\" : [\"kms:*\"],\n\t\"Principal\": {{\"AWS\": [\"{}\"]}}, \"Effect\":\"Allow\", \"Sid\": \"Root\" }},\n  \"Version\":\"2012-10-17\"   }}\n",
        root_arn(&acct)
    );
    let key = key_with_policy(&mut root, &doc).await;
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), doc);

    let other = format!(
        r#"{{"Version":"2012-10-17","Id":"mine","Statement":[{{"Sid":"A","Effect":"Allow","Principal":{{"AWS":"{acct}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    put_key_policy(&mut root, &key, &other, false)
        .await
        .unwrap();
    assert_eq!(get_key_policy(&mut root, &key).await.unwrap(), other);
    let by_name = root
        .get_key_policy(pb::GetKeyPolicyRequest {
            key_id: key.clone(),
            policy_name: Some("default".into()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_name.policy, other);
    assert_eq!(by_name.policy_name, "default");

    // The default policy names the account root with kms:*.
    let default_key = create_key(&mut root).await.arn;
    let p: Value = serde_json::from_str(&get_key_policy(&mut root, &default_key).await.unwrap())
        .expect("the default policy is JSON");
    let st = p["Statement"].as_array().expect("a list of statements");
    assert_eq!(st.len(), 1, "{p}");
    assert_eq!(st[0]["Effect"], "Allow");
    assert_eq!(st[0]["Principal"]["AWS"], root_arn(&acct));
    assert_eq!(st[0]["Action"], "kms:*");

    // Administrators and users: two statements, and the users' has no
    // administrative action, the administrators' no cryptographic one.
    new_user(&d, &d.root, "a").await;
    new_user(&d, &d.root, "u").await;
    let ad = user_arn(&acct, "a");
    let us = user_arn(&acct, "u");
    let au_key = admins_users_key(
        &mut root,
        std::slice::from_ref(&ad),
        std::slice::from_ref(&us),
    )
    .await;
    let p: Value =
        serde_json::from_str(&get_key_policy(&mut root, &au_key).await.unwrap()).unwrap();
    let st = p["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 2, "{p}");
    let text = p.to_string();
    assert!(!text.contains(&root_arn(&acct)), "no root statement: {p}");
    for s in st {
        let actions = s["Action"].to_string();
        let principal = s["Principal"]["AWS"].to_string();
        if principal.contains(&ad) {
            assert!(
                !actions.contains("kms:Encrypt") && !actions.contains("kms:Decrypt"),
                "{s}"
            );
            assert!(actions.contains("kms:ScheduleKeyDeletion"), "{s}");
        } else {
            assert!(principal.contains(&us), "{s}");
            assert!(
                actions.contains("kms:Encrypt") && actions.contains("kms:GenerateDataKey*"),
                "{s}"
            );
            assert!(
                !actions.contains("kms:Put*") && !actions.contains("ScheduleKeyDeletion"),
                "{s}"
            );
        }
    }
}

#[tokio::test]
async fn key_policy_names() {
    let d = TestDaemon::start().await;
    let mut root = d.kms_client(&d.root).await;
    let key = create_key(&mut root).await.arn;
    let r = root
        .list_key_policies(pb::ListKeyPoliciesRequest {
            key_id: key.clone(),
            limit: None,
            marker: None,
        })
        .await
        .expect("ListKeyPolicies")
        .into_inner();
    assert_eq!(r.policy_names, ["default"]);
    assert!(!r.truncated);

    let policy = get_key_policy(&mut root, &key).await.unwrap();
    for name in ["other", "Default", ""] {
        assert_err(
            root.get_key_policy(pb::GetKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: Some(name.into()),
            })
            .await,
            Code::InvalidArgument,
            "ValidationException",
        );
        assert_err(
            root.put_key_policy(pb::PutKeyPolicyRequest {
                key_id: key.clone(),
                policy_name: Some(name.into()),
                policy: policy.clone(),
                bypass_policy_lockout_safety_check: false,
            })
            .await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    // An unnamed put is the default policy.
    root.put_key_policy(pb::PutKeyPolicyRequest {
        key_id: key.clone(),
        policy_name: None,
        policy: policy.clone(),
        bypass_policy_lockout_safety_check: false,
    })
    .await
    .expect("PutKeyPolicy without a name");

    // ListKeyPolicies is itself authorized.
    let other = new_user(&d, &d.root, "other").await;
    let other_arn = user_arn(&d.root.account_id, "other");
    assert_denied(
        d.kms_client(&other)
            .await
            .list_key_policies(pb::ListKeyPoliciesRequest {
                key_id: key.clone(),
                limit: None,
                marker: None,
            })
            .await,
        &other_arn,
        "kms:ListKeyPolicies",
        &key,
    );
}

// ---------------------------------------------------------------------------
// Identity policies: groups, default key policy, CreateKey and ListKeys
// ---------------------------------------------------------------------------

/// A user gains `kms:*` through a group's inline policy and loses it when
/// removed from the group.
#[tokio::test]
async fn group_policy_grants_and_removal_revokes() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let mut iam = d.identity_client(&d.root).await;
    let gus = new_user(&d, &d.root, "gus").await;
    let gus_arn = user_arn(&acct, "gus");
    let mut kms = d.kms_client(&gus).await;
    let key = create_key(&mut root).await.arn;

    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &gus_arn,
        "kms:Encrypt",
        &key,
    );

    let group = iam
        .create_group(pb::CreateGroupRequest {
            group_name: "crypto".into(),
            path: None,
        })
        .await
        .expect("CreateGroup")
        .into_inner()
        .group
        .expect("group");
    assert_eq!(group.arn, format!("arn:aws:iam::{acct}:group/crypto"));
    iam.put_group_policy(pb::PutPrincipalPolicyRequest {
        principal_name: "crypto".into(),
        policy_name: "kms-all".into(),
        policy_document: allow_identity("kms:*"),
    })
    .await
    .expect("PutGroupPolicy");
    // The policy alone does nothing to a non-member.
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &gus_arn,
        "kms:Encrypt",
        &key,
    );

    iam.add_user_to_group(pb::AddUserToGroupRequest {
        group_name: "crypto".into(),
        user_name: "gus".into(),
    })
    .await
    .expect("AddUserToGroup");
    let groups = iam
        .list_groups_for_user(pb::ListGroupsForUserRequest {
            user_name: "gus".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group_name.as_str())
            .collect::<Vec<_>>(),
        ["crypto"]
    );
    let blob = encrypt_with(&mut kms, &key, &[])
        .await
        .expect("gus may Encrypt through the group")
        .ciphertext_blob;
    create_key(&mut kms).await;

    // A group Deny beats the user's own Allow.
    put_user_policy(&d, &d.root, "gus", "own", &allow_identity("kms:*"))
        .await
        .unwrap();
    iam.put_group_policy(pb::PutPrincipalPolicyRequest {
        principal_name: "crypto".into(),
        policy_name: "no-decrypt".into(),
        policy_document: deny_identity("kms:Decrypt"),
    })
    .await
    .unwrap();
    assert_denied(
        decrypt(&mut kms, &blob, &ctx(&[])).await,
        &gus_arn,
        "kms:Decrypt",
        &key,
    );
    iam.delete_user_policy(pb::DeletePrincipalPolicyRequest {
        principal_name: "gus".into(),
        policy_name: "own".into(),
    })
    .await
    .unwrap();

    iam.remove_user_from_group(pb::RemoveUserFromGroupRequest {
        group_name: "crypto".into(),
        user_name: "gus".into(),
    })
    .await
    .expect("RemoveUserFromGroup");
    assert!(
        iam.list_groups_for_user(pb::ListGroupsForUserRequest {
            user_name: "gus".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups
        .is_empty()
    );
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &gus_arn,
        "kms:Encrypt",
        &key,
    );
    assert_err(
        kms.create_key(pb::CreateKeyRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // Removing again: not a member.
    assert_err(
        iam.remove_user_from_group(pb::RemoveUserFromGroupRequest {
            group_name: "crypto".into(),
            user_name: "gus".into(),
        })
        .await,
        Code::NotFound,
        "NotFoundException",
    );
    // Deleting the group removes its policies with it.
    iam.add_user_to_group(pb::AddUserToGroupRequest {
        group_name: "crypto".into(),
        user_name: "gus".into(),
    })
    .await
    .unwrap();
    iam.delete_group(pb::DeleteGroupRequest {
        group_name: "crypto".into(),
    })
    .await
    .expect("DeleteGroup");
    assert_denied(
        encrypt_with(&mut kms, &key, &[]).await,
        &gus_arn,
        "kms:Encrypt",
        &key,
    );
}

/// CreateKey, ListKeys, GenerateRandom and ListAliases (without a key) are
/// decided by identity policies alone.
#[tokio::test]
async fn create_key_and_list_keys_need_an_identity_policy() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let nina = new_user(&d, &d.root, "nina").await;
    let nina_arn = user_arn(&acct, "nina");
    let mut kms = d.kms_client(&nina).await;
    let mut root = d.kms_client(&d.root).await;
    let before = all_key_ids(&mut root).await;

    let s = assert_err(
        kms.create_key(pb::CreateKeyRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert!(
        s.message().contains(&nina_arn) && s.message().contains("kms:CreateKey"),
        "{s:?}"
    );
    let s = assert_err(
        kms.list_keys(pb::ListKeysRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert!(
        s.message().contains(&nina_arn) && s.message().contains("kms:ListKeys"),
        "{s:?}"
    );
    assert_err(
        kms.generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 16,
        })
        .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_eq!(all_key_ids(&mut root).await, before, "nothing was created");
    // All of the account's aliases, with the keys they name.
    let target = create_key(&mut root).await.arn;
    create_alias(&mut root, "alias/roots", &target)
        .await
        .unwrap();
    let s = assert_err(
        kms.list_aliases(pb::ListAliasesRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert!(
        s.message().contains(&nina_arn) && s.message().contains("kms:ListAliases"),
        "{s:?}"
    );
    let before = all_key_ids(&mut root).await;

    // (kms:PutKeyPolicy too, so that the lockout check has nothing to say;
    // see create_key_with_the_default_policy_has_no_lockout_check.)
    let doc = policy_doc(json!([{"Effect": "Allow",
        "Action": ["kms:CreateKey", "kms:ListKeys", "kms:GenerateRandom", "kms:PutKeyPolicy",
                   "kms:ListAliases"],
        "Resource": "*"}]));
    put_user_policy(&d, &d.root, "nina", "keys", &doc)
        .await
        .unwrap();
    let k = create_key(&mut kms).await;
    assert_eq!(k.aws_account_id, acct);
    assert!(all_key_ids(&mut kms).await.contains(&k.key_id));
    assert_eq!(all_key_ids(&mut root).await.len(), before.len() + 1);
    assert!(
        all_aliases(&mut kms)
            .await
            .iter()
            .any(|a| a.alias_name == "alias/roots")
    );
    let r = kms
        .generate_random(pb::GenerateRandomRequest {
            number_of_bytes: 16,
        })
        .await
        .expect("GenerateRandom")
        .into_inner();
    assert_eq!(r.plaintext.len(), 16);
    // CreateKey's right is not a right to use the key: its default policy
    // delegates to IAM, and nina's identity policy does not allow Encrypt.
    assert_denied(
        encrypt_with(&mut kms, &k.arn, &[]).await,
        &nina_arn,
        "kms:Encrypt",
        &k.arn,
    );

    // The root needs no policy.
    create_key(&mut root).await;
    root.generate_random(pb::GenerateRandomRequest { number_of_bytes: 8 })
        .await
        .expect("the root may GenerateRandom");
}

/// AWS applies the lockout check only to a policy the caller supplies
/// ("If you provide a key policy, it must allow the calling principal to
/// make a subsequent PutKeyPolicy request"): a user whose identity policy
/// allows only kms:CreateKey gets a key with the default policy.
#[tokio::test]
async fn create_key_with_the_default_policy_has_no_lockout_check() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let nina = new_user(&d, &d.root, "nina").await;
    put_user_policy(
        &d,
        &d.root,
        "nina",
        "create",
        &allow_identity("kms:CreateKey"),
    )
    .await
    .unwrap();
    let mut kms = d.kms_client(&nina).await;
    let r = kms.create_key(pb::CreateKeyRequest::default()).await;
    let k = r
        .expect("CreateKey with no policy: the default policy is not lockout-checked")
        .into_inner()
        .key_metadata
        .unwrap();
    let mut root = d.kms_client(&d.root).await;
    let p = get_key_policy(&mut root, &k.arn).await.unwrap();
    assert!(p.contains(&root_arn(&acct)), "{p}");
}

/// The default key policy delegates to the account's identity policies:
/// the bootstrap `admin` (AdministratorAccess) may use a key the root made,
/// a user without policies may not, and the root may.
#[tokio::test]
async fn default_key_policy_delegates_to_identity_policies() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let mut admin = d.admin_kms().await;
    let key = create_key(&mut root).await.arn;
    let blob = encrypt_with(&mut admin, &key, &[])
        .await
        .expect("admin Encrypt")
        .ciphertext_blob;
    assert_eq!(decrypt_ok(&mut root, &blob).await, b"rules");
    disable(&mut admin, &key).await;
    enable(&mut admin, &key).await;

    let pat = new_user(&d, &d.root, "pat").await;
    let pat_arn = user_arn(&acct, "pat");
    let mut pat_kms = d.kms_client(&pat).await;
    assert_denied(
        encrypt_with(&mut pat_kms, &key, &[]).await,
        &pat_arn,
        "kms:Encrypt",
        &key,
    );
    assert_denied(
        describe(&mut pat_kms, &key).await,
        &pat_arn,
        "kms:DescribeKey",
        &key,
    );
    // Addressed by id or by alias, the answer is the same.
    let id = key.rsplit('/').next().unwrap().to_owned();
    assert_denied(
        encrypt_with(&mut pat_kms, &id, &[]).await,
        &pat_arn,
        "kms:Encrypt",
        &key,
    );
    create_alias(&mut root, "alias/rules", &key).await.unwrap();
    assert_denied(
        encrypt_with(&mut pat_kms, "alias/rules", &[]).await,
        &pat_arn,
        "kms:Encrypt",
        &key,
    );
    encrypt_with(&mut admin, "alias/rules", &[])
        .await
        .expect("admin Encrypt by alias");
}

// ---------------------------------------------------------------------------
// More of the policy language, end to end
// ---------------------------------------------------------------------------

/// ReEncrypt needs kms:ReEncryptFrom on the source key and kms:ReEncryptTo
/// on the destination key, each by its own key policy.
#[tokio::test]
async fn re_encrypt_checks_from_on_the_source_and_to_on_the_destination() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let allowing = |actions: &[&str]| {
        key_policy_with_root(
            &acct,
            &[json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                     "Action": actions, "Resource": "*"})],
        )
    };
    let from_only = key_with_policy(&mut root, &allowing(&["kms:ReEncryptFrom"])).await;
    let to_only = key_with_policy(&mut root, &allowing(&["kms:ReEncryptTo"])).await;
    let blob_from = encrypt_with(&mut root, &from_only, &[])
        .await
        .unwrap()
        .ciphertext_blob;
    let blob_to = encrypt_with(&mut root, &to_only, &[])
        .await
        .unwrap()
        .ciphertext_blob;
    let re = |blob: &[u8], dest: &str| pb::ReEncryptRequest {
        ciphertext_blob: blob.to_vec(),
        destination_key_id: dest.to_owned(),
        ..Default::default()
    };

    let r = kms
        .re_encrypt(re(&blob_from, &to_only))
        .await
        .expect("From on the source, To on the destination")
        .into_inner();
    assert_eq!(r.source_key_id, from_only);
    assert_eq!(r.key_id, to_only);
    assert_eq!(decrypt_ok(&mut root, &r.ciphertext_blob).await, b"rules");

    // The source allows only To: no ReEncryptFrom on it.
    assert_denied(
        kms.re_encrypt(re(&blob_to, &to_only)).await,
        &alice_arn,
        "kms:ReEncryptFrom",
        &to_only,
    );
    // The destination allows only From: no ReEncryptTo on it.
    assert_denied(
        kms.re_encrypt(re(&blob_from, &from_only)).await,
        &alice_arn,
        "kms:ReEncryptTo",
        &from_only,
    );
    // Neither Encrypt nor Decrypt follows from ReEncrypt rights.
    assert_denied(
        encrypt_with(&mut kms, &to_only, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &to_only,
    );
    assert_denied(
        decrypt(&mut kms, &blob_from, &ctx(&[])).await,
        &alice_arn,
        "kms:Decrypt",
        &from_only,
    );
}

/// NotAction, and `*` and `?` wildcards in actions.
#[tokio::test]
async fn not_action_and_wildcards() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let policy = key_policy_with_root(
        &acct,
        &[
            json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                   "NotAction": ["kms:Decrypt", "kms:*Key*"], "Resource": "*"}),
            json!({"Effect": "Allow", "Principal": {"AWS": alice_arn},
                   "Action": "kms:Describe?ey", "Resource": "*"}),
        ],
    );
    let key = key_with_policy(&mut root, &policy).await;
    let blob = encrypt_with(&mut kms, &key, &[])
        .await
        .expect("Encrypt is not among the NotAction")
        .ciphertext_blob;
    assert_denied(
        decrypt(&mut kms, &blob, &ctx(&[])).await,
        &alice_arn,
        "kms:Decrypt",
        &key,
    );
    assert_denied(
        generate_data_key(&mut kms, &key, Some(pb::DataKeySpec::Aes256), None).await,
        &alice_arn,
        "kms:GenerateDataKey",
        &key,
    );
    assert_denied(
        disable_key(&mut kms, &key).await,
        &alice_arn,
        "kms:DisableKey",
        &key,
    );
    describe(&mut kms, &key)
        .await
        .expect("kms:Describe?ey matches DescribeKey");
}

/// `"Principal": "*"` names every caller directly: the key's own account
/// needs nothing more, another account still needs its identity policy.
/// kms:CallerAccount narrows it to one account.
#[tokio::test]
async fn principal_star_and_caller_account() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    let carol = new_user(&d, &b, "carol").await;
    let bob_arn = user_arn(&b.account_id, "bob");
    let carol_arn = user_arn(&b.account_id, "carol");
    put_user_policy(&d, &b, "bob", "kms-all", &allow_identity("kms:*"))
        .await
        .unwrap();
    let (mut alice_kms, mut bob_kms, mut carol_kms) = (
        d.kms_client(&alice).await,
        d.kms_client(&bob).await,
        d.kms_client(&carol).await,
    );

    let star = key_policy_with_root(
        &acct,
        &[json!({"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"})],
    );
    let key = key_with_policy(&mut root, &star).await;
    encrypt_with(&mut alice_kms, &key, &[])
        .await
        .expect("same account, named by *");
    encrypt_with(&mut bob_kms, &key, &[])
        .await
        .expect("other account, named by * and allowed by its identity policy");
    assert_denied(
        encrypt_with(&mut carol_kms, &key, &[]).await,
        &carol_arn,
        "kms:Encrypt",
        &key,
    );

    let own_account = key_policy_with_root(
        &acct,
        &[
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt",
                 "Resource": "*", "Condition": {"StringEquals": {"kms:CallerAccount": acct}}}),
        ],
    );
    put_key_policy(&mut root, &key, &own_account, false)
        .await
        .unwrap();
    encrypt_with(&mut alice_kms, &key, &[])
        .await
        .expect("kms:CallerAccount is the key's account");
    assert_denied(
        encrypt_with(&mut bob_kms, &key, &[]).await,
        &bob_arn,
        "kms:Encrypt",
        &key,
    );
}

/// `aws:PrincipalArn` is the role's ARN for a role session.
#[tokio::test]
async fn principal_arn_condition() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    create_role(&d, &d.root, "app", &trust_policy(&[&alice_arn]), None)
        .await
        .unwrap();
    let session = assume_role(&d, &alice, "app", "sess", None, None)
        .await
        .unwrap();
    let (mut role_kms, _) = session_clients(&d, &SessionCreds::of(&session)).await;
    let mut alice_kms = d.kms_client(&alice).await;
    let policy = key_policy_with_root(
        &acct,
        &[
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt",
                 "Resource": "*",
                 "Condition": {"StringLike": {"aws:PrincipalArn": format!("arn:aws:iam::{acct}:role/ap?")}}}),
        ],
    );
    let key = key_with_policy(&mut root, &policy).await;
    encrypt_with(&mut role_kms, &key, &[])
        .await
        .expect("the session's aws:PrincipalArn is the role ARN");
    assert_denied(
        encrypt_with(&mut alice_kms, &key, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &key,
    );
}

/// An identity policy's Resource scopes which keys it opens.
#[tokio::test]
async fn identity_policy_resource_scopes_keys() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;
    let alice = new_user(&d, &d.root, "alice").await;
    let alice_arn = user_arn(&acct, "alice");
    let mut kms = d.kms_client(&alice).await;
    let one = create_key(&mut root).await.arn;
    let two = create_key(&mut root).await.arn;
    let doc = policy_doc(json!([{"Effect": "Allow", "Action": "kms:*", "Resource": one}]));
    put_user_policy(&d, &d.root, "alice", "one", &doc)
        .await
        .unwrap();
    encrypt_with(&mut kms, &one, &[])
        .await
        .expect("the key the policy names");
    assert_denied(
        encrypt_with(&mut kms, &two, &[]).await,
        &alice_arn,
        "kms:Encrypt",
        &two,
    );
    // A wildcard over the account's keys opens both.
    let doc = policy_doc(json!([{"Effect": "Allow", "Action": "kms:Encrypt",
        "Resource": format!("arn:aws:kms:*:{acct}:key/*")}]));
    put_user_policy(&d, &d.root, "alice", "all-keys", &doc)
        .await
        .unwrap();
    encrypt_with(&mut kms, &two, &[])
        .await
        .expect("arn:aws:kms:*:<acct>:key/*");
}
