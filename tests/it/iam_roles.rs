//! Roles, AssumeRole sessions, MFA devices and inline identity policies.

use std::time::Duration;

use kmsd::client::IdentityClient;
use kmsd::pb;
use serde_json::json;
use tonic::Code;

use crate::authz_util::*;
use crate::common::{Creds, TestDaemon, assert_err};
use crate::util::*;

/// The role's inline policy: nothing of KMS without MFA.
const REQUIRE_MFA: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
    {"Effect": "Deny", "Action": "kms:*", "Resource": "*",
     "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}]}"#;

async fn get_role(d: &TestDaemon, name: &str) -> Result<pb::Role, tonic::Status> {
    d.identity_client(&d.root)
        .await
        .get_role(pb::GetRoleRequest {
            role_name: name.to_owned(),
        })
        .await
        .map(|r| r.into_inner().role.expect("role"))
}

/// A code of the TOTP that is not the current one (nor its neighbours').
fn wrong_code(d: &TestDaemon, b32: &str) -> String {
    let now = u64::try_from(now_ms(d) / 1000).unwrap();
    let valid: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp_code_at(b32, *t))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

#[tokio::test]
async fn create_role_rules() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = user_arn(&acct, "alice");
    new_user(&d, &d.root, "alice").await;

    let malformed = [
        ("bad JSON", "{\"Statement\": [".to_owned()),
        (
            "Principal missing",
            policy_doc(json!([{"Effect": "Allow", "Action": "sts:AssumeRole"}])),
        ),
        (
            "unknown Effect",
            policy_doc(
                json!([{"Effect": "Permit", "Principal": {"AWS": alice}, "Action": "sts:AssumeRole"}]),
            ),
        ),
        ("empty Statement", policy_doc(json!([]))),
        (
            "Action missing",
            policy_doc(json!([{"Effect": "Allow", "Principal": {"AWS": alice}}])),
        ),
    ];
    for (what, doc) in malformed {
        let s = assert_err(
            create_role(&d, &d.root, "app", &doc, None).await,
            Code::InvalidArgument,
            "MalformedPolicyDocumentException",
        );
        assert!(!s.message().is_empty(), "{what}");
        assert_err(
            get_role(&d, "app").await,
            Code::NotFound,
            "NotFoundException",
        );
    }

    let trust = trust_policy(&[&alice]);
    let role = create_role(&d, &d.root, "app", &trust, None)
        .await
        .expect("CreateRole");
    assert_eq!(role.role_name, "app");
    assert_eq!(role.arn, role_arn(&acct, "app"));
    assert_eq!(role.max_session_duration, 3600);
    assert_eq!(role.assume_role_policy_document, trust);
    let got = get_role(&d, "app").await.expect("GetRole");
    assert_eq!(got.arn, role.arn);
    assert_eq!(got.role_id, role.role_id);
    assert_eq!(got.assume_role_policy_document, trust);
    assert_err(
        create_role(&d, &d.root, "app", &trust, None).await,
        Code::AlreadyExists,
        "AlreadyExistsException",
    );
    for max in [3599, 43_201, 0, -1] {
        assert_err(
            create_role(&d, &d.root, "other", &trust, Some(max)).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    // A plain user may not create roles.
    let alice_creds = d
        .identity_client(&d.root)
        .await
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some("alice".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .access_key
        .unwrap();
    let alice_creds = Creds {
        account_id: acct.clone(),
        access_key_id: alice_creds.access_key_id,
        secret: alice_creds.secret_access_key,
    };
    assert_err(
        create_role(&d, &alice_creds, "mine", &trust, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        get_role(&d, "mine").await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn assume_role_by_a_trusted_principal() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    let bob = new_user(&d, &d.root, "bob").await;
    let app = role_arn(&acct, "app");
    create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    put_role_policy(&d, &d.root, "app", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();

    // By ARN and by name.
    for (session, role) in [("by-arn", app.as_str()), ("by-name", "app")] {
        let t0 = now_ms(&d);
        let r = assume_role(&d, &alice, role, session, None, None)
            .await
            .unwrap_or_else(|s| panic!("AssumeRole {role}: {s:?}"));
        let expected_arn = assumed_role_arn(&acct, "app", session);
        assert_eq!(r.assumed_role_arn, expected_arn);
        assert!(
            r.assumed_role_id.ends_with(&format!(":{session}")),
            "{}",
            r.assumed_role_id
        );
        let c = r.credentials.as_ref().expect("credentials");
        assert!(c.access_key_id.starts_with("ASIA"), "{}", c.access_key_id);
        assert_eq!(c.access_key_id.len(), 20);
        assert!(!c.secret_access_key.is_empty());
        assert!(
            c.session_token.as_deref().is_some_and(|t| !t.is_empty()),
            "a session token"
        );
        let exp = ts_ms(c.expiration.as_ref().expect("expiration"));
        assert!(
            (exp - (t0 + 3_600_000)).abs() <= 1000,
            "expires an hour from now: {exp} vs {t0}"
        );

        let (mut kms, mut iam) = session_clients(&d, &SessionCreds::of(&r)).await;
        let who = iam
            .get_caller_identity(pb::GetCallerIdentityRequest {})
            .await
            .expect("GetCallerIdentity")
            .into_inner();
        assert_eq!(who.arn, expected_arn);
        assert_eq!(who.account, acct);
        // The session acts with the role's policy.
        let key = create_key(&mut kms).await;
        let blob = encrypt_ok(&mut kms, &key.arn, b"role").await;
        assert_eq!(decrypt_ok(&mut kms, &blob).await, b"role");
    }

    // A principal the trust policy does not name.
    assert_err(
        assume_role(&d, &bob, &app, "bob", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // Not even with an identity policy allowing sts:AssumeRole: the trust
    // policy must name it.
    put_user_policy(
        &d,
        &d.root,
        "bob",
        "assume",
        &allow_identity("sts:AssumeRole"),
    )
    .await
    .unwrap();
    assert_err(
        assume_role(&d, &bob, &app, "bob", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // A role that does not exist.
    assert_err(
        assume_role(&d, &alice, &role_arn(&acct, "nope"), "s1", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // The session name is validated.
    for bad in ["x", "has space", &"s".repeat(65)] {
        assert_err(
            assume_role(&d, &alice, &app, bad, None, None).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
}

/// A trust policy naming the account root delegates to the account's
/// identity policies.
#[tokio::test]
async fn trust_policy_naming_the_account() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let carl = new_user(&d, &d.root, "carl").await;
    let dora = new_user(&d, &d.root, "dora").await;
    let app = role_arn(&acct, "app");
    create_role(&d, &d.root, "app", &trust_policy(&[&root_arn(&acct)]), None)
        .await
        .unwrap();
    create_role(
        &d,
        &d.root,
        "other",
        &trust_policy(&[&root_arn(&acct)]),
        None,
    )
    .await
    .unwrap();

    assert_err(
        assume_role(&d, &carl, &app, "carl", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // An identity policy for another role does not help.
    let other_only = policy_doc(json!([{"Effect": "Allow", "Action": "sts:AssumeRole",
        "Resource": role_arn(&acct, "other")}]));
    put_user_policy(&d, &d.root, "dora", "other-only", &other_only)
        .await
        .unwrap();
    assert_err(
        assume_role(&d, &dora, &app, "dora", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assume_role(&d, &dora, &role_arn(&acct, "other"), "dora", None, None)
        .await
        .expect("dora may assume the role her policy names");

    put_user_policy(
        &d,
        &d.root,
        "carl",
        "assume",
        &allow_identity("sts:AssumeRole"),
    )
    .await
    .unwrap();
    let r = assume_role(&d, &carl, &app, "carl", None, None)
        .await
        .expect("trust names the account and carl's identity policy allows");
    assert_eq!(r.assumed_role_arn, assumed_role_arn(&acct, "app", "carl"));

    // An identity Deny wins.
    put_user_policy(
        &d,
        &d.root,
        "carl",
        "no-assume",
        &deny_identity("sts:AssumeRole"),
    )
    .await
    .unwrap();
    assert_err(
        assume_role(&d, &carl, &app, "carl2", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
}

/// A role of account A that trusts B's user directly: B's user also needs
/// its own identity policy allowing sts:AssumeRole.
#[tokio::test]
async fn cross_account_assume_role() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    let app = role_arn(&acct, "app");
    create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&b.account_id, "bob")]),
        None,
    )
    .await
    .unwrap();
    assert_err(
        assume_role(&d, &bob, &app, "bob", None, None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    put_user_policy(&d, &b, "bob", "assume", &allow_identity("sts:AssumeRole"))
        .await
        .unwrap();
    let r = assume_role(&d, &bob, &app, "bob", None, None)
        .await
        .expect("both sides allow");
    let (_, mut iam) = session_clients(&d, &SessionCreds::of(&r)).await;
    let who = iam
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(who.account, acct, "the session is in the role's account");
    assert_eq!(who.arn, assumed_role_arn(&acct, "app", "bob"));
}

/// As in AWS, an account's root credentials never assume a role, even one
/// whose trust policy names that account (its own or another's).
#[tokio::test]
async fn roles_are_not_assumed_with_root_credentials() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let b = new_account(&d, "b").await;
    let trusting = trust_policy(&[&root_arn(&acct), &root_arn(&b.account_id)]);
    create_role(&d, &d.root, "app", &trusting, None)
        .await
        .unwrap();
    let app = role_arn(&acct, "app");
    for root in [&d.root, &b] {
        let s = assert_err(
            assume_role(&d, root, &app, "as-root", None, None).await,
            Code::PermissionDenied,
            "AccessDeniedException",
        );
        assert!(s.message().contains("root"), "{s:?}");
    }
    // The same trust lets the account's users in (with their permission).
    let alice = new_user(&d, &d.root, "alice").await;
    put_user_policy(
        &d,
        &d.root,
        "alice",
        "assume",
        &allow_identity("sts:AssumeRole"),
    )
    .await
    .unwrap();
    assume_role(&d, &alice, &app, "alice", None, None)
        .await
        .expect("a user of the trusted account");
}

#[tokio::test]
async fn session_durations() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    let trust = trust_policy(&[&user_arn(&acct, "alice")]);
    create_role(&d, &d.root, "short", &trust, None)
        .await
        .unwrap();
    create_role(&d, &d.root, "two-hours", &trust, Some(7200))
        .await
        .unwrap();
    create_role(&d, &d.root, "long", &trust, Some(43_200))
        .await
        .unwrap();

    let cases: &[(&str, i32, bool)] = &[
        ("long", 899, false),
        ("long", 43_201, false),
        ("long", 0, false),
        ("long", -900, false),
        ("long", 900, true),
        ("long", 43_200, true),
        ("short", 3600, true),
        ("short", 3601, false),
        ("two-hours", 7200, true),
        ("two-hours", 7201, false),
    ];
    for (i, (role, secs, ok)) in cases.iter().enumerate() {
        let t0 = now_ms(&d);
        let r = assume_role(&d, &alice, role, &format!("s{i}"), Some(*secs), None).await;
        if *ok {
            let r = r.unwrap_or_else(|s| panic!("{role} {secs}: {s:?}"));
            let exp = ts_ms(r.credentials.unwrap().expiration.as_ref().unwrap());
            assert!(
                (exp - (t0 + i64::from(*secs) * 1000)).abs() <= 1000,
                "{role} {secs}: expiration"
            );
        } else {
            assert_err(r, Code::InvalidArgument, "ValidationException");
        }
    }
    // Without a duration: an hour.
    let t0 = now_ms(&d);
    let r = assume_role(&d, &alice, "long", "default", None, None)
        .await
        .unwrap();
    let exp = ts_ms(r.credentials.unwrap().expiration.as_ref().unwrap());
    assert!((exp - (t0 + 3_600_000)).abs() <= 1000);
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    put_role_policy(&d, &d.root, "app", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();
    let r = assume_role(&d, &alice, "app", "short", Some(900), None)
        .await
        .unwrap();
    let (mut kms, mut iam) = session_clients(&d, &SessionCreds::of(&r)).await;
    let key = create_key(&mut kms).await;

    d.advance(Duration::from_secs(890));
    iam.get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .expect("still valid 10 s before expiry");
    describe(&mut kms, &key.arn)
        .await
        .expect("still valid 10 s before expiry");

    d.advance(Duration::from_secs(11));
    assert_err(
        iam.get_caller_identity(pb::GetCallerIdentityRequest {})
            .await,
        Code::Unauthenticated,
        "ExpiredTokenException",
    );
    assert_err(
        describe(&mut kms, &key.arn).await,
        Code::Unauthenticated,
        "ExpiredTokenException",
    );
    assert_err(
        kms.create_key(pb::CreateKeyRequest::default()).await,
        Code::Unauthenticated,
        "ExpiredTokenException",
    );
    // The user's own long-term keys are unaffected.
    d.identity_client(&alice)
        .await
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .expect("alice's access key still works");
}

#[tokio::test]
async fn session_credentials_need_their_token() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    let r1 = SessionCreds::of(
        &assume_role(&d, &alice, "app", "one", None, None)
            .await
            .unwrap(),
    );
    let r2 = SessionCreds::of(
        &assume_role(&d, &alice, "app", "two", None, None)
            .await
            .unwrap(),
    );
    let token = r1.session_token.clone().expect("token");
    let mut flipped = token.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let cases = [
        ("no token", None),
        ("another session's token", r2.session_token.clone()),
        ("a token with one character changed", Some(flipped)),
        ("a token with a character more", Some(format!("{token}A"))),
        ("garbage", Some("not-a-token".to_owned())),
    ];
    for (what, t) in cases {
        let creds = SessionCreds {
            session_token: t,
            ..r1.clone()
        };
        let (mut kms, mut iam) = session_clients(&d, &creds).await;
        let s = iam
            .get_caller_identity(pb::GetCallerIdentityRequest {})
            .await
            .expect_err(what);
        assert_eq!(s.code(), Code::Unauthenticated, "{what}: {s:?}");
        assert_eq!(
            crate::common::error_name(&s),
            "UnrecognizedClientException",
            "{what}: {s:?}"
        );
        assert!(
            !s.message().contains(&token),
            "{what}: the message echoes the token"
        );
        assert_err(
            kms.list_keys(pb::ListKeysRequest::default()).await,
            Code::Unauthenticated,
            "UnrecognizedClientException",
        );
    }
    // The right token works.
    let (_, mut iam) = session_clients(&d, &r1).await;
    assert_eq!(
        caller_arn(&mut iam).await.unwrap(),
        assumed_role_arn(&acct, "app", "one")
    );
}

/// A session token sent with a long-term access key is refused, as AWS
/// refuses a stale `AWS_SESSION_TOKEN` next to an `AKIA` key ("The security
/// token included in the request is invalid").
#[tokio::test]
async fn a_session_token_with_a_long_term_key_is_refused() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&acct, "alice")]),
        None,
    )
    .await
    .unwrap();
    let r = SessionCreds::of(
        &assume_role(&d, &alice, "app", "one", None, None)
            .await
            .unwrap(),
    );
    let mixed = SessionCreds {
        access_key_id: alice.access_key_id.clone(),
        secret: alice.secret.clone(),
        session_token: r.session_token.clone(),
    };
    let (mut kms, mut iam) = session_clients(&d, &mixed).await;
    assert_err(
        iam.get_caller_identity(pb::GetCallerIdentityRequest {})
            .await,
        Code::Unauthenticated,
        "UnrecognizedClientException",
    );
    assert_err(
        kms.list_keys(pb::ListKeysRequest::default()).await,
        Code::Unauthenticated,
        "UnrecognizedClientException",
    );
}

#[tokio::test]
async fn delete_role_ends_its_sessions() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    let trust = trust_policy(&[&user_arn(&acct, "alice")]);
    create_role(&d, &d.root, "app", &trust, None).await.unwrap();
    put_role_policy(&d, &d.root, "app", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();
    let r = assume_role(&d, &alice, "app", "doomed", None, None)
        .await
        .unwrap();
    let (mut kms, mut iam) = session_clients(&d, &SessionCreds::of(&r)).await;
    let key = create_key(&mut kms).await;
    caller_arn(&mut iam).await.expect("the session works");

    d.identity_client(&d.root)
        .await
        .delete_role(pb::DeleteRoleRequest {
            role_name: "app".into(),
        })
        .await
        .expect("DeleteRole");
    assert_err(
        get_role(&d, "app").await,
        Code::NotFound,
        "NotFoundException",
    );
    let s = caller_arn(&mut iam)
        .await
        .expect_err("a session of a deleted role");
    assert!(
        matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied),
        "{s:?}"
    );
    describe(&mut kms, &key.arn)
        .await
        .expect_err("a session of a deleted role uses no key");

    // A new role of the same name does not revive the old session.
    create_role(&d, &d.root, "app", &trust, None).await.unwrap();
    put_role_policy(&d, &d.root, "app", "kms", &allow_identity("kms:*"))
        .await
        .unwrap();
    describe(&mut kms, &key.arn)
        .await
        .expect_err("the old session stays dead");
    assert_err(
        d.identity_client(&d.root)
            .await
            .delete_role(pb::DeleteRoleRequest {
                role_name: "nope".into(),
            })
            .await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn mfa_devices_and_codes() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let alice = new_user(&d, &d.root, "alice").await;
    let bob = new_user(&d, &d.root, "bob").await;
    let trust = trust_policy(&[&user_arn(&acct, "alice"), &user_arn(&acct, "bob")]);
    create_role(&d, &d.root, "app", &trust, None).await.unwrap();
    put_role_policy(&d, &d.root, "app", "require-mfa", REQUIRE_MFA)
        .await
        .unwrap();
    let key = create_key(&mut d.kms_client(&d.root).await).await.arn;

    let enrolment = d
        .identity_client(&alice)
        .await
        .enable_mfa_device(pb::EnableMfaDeviceRequest {})
        .await
        .expect("EnableMfaDevice")
        .into_inner();
    let b32 = enrolment.base32_secret.clone();
    assert!(
        totp_rs::Secret::try_from_base32(&b32).is_ok(),
        "base32 secret: {b32}"
    );
    assert!(
        enrolment.otpauth_uri.starts_with("otpauth://totp/"),
        "{}",
        enrolment.otpauth_uri
    );
    assert!(
        enrolment.otpauth_uri.contains(&b32),
        "the URI carries the secret"
    );
    assert!(!enrolment.serial_number.is_empty());
    assert_err(
        enable_mfa(&d, &alice).await,
        Code::AlreadyExists,
        "AlreadyExistsException",
    );

    // A wrong code, a code of long ago, and a code for a user with no device.
    assert_err(
        assume_role(&d, &alice, "app", "wrong", None, Some(wrong_code(&d, &b32))).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let long_ago = u64::try_from(now_ms(&d) / 1000).unwrap() - 300;
    let old = totp_code_at(&b32, long_ago);
    if old != totp_code(&d, &b32) {
        assert_err(
            assume_role(&d, &alice, "app", "old", None, Some(old)).await,
            Code::PermissionDenied,
            "AccessDeniedException",
        );
    }
    assert_err(
        assume_role(&d, &bob, "app", "nodevice", None, Some(totp_code(&d, &b32))).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // A valid code: an MFA session, which the role's policy lets through.
    let code = totp_code(&d, &b32);
    let mfa = assume_role(&d, &alice, "app", "mfa", None, Some(code.clone()))
        .await
        .expect("AssumeRole with a valid code");
    let (mut mfa_kms, _) = session_clients(&d, &SessionCreds::of(&mfa)).await;
    encrypt_ok(&mut mfa_kms, &key, b"with mfa").await;

    // The same code again: refused.
    assert_err(
        assume_role(&d, &alice, "app", "replay", None, Some(code)).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // Without a code: a session the policy's MFA condition denies.
    let plain = assume_role(&d, &alice, "app", "plain", None, None)
        .await
        .expect("AssumeRole without a code");
    let (mut plain_kms, _) = session_clients(&d, &SessionCreds::of(&plain)).await;
    assert_denied(
        encrypt(&mut plain_kms, &key, b"x", &ctx(&[])).await,
        &assumed_role_arn(&acct, "app", "plain"),
        "kms:Encrypt",
        &key,
    );

    // The next time step's code works once.
    d.advance(Duration::from_secs(30));
    let next = totp_code(&d, &b32);
    let again = assume_role(&d, &alice, "app", "mfa2", None, Some(next.clone()))
        .await
        .expect("the next step's code");
    let (mut again_kms, _) = session_clients(&d, &SessionCreds::of(&again)).await;
    encrypt_ok(&mut again_kms, &key, b"again").await;
    assert_err(
        assume_role(&d, &alice, "app", "mfa3", None, Some(next)).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // Bob enrols his own device; alice's secret is not his.
    let bob_b32 = enable_mfa(&d, &bob).await.expect("bob's device");
    assert_ne!(bob_b32, b32);
    assume_role(&d, &bob, "app", "bob", None, Some(totp_code(&d, &bob_b32)))
        .await
        .expect("bob's own code");
}

/// What an inline identity policy is attached to.
#[derive(Debug, Clone, Copy)]
enum Kind {
    User,
    Group,
    Role,
}

async fn put_policy(
    iam: &mut IdentityClient,
    kind: Kind,
    principal: &str,
    policy: &str,
    doc: &str,
) -> Result<(), tonic::Status> {
    let r = pb::PutPrincipalPolicyRequest {
        principal_name: principal.to_owned(),
        policy_name: policy.to_owned(),
        policy_document: doc.to_owned(),
    };
    match kind {
        Kind::User => iam.put_user_policy(r).await,
        Kind::Group => iam.put_group_policy(r).await,
        Kind::Role => iam.put_role_policy(r).await,
    }
    .map(|_| ())
}

async fn get_policy(
    iam: &mut IdentityClient,
    kind: Kind,
    principal: &str,
    policy: &str,
) -> Result<pb::GetPrincipalPolicyResponse, tonic::Status> {
    let r = pb::GetPrincipalPolicyRequest {
        principal_name: principal.to_owned(),
        policy_name: policy.to_owned(),
    };
    match kind {
        Kind::User => iam.get_user_policy(r).await,
        Kind::Group => iam.get_group_policy(r).await,
        Kind::Role => iam.get_role_policy(r).await,
    }
    .map(tonic::Response::into_inner)
}

async fn delete_policy(
    iam: &mut IdentityClient,
    kind: Kind,
    principal: &str,
    policy: &str,
) -> Result<(), tonic::Status> {
    let r = pb::DeletePrincipalPolicyRequest {
        principal_name: principal.to_owned(),
        policy_name: policy.to_owned(),
    };
    match kind {
        Kind::User => iam.delete_user_policy(r).await,
        Kind::Group => iam.delete_group_policy(r).await,
        Kind::Role => iam.delete_role_policy(r).await,
    }
    .map(|_| ())
}

#[tokio::test]
async fn identity_policy_crud() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut iam = d.identity_client(&d.root).await;
    new_user(&d, &d.root, "ursula").await;
    iam.create_group(pb::CreateGroupRequest {
        group_name: "team".into(),
        path: None,
    })
    .await
    .unwrap();
    create_role(&d, &d.root, "app", &trust_policy(&[&root_arn(&acct)]), None)
        .await
        .unwrap();
    let doc1 = allow_identity("kms:Encrypt");
    let doc2 = policy_doc(
        json!([{"Effect": "Deny", "Action": ["kms:Decrypt", "kms:Encrypt"],
        "Resource": "*"}]),
    );
    let iam = &mut iam;

    for (kind, name) in [
        (Kind::User, "ursula"),
        (Kind::Group, "team"),
        (Kind::Role, "app"),
    ] {
        put_policy(iam, kind, name, "p1", &doc1)
            .await
            .unwrap_or_else(|s| panic!("Put {kind:?} policy: {s:?}"));
        let got = get_policy(iam, kind, name, "p1").await.expect("Get");
        assert_eq!(got.principal_name, name, "{kind:?}");
        assert_eq!(got.policy_name, "p1", "{kind:?}");
        assert_eq!(got.policy_document, doc1, "{kind:?}");
        // Put again replaces.
        put_policy(iam, kind, name, "p1", &doc2)
            .await
            .expect("Put again");
        assert_eq!(
            get_policy(iam, kind, name, "p1")
                .await
                .unwrap()
                .policy_document,
            doc2,
            "{kind:?}"
        );

        // Missing principal, missing policy.
        assert_err(
            put_policy(iam, kind, "nobody", "p1", &doc1).await,
            Code::NotFound,
            "NotFoundException",
        );
        assert_err(
            get_policy(iam, kind, "nobody", "p1").await,
            Code::NotFound,
            "NotFoundException",
        );
        assert_err(
            get_policy(iam, kind, name, "p2").await,
            Code::NotFound,
            "NotFoundException",
        );
        assert_err(
            delete_policy(iam, kind, name, "p2").await,
            Code::NotFound,
            "NotFoundException",
        );
        assert_err(
            delete_policy(iam, kind, "nobody", "p1").await,
            Code::NotFound,
            "NotFoundException",
        );

        // Malformed identity policies: with a Principal, with no Resource, not JSON.
        for bad in [
            policy_doc(
                json!([{"Effect": "Allow", "Principal": {"AWS": root_arn(&acct)},
                "Action": "kms:*", "Resource": "*"}]),
            ),
            policy_doc(json!([{"Effect": "Allow", "Action": "kms:*"}])),
            "{".to_owned(),
        ] {
            assert_err(
                put_policy(iam, kind, name, "bad", &bad).await,
                Code::InvalidArgument,
                "MalformedPolicyDocumentException",
            );
        }
        assert_err(
            get_policy(iam, kind, name, "bad").await,
            Code::NotFound,
            "NotFoundException",
        );

        delete_policy(iam, kind, name, "p1").await.expect("Delete");
        assert_err(
            get_policy(iam, kind, name, "p1").await,
            Code::NotFound,
            "NotFoundException",
        );
        assert_err(
            delete_policy(iam, kind, name, "p1").await,
            Code::NotFound,
            "NotFoundException",
        );
    }
}

/// A plain user cannot give itself rights; the admin (AdministratorAccess)
/// can give them.
#[tokio::test]
async fn no_privilege_escalation() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let ursula = new_user(&d, &d.root, "ursula").await;
    let mut uiam = d.identity_client(&ursula).await;
    let mut ukms = d.kms_client(&ursula).await;
    let all = allow_identity("*");

    assert_err(
        put_user_policy(&d, &ursula, "ursula", "all", &all).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        get_policy(
            &mut d.identity_client(&d.root).await,
            Kind::User,
            "ursula",
            "all",
        )
        .await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        ukms.create_key(pb::CreateKeyRequest::default()).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // Nor through a group or a role of her making.
    assert_err(
        uiam.create_group(pb::CreateGroupRequest {
            group_name: "mine".into(),
            path: None,
        })
        .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        create_role(
            &d,
            &ursula,
            "mine",
            &trust_policy(&[&user_arn(&acct, "ursula")]),
            None,
        )
        .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        uiam.add_user_to_group(pb::AddUserToGroupRequest {
            group_name: "admins".into(),
            user_name: "ursula".into(),
        })
        .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // But she manages her own access keys.
    let k = uiam
        .create_access_key(pb::CreateAccessKeyRequest { user_name: None })
        .await
        .expect("CreateAccessKey for herself")
        .into_inner()
        .access_key
        .unwrap();
    let listed = uiam
        .list_access_keys(pb::ListAccessKeysRequest { user_name: None })
        .await
        .expect("ListAccessKeys for herself")
        .into_inner()
        .access_key_metadata;
    assert_eq!(listed.len(), 2);
    uiam.delete_access_key(pb::DeleteAccessKeyRequest {
        access_key_id: k.access_key_id,
        user_name: None,
    })
    .await
    .expect("DeleteAccessKey for herself");
    // Unless a Deny says otherwise: a Deny-all policy quarantines her, and
    // she can then neither mint herself credentials nor enrol a device.
    put_user_policy(&d, &d.admin, "ursula", "quarantine", &deny_identity("*"))
        .await
        .unwrap();
    assert_err(
        uiam.create_access_key(pb::CreateAccessKeyRequest { user_name: None })
            .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        uiam.list_access_keys(pb::ListAccessKeysRequest { user_name: None })
            .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        enable_mfa(&d, &ursula).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    d.identity_client(&d.admin)
        .await
        .delete_user_policy(pb::DeletePrincipalPolicyRequest {
            principal_name: "ursula".into(),
            policy_name: "quarantine".into(),
        })
        .await
        .unwrap();

    // The admin may.
    put_user_policy(&d, &d.admin, "ursula", "all", &allow_identity("kms:*"))
        .await
        .expect("the admin's PutUserPolicy");
    let got = d
        .identity_client(&d.admin)
        .await
        .get_user_policy(pb::GetPrincipalPolicyRequest {
            principal_name: "ursula".into(),
            policy_name: "all".into(),
        })
        .await
        .expect("the admin's GetUserPolicy")
        .into_inner();
    assert_eq!(got.policy_document, allow_identity("kms:*"));
    create_key(&mut ukms).await;
    // kms:* is not iam:*: still no escalation.
    assert_err(
        put_user_policy(&d, &ursula, "ursula", "all", &all).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
}

/// IAM operations: the account root, or an identity policy allowing
/// `iam:<Op>`.
#[tokio::test]
async fn iam_operations_follow_identity_policies() {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let ivan = new_user(&d, &d.root, "ivan").await;
    let mut iam = d.identity_client(&ivan).await;
    let new = |name: &str| pb::CreateUserRequest {
        user_name: name.to_owned(),
        path: None,
    };
    assert_err(
        iam.create_user(new("u1")).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    let doc = policy_doc(json!([{"Effect": "Allow",
        "Action": ["iam:CreateUser", "iam:ListUsers", "iam:*Group*"], "Resource": "*"}]));
    put_user_policy(&d, &d.root, "ivan", "users", &doc)
        .await
        .unwrap();
    let u = iam
        .create_user(new("u1"))
        .await
        .expect("CreateUser allowed by iam:CreateUser")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(u.arn, user_arn(&acct, "u1"));
    let names: Vec<String> = iam
        .list_users(pb::ListUsersRequest::default())
        .await
        .expect("ListUsers")
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.user_name)
        .collect();
    assert!(names.contains(&"u1".to_owned()), "{names:?}");
    iam.create_group(pb::CreateGroupRequest {
        group_name: "g".into(),
        path: None,
    })
    .await
    .expect("iam:*Group* allows CreateGroup");
    assert_err(
        iam.delete_user(pb::DeleteUserRequest {
            user_name: "u1".into(),
        })
        .await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    assert_err(
        create_role(&d, &ivan, "r", &trust_policy(&[&root_arn(&acct)]), None).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );
    // A Deny wins over the Allow.
    put_user_policy(
        &d,
        &d.root,
        "ivan",
        "no-create",
        &deny_identity("iam:CreateUser"),
    )
    .await
    .unwrap();
    assert_err(
        iam.create_user(new("u2")).await,
        Code::PermissionDenied,
        "AccessDeniedException",
    );

    // A role session acts with the role's identity policy.
    create_role(
        &d,
        &d.root,
        "iam-admin",
        &trust_policy(&[&user_arn(&acct, "ivan")]),
        None,
    )
    .await
    .unwrap();
    put_role_policy(&d, &d.root, "iam-admin", "iam", &allow_identity("iam:*"))
        .await
        .unwrap();
    let s = assume_role(&d, &ivan, "iam-admin", "admin-session", None, None)
        .await
        .unwrap();
    let (_, mut role_iam) = session_clients(&d, &SessionCreds::of(&s)).await;
    role_iam
        .delete_user(pb::DeleteUserRequest {
            user_name: "u1".into(),
        })
        .await
        .expect("the role's iam:* allows DeleteUser");
}
