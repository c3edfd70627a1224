//! Issue 3's authorization matrix: for a key created with separate key
//! administrators and key users, every principal of the table times every
//! operation of the table gets the expected Allow or Deny.
//!
//! Each cell starts from the same key state (Enabled, the policy CreateKey
//! wrote), so cells do not depend on their order: the account root prepares
//! what a cell needs (a pending deletion to cancel, a disabled key to
//! enable) and restores the key afterwards. A denied cell must change
//! nothing (metadata, policy, tags, aliases are compared before and after)
//! and its AccessDeniedException must name the caller, the action and the
//! key. Failures are collected and reported together, each with its cell.

use std::collections::BTreeMap;

use kmsd::client::KmsClient;
use kmsd::pb;
use tonic::{Code, Status};

use crate::authz_util::*;
use crate::common::{TestDaemon, error_name};
use crate::util::*;

/// Who makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// A user named in `key_administrators`.
    Admin,
    /// A user named in `key_users`.
    User,
    /// Another user of the key's account, with no policies.
    Other,
    /// A user of another account whose identity policy allows `kms:*` on `*`.
    Foreign,
    /// The root of the key's account.
    Root,
    /// A session of role `app` (named in `key_users`) assumed with MFA.
    RoleMfa,
    /// A session of the same role assumed without MFA.
    RoleNoMfa,
}

/// The columns of the table, in order.
const WHO: [Who; 7] = [
    Who::Admin,
    Who::User,
    Who::Other,
    Who::Foreign,
    Who::Root,
    Who::RoleMfa,
    Who::RoleNoMfa,
];

/// The operation a cell calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    ReEncrypt,
    GenerateDataKey,
    DescribeKey,
    PutKeyPolicy,
    GetKeyPolicy,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    DisableKey,
    EnableKey,
    CreateAlias,
    TagResource,
    RotateKeyOnDemand,
}

impl Op {
    /// The actions a denial of this operation may name (any one of them).
    fn actions(self) -> Vec<String> {
        match self {
            Op::ReEncrypt => vec!["kms:ReEncryptFrom".into(), "kms:ReEncryptTo".into()],
            other => vec![format!("kms:{other:?}")],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
}

const A: Expect = Expect::Allow;
const D: Expect = Expect::Deny;

/// The matrix: one row per operation, one column per principal of [`WHO`].
#[rustfmt::skip]
const MATRIX: &[(Op, [Expect; 7])] = &[
    //                          admin user other foreign root role+mfa role-mfa
    (Op::Encrypt,             [D,    A,   D,    D,      A,   A,       D]),
    (Op::Decrypt,             [D,    A,   D,    D,      A,   A,       D]),
    (Op::ReEncrypt,           [D,    A,   D,    D,      A,   A,       D]),
    (Op::GenerateDataKey,     [D,    A,   D,    D,      A,   A,       D]),
    (Op::DescribeKey,         [A,    A,   D,    D,      A,   A,       D]),
    (Op::PutKeyPolicy,        [A,    D,   D,    D,      A,   D,       D]),
    (Op::GetKeyPolicy,        [A,    D,   D,    D,      A,   D,       D]),
    (Op::ScheduleKeyDeletion, [A,    D,   D,    D,      A,   D,       D]),
    (Op::CancelKeyDeletion,   [A,    D,   D,    D,      A,   D,       D]),
    (Op::DisableKey,          [A,    D,   D,    D,      A,   D,       D]),
    (Op::EnableKey,           [A,    D,   D,    D,      A,   D,       D]),
    (Op::CreateAlias,         [A,    D,   D,    D,      A,   D,       D]),
    (Op::TagResource,         [A,    D,   D,    D,      A,   D,       D]),
    (Op::RotateKeyOnDemand,   [A,    D,   D,    D,      A,   D,       D]),
];

/// The role's inline policy: nothing of KMS without MFA.
const REQUIRE_MFA: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Action": "kms:*", "Resource": "*",
    "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}]}"#;

const PLAINTEXT: &[u8] = b"matrix plaintext";

/// A principal of the table with its client.
struct Actor {
    who: Who,
    arn: String,
    kms: KmsClient,
}

/// Everything the cells share.
struct Fixture {
    _daemon: TestDaemon,
    key_id: String,
    key_arn: String,
    /// The policy CreateKey wrote.
    policy: String,
    /// A ciphertext under the key, made by the root.
    blob: Vec<u8>,
    root: KmsClient,
    /// The other account's root, to see aliases made there.
    foreign_root: KmsClient,
    actors: Vec<Actor>,
}

/// What a denied call must leave unchanged.
#[derive(Debug, PartialEq)]
struct Snapshot {
    metadata: pb::KeyMetadata,
    policy: String,
    tags: BTreeMap<String, String>,
    aliases: Vec<String>,
}

async fn setup() -> Fixture {
    let d = TestDaemon::start().await;
    let acct = d.root.account_id.clone();
    let mut root = d.kms_client(&d.root).await;

    let key_admin = new_user(&d, &d.root, "keyadmin").await;
    let key_user = new_user(&d, &d.root, "keyuser").await;
    let other = new_user(&d, &d.root, "other").await;

    let app = create_role(
        &d,
        &d.root,
        "app",
        &trust_policy(&[&user_arn(&acct, "keyuser")]),
        None,
    )
    .await
    .expect("CreateRole app");
    assert_eq!(app.arn, role_arn(&acct, "app"));
    put_role_policy(&d, &d.root, "app", "require-mfa", REQUIRE_MFA)
        .await
        .expect("PutRolePolicy require-mfa");

    let b = new_account(&d, "b").await;
    let bob = new_user(&d, &b, "bob").await;
    put_user_policy(&d, &b, "bob", "kms-all", &allow_identity("kms:*"))
        .await
        .expect("PutUserPolicy kms-all");

    let key = create_key_with(
        &mut root,
        pb::CreateKeyRequest {
            description: Some("matrix".into()),
            key_administrators: vec![user_arn(&acct, "keyadmin")],
            key_users: vec![user_arn(&acct, "keyuser"), role_arn(&acct, "app")],
            ..Default::default()
        },
    )
    .await;
    let policy = get_key_policy(&mut root, &key.arn)
        .await
        .expect("GetKeyPolicy as root");
    let blob = encrypt(&mut root, &key.arn, PLAINTEXT, &ctx(&[]))
        .await
        .expect("Encrypt as root")
        .ciphertext_blob;

    let b32 = enable_mfa(&d, &key_user).await.expect("EnableMfaDevice");
    let with_mfa = assume_role(
        &d,
        &key_user,
        "app",
        "with-mfa",
        None,
        Some(totp_code(&d, &b32)),
    )
    .await
    .expect("AssumeRole with MFA");
    let without_mfa = assume_role(&d, &key_user, "app", "without-mfa", None, None)
        .await
        .expect("AssumeRole without MFA");

    let mut actors = Vec::new();
    for who in WHO {
        let (arn, kms) = match who {
            Who::Admin => (user_arn(&acct, "keyadmin"), d.kms_client(&key_admin).await),
            Who::User => (user_arn(&acct, "keyuser"), d.kms_client(&key_user).await),
            Who::Other => (user_arn(&acct, "other"), d.kms_client(&other).await),
            Who::Foreign => (user_arn(&b.account_id, "bob"), d.kms_client(&bob).await),
            Who::Root => (root_arn(&acct), d.kms_client(&d.root).await),
            Who::RoleMfa | Who::RoleNoMfa => {
                let (r, session) = if who == Who::RoleMfa {
                    (&with_mfa, "with-mfa")
                } else {
                    (&without_mfa, "without-mfa")
                };
                let arn = assumed_role_arn(&acct, "app", session);
                assert_eq!(r.assumed_role_arn, arn);
                let (kms, mut iam) = session_clients(&d, &SessionCreds::of(r)).await;
                assert_eq!(caller_arn(&mut iam).await.expect("GetCallerIdentity"), arn);
                (arn, kms)
            }
        };
        actors.push(Actor { who, arn, kms });
    }
    let foreign_root = d.kms_client(&b).await;
    Fixture {
        key_id: key.key_id,
        key_arn: key.arn,
        policy,
        blob,
        root,
        foreign_root,
        actors,
        _daemon: d,
    }
}

impl Fixture {
    async fn snapshot(&self) -> Snapshot {
        let mut root = self.root.clone();
        let metadata = describe(&mut root, &self.key_arn)
            .await
            .expect("DescribeKey as root");
        let policy = get_key_policy(&mut root, &self.key_arn)
            .await
            .expect("GetKeyPolicy as root");
        let tags = root
            .list_resource_tags(pb::ListResourceTagsRequest {
                key_id: self.key_arn.clone(),
                limit: None,
                marker: None,
            })
            .await
            .expect("ListResourceTags as root")
            .into_inner()
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        let mut foreign_root = self.foreign_root.clone();
        let mut aliases: Vec<String> = all_aliases(&mut root)
            .await
            .into_iter()
            .chain(all_aliases(&mut foreign_root).await)
            .map(|a| a.alias_name)
            .collect();
        aliases.sort();
        Snapshot {
            metadata,
            policy,
            tags,
            aliases,
        }
    }

    async fn state(&self) -> pb::KeyState {
        let m = describe(&mut self.root.clone(), &self.key_arn)
            .await
            .expect("DescribeKey as root");
        pb::KeyState::try_from(m.key_state).expect("a known key state")
    }

    /// The root puts the key in the state the cell needs.
    async fn prepare(&self, op: Op) {
        let mut root = self.root.clone();
        match op {
            Op::CancelKeyDeletion => {
                schedule_deletion(&mut root, &self.key_arn, Some(7))
                    .await
                    .expect("ScheduleKeyDeletion as root");
            }
            Op::EnableKey => disable(&mut root, &self.key_arn).await,
            _ => {}
        }
    }

    /// The root brings the key back to Enabled.
    async fn restore(&self) {
        let mut root = self.root.clone();
        if self.state().await == pb::KeyState::PendingDeletion {
            root.cancel_key_deletion(pb::CancelKeyDeletionRequest {
                key_id: self.key_arn.clone(),
            })
            .await
            .expect("CancelKeyDeletion as root");
        }
        if self.state().await == pb::KeyState::Disabled {
            enable(&mut root, &self.key_arn).await;
        }
        assert_eq!(self.state().await, pb::KeyState::Enabled, "restore");
    }

    /// Whether the root can decrypt `blob` to the matrix plaintext.
    async fn root_decrypts(&self, blob: &[u8]) -> Result<(), String> {
        match decrypt_with_key(&mut self.root.clone(), blob, Some(&self.key_arn), &ctx(&[])).await {
            Ok(r) if r.plaintext == PLAINTEXT => Ok(()),
            Ok(_) => Err("the root decrypts the result to another plaintext".into()),
            Err(s) => Err(format!("the root cannot decrypt the result: {s:?}")),
        }
    }

    /// Calls `op` as `actor`. `Ok` carries problems found in a successful
    /// call's answer.
    async fn call(&self, actor: &Actor, op: Op, cell: &str) -> Result<Vec<String>, Status> {
        let mut kms = actor.kms.clone();
        let arn = self.key_arn.clone();
        let mut problems = Vec::new();
        let mut check = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_owned());
            }
        };
        match op {
            Op::Encrypt => {
                let r = encrypt(&mut kms, &arn, PLAINTEXT, &ctx(&[])).await?;
                check(r.key_id == arn, "Encrypt answers another key id");
                if let Err(e) = self.root_decrypts(&r.ciphertext_blob).await {
                    check(false, &e);
                }
            }
            Op::Decrypt => {
                let r = decrypt_with_key(&mut kms, &self.blob, Some(&arn), &ctx(&[])).await?;
                check(
                    r.plaintext == PLAINTEXT,
                    "Decrypt returns another plaintext",
                );
                check(r.key_id == arn, "Decrypt answers another key id");
            }
            Op::ReEncrypt => {
                let r = kms
                    .re_encrypt(pb::ReEncryptRequest {
                        ciphertext_blob: self.blob.clone(),
                        source_key_id: Some(arn.clone()),
                        destination_key_id: arn.clone(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                check(r.key_id == arn, "ReEncrypt answers another key id");
                check(
                    r.source_key_id == arn,
                    "ReEncrypt answers another source key",
                );
                if let Err(e) = self.root_decrypts(&r.ciphertext_blob).await {
                    check(false, &e);
                }
            }
            Op::GenerateDataKey => {
                let r =
                    generate_data_key(&mut kms, &arn, Some(pb::DataKeySpec::Aes256), None).await?;
                check(r.plaintext.len() == 32, "the data key is not 32 bytes");
                let back = decrypt_with_key(
                    &mut self.root.clone(),
                    &r.ciphertext_blob,
                    Some(&arn),
                    &ctx(&[]),
                )
                .await
                .map(|x| x.plaintext);
                check(
                    back.as_deref().ok() == Some(r.plaintext.as_slice()),
                    "the root cannot decrypt the data key to its plaintext",
                );
            }
            Op::DescribeKey => {
                let m = describe(&mut kms, &arn).await?;
                check(
                    m.arn == arn && m.key_id == self.key_id,
                    "DescribeKey describes another key",
                );
            }
            Op::PutKeyPolicy => {
                put_key_policy(&mut kms, &arn, &self.policy, false).await?;
            }
            Op::GetKeyPolicy => {
                let p = get_key_policy(&mut kms, &arn).await?;
                check(p == self.policy, "GetKeyPolicy returns another policy");
            }
            Op::ScheduleKeyDeletion => {
                let r = schedule_deletion(&mut kms, &arn, Some(7)).await?;
                check(
                    r.key_state == pb::KeyState::PendingDeletion as i32,
                    "ScheduleKeyDeletion answers another state",
                );
            }
            Op::CancelKeyDeletion => {
                kms.cancel_key_deletion(pb::CancelKeyDeletionRequest {
                    key_id: arn.clone(),
                })
                .await?;
            }
            Op::DisableKey => {
                kms.disable_key(pb::DisableKeyRequest {
                    key_id: arn.clone(),
                })
                .await?;
            }
            Op::EnableKey => {
                kms.enable_key(pb::EnableKeyRequest {
                    key_id: arn.clone(),
                })
                .await?;
            }
            Op::CreateAlias => {
                create_alias(&mut kms, &alias_of(cell), &arn).await?;
            }
            Op::TagResource => {
                kms.tag_resource(pb::TagResourceRequest {
                    key_id: arn.clone(),
                    tags: vec![pb::Tag {
                        tag_key: tag_of(cell),
                        tag_value: "set".into(),
                    }],
                })
                .await?;
            }
            Op::RotateKeyOnDemand => {
                kms.rotate_key_on_demand(pb::RotateKeyOnDemandRequest {
                    key_id: arn.clone(),
                })
                .await?;
            }
        }
        Ok(problems)
    }

    /// After an allowed call: whether it had its effect.
    async fn effect_seen(&self, op: Op, cell: &str, before: &Snapshot) -> Result<(), String> {
        let after = self.snapshot().await;
        let state = pb::KeyState::try_from(after.metadata.key_state).ok();
        let ok = match op {
            Op::ScheduleKeyDeletion => state == Some(pb::KeyState::PendingDeletion),
            Op::CancelKeyDeletion | Op::DisableKey => state == Some(pb::KeyState::Disabled),
            Op::EnableKey => state == Some(pb::KeyState::Enabled),
            Op::CreateAlias => {
                let alias = alias_of(cell);
                all_aliases(&mut self.root.clone())
                    .await
                    .iter()
                    .any(|a| a.alias_name == alias && a.target_key_id == self.key_id)
            }
            Op::TagResource => after.tags.get(&tag_of(cell)).map(String::as_str) == Some("set"),
            Op::RotateKeyOnDemand => {
                after.metadata.current_key_material_version
                    == before.metadata.current_key_material_version + 1
            }
            // Putting the same policy back changes nothing; the rest reads.
            _ => after == *before,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "the call succeeded but its effect is not seen: {after:?}"
            ))
        }
    }
}

fn alias_of(cell: &str) -> String {
    format!("alias/matrix-{cell}")
}

fn tag_of(cell: &str) -> String {
    format!("matrix-{cell}")
}

/// Checks a denial: AccessDeniedException naming the caller, the action and the key.
fn check_denial(s: &Status, actor: &Actor, op: Op, key_arn: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if s.code() != Code::PermissionDenied || error_name(s) != "AccessDeniedException" {
        problems.push(format!(
            "expected AccessDeniedException (PERMISSION_DENIED), got {:?} {}: {}",
            s.code(),
            error_name(s),
            s.message()
        ));
        return problems;
    }
    let msg = s.message();
    if !msg.contains(&actor.arn) {
        problems.push(format!(
            "the denial {msg:?} does not name the caller {}",
            actor.arn
        ));
    }
    let actions = op.actions();
    if !actions.iter().any(|a| msg.contains(a.as_str())) {
        problems.push(format!(
            "the denial {msg:?} does not name the action {actions:?}"
        ));
    }
    if !msg.contains(key_arn) {
        problems.push(format!(
            "the denial {msg:?} does not name the key {key_arn}"
        ));
    }
    if msg.contains('{') || msg.contains("Statement") {
        problems.push(format!("the denial {msg:?} reveals the policy"));
    }
    problems
}

#[tokio::test]
async fn authorization_matrix() {
    let f = setup().await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for (row, (op, expected)) in MATRIX.iter().enumerate() {
        for (col, actor) in f.actors.iter().enumerate() {
            cells += 1;
            let expect = expected[col];
            let cell = format!("{row}-{col}");
            let label = format!("[{op:?} by {:?}, expected {expect:?}]", actor.who);
            f.prepare(*op).await;
            let before = f.snapshot().await;
            let result = f.call(actor, *op, &cell).await;
            match (expect, result) {
                (Expect::Allow, Ok(problems)) => {
                    failures.extend(problems.into_iter().map(|p| format!("{label} {p}")));
                    if let Err(p) = f.effect_seen(*op, &cell, &before).await {
                        failures.push(format!("{label} {p}"));
                    }
                }
                (Expect::Allow, Err(s)) => failures.push(format!(
                    "{label} denied: {:?} {}: {}",
                    s.code(),
                    error_name(&s),
                    s.message()
                )),
                (Expect::Deny, Ok(_)) => failures.push(format!("{label} the call succeeded")),
                (Expect::Deny, Err(s)) => {
                    let problems = check_denial(&s, actor, *op, &f.key_arn);
                    failures.extend(problems.into_iter().map(|p| format!("{label} {p}")));
                    let after = f.snapshot().await;
                    if after != before {
                        failures.push(format!(
                            "{label} the denied call changed the key:\n  before {before:?}\n  after  {after:?}"
                        ));
                    }
                }
            }
            f.restore().await;
        }
    }
    assert_eq!(cells, MATRIX.len() * WHO.len());
    assert_eq!(cells, 14 * 7, "every operation times every principal");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The table itself: every operation of the issue appears once, and the
/// key administrator and key user never share a cryptographic or
/// administrative right (DESIGN.md: administrators manage but do not use).
#[test]
fn the_matrix_covers_the_issue() {
    let ops: Vec<Op> = MATRIX.iter().map(|(op, _)| *op).collect();
    for op in [
        Op::Encrypt,
        Op::Decrypt,
        Op::ReEncrypt,
        Op::GenerateDataKey,
        Op::DescribeKey,
        Op::PutKeyPolicy,
        Op::GetKeyPolicy,
        Op::ScheduleKeyDeletion,
        Op::CancelKeyDeletion,
        Op::DisableKey,
        Op::EnableKey,
        Op::CreateAlias,
        Op::TagResource,
        Op::RotateKeyOnDemand,
    ] {
        assert_eq!(ops.iter().filter(|o| **o == op).count(), 1, "{op:?}");
    }
    let col = |who: Who| WHO.iter().position(|w| *w == who).unwrap();
    for (op, row) in MATRIX {
        if *op != Op::DescribeKey {
            assert!(
                row[col(Who::Admin)] != row[col(Who::User)],
                "{op:?}: administrator and user differ"
            );
        }
        assert_eq!(row[col(Who::Root)], A, "{op:?}: the root may");
        assert_eq!(row[col(Who::Other)], D, "{op:?}: no policy, no access");
        assert_eq!(row[col(Who::Foreign)], D, "{op:?}: never implicit");
        assert_eq!(row[col(Who::RoleNoMfa)], D, "{op:?}: MFA required");
        assert_eq!(row[col(Who::RoleMfa)], row[col(Who::User)], "{op:?}");
    }
}
