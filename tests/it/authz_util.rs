//! Helpers for the authorization tests: users with access keys, identity
//! policies, roles and their sessions, TOTP codes, policy documents.

#![allow(dead_code)]

use kmsd::client::{self, BearerAuth, IdentityClient, KmsClient};
use kmsd::clock::Clock;
use kmsd::pb;
use serde_json::{Value, json};
use tonic::Status;

use crate::common::{Creds, TestDaemon};

/// `arn:aws:iam::<acct>:root`.
pub fn root_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:root")
}

/// `arn:aws:iam::<acct>:user/<name>`.
pub fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

/// `arn:aws:iam::<acct>:role/<name>`.
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
pub fn assumed_role_arn(account: &str, role: &str, session: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/{role}/{session}")
}

/// A user created by `by` (its account's root or an IAM administrator),
/// with one access key; its credentials.
pub async fn new_user(d: &TestDaemon, by: &Creds, name: &str) -> Creds {
    let mut iam = d.identity_client(by).await;
    iam.create_user(pb::CreateUserRequest {
        user_name: name.to_owned(),
        path: None,
    })
    .await
    .unwrap_or_else(|s| panic!("CreateUser {name}: {s:?}"));
    let k = iam
        .create_access_key(pb::CreateAccessKeyRequest {
            user_name: Some(name.to_owned()),
        })
        .await
        .unwrap_or_else(|s| panic!("CreateAccessKey {name}: {s:?}"))
        .into_inner()
        .access_key
        .expect("access_key");
    Creds {
        account_id: by.account_id.clone(),
        access_key_id: k.access_key_id,
        secret: k.secret_access_key,
    }
}

/// An identity policy document of the given statements.
pub fn policy_doc(statements: Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// An identity policy allowing `action` on `*`.
pub fn allow_identity(action: &str) -> String {
    policy_doc(json!([{"Effect": "Allow", "Action": action, "Resource": "*"}]))
}

/// An identity policy denying `action` on `*`.
pub fn deny_identity(action: &str) -> String {
    policy_doc(json!([{"Effect": "Deny", "Action": action, "Resource": "*"}]))
}

/// A key policy of one Allow statement: `principals` may do `actions`.
pub fn key_policy_allowing(principals: &[&str], actions: &[&str]) -> String {
    policy_doc(json!([{
        "Sid": "Allow",
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": actions,
        "Resource": "*"
    }]))
}

/// A trust policy letting `principals` call sts:AssumeRole.
pub fn trust_policy(principals: &[&str]) -> String {
    policy_doc(json!([{
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": "sts:AssumeRole"
    }]))
}

/// PutUserPolicy as `by`.
pub async fn put_user_policy(
    d: &TestDaemon,
    by: &Creds,
    user: &str,
    policy_name: &str,
    doc: &str,
) -> Result<(), Status> {
    d.identity_client(by)
        .await
        .put_user_policy(pb::PutPrincipalPolicyRequest {
            principal_name: user.to_owned(),
            policy_name: policy_name.to_owned(),
            policy_document: doc.to_owned(),
        })
        .await
        .map(|_| ())
}

/// PutRolePolicy as `by`.
pub async fn put_role_policy(
    d: &TestDaemon,
    by: &Creds,
    role: &str,
    policy_name: &str,
    doc: &str,
) -> Result<(), Status> {
    d.identity_client(by)
        .await
        .put_role_policy(pb::PutPrincipalPolicyRequest {
            principal_name: role.to_owned(),
            policy_name: policy_name.to_owned(),
            policy_document: doc.to_owned(),
        })
        .await
        .map(|_| ())
}

/// CreateRole as `by`.
pub async fn create_role(
    d: &TestDaemon,
    by: &Creds,
    name: &str,
    trust: &str,
    max_session_duration: Option<i32>,
) -> Result<pb::Role, Status> {
    d.identity_client(by)
        .await
        .create_role(pb::CreateRoleRequest {
            role_name: name.to_owned(),
            path: None,
            assume_role_policy_document: trust.to_owned(),
            max_session_duration,
            description: None,
        })
        .await
        .map(|r| r.into_inner().role.expect("role"))
}

/// AssumeRole as `by`.
pub async fn assume_role(
    d: &TestDaemon,
    by: &Creds,
    role: &str,
    session: &str,
    duration_seconds: Option<i32>,
    token_code: Option<String>,
) -> Result<pb::AssumeRoleResponse, Status> {
    d.identity_client(by)
        .await
        .assume_role(pb::AssumeRoleRequest {
            role_arn: role.to_owned(),
            role_session_name: session.to_owned(),
            duration_seconds,
            token_code,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Temporary credentials: an access key pair and a session token.
#[derive(Clone)]
pub struct SessionCreds {
    pub access_key_id: String,
    pub secret: String,
    pub session_token: Option<String>,
}

impl SessionCreds {
    /// The credentials AssumeRole returned.
    pub fn of(r: &pb::AssumeRoleResponse) -> Self {
        let c = r.credentials.as_ref().expect("credentials");
        Self {
            access_key_id: c.access_key_id.clone(),
            secret: c.secret_access_key.clone(),
            session_token: c.session_token.clone(),
        }
    }
}

/// Both clients, authenticated with temporary credentials.
pub async fn session_clients(d: &TestDaemon, c: &SessionCreds) -> (KmsClient, IdentityClient) {
    let ch = client::connect(&d.endpoint).await.expect("connect");
    let auth =
        BearerAuth::new(&c.access_key_id, &c.secret, c.session_token.as_deref()).expect("auth");
    client::clients(ch, auth)
}

/// EnableMfaDevice as `user`; the base32 TOTP secret.
pub async fn enable_mfa(d: &TestDaemon, user: &Creds) -> Result<String, Status> {
    d.identity_client(user)
        .await
        .enable_mfa_device(pb::EnableMfaDeviceRequest {})
        .await
        .map(|r| r.into_inner().base32_secret)
}

/// The TOTP code of `base32_secret` at the daemon clock's current time.
pub fn totp_code(d: &TestDaemon, base32_secret: &str) -> String {
    let secs = u64::try_from(d.clock.now().0 / 1000).expect("a time after 1970");
    totp_code_at(base32_secret, secs)
}

/// The TOTP code of `base32_secret` at `unix_secs` (SHA-1, 6 digits, 30 s).
pub fn totp_code_at(base32_secret: &str, unix_secs: u64) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(base32_secret).expect("base32 secret"))
        .with_account_name("test")
        .build()
        .expect("TOTP")
        .generate(unix_secs)
        .to_string()
}

/// GetKeyPolicy.
pub async fn get_key_policy(kms: &mut KmsClient, key_id: &str) -> Result<String, Status> {
    kms.get_key_policy(pb::GetKeyPolicyRequest {
        key_id: key_id.to_owned(),
        policy_name: None,
    })
    .await
    .map(|r| r.into_inner().policy)
}

/// PutKeyPolicy (policy name `default`).
pub async fn put_key_policy(
    kms: &mut KmsClient,
    key_id: &str,
    policy: &str,
    bypass: bool,
) -> Result<(), Status> {
    kms.put_key_policy(pb::PutKeyPolicyRequest {
        key_id: key_id.to_owned(),
        policy_name: Some("default".to_owned()),
        policy: policy.to_owned(),
        bypass_policy_lockout_safety_check: bypass,
    })
    .await
    .map(|_| ())
}

/// The caller's ARN per GetCallerIdentity.
pub async fn caller_arn(iam: &mut IdentityClient) -> Result<String, Status> {
    iam.get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .map(|r| r.into_inner().arn)
}

/// Asserts an AccessDeniedException whose message names the principal, the
/// action and the resource.
#[track_caller]
pub fn assert_denied<T>(r: Result<T, Status>, principal: &str, action: &str, resource: &str) {
    let s = crate::common::assert_err(r, tonic::Code::PermissionDenied, "AccessDeniedException");
    for part in [principal, action, resource] {
        assert!(
            s.message().contains(part),
            "the denial message {:?} does not name {part}",
            s.message()
        );
    }
}
