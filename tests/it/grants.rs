//! Grants (issue 4), end to end against the real daemon: a key user of
//! account A delegates a narrow, revocable permission on A's key to a role
//! of account B; B's role sessions use it at once through the grant token
//! and then without it, only within the grant's operations and
//! encryption-context constraint; revoking and retiring end it on the very
//! next call; ListGrants and ListRetirableGrants page; the per-key limit,
//! named (idempotent) grants, validation; where grants sit in the
//! evaluation order (an identity-policy Deny does not block a grant, a
//! key-policy Deny does); and grants made through grants.

use std::collections::BTreeSet;

use kmsd::client::{self, BearerAuth, KmsClient};
use kmsd::pb;
use kmsd::pb::GrantOperation as Op;
use serde_json::{Value, json};
use tonic::{Code, Status};

use crate::common::{Creds, TestDaemon, assert_err};
use crate::util::{create_key_with, ctx, disable, enable, new_account};

const PLAINTEXT: &[u8] = b"tenant b's secret";

// ---------------------------------------------------------------- ARNs

fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

fn session_arn(account: &str, role: &str, session: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
}

// ---------------------------------------------------------------- identity

/// A user of `by`'s account with an access key; its credentials.
async fn new_user(d: &TestDaemon, by: &Creds, name: &str) -> Creds {
    let mut iam = d.identity_client(by).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: name.to_owned(),
        path: None,
    })
    .await
    .expect("CreateUser");
    let k = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some(name.to_owned()),
        })
        .await
        .expect("CreateAccessKey")
        .into_inner()
        .access_key
        .expect("access_key");
    Creds {
        account_id: by.account_id.clone(),
        access_key_id: k.access_key_id,
        secret: k.secret_access_key,
    }
}

/// A one-statement identity policy.
fn identity_policy(effect: &str, action: &str) -> String {
    json!({"Version": "2012-10-17",
           "Statement": [{"Effect": effect, "Action": action, "Resource": "*"}]})
    .to_string()
}

async fn put_user_policy(d: &TestDaemon, by: &Creds, user: &str, doc: &str) {
    d.identity_client(by)
        .await
        .put_user_policy(pb::PutPrincipalPolicyRequest {
            principal_name: user.to_owned(),
            policy_name: "p".to_owned(),
            policy_document: doc.to_owned(),
        })
        .await
        .expect("PutUserPolicy");
}

async fn put_role_policy(d: &TestDaemon, by: &Creds, role: &str, doc: &str) {
    d.identity_client(by)
        .await
        .put_role_policy(pb::PutPrincipalPolicyRequest {
            principal_name: role.to_owned(),
            policy_name: "p".to_owned(),
            policy_document: doc.to_owned(),
        })
        .await
        .expect("PutRolePolicy");
}

/// A KMS client for a fresh session of `role` assumed by `by`.
async fn session_kms(d: &TestDaemon, by: &Creds, role: &str, session: &str) -> KmsClient {
    let r = d
        .identity_client(by)
        .await
        .assume_role(pb::AssumeRoleRequest {
            role_arn: role.to_owned(),
            role_session_name: session.to_owned(),
            duration_seconds: None,
            token_code: None,
        })
        .await
        .expect("AssumeRole")
        .into_inner();
    let c = r.credentials.expect("credentials");
    let auth = BearerAuth::new(
        &c.access_key_id,
        &c.secret_access_key,
        c.session_token.as_deref(),
    )
    .expect("auth");
    client::clients(client::connect(&d.endpoint).await.expect("connect"), auth).0
}

// ---------------------------------------------------------------- the two accounts

/// Account A (the daemon's first account) owns a key whose key user is
/// `app-owner` and whose key administrator is the daemon's `admin` user (so
/// no test leans on A's root to manage the key); `retirer` is a user of A;
/// account B has a user `svc` that may assume B's role `consumer`, which has
/// no identity policy at all.
struct World {
    d: TestDaemon,
    a: String,
    key_id: String,
    key_arn: String,
    owner: Creds,
    owner_arn: String,
    retirer: Creds,
    retirer_arn: String,
    /// The daemon's `admin` user, the key's administrator.
    admin_arn: String,
    b_root: Creds,
    b: String,
    svc: Creds,
    /// B's role `consumer`.
    role: String,
}

impl World {
    async fn new() -> Self {
        Self::on(TestDaemon::start().await).await
    }

    async fn on(d: TestDaemon) -> Self {
        let a = d.root.account_id.clone();
        let owner = new_user(&d, &d.root, "app-owner").await;
        let retirer = new_user(&d, &d.root, "retirer").await;
        let owner_arn = user_arn(&a, "app-owner");
        let admin_arn = d
            .identity_client(&d.admin)
            .await
            .get_caller_identity(pb::GetCallerIdentityRequest {})
            .await
            .expect("GetCallerIdentity")
            .into_inner()
            .arn;
        let key = create_key_with(
            &mut d.kms_client(&d.root).await,
            pb::CreateKeyRequest {
                key_administrators: vec![admin_arn.clone()],
                key_users: vec![owner_arn.clone()],
                ..Default::default()
            },
        )
        .await;

        let b_root = new_account(&d, "account-b").await;
        let b = b_root.account_id.clone();
        assert_ne!(a, b);
        let svc = new_user(&d, &b_root, "svc").await;
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": user_arn(&b, "svc")},
            "Action": "sts:AssumeRole"}]});
        d.identity_client(&b_root)
            .await
            .create_role(pb::CreateRoleRequest {
                role_name: "consumer".to_owned(),
                path: None,
                assume_role_policy_document: trust.to_string(),
                max_session_duration: None,
                description: None,
            })
            .await
            .expect("CreateRole");
        Self {
            key_id: key.key_id,
            key_arn: key.arn,
            owner,
            owner_arn,
            retirer,
            retirer_arn: user_arn(&a, "retirer"),
            admin_arn,
            b_root,
            svc,
            role: role_arn(&b, "consumer"),
            a,
            b,
            d,
        }
    }

    /// A second key of A with the same administrator and key user.
    async fn another_key(&self) -> pb::KeyMetadata {
        create_key_with(
            &mut self.d.kms_client(&self.d.root).await,
            pb::CreateKeyRequest {
                key_administrators: vec![self.admin_arn.clone()],
                key_users: vec![self.owner_arn.clone()],
                ..Default::default()
            },
        )
        .await
    }

    async fn owner_kms(&self) -> KmsClient {
        self.d.kms_client(&self.owner).await
    }

    async fn kms(&self, creds: &Creds) -> KmsClient {
        self.d.kms_client(creds).await
    }

    /// A session of B's role, assumed by B's `svc`.
    async fn b_session(&self, name: &str) -> KmsClient {
        session_kms(&self.d, &self.svc, &self.role, name).await
    }

    /// The grant: B's role may Encrypt and Decrypt under contexts
    /// containing tenant=b; `retirer` may retire it.
    fn b_grant(&self) -> pb::CreateGrantRequest {
        pb::CreateGrantRequest {
            retiring_principal: Some(self.retirer_arn.clone()),
            constraints: Some(subset(&[("tenant", "b")])),
            ..grant_req(&self.key_id, &self.role, &[Op::Encrypt, Op::Decrypt])
        }
    }
}

// ---------------------------------------------------------------- calls

fn ops(list: &[Op]) -> Vec<i32> {
    list.iter().map(|o| *o as i32).collect()
}

fn subset(pairs: &[(&str, &str)]) -> pb::GrantConstraints {
    pb::GrantConstraints {
        encryption_context_subset: ctx(pairs),
        ..Default::default()
    }
}

fn equals(pairs: &[(&str, &str)]) -> pb::GrantConstraints {
    pb::GrantConstraints {
        encryption_context_equals: ctx(pairs),
        ..Default::default()
    }
}

fn grant_req(key: &str, grantee: &str, list: &[Op]) -> pb::CreateGrantRequest {
    pb::CreateGrantRequest {
        key_id: key.to_owned(),
        grantee_principal: grantee.to_owned(),
        operations: ops(list),
        ..Default::default()
    }
}

fn tokens(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

async fn create_grant(
    kms: &mut KmsClient,
    req: pb::CreateGrantRequest,
) -> Result<pb::CreateGrantResponse, Status> {
    kms.create_grant(req).await.map(tonic::Response::into_inner)
}

#[track_caller]
fn granted(r: Result<pb::CreateGrantResponse, Status>) -> pb::CreateGrantResponse {
    let g = r.expect("CreateGrant");
    assert_eq!(g.grant_id.len(), 64, "grant id {:?}", g.grant_id);
    assert!(
        g.grant_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "grant id {:?} is not lowercase hex",
        g.grant_id
    );
    assert!(!g.grant_token.is_empty());
    g
}

#[track_caller]
fn denied<T>(r: Result<T, Status>) {
    assert_err(r, Code::PermissionDenied, "AccessDeniedException");
}

async fn enc(
    kms: &mut KmsClient,
    key: &str,
    context: &[(&str, &str)],
    grant_tokens: &[&str],
) -> Result<pb::EncryptResponse, Status> {
    kms.encrypt(pb::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: PLAINTEXT.to_vec(),
        encryption_context: ctx(context),
        grant_tokens: tokens(grant_tokens),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn dec(
    kms: &mut KmsClient,
    blob: &[u8],
    context: &[(&str, &str)],
    grant_tokens: &[&str],
) -> Result<Vec<u8>, Status> {
    kms.decrypt(pb::DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        encryption_context: ctx(context),
        grant_tokens: tokens(grant_tokens),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().plaintext)
}

async fn gdk(
    kms: &mut KmsClient,
    key: &str,
    context: &[(&str, &str)],
    grant_tokens: &[&str],
) -> Result<pb::GenerateDataKeyResponse, Status> {
    kms.generate_data_key(pb::GenerateDataKeyRequest {
        key_id: key.to_owned(),
        key_spec: Some(pb::DataKeySpec::Aes256 as i32),
        number_of_bytes: None,
        encryption_context: ctx(context),
        grant_tokens: tokens(grant_tokens),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn gdk_without_plaintext(
    kms: &mut KmsClient,
    key: &str,
    context: &[(&str, &str)],
) -> Result<Vec<u8>, Status> {
    kms.generate_data_key_without_plaintext(pb::GenerateDataKeyWithoutPlaintextRequest {
        key_id: key.to_owned(),
        key_spec: Some(pb::DataKeySpec::Aes256 as i32),
        number_of_bytes: None,
        encryption_context: ctx(context),
        grant_tokens: Vec::new(),
    })
    .await
    .map(|r| r.into_inner().ciphertext_blob)
}

async fn describe(
    kms: &mut KmsClient,
    key: &str,
    grant_tokens: &[&str],
) -> Result<pb::KeyMetadata, Status> {
    kms.describe_key(pb::DescribeKeyRequest {
        key_id: key.to_owned(),
        grant_tokens: tokens(grant_tokens),
    })
    .await
    .map(|r| r.into_inner().key_metadata.expect("key_metadata"))
}

async fn revoke(kms: &mut KmsClient, key: &str, grant_id: &str) -> Result<(), Status> {
    kms.revoke_grant(pb::RevokeGrantRequest {
        key_id: key.to_owned(),
        grant_id: grant_id.to_owned(),
    })
    .await
    .map(drop)
}

async fn retire_by_token(kms: &mut KmsClient, token: &str) -> Result<(), Status> {
    kms.retire_grant(pb::RetireGrantRequest {
        grant_token: Some(token.to_owned()),
        key_id: None,
        grant_id: None,
    })
    .await
    .map(drop)
}

async fn retire_by_id(kms: &mut KmsClient, key: &str, grant_id: &str) -> Result<(), Status> {
    kms.retire_grant(pb::RetireGrantRequest {
        grant_token: None,
        key_id: Some(key.to_owned()),
        grant_id: Some(grant_id.to_owned()),
    })
    .await
    .map(drop)
}

fn list_req(key: &str) -> pb::ListGrantsRequest {
    pb::ListGrantsRequest {
        key_id: key.to_owned(),
        ..Default::default()
    }
}

async fn list_grants(
    kms: &mut KmsClient,
    req: pb::ListGrantsRequest,
) -> Result<pb::ListGrantsResponse, Status> {
    kms.list_grants(req).await.map(tonic::Response::into_inner)
}

async fn list_retirable(
    kms: &mut KmsClient,
    retiring_principal: &str,
    limit: Option<i32>,
    marker: Option<String>,
) -> Result<pb::ListGrantsResponse, Status> {
    kms.list_retirable_grants(pb::ListRetirableGrantsRequest {
        retiring_principal: retiring_principal.to_owned(),
        limit,
        marker,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Checks one page's flags: a next marker exactly when truncated.
#[track_caller]
fn check_page(page: &pb::ListGrantsResponse) {
    assert_eq!(
        page.truncated,
        page.next_marker.is_some(),
        "truncated={} but next_marker={:?}",
        page.truncated,
        page.next_marker
    );
}

/// Every page of ListGrants for `base` with page size `limit`: the page
/// sizes and every entry.
async fn page_grants(
    kms: &mut KmsClient,
    base: &pb::ListGrantsRequest,
    limit: i32,
) -> (Vec<usize>, Vec<pb::GrantListEntry>) {
    let (mut sizes, mut all, mut marker) = (Vec::new(), Vec::new(), None);
    loop {
        let page = list_grants(
            kms,
            pb::ListGrantsRequest {
                limit: Some(limit),
                marker: marker.take(),
                ..base.clone()
            },
        )
        .await
        .expect("ListGrants");
        check_page(&page);
        sizes.push(page.grants.len());
        all.extend(page.grants);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return (sizes, all),
        }
        assert!(sizes.len() < 50, "ListGrants does not end");
    }
}

/// Every page of ListRetirableGrants with page size `limit`.
async fn page_retirable(
    kms: &mut KmsClient,
    retiring_principal: &str,
    limit: i32,
) -> (Vec<usize>, Vec<pb::GrantListEntry>) {
    let (mut sizes, mut all, mut marker) = (Vec::new(), Vec::new(), None);
    loop {
        let page = list_retirable(kms, retiring_principal, Some(limit), marker.take())
            .await
            .expect("ListRetirableGrants");
        check_page(&page);
        sizes.push(page.grants.len());
        all.extend(page.grants);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return (sizes, all),
        }
        assert!(sizes.len() < 50, "ListRetirableGrants does not end");
    }
}

fn ids(entries: &[pb::GrantListEntry]) -> BTreeSet<String> {
    entries.iter().map(|g| g.grant_id.clone()).collect()
}

// ---------------------------------------------------------------- the scenario

#[tokio::test]
async fn cross_account_grant_works_at_once_by_token_and_then_without_it() {
    let w = World::new().await;
    let mut b = w.b_session("s1").await;
    // B's role has no identity policy and the key policy does not name it.
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await);

    let g = granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);

    // At once, through the token.
    let first = enc(&mut b, &w.key_arn, &[("tenant", "b")], &[&g.grant_token])
        .await
        .expect("Encrypt with the grant token");
    assert_eq!(first.key_id, w.key_arn);
    // And without it: the grant is stored.
    let second = enc(&mut b, &w.key_arn, &[("tenant", "b"), ("part", "7")], &[])
        .await
        .expect("Encrypt without the grant token");
    assert_eq!(
        dec(&mut b, &first.ciphertext_blob, &[("tenant", "b")], &[])
            .await
            .expect("Decrypt"),
        PLAINTEXT
    );
    assert_eq!(
        dec(
            &mut b,
            &second.ciphertext_blob,
            &[("tenant", "b"), ("part", "7")],
            &[&g.grant_token],
        )
        .await
        .expect("Decrypt with the token"),
        PLAINTEXT
    );
    // Naming the key by its ARN in Decrypt works too.
    let named = b
        .decrypt(pb::DecryptRequest {
            ciphertext_blob: first.ciphertext_blob.clone(),
            key_id: Some(w.key_arn.clone()),
            encryption_context: ctx(&[("tenant", "b")]),
            ..Default::default()
        })
        .await
        .expect("Decrypt naming the key ARN")
        .into_inner();
    assert_eq!(named.key_id, w.key_arn);

    // A role grantee matches every session of the role.
    let mut other_session = w.b_session("s2").await;
    enc(&mut other_session, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("another session of the role");
    // A's key user reads what B wrote: the same key.
    assert_eq!(
        dec(
            &mut w.owner_kms().await,
            &first.ciphertext_blob,
            &[("tenant", "b")],
            &[]
        )
        .await
        .expect("owner decrypts"),
        PLAINTEXT
    );
    // Another account reaches the key by its ARN only: a bare key id is
    // looked up in B's own account.
    assert_err(
        enc(&mut b, &w.key_id, &[("tenant", "b")], &[]).await,
        Code::NotFound,
        "NotFoundException",
    );
}

#[tokio::test]
async fn calls_outside_the_grant_are_denied() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let g = granted(create_grant(&mut owner, w.b_grant()).await);
    let t = g.grant_token.as_str();
    let mut b = w.b_session("s1").await;

    // Outside the constraint, with or without the token.
    for context in [
        &[("tenant", "a")][..],
        &[("tenant", "B")],
        &[("Tenant", "b")],
        &[("other", "b")],
        &[],
    ] {
        denied(enc(&mut b, &w.key_arn, context, &[]).await);
        denied(enc(&mut b, &w.key_arn, context, &[t]).await);
    }

    // A's ciphertext under tenant=a: B may not decrypt it under its own
    // context (denied), and naming tenant=b gets past the grant but not the
    // ciphertext's authentication.
    let a_blob = enc(&mut owner, &w.key_id, &[("tenant", "a")], &[])
        .await
        .expect("owner encrypts")
        .ciphertext_blob;
    denied(dec(&mut b, &a_blob, &[("tenant", "a")], &[]).await);
    denied(dec(&mut b, &a_blob, &[("tenant", "a")], &[t]).await);
    assert_err(
        dec(&mut b, &a_blob, &[("tenant", "b")], &[t]).await,
        Code::InvalidArgument,
        "InvalidCiphertextException",
    );

    // Operations the grant does not give.
    denied(gdk(&mut b, &w.key_arn, &[("tenant", "b")], &[t]).await);
    denied(gdk_without_plaintext(&mut b, &w.key_arn, &[("tenant", "b")]).await);
    denied(describe(&mut b, &w.key_arn, &[t]).await);
    let b_blob = enc(&mut b, &w.key_arn, &[("tenant", "b")], &[t])
        .await
        .expect("Encrypt")
        .ciphertext_blob;
    denied(
        b.re_encrypt(pb::ReEncryptRequest {
            ciphertext_blob: b_blob,
            source_encryption_context: ctx(&[("tenant", "b")]),
            destination_key_id: w.key_arn.clone(),
            destination_encryption_context: ctx(&[("tenant", "b")]),
            grant_tokens: tokens(&[t]),
            ..Default::default()
        })
        .await,
    );
    denied(list_grants(&mut b, list_req(&w.key_arn)).await);
    denied(revoke(&mut b, &w.key_arn, &g.grant_id).await);
    denied(
        create_grant(
            &mut b,
            pb::CreateGrantRequest {
                constraints: Some(subset(&[("tenant", "b")])),
                grant_tokens: tokens(&[t]),
                ..grant_req(&w.key_arn, &w.role, &[Op::Encrypt])
            },
        )
        .await,
    );

    // Other principals of B: the grant names the role, not them.
    denied(
        enc(
            &mut w.kms(&w.svc).await,
            &w.key_arn,
            &[("tenant", "b")],
            &[t],
        )
        .await,
    );
    denied(
        enc(
            &mut w.kms(&w.b_root).await,
            &w.key_arn,
            &[("tenant", "b")],
            &[t],
        )
        .await,
    );
}

#[tokio::test]
async fn a_revoked_grant_allows_nothing_on_the_next_call() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let g = granted(create_grant(&mut owner, w.b_grant()).await);
    let t = g.grant_token.as_str();
    let mut b = w.b_session("s1").await;
    let blob = enc(&mut b, &w.key_arn, &[("tenant", "b")], &[t])
        .await
        .expect("Encrypt before the revocation")
        .ciphertext_blob;

    revoke(&mut owner, &w.key_id, &g.grant_id)
        .await
        .expect("the key user revokes");

    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[t]).await);
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await);
    denied(dec(&mut b, &blob, &[("tenant", "b")], &[t]).await);
    denied(dec(&mut b, &blob, &[("tenant", "b")], &[]).await);
    let listed = list_grants(&mut owner, list_req(&w.key_id))
        .await
        .expect("ListGrants");
    assert!(listed.grants.is_empty(), "{:?}", ids(&listed.grants));

    assert_err(
        revoke(&mut owner, &w.key_id, &g.grant_id).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        retire_by_token(&mut w.kms(&w.retirer).await, t).await,
        Code::NotFound,
        "NotFoundException",
    );
    // The ciphertext is intact for those the key policy allows.
    assert_eq!(
        dec(&mut owner, &blob, &[("tenant", "b")], &[])
            .await
            .expect("owner decrypts"),
        PLAINTEXT
    );
}

#[tokio::test]
async fn revoke_grant_needs_kms_revoke_grant_on_the_key() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let g = granted(create_grant(&mut owner, w.b_grant()).await);
    // Neither the retiring principal nor the grantee may revoke: RevokeGrant
    // is decided by policy, and neither has it.
    denied(revoke(&mut w.kms(&w.retirer).await, &w.key_id, &g.grant_id).await);
    denied(revoke(&mut w.b_session("s1").await, &w.key_arn, &g.grant_id).await);
    enc(
        &mut w.b_session("s2").await,
        &w.key_arn,
        &[("tenant", "b")],
        &[],
    )
    .await
    .expect("the grant still works");
    // A key administrator (kms:Revoke* in the key policy) may.
    revoke(&mut w.kms(&w.d.admin).await, &w.key_arn, &g.grant_id)
        .await
        .expect("the key administrator revokes");
    denied(
        enc(
            &mut w.b_session("s3").await,
            &w.key_arn,
            &[("tenant", "b")],
            &[],
        )
        .await,
    );
    // A grant id of another key is not found on this one.
    let k2 = w.another_key().await;
    let g2 = granted(
        create_grant(
            &mut owner,
            grant_req(&k2.key_id, &w.role, &[Op::Encrypt, Op::Decrypt]),
        )
        .await,
    );
    assert_err(
        revoke(&mut owner, &w.key_id, &g2.grant_id).await,
        Code::NotFound,
        "NotFoundException",
    );
    enc(&mut w.b_session("s4").await, &k2.arn, &[], &[])
        .await
        .expect("the other key's grant is untouched");
}

#[tokio::test]
async fn the_retiring_principal_retires_a_grant() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let crypt = granted(create_grant(&mut owner, w.b_grant()).await);
    let data_keys = granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                retiring_principal: Some(w.retirer_arn.clone()),
                constraints: Some(subset(&[("tenant", "b")])),
                ..grant_req(&w.key_id, &w.role, &[Op::GenerateDataKey])
            },
        )
        .await,
    );
    let mut b = w.b_session("s1").await;
    gdk(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("GenerateDataKey through the second grant");

    // The key user who made the grant is neither its retiring principal nor
    // its grantee.
    denied(retire_by_token(&mut owner, &data_keys.grant_token).await);

    let mut retirer = w.kms(&w.retirer).await;
    retire_by_token(&mut retirer, &data_keys.grant_token)
        .await
        .expect("the retiring principal retires by token");
    denied(
        gdk(
            &mut b,
            &w.key_arn,
            &[("tenant", "b")],
            &[&data_keys.grant_token],
        )
        .await,
    );
    // The first grant is untouched.
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("Encrypt through the first grant");
    assert_err(
        retire_by_token(&mut retirer, &data_keys.grant_token).await,
        Code::NotFound,
        "NotFoundException",
    );

    // By key ARN and grant id.
    retire_by_id(&mut retirer, &w.key_arn, &crypt.grant_id)
        .await
        .expect("the retiring principal retires by key ARN and grant id");
    denied(
        enc(
            &mut b,
            &w.key_arn,
            &[("tenant", "b")],
            &[&crypt.grant_token],
        )
        .await,
    );
    let left = list_grants(&mut owner, list_req(&w.key_id))
        .await
        .expect("ListGrants");
    assert!(left.grants.is_empty());
}

#[tokio::test]
async fn a_grantee_retires_only_when_the_grant_includes_retire_grant() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let mut b = w.b_session("s1").await;

    let plain =
        granted(create_grant(&mut owner, grant_req(&w.key_id, &w.role, &[Op::Decrypt])).await);
    denied(retire_by_token(&mut b, &plain.grant_token).await);
    denied(retire_by_id(&mut b, &w.key_arn, &plain.grant_id).await);
    let listed = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some(plain.grant_id.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("ListGrants");
    assert_eq!(listed.grants.len(), 1, "the grant survives");

    // With RetireGrant among its operations, by key ARN and grant id ...
    let retirable = granted(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.role, &[Op::Encrypt, Op::RetireGrant]),
        )
        .await,
    );
    enc(&mut b, &w.key_arn, &[], &[])
        .await
        .expect("Encrypt through the grant");
    retire_by_id(&mut b, &w.key_arn, &retirable.grant_id)
        .await
        .expect("the grantee retires its grant");
    denied(enc(&mut b, &w.key_arn, &[], &[&retirable.grant_token]).await);

    // ... or by token.
    let again = granted(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.role, &[Op::Encrypt, Op::RetireGrant]),
        )
        .await,
    );
    retire_by_token(&mut b, &again.grant_token)
        .await
        .expect("the grantee retires by token");
    denied(enc(&mut b, &w.key_arn, &[], &[]).await);

    // A retiring principal in another account (B's role) retires by key ARN.
    let by_b = granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                retiring_principal: Some(w.role.clone()),
                ..grant_req(&w.key_id, &w.owner_arn, &[Op::DescribeKey])
            },
        )
        .await,
    );
    retire_by_id(&mut b, &w.key_arn, &by_b.grant_id)
        .await
        .expect("a cross-account retiring principal retires");

    // The grant without RetireGrant is still there and still works.
    let blob = enc(&mut owner, &w.key_id, &[], &[])
        .await
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        dec(&mut b, &blob, &[], &[]).await.expect("Decrypt"),
        PLAINTEXT
    );
}

#[tokio::test]
async fn the_account_that_created_a_grant_may_retire_it() {
    // AWS: RetireGrant "can be called by the retiring principal for a grant,
    // by the grantee principal if the grant allows the RetireGrant
    // operation, and by the Amazon Web Services account in which the grant
    // is created".
    let w = World::new().await;
    let g = granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);
    retire_by_id(&mut w.kms(&w.d.root).await, &w.key_id, &g.grant_id)
        .await
        .expect("the root of the grant's account retires it");
    denied(
        enc(
            &mut w.b_session("s1").await,
            &w.key_arn,
            &[("tenant", "b")],
            &[],
        )
        .await,
    );
}

#[tokio::test]
async fn grant_operations_take_the_key_not_an_alias() {
    // AWS: CreateGrant, ListGrants, RevokeGrant and RetireGrant name the
    // KMS key by "key ID or key ARN"; a grant on whatever an alias points to
    // at the moment is what that rule prevents.
    let w = World::new().await;
    w.kms(&w.d.admin)
        .await
        .create_alias(pb::CreateAliasRequest {
            alias_name: "alias/shared".to_owned(),
            target_key_id: w.key_id.clone(),
        })
        .await
        .expect("CreateAlias");
    let alias_arn = w
        .key_arn
        .replace(&format!("key/{}", w.key_id), "alias/shared");
    let g = granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);
    let invalid = |r: Result<(), Status>, what: &str| {
        let s = assert_err(r, Code::InvalidArgument, "ValidationException");
        assert!(s.message().contains("alias"), "{what}: {}", s.message());
    };
    for alias in ["alias/shared", alias_arn.as_str()] {
        let mut owner = w.owner_kms().await;
        let req = pb::CreateGrantRequest {
            name: Some("by-alias".to_owned()),
            ..grant_req(alias, &w.role, &[Op::Encrypt])
        };
        invalid(create_grant(&mut owner, req).await.map(drop), "CreateGrant");
        invalid(
            list_grants(&mut owner, list_req(alias)).await.map(drop),
            "ListGrants",
        );
        invalid(revoke(&mut owner, alias, &g.grant_id).await, "RevokeGrant");
        invalid(
            retire_by_id(&mut w.kms(&w.retirer).await, alias, &g.grant_id).await,
            "RetireGrant",
        );
    }
    // Nothing changed: the one grant is there, and still works.
    let left = list_grants(&mut w.owner_kms().await, list_req(&w.key_id))
        .await
        .expect("ListGrants by key id");
    assert_eq!(
        left.grants
            .iter()
            .map(|e| e.grant_id.as_str())
            .collect::<Vec<_>>(),
        [g.grant_id.as_str()]
    );
    enc(
        &mut w.b_session("s1").await,
        &w.key_arn,
        &[("tenant", "b")],
        &[],
    )
    .await
    .expect("the grant still allows Encrypt");
}

#[tokio::test]
async fn grant_entries_name_the_issuing_account_by_its_root_arn() {
    // AWS's ListGrants example: "IssuingAccount": "arn:aws:iam::111122223333:root".
    let w = World::new().await;
    let g = granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);
    let listed = list_grants(&mut w.owner_kms().await, list_req(&w.key_id))
        .await
        .expect("ListGrants");
    assert_eq!(ids(&listed.grants), BTreeSet::from([g.grant_id]));
    assert_eq!(listed.grants[0].issuing_account, root_arn(&w.a));
    put_user_policy(
        &w.d,
        &w.d.root,
        "retirer",
        &identity_policy("Allow", "kms:ListRetirableGrants"),
    )
    .await;
    let retirable = list_retirable(&mut w.kms(&w.retirer).await, &w.retirer_arn, None, None)
        .await
        .expect("ListRetirableGrants");
    assert_eq!(retirable.grants.len(), 1);
    assert_eq!(retirable.grants[0].issuing_account, root_arn(&w.a));
}

#[tokio::test]
async fn a_grantee_meets_the_keys_state() {
    let w = World::new().await;
    granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);
    let mut b = w.b_session("s1").await;
    let mut admin = w.kms(&w.d.admin).await;
    disable(&mut admin, &w.key_id).await;
    assert_err(
        enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    // Outside the grant it is still a denial: the state reveals nothing.
    denied(enc(&mut b, &w.key_arn, &[("tenant", "a")], &[]).await);
    enable(&mut admin, &w.key_id).await;
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("Encrypt once the key is enabled again");
}

/// CreateGrant decides authorization before it looks at the key's state,
/// so a caller without kms:CreateGrant cannot learn that a key is disabled.
#[tokio::test]
async fn create_grant_on_a_disabled_key_denies_before_it_tells_the_state() {
    let w = World::new().await;
    disable(&mut w.kms(&w.d.admin).await, &w.key_id).await;
    // The retirer has no permission on the key at all.
    denied(
        create_grant(
            &mut w.kms(&w.retirer).await,
            grant_req(&w.key_id, &w.role, &[Op::Encrypt]),
        )
        .await,
    );
    // The key administrator (kms:Create* in the key policy) may create
    // grants, and is told why it cannot now.
    assert_err(
        create_grant(
            &mut w.kms(&w.d.admin).await,
            grant_req(&w.key_arn, &w.role, &[Op::Encrypt]),
        )
        .await,
        Code::FailedPrecondition,
        "DisabledException",
    );
}

#[tokio::test]
async fn a_grant_for_one_session_admits_only_that_session() {
    let w = World::new().await;
    let one = session_arn(&w.b, "consumer", "s1");
    granted(
        create_grant(
            &mut w.owner_kms().await,
            grant_req(&w.key_id, &one, &[Op::Encrypt]),
        )
        .await,
    );
    enc(&mut w.b_session("s1").await, &w.key_arn, &[], &[])
        .await
        .expect("the named session");
    denied(enc(&mut w.b_session("s2").await, &w.key_arn, &[], &[]).await);
}

// ---------------------------------------------------------------- each operation

#[tokio::test]
async fn each_operation_allows_just_itself() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let k2 = w.another_key().await;
    let mut b = w.b_session("s1").await;
    let only = |op| grant_req(&w.key_id, &w.role, &[op]);

    let g = granted(create_grant(&mut owner, only(Op::DescribeKey)).await);
    let meta = describe(&mut b, &w.key_arn, &[&g.grant_token])
        .await
        .expect("DescribeKey");
    assert_eq!(meta.arn, w.key_arn);
    assert_eq!(meta.aws_account_id, w.a);
    denied(enc(&mut b, &w.key_arn, &[], &[&g.grant_token]).await);
    revoke(&mut owner, &w.key_id, &g.grant_id).await.unwrap();
    denied(describe(&mut b, &w.key_arn, &[]).await);

    let g = granted(create_grant(&mut owner, only(Op::GenerateDataKeyWithoutPlaintext)).await);
    gdk_without_plaintext(&mut b, &w.key_arn, &[])
        .await
        .expect("GenerateDataKeyWithoutPlaintext");
    denied(gdk(&mut b, &w.key_arn, &[], &[]).await);
    revoke(&mut owner, &w.key_id, &g.grant_id).await.unwrap();
    denied(gdk_without_plaintext(&mut b, &w.key_arn, &[]).await);

    let g = granted(create_grant(&mut owner, only(Op::GenerateDataKey)).await);
    let dk = gdk(&mut b, &w.key_arn, &[], &[])
        .await
        .expect("GenerateDataKey");
    assert_eq!(dk.plaintext.len(), 32);
    denied(dec(&mut b, &dk.ciphertext_blob, &[], &[]).await);
    revoke(&mut owner, &w.key_id, &g.grant_id).await.unwrap();

    // ReEncrypt needs ReEncryptFrom on the source and ReEncryptTo on the
    // destination.
    let blob = enc(&mut owner, &w.key_id, &[], &[])
        .await
        .unwrap()
        .ciphertext_blob;
    let re = |b: &mut KmsClient| {
        let mut b = b.clone();
        let (blob, dest) = (blob.clone(), k2.arn.clone());
        async move {
            b.re_encrypt(pb::ReEncryptRequest {
                ciphertext_blob: blob,
                destination_key_id: dest,
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    let from = granted(create_grant(&mut owner, only(Op::ReEncryptFrom)).await);
    denied(re(&mut b).await);
    let to = granted(
        create_grant(
            &mut owner,
            grant_req(&k2.key_id, &w.role, &[Op::ReEncryptTo]),
        )
        .await,
    );
    let moved = re(&mut b).await.expect("ReEncrypt");
    assert_eq!(moved.key_id, k2.arn);
    assert_eq!(moved.source_key_id, w.key_arn);
    assert_eq!(
        dec(&mut owner, &moved.ciphertext_blob, &[], &[])
            .await
            .expect("owner decrypts under the second key"),
        PLAINTEXT
    );
    denied(dec(&mut b, &moved.ciphertext_blob, &[], &[]).await);
    revoke(&mut owner, &k2.key_id, &to.grant_id).await.unwrap();
    denied(re(&mut b).await);
    revoke(&mut owner, &w.key_id, &from.grant_id).await.unwrap();
}

#[tokio::test]
async fn an_equals_constraint_admits_exactly_its_context() {
    let w = World::new().await;
    granted(
        create_grant(
            &mut w.owner_kms().await,
            pb::CreateGrantRequest {
                constraints: Some(equals(&[("tenant", "b"), ("app", "x")])),
                ..grant_req(&w.key_id, &w.role, &[Op::Encrypt])
            },
        )
        .await,
    );
    let mut b = w.b_session("s1").await;
    enc(&mut b, &w.key_arn, &[("app", "x"), ("tenant", "b")], &[])
        .await
        .expect("exactly the context");
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await);
    denied(
        enc(
            &mut b,
            &w.key_arn,
            &[("tenant", "b"), ("app", "x"), ("more", "1")],
            &[],
        )
        .await,
    );
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b"), ("app", "y")], &[]).await);
    denied(enc(&mut b, &w.key_arn, &[], &[]).await);
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn list_grants_pages_with_limit_and_marker() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(
            granted(
                create_grant(
                    &mut owner,
                    pb::CreateGrantRequest {
                        name: Some(format!("to-b-{i}")),
                        ..w.b_grant()
                    },
                )
                .await,
            )
            .grant_id,
        );
    }
    for _ in 0..2 {
        made.push(
            granted(
                create_grant(
                    &mut owner,
                    grant_req(&w.key_id, &w.retirer_arn, &[Op::DescribeKey]),
                )
                .await,
            )
            .grant_id,
        );
    }
    let made: BTreeSet<String> = made.into_iter().collect();
    assert_eq!(made.len(), 5);
    // Another key's grant never shows.
    let k2 = w.another_key().await;
    granted(create_grant(&mut owner, grant_req(&k2.key_id, &w.role, &[Op::Encrypt])).await);

    // Page by page: 2 + 2 + 1.
    let first = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            limit: Some(2),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("page 1");
    assert_eq!(first.grants.len(), 2);
    assert!(first.truncated);
    let m1 = first.next_marker.clone().expect("a marker after page 1");
    let second = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            limit: Some(2),
            marker: Some(m1.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("page 2");
    assert_eq!(second.grants.len(), 2);
    assert!(second.truncated);
    let m2 = second.next_marker.clone().expect("a marker after page 2");
    assert_ne!(m1, m2);
    let third = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            limit: Some(2),
            marker: Some(m2),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("page 3");
    assert_eq!(third.grants.len(), 1);
    assert!(!third.truncated);
    assert_eq!(third.next_marker, None);
    let mut seen = ids(&first.grants);
    seen.extend(ids(&second.grants));
    seen.extend(ids(&third.grants));
    assert_eq!(seen, made, "every grant exactly once");
    // A marker can be used again.
    let again = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            limit: Some(2),
            marker: Some(m1),
            ..list_req(&w.key_arn)
        },
    )
    .await
    .expect("page 2 again, by key ARN");
    assert_eq!(ids(&again.grants), ids(&second.grants));

    // The default page holds them all.
    let all = list_grants(&mut owner, list_req(&w.key_id))
        .await
        .expect("ListGrants");
    assert_eq!(ids(&all.grants), made);
    assert!(!all.truncated);
    assert_eq!(all.next_marker, None);
    let (sizes, _) = page_grants(&mut owner, &list_req(&w.key_id), 5).await;
    assert_eq!(sizes, [5]);
    let (sizes, one_by_one) = page_grants(&mut owner, &list_req(&w.key_id), 1).await;
    assert_eq!(sizes, [1, 1, 1, 1, 1]);
    assert_eq!(ids(&one_by_one), made);

    // By grantee: B's three, also paged.
    let by_grantee = pb::ListGrantsRequest {
        grantee_principal: Some(w.role.clone()),
        ..list_req(&w.key_id)
    };
    let (sizes, to_b) = page_grants(&mut owner, &by_grantee, 2).await;
    assert_eq!(sizes, [2, 1]);
    assert!(to_b.iter().all(|g| g.grantee_principal == w.role));
    let (_, to_retirer) = page_grants(
        &mut owner,
        &pb::ListGrantsRequest {
            grantee_principal: Some(w.retirer_arn.clone()),
            ..list_req(&w.key_id)
        },
        2,
    )
    .await;
    assert_eq!(to_retirer.len(), 2);
    let mut union = ids(&to_b);
    union.extend(ids(&to_retirer));
    assert_eq!(union, made);

    // By grant id: one entry, in full.
    let one = to_b
        .iter()
        .find(|g| g.name == "to-b-1")
        .expect("the grant named to-b-1");
    let got = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some(one.grant_id.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("ListGrants by grant id");
    assert_eq!(got.grants.len(), 1);
    let e = &got.grants[0];
    assert_eq!(e.grant_id, one.grant_id);
    assert_eq!(e.key_id, w.key_arn);
    assert_eq!(e.name, "to-b-1");
    assert_eq!(e.grantee_principal, w.role);
    assert_eq!(e.retiring_principal, w.retirer_arn);
    assert!(
        e.issuing_account.contains(&w.a),
        "issuing_account {:?}",
        e.issuing_account
    );
    let mut listed_ops = e.operations.clone();
    listed_ops.sort_unstable();
    let mut want = ops(&[Op::Encrypt, Op::Decrypt]);
    want.sort_unstable();
    assert_eq!(listed_ops, want);
    assert_eq!(e.constraints, Some(subset(&[("tenant", "b")])));
    assert!(e.creation_date.is_some());
    // Both filters together; an unknown id lists nothing.
    let both = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some(one.grant_id.clone()),
            grantee_principal: Some(w.retirer_arn.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("ListGrants");
    assert!(both.grants.is_empty());
    let none = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some("0".repeat(64)),
            ..list_req(&w.key_id)
        },
    )
    .await
    .expect("ListGrants");
    assert!(none.grants.is_empty());
    assert!(!none.truncated);

    // Bad arguments.
    for limit in [0, -1, 101] {
        assert_err(
            list_grants(
                &mut owner,
                pb::ListGrantsRequest {
                    limit: Some(limit),
                    ..list_req(&w.key_id)
                },
            )
            .await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert_err(
        list_grants(
            &mut owner,
            pb::ListGrantsRequest {
                marker: Some("not a marker!".into()),
                ..list_req(&w.key_id)
            },
        )
        .await,
        Code::InvalidArgument,
        "InvalidMarkerException",
    );
    assert_err(
        list_grants(
            &mut owner,
            pb::ListGrantsRequest {
                grant_id: Some("xyz".into()),
                ..list_req(&w.key_id)
            },
        )
        .await,
        Code::InvalidArgument,
        "InvalidGrantIdException",
    );
    // ListGrants is decided by policy: B's role has no say.
    denied(list_grants(&mut w.b_session("s1").await, list_req(&w.key_arn)).await);
}

#[tokio::test]
async fn list_retirable_grants_pages_with_limit_and_marker() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let k2 = w.another_key().await;
    let mut made = BTreeSet::new();
    for key in [&w.key_id, &w.key_id, &w.key_id, &k2.key_id, &k2.key_id] {
        let g = granted(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    key_id: key.clone(),
                    ..w.b_grant()
                },
            )
            .await,
        );
        made.insert(g.grant_id);
    }
    // Grants with another retiring principal, or none, are not listed.
    granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                retiring_principal: Some(w.owner_arn.clone()),
                ..grant_req(&w.key_id, &w.role, &[Op::Encrypt])
            },
        )
        .await,
    );
    granted(create_grant(&mut owner, grant_req(&w.key_id, &w.role, &[Op::Encrypt])).await);

    // The retiring principal needs kms:ListRetirableGrants by identity policy.
    let mut retirer = w.kms(&w.retirer).await;
    denied(list_retirable(&mut retirer, &w.retirer_arn, None, None).await);
    put_user_policy(
        &w.d,
        &w.d.root,
        "retirer",
        &identity_policy("Allow", "kms:ListRetirableGrants"),
    )
    .await;

    // Page by page: 2 + 2 + 1.
    let first = list_retirable(&mut retirer, &w.retirer_arn, Some(2), None)
        .await
        .expect("page 1");
    assert_eq!(first.grants.len(), 2);
    assert!(first.truncated);
    let second = list_retirable(
        &mut retirer,
        &w.retirer_arn,
        Some(2),
        Some(first.next_marker.clone().expect("marker 1")),
    )
    .await
    .expect("page 2");
    assert_eq!(second.grants.len(), 2);
    assert!(second.truncated);
    let third = list_retirable(
        &mut retirer,
        &w.retirer_arn,
        Some(2),
        Some(second.next_marker.clone().expect("marker 2")),
    )
    .await
    .expect("page 3");
    assert_eq!(third.grants.len(), 1);
    assert!(!third.truncated);
    assert_eq!(third.next_marker, None);
    let mut seen = ids(&first.grants);
    seen.extend(ids(&second.grants));
    seen.extend(ids(&third.grants));
    assert_eq!(seen, made);
    for e in first
        .grants
        .iter()
        .chain(&second.grants)
        .chain(&third.grants)
    {
        assert_eq!(e.retiring_principal, w.retirer_arn);
        assert_eq!(e.grantee_principal, w.role);
        assert!(e.key_id == w.key_arn || e.key_id == k2.arn, "{}", e.key_id);
    }
    let (sizes, _) = page_retirable(&mut retirer, &w.retirer_arn, 3).await;
    assert_eq!(sizes, [3, 2]);

    // A's root may list them without any policy.
    let (sizes, by_root) = page_retirable(&mut w.kms(&w.d.root).await, &w.retirer_arn, 4).await;
    assert_eq!(sizes, [4, 1]);
    assert_eq!(ids(&by_root), made);

    // Another account may not list a principal of A.
    denied(list_retirable(&mut w.kms(&w.b_root).await, &w.retirer_arn, None, None).await);

    // A retired grant leaves the list.
    let gone = first.grants[0].grant_id.clone();
    retire_by_id(&mut retirer, &first.grants[0].key_id, &gone)
        .await
        .expect("RetireGrant");
    let (_, left) = page_retirable(&mut retirer, &w.retirer_arn, 2).await;
    assert_eq!(left.len(), 4);
    assert!(!ids(&left).contains(&gone));

    // Bad arguments.
    assert_err(
        list_retirable(&mut retirer, "retirer", None, None).await,
        Code::InvalidArgument,
        "ValidationException",
    );
    for limit in [0, 101] {
        assert_err(
            list_retirable(&mut retirer, &w.retirer_arn, Some(limit), None).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    assert_err(
        list_retirable(
            &mut retirer,
            &w.retirer_arn,
            None,
            Some("not a marker!".into()),
        )
        .await,
        Code::InvalidArgument,
        "InvalidMarkerException",
    );
}

// ---------------------------------------------------------------- limits and names

#[tokio::test]
async fn more_grants_than_the_limit_are_refused() {
    let d = TestDaemon::start_with(|o| o.settings.max_grants_per_key = 3).await;
    let w = World::on(d).await;
    let mut owner = w.owner_kms().await;
    let mut made = Vec::new();
    for i in 0..3 {
        made.push(granted(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    name: Some(format!("g{i}")),
                    ..w.b_grant()
                },
            )
            .await,
        ));
    }
    let s = assert_err(
        create_grant(&mut owner, w.b_grant()).await,
        Code::ResourceExhausted,
        "LimitExceededException",
    );
    assert!(!s.message().is_empty());
    // Repeating a named grant creates nothing, so is not refused.
    let same = granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                name: Some("g1".into()),
                ..w.b_grant()
            },
        )
        .await,
    );
    assert_eq!(same.grant_id, made[1].grant_id);
    // The limit is per key.
    let k2 = w.another_key().await;
    granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                key_id: k2.key_id.clone(),
                ..w.b_grant()
            },
        )
        .await,
    );
    let listed = list_grants(&mut owner, list_req(&w.key_id)).await.unwrap();
    assert_eq!(listed.grants.len(), 3);
    // Freeing one makes room for one.
    revoke(&mut owner, &w.key_id, &made[0].grant_id)
        .await
        .unwrap();
    granted(create_grant(&mut owner, w.b_grant()).await);
    assert_err(
        create_grant(&mut owner, w.b_grant()).await,
        Code::ResourceExhausted,
        "LimitExceededException",
    );
}

#[tokio::test]
async fn a_named_grant_is_created_once() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let named = || pb::CreateGrantRequest {
        name: Some("b-tenant".into()),
        ..w.b_grant()
    };
    let first = granted(create_grant(&mut owner, named()).await);
    let again = granted(create_grant(&mut owner, named()).await);
    assert_eq!(again.grant_id, first.grant_id);
    let listed = list_grants(&mut owner, list_req(&w.key_id)).await.unwrap();
    assert_eq!(listed.grants.len(), 1);
    assert_eq!(listed.grants[0].name, "b-tenant");
    // Either token is good.
    let mut b = w.b_session("s1").await;
    for t in [&first.grant_token, &again.grant_token] {
        enc(&mut b, &w.key_arn, &[("tenant", "b")], &[t])
            .await
            .expect("Encrypt with the token");
    }
    // The same name with other parameters is another grant.
    let wider = granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                operations: ops(&[Op::Encrypt]),
                ..named()
            },
        )
        .await,
    );
    assert_ne!(wider.grant_id, first.grant_id);
    // Without a name, every request makes a new grant.
    let u1 = granted(create_grant(&mut owner, w.b_grant()).await);
    let u2 = granted(create_grant(&mut owner, w.b_grant()).await);
    assert_ne!(u1.grant_id, u2.grant_id);
    let listed = list_grants(&mut owner, list_req(&w.key_id)).await.unwrap();
    assert_eq!(listed.grants.len(), 4);
    // Once the named grant is retired, the name makes a new one.
    retire_by_token(&mut w.kms(&w.retirer).await, &first.grant_token)
        .await
        .unwrap();
    let fresh = granted(create_grant(&mut owner, named()).await);
    assert_ne!(fresh.grant_id, first.grant_id);
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn create_grant_validates_its_arguments() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let invalid = |r: Result<pb::CreateGrantResponse, Status>, what: &str| {
        let s = assert_err(r, Code::InvalidArgument, "ValidationException");
        assert!(!s.message().is_empty(), "{what}");
    };

    invalid(
        create_grant(&mut owner, grant_req(&w.key_id, &w.role, &[])).await,
        "no operations",
    );
    invalid(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                operations: vec![Op::Unspecified as i32],
                ..w.b_grant()
            },
        )
        .await,
        "unspecified operation",
    );
    invalid(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                operations: vec![Op::Encrypt as i32, 99],
                ..w.b_grant()
            },
        )
        .await,
        "unknown operation",
    );
    for grantee in [
        "",
        "consumer",
        "arn:aws:iam::12345:role/consumer",
        "arn:aws:iam::123456789012:group/devs",
        "arn:aws:iam::123456789012:user/",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "*",
        // AWS's alphabet and length: no wildcard, control or bidi
        // character, nothing longer than 256.
        &user_arn(&w.b, "*"),
        &user_arn(&w.b, "svc\n"),
        &user_arn(&w.b, "s\u{0}vc"),
        &user_arn(&w.b, "a\u{202e}b"),
        &role_arn(&w.b, "x\u{1b}[2J"),
        &user_arn(&w.b, &"a".repeat(256)),
    ] {
        invalid(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    grantee_principal: grantee.to_owned(),
                    ..w.b_grant()
                },
            )
            .await,
            grantee,
        );
        invalid(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    retiring_principal: Some(grantee.to_owned()),
                    ..w.b_grant()
                },
            )
            .await,
            grantee,
        );
    }
    // Every principal kind is accepted, up to 256 characters.
    let longest = user_arn(&w.b, &"a".repeat(225));
    assert_eq!(longest.len(), 256);
    for grantee in [
        longest,
        root_arn(&w.b),
        user_arn(&w.b, "svc"),
        w.role.clone(),
        session_arn(&w.b, "consumer", "s1"),
    ] {
        granted(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    grantee_principal: grantee.clone(),
                    retiring_principal: Some(grantee),
                    ..w.b_grant()
                },
            )
            .await,
        );
    }
    invalid(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                constraints: Some(subset(&[("tenant", "b")])),
                ..grant_req(&w.key_id, &w.role, &[Op::Decrypt, Op::DescribeKey])
            },
        )
        .await,
        "a constraint with DescribeKey",
    );
    invalid(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                constraints: Some(pb::GrantConstraints {
                    encryption_context_subset: ctx(&[("tenant", "b")]),
                    encryption_context_equals: ctx(&[("tenant", "b")]),
                }),
                ..w.b_grant()
            },
        )
        .await,
        "both constraints",
    );
    // Constraints follow the rules of a call's context: none that no valid
    // call could meet.
    for bad in [&[("", "b")][..], &[("tenant", "b"), ("Tenant", "c")][..]] {
        for constraints in [subset(bad), equals(bad)] {
            invalid(
                create_grant(
                    &mut owner,
                    pb::CreateGrantRequest {
                        constraints: Some(constraints),
                        ..w.b_grant()
                    },
                )
                .await,
                &format!("constraint {bad:?}"),
            );
        }
    }
    for name in ["", "has space", "semi;colon", &"n".repeat(257)] {
        invalid(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    name: Some(name.to_owned()),
                    ..w.b_grant()
                },
            )
            .await,
            name,
        );
    }
    // None of these was stored.
    let listed = list_grants(&mut owner, list_req(&w.key_id)).await.unwrap();
    assert_eq!(listed.grants.len(), 5);

    // An unknown key; a disabled key.
    assert_err(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                key_id: uuid::Uuid::new_v4().to_string(),
                ..w.b_grant()
            },
        )
        .await,
        Code::NotFound,
        "NotFoundException",
    );
    let mut admin = w.kms(&w.d.admin).await;
    disable(&mut admin, &w.key_id).await;
    assert_err(
        create_grant(&mut owner, w.b_grant()).await,
        Code::FailedPrecondition,
        "DisabledException",
    );
    enable(&mut admin, &w.key_id).await;
    granted(create_grant(&mut owner, w.b_grant()).await);

    // Someone the key policy does not allow CreateGrant.
    denied(create_grant(&mut w.kms(&w.retirer).await, w.b_grant()).await);
}

#[tokio::test]
async fn malformed_or_foreign_grant_tokens_and_ids_are_refused() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let g = granted(create_grant(&mut owner, w.b_grant()).await);

    // A token of another daemon, for a grant this one never had.
    let other = World::new().await;
    let foreign = granted(create_grant(&mut other.owner_kms().await, other.b_grant()).await);
    // The real token with one character near its end changed.
    let mut tampered: Vec<char> = g.grant_token.chars().collect();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();

    let bad_tokens = [
        "not-a-token".to_owned(),
        foreign.grant_token.clone(),
        tampered,
        format!("{}x", g.grant_token),
    ];
    let mut b = w.b_session("s1").await;
    for t in &bad_tokens {
        let name = "InvalidGrantTokenException";
        let code = Code::InvalidArgument;
        assert_err(
            enc(&mut b, &w.key_arn, &[("tenant", "b")], &[t]).await,
            code,
            name,
        );
        // Also beside a good token, and for a caller the key policy allows.
        assert_err(
            enc(
                &mut owner,
                &w.key_id,
                &[("tenant", "b")],
                &[&g.grant_token, t],
            )
            .await,
            code,
            name,
        );
        let blob = enc(&mut owner, &w.key_id, &[("tenant", "b")], &[])
            .await
            .unwrap()
            .ciphertext_blob;
        assert_err(
            dec(&mut b, &blob, &[("tenant", "b")], &[t]).await,
            code,
            name,
        );
        assert_err(gdk(&mut owner, &w.key_id, &[], &[t]).await, code, name);
        assert_err(describe(&mut owner, &w.key_id, &[t]).await, code, name);
        assert_err(
            create_grant(
                &mut owner,
                pb::CreateGrantRequest {
                    grant_tokens: vec![t.clone()],
                    ..w.b_grant()
                },
            )
            .await,
            code,
            name,
        );
        assert_err(
            retire_by_token(&mut w.kms(&w.retirer).await, t).await,
            code,
            name,
        );
    }
    // The real grant is untouched by all this.
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[&g.grant_token])
        .await
        .expect("the genuine token");

    // Grant ids.
    let mut retirer = w.kms(&w.retirer).await;
    for bad in ["xyz", &"A".repeat(64), &"0".repeat(63), &"g".repeat(64)] {
        assert_err(
            revoke(&mut owner, &w.key_id, bad).await,
            Code::InvalidArgument,
            "InvalidGrantIdException",
        );
        assert_err(
            retire_by_id(&mut retirer, &w.key_arn, bad).await,
            Code::InvalidArgument,
            "InvalidGrantIdException",
        );
    }
    let unknown = "0".repeat(64);
    assert_err(
        revoke(&mut owner, &w.key_id, &unknown).await,
        Code::NotFound,
        "NotFoundException",
    );
    assert_err(
        retire_by_id(&mut retirer, &w.key_arn, &unknown).await,
        Code::NotFound,
        "NotFoundException",
    );
    // Neither a token nor a key and grant id.
    for req in [
        pb::RetireGrantRequest::default(),
        pb::RetireGrantRequest {
            key_id: Some(w.key_arn.clone()),
            ..Default::default()
        },
        pb::RetireGrantRequest {
            grant_id: Some(g.grant_id.clone()),
            ..Default::default()
        },
    ] {
        assert_err(
            retirer.retire_grant(req).await,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    // A grant id on the wrong key is not found there.
    let k2 = w.another_key().await;
    assert_err(
        retire_by_id(&mut retirer, &k2.arn, &g.grant_id).await,
        Code::NotFound,
        "NotFoundException",
    );
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("still granted");
}

// ---------------------------------------------------------------- evaluation order

#[tokio::test]
async fn an_identity_deny_does_not_block_a_grant_but_a_key_policy_deny_does() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    let g = granted(create_grant(&mut owner, w.b_grant()).await);

    // B's own account denies its role everything of KMS: the grant still
    // allows what it allows.
    put_role_policy(
        &w.d,
        &w.b_root,
        "consumer",
        &identity_policy("Deny", "kms:*"),
    )
    .await;
    let mut b = w.b_session("s1").await;
    let blob = enc(&mut b, &w.key_arn, &[("tenant", "b")], &[&g.grant_token])
        .await
        .expect("Encrypt despite the identity-policy Deny")
        .ciphertext_blob;
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("and without the token");
    // It does not widen the grant, either.
    denied(enc(&mut b, &w.key_arn, &[("tenant", "a")], &[]).await);

    // The same in A: a user denied by its own identity policy still gets
    // what its grant gives.
    put_user_policy(
        &w.d,
        &w.d.root,
        "retirer",
        &identity_policy("Deny", "kms:*"),
    )
    .await;
    granted(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.retirer_arn, &[Op::Encrypt]),
        )
        .await,
    );
    enc(&mut w.kms(&w.retirer).await, &w.key_id, &[], &[])
        .await
        .expect("a granted user despite its identity-policy Deny");

    // An explicit Deny in the key policy wins over the grant.
    let mut admin = w.kms(&w.d.admin).await;
    let policy = admin
        .get_key_policy(pb::GetKeyPolicyRequest {
            key_id: w.key_id.clone(),
            policy_name: None,
        })
        .await
        .expect("GetKeyPolicy")
        .into_inner()
        .policy;
    let mut doc: Value = serde_json::from_str(&policy).expect("policy JSON");
    doc["Statement"]
        .as_array_mut()
        .expect("Statement")
        .push(json!({
            "Sid": "No encryption by B's consumer",
            "Effect": "Deny",
            "Principal": {"AWS": w.role},
            "Action": "kms:Encrypt",
            "Resource": "*"
        }));
    admin
        .put_key_policy(pb::PutKeyPolicyRequest {
            key_id: w.key_id.clone(),
            policy_name: None,
            policy: doc.to_string(),
            bypass_policy_lockout_safety_check: false,
        })
        .await
        .expect("PutKeyPolicy");
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[&g.grant_token]).await);
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await);
    // Only Encrypt is denied: Decrypt through the grant still works.
    assert_eq!(
        dec(&mut b, &blob, &[("tenant", "b")], &[])
            .await
            .expect("Decrypt"),
        PLAINTEXT
    );
}

#[tokio::test]
async fn key_policy_conditions_on_create_grant_see_the_grant() {
    // The key policy lets the key user make grants only for Encrypt and
    // Decrypt, and only to B's role (AWS's kms:GrantOperations and
    // kms:GranteePrincipal condition keys).
    let w = World::new().await;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": root_arn(&w.a)},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "narrow grants", "Effect": "Allow", "Principal": {"AWS": w.owner_arn},
         "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {
             "ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "Decrypt"]},
             "StringEquals": {"kms:GranteePrincipal": w.role}}}]});
    w.kms(&w.d.admin)
        .await
        .put_key_policy(pb::PutKeyPolicyRequest {
            key_id: w.key_id.clone(),
            policy_name: None,
            policy: policy.to_string(),
            bypass_policy_lockout_safety_check: false,
        })
        .await
        .expect("PutKeyPolicy");
    let mut owner = w.owner_kms().await;
    granted(create_grant(&mut owner, w.b_grant()).await);
    granted(create_grant(&mut owner, grant_req(&w.key_id, &w.role, &[Op::Decrypt])).await);
    denied(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.role, &[Op::Encrypt, Op::GenerateDataKey]),
        )
        .await,
    );
    denied(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.retirer_arn, &[Op::Encrypt]),
        )
        .await,
    );
}

// ---------------------------------------------------------------- grants made through grants

#[tokio::test]
async fn a_grant_with_create_grant_makes_only_narrower_grants() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    // `delegate` has no identity policy and the key policy does not name it:
    // all it has is its grant.
    let delegate = new_user(&w.d, &w.d.root, "delegate").await;
    let parent = granted(
        create_grant(
            &mut owner,
            pb::CreateGrantRequest {
                constraints: Some(subset(&[("tenant", "b")])),
                ..grant_req(
                    &w.key_id,
                    &user_arn(&w.a, "delegate"),
                    &[Op::Encrypt, Op::Decrypt, Op::CreateGrant],
                )
            },
        )
        .await,
    );
    let mut del = w.kms(&delegate).await;
    let to_b = |list: &[Op], c: Option<pb::GrantConstraints>| pb::CreateGrantRequest {
        constraints: c,
        grant_tokens: vec![parent.grant_token.clone()],
        ..grant_req(&w.key_id, &w.role, list)
    };

    // Wider: an operation the parent lacks, or a looser constraint.
    for (what, req) in [
        (
            "extra GenerateDataKey",
            to_b(
                &[Op::Encrypt, Op::GenerateDataKey],
                Some(subset(&[("tenant", "b")])),
            ),
        ),
        (
            "extra RetireGrant",
            to_b(
                &[Op::Decrypt, Op::RetireGrant],
                Some(subset(&[("tenant", "b")])),
            ),
        ),
        (
            "extra DescribeKey",
            to_b(&[Op::Encrypt, Op::DescribeKey], None),
        ),
        ("constraint dropped", to_b(&[Op::Encrypt], None)),
        (
            "another tenant",
            to_b(&[Op::Encrypt], Some(subset(&[("tenant", "c")]))),
        ),
        (
            "tenant missing",
            to_b(&[Op::Encrypt], Some(subset(&[("app", "x")]))),
        ),
        (
            "equals without tenant",
            to_b(&[Op::Encrypt], Some(equals(&[("app", "x")]))),
        ),
    ] {
        let r = create_grant(&mut del, req).await;
        assert!(
            matches!(&r, Err(s) if s.code() == Code::PermissionDenied),
            "{what}: {r:?}"
        );
        denied(r);
    }
    assert_eq!(
        list_grants(&mut owner, list_req(&w.key_id))
            .await
            .unwrap()
            .grants
            .len(),
        1,
        "no wider grant was stored"
    );

    // Narrower: fewer operations, stricter constraints; or the same width.
    let decrypt_app_x = granted(
        create_grant(
            &mut del,
            to_b(
                &[Op::Decrypt],
                Some(subset(&[("tenant", "b"), ("app", "x")])),
            ),
        )
        .await,
    );
    granted(
        create_grant(
            &mut del,
            to_b(&[Op::Encrypt], Some(equals(&[("tenant", "b")]))),
        )
        .await,
    );
    // Without the token, too: the parent is stored.
    granted(
        create_grant(
            &mut del,
            pb::CreateGrantRequest {
                grantee_principal: user_arn(&w.b, "svc"),
                constraints: Some(subset(&[("tenant", "b")])),
                ..grant_req(
                    &w.key_id,
                    &w.role,
                    &[Op::Encrypt, Op::Decrypt, Op::CreateGrant],
                )
            },
        )
        .await,
    );
    let listed = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some(decrypt_app_x.grant_id.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.grants.len(), 1);
    assert_eq!(listed.grants[0].grantee_principal, w.role);
    assert!(listed.grants[0].issuing_account.contains(&w.a));

    // B's role gets exactly what the child grants give.
    let mut b = w.b_session("s1").await;
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[])
        .await
        .expect("Encrypt under exactly tenant=b");
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b"), ("app", "x")], &[]).await);
    let with_app = enc(&mut owner, &w.key_id, &[("tenant", "b"), ("app", "x")], &[])
        .await
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        dec(&mut b, &with_app, &[("tenant", "b"), ("app", "x")], &[])
            .await
            .expect("Decrypt under tenant=b, app=x"),
        PLAINTEXT
    );
    let without_app = enc(&mut owner, &w.key_id, &[("tenant", "b")], &[])
        .await
        .unwrap()
        .ciphertext_blob;
    denied(dec(&mut b, &without_app, &[("tenant", "b")], &[]).await);

    // Once the parent is revoked, the delegate makes no more grants.
    revoke(&mut owner, &w.key_id, &parent.grant_id)
        .await
        .unwrap();
    denied(
        create_grant(
            &mut del,
            to_b(
                &[Op::Decrypt],
                Some(subset(&[("tenant", "b"), ("app", "y")])),
            ),
        )
        .await,
    );
}

#[tokio::test]
async fn a_grantee_in_another_account_makes_narrower_grants_by_key_arn() {
    let w = World::new().await;
    let mut owner = w.owner_kms().await;
    granted(
        create_grant(
            &mut owner,
            grant_req(&w.key_id, &w.role, &[Op::Encrypt, Op::CreateGrant]),
        )
        .await,
    );
    let mut b = w.b_session("s1").await;
    let svc = user_arn(&w.b, "svc");
    denied(
        create_grant(
            &mut b,
            grant_req(&w.key_arn, &svc, &[Op::Encrypt, Op::Decrypt]),
        )
        .await,
    );
    let child = granted(create_grant(&mut b, grant_req(&w.key_arn, &svc, &[Op::Encrypt])).await);
    let mut svc_kms = w.kms(&w.svc).await;
    enc(&mut svc_kms, &w.key_arn, &[], &[&child.grant_token])
        .await
        .expect("B's user encrypts through the child grant");
    let blob = enc(&mut owner, &w.key_id, &[], &[])
        .await
        .unwrap()
        .ciphertext_blob;
    denied(dec(&mut svc_kms, &blob, &[], &[]).await);
    // The child's issuing account is B's.
    let listed = list_grants(
        &mut owner,
        pb::ListGrantsRequest {
            grant_id: Some(child.grant_id.clone()),
            ..list_req(&w.key_id)
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.grants.len(), 1);
    assert!(
        listed.grants[0].issuing_account.contains(&w.b),
        "issuing_account {:?}",
        listed.grants[0].issuing_account
    );
}

// ---------------------------------------------------------------- persistence

#[tokio::test]
async fn grants_and_their_tokens_survive_a_restart() {
    let w = World::new().await;
    let g = granted(create_grant(&mut w.owner_kms().await, w.b_grant()).await);
    let d = w.d.restart().await;
    let w = World { d, ..w };
    let mut b = w.b_session("after").await;
    enc(&mut b, &w.key_arn, &[("tenant", "b")], &[&g.grant_token])
        .await
        .expect("the token is still the daemon's");
    let listed = list_grants(&mut w.owner_kms().await, list_req(&w.key_id))
        .await
        .unwrap();
    assert_eq!(ids(&listed.grants), BTreeSet::from([g.grant_id.clone()]));
    revoke(&mut w.owner_kms().await, &w.key_id, &g.grant_id)
        .await
        .unwrap();
    denied(enc(&mut b, &w.key_arn, &[("tenant", "b")], &[]).await);
}
