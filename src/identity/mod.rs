//! Who is calling: credentials, their generation and checking, ARNs, and
//! the [`Caller`] that every domain operation receives.
//!
//! Secrets are stored wrapped under the root key and compared in constant
//! time. Authentication failures say nothing about which part was wrong.

use std::net::IpAddr;

use crate::clock::Timestamp;
use crate::crypto::secret::{SecretBytes, ct_eq};
use crate::crypto::unwrapped::UnwrapCache;
use crate::crypto::{RootKey, rng, wrap};
use crate::error::{KmsError, Result};
use crate::model::{AccessKeyStatus, OPERATOR_ACCOUNT};
use crate::store::Store;

/// The kind of principal behind a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account's root (`arn:aws:iam::<acct>:root`).
    Root,
    /// An IAM-style user.
    User {
        /// Its name.
        name: String,
    },
    /// A session of a role, from AssumeRole.
    AssumedRole {
        /// The role's name.
        role_name: String,
        /// The role's path.
        role_path: String,
        /// The session name the caller chose.
        session_name: String,
    },
}

/// The authenticated caller of one request. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's account.
    pub account_id: String,
    /// The principal ARN.
    pub arn: String,
    /// The kind of principal.
    pub principal: Principal,
    /// A stable id: the account for the root, `AIDA...` for a user.
    pub user_id: String,
    /// The access key the call was signed with.
    pub access_key_id: String,
    /// The connection's peer address, when known.
    pub source_ip: Option<IpAddr>,
    /// Whether the session proved a second factor.
    pub mfa_present: bool,
    /// When temporary credentials expire; `None` for long-term keys.
    pub session_expiry: Option<Timestamp>,
}

impl Caller {
    /// Whether this is the operator (the root of account 000000000000).
    pub fn is_operator(&self) -> bool {
        self.account_id == OPERATOR_ACCOUNT && self.principal == Principal::Root
    }

    /// Whether this is an account's root.
    pub fn is_root(&self) -> bool {
        self.principal == Principal::Root
    }

    /// For a role session, the role's ARN (`aws:PrincipalArn`).
    pub fn role_arn(&self) -> Option<String> {
        match &self.principal {
            Principal::AssumedRole {
                role_name,
                role_path,
                ..
            } => Some(role_arn(&self.account_id, role_path, role_name)),
            _ => None,
        }
    }
}

/// `arn:aws:iam::<acct>:root`.
pub fn root_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:root")
}

/// `arn:aws:iam::<acct>:user<path><name>`.
pub fn user_arn(account_id: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:user{path}{name}")
}

/// `arn:aws:iam::<acct>:role<path><name>`.
pub fn role_arn(account_id: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:role{path}{name}")
}

/// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
pub fn assumed_role_arn(account_id: &str, role: &str, session: &str) -> String {
    format!("arn:aws:sts::{account_id}:assumed-role/{role}/{session}")
}

/// `arn:aws:iam::<acct>:group<path><name>`.
pub fn group_arn(account_id: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:group{path}{name}")
}

/// SHA-256 of a session token: what the store keeps instead of the token.
pub fn token_hash(token: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token).to_vec()
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A random identifier: `prefix` and 16 base32 characters (80 random bits).
pub fn random_id(prefix: &str) -> Result<String> {
    let bytes = rng::array::<16>()?;
    let mut s = String::with_capacity(prefix.len() + 16);
    s.push_str(prefix);
    for b in bytes {
        s.push(char::from(BASE32[usize::from(b & 31)]));
    }
    Ok(s)
}

/// A fresh access key pair: (`AKIA...` id, 40-character secret).
pub fn new_access_key() -> Result<(String, SecretBytes)> {
    let id = random_id("AKIA")?;
    let raw = SecretBytes::random(30)?;
    let secret = SecretBytes::new(
        data_encoding::BASE64
            .encode(raw.expose_secret())
            .into_bytes(),
    );
    Ok((id, secret))
}

/// A random 12-digit account id that is not the operator's.
pub fn new_account_id() -> Result<String> {
    loop {
        let b = rng::array::<8>()?;
        let n = u64::from_be_bytes(b) % 1_000_000_000_000;
        let id = format!("{n:012}");
        if id != OPERATOR_ACCOUNT {
            return Ok(id);
        }
    }
}

/// The parts of an `authorization: Bearer <id>:<secret>` header, and the
/// session token that temporary credentials need.
pub struct BearerCredentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret: SecretBytes,
    /// The `x-kms-session-token`, for temporary credentials.
    pub session_token: Option<SecretBytes>,
}

impl std::fmt::Debug for BearerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn unrecognized() -> KmsError {
    KmsError::UnrecognizedClientException(
        "the security token included in the request is invalid".into(),
    )
}

impl BearerCredentials {
    /// Parses the value of an `authorization` header.
    pub fn parse(header: &str) -> Result<Self> {
        let rest = header.strip_prefix("Bearer ").ok_or_else(unrecognized)?;
        let (id, secret) = rest.split_once(':').ok_or_else(unrecognized)?;
        if id.is_empty() || secret.is_empty() || id.len() > 128 {
            return Err(unrecognized());
        }
        Ok(Self {
            access_key_id: id.to_owned(),
            secret: SecretBytes::new(secret.as_bytes().to_vec()),
            session_token: None,
        })
    }
}

/// Checks credentials against the store. Any failure is the same
/// `UnrecognizedClientException`, so a caller cannot tell an unknown key id
/// from a wrong secret; only an expired session says so
/// (`ExpiredTokenException`), and only after its secret and token matched.
pub async fn authenticate(
    store: &dyn Store,
    root: &RootKey,
    secrets: &UnwrapCache<String, SecretBytes>,
    creds: &BearerCredentials,
    source_ip: Option<IpAddr>,
    now: Timestamp,
) -> Result<Caller> {
    if creds.access_key_id.starts_with("ASIA") {
        return authenticate_session(store, root, secrets, creds, source_ip, now).await;
    }
    if creds.session_token.is_some() {
        // A stale session token next to a long-term key is a client mistake
        // that AWS refuses too; accepting it would hide the mistake.
        return Err(unrecognized());
    }
    let Some(rec) = store.get_access_key(&creds.access_key_id).await? else {
        return Err(unrecognized());
    };
    let stored = secrets
        .get_or_unwrap(&rec.access_key_id, &rec.wrapped_secret, || {
            wrap::unwrap_credential(root, &rec.access_key_id, &rec.wrapped_secret)
        })
        .map_err(KmsError::internal)?;
    if !ct_eq(stored.expose_secret(), creds.secret.expose_secret())
        || rec.status != AccessKeyStatus::Active
    {
        return Err(unrecognized());
    }
    let (principal, arn, user_id) = match &rec.user_name {
        None => (
            Principal::Root,
            root_arn(&rec.account_id),
            rec.account_id.clone(),
        ),
        Some(name) => {
            let user = store
                .get_user(&rec.account_id, name)
                .await?
                .ok_or_else(unrecognized)?;
            (
                Principal::User {
                    name: user.name.clone(),
                },
                user_arn(&rec.account_id, &user.path, &user.name),
                user.user_id,
            )
        }
    };
    Ok(Caller {
        account_id: rec.account_id,
        arn,
        principal,
        user_id,
        access_key_id: rec.access_key_id,
        source_ip,
        mfa_present: false,
        session_expiry: None,
    })
}

async fn authenticate_session(
    store: &dyn Store,
    root: &RootKey,
    secrets: &UnwrapCache<String, SecretBytes>,
    creds: &BearerCredentials,
    source_ip: Option<IpAddr>,
    now: Timestamp,
) -> Result<Caller> {
    let Some(s) = store.get_session(&creds.access_key_id).await? else {
        return Err(unrecognized());
    };
    let stored = secrets
        .get_or_unwrap(&s.access_key_id, &s.wrapped_secret, || {
            wrap::unwrap_credential(root, &s.access_key_id, &s.wrapped_secret)
        })
        .map_err(KmsError::internal)?;
    let token_ok = creds
        .session_token
        .as_ref()
        .is_some_and(|t| ct_eq(&token_hash(t.expose_secret()), &s.token_hash));
    if !ct_eq(stored.expose_secret(), creds.secret.expose_secret()) || !token_ok {
        return Err(unrecognized());
    }
    if s.expires <= now {
        return Err(KmsError::ExpiredTokenException(
            "The security token included in the request is expired".into(),
        ));
    }
    let role = store
        .get_role(&s.account_id, &s.role_name)
        .await?
        .ok_or_else(unrecognized)?;
    Ok(Caller {
        arn: assumed_role_arn(&s.account_id, &role.name, &s.session_name),
        user_id: format!("{}:{}", role.role_id, s.session_name),
        principal: Principal::AssumedRole {
            role_name: role.name,
            role_path: role.path,
            session_name: s.session_name,
        },
        account_id: s.account_id,
        access_key_id: s.access_key_id,
        source_ip,
        mfa_present: s.mfa,
        session_expiry: Some(s.expires),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_keys_look_like_aws_ones() {
        let (id, secret) = new_access_key().unwrap();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(secret.len(), 40);
        let (id2, _) = new_access_key().unwrap();
        assert_ne!(id, id2);
    }

    #[test]
    fn account_ids_have_12_digits() {
        let a = new_account_id().unwrap();
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn bearer_parsing() {
        let c = BearerCredentials::parse("Bearer AKIAX:s3cr:et").unwrap();
        assert_eq!(c.access_key_id, "AKIAX");
        assert_eq!(c.secret.expose_secret(), b"s3cr:et");
        assert!(!format!("{c:?}").contains("s3cr"));
        for bad in [
            "",
            "Bearer ",
            "Bearer AKIAX",
            "Basic AKIAX:s",
            "Bearer :s",
            "Bearer AKIAX:",
        ] {
            assert!(BearerCredentials::parse(bad).is_err(), "{bad:?}");
        }
    }
}
