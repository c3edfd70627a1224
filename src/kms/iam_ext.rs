//! Groups, roles, inline identity policies, TOTP devices and AssumeRole.

use totp_rs::{Builder, Secret as TotpSecret};

use super::{Kms, authz};
use crate::clock::Timestamp;
use crate::crypto::secret::SecretBytes;
use crate::crypto::{labels, wrap};
use crate::error::{KmsError, Result};
use crate::identity::{self, Caller, Principal};
use crate::model::{Group, MfaDevice, PrincipalType, Role, SessionRecord};
use crate::policy::{PolicyKind, Request};

/// Shortest and longest role session, in seconds.
pub const SESSION_SECS: std::ops::RangeInclusive<i32> = 900..=43_200;
/// Session length when none is asked for, and a role's default maximum.
pub const DEFAULT_SESSION_SECS: i32 = 3600;

/// What EnableMfaDevice answers.
#[derive(Debug)]
pub struct MfaEnrolment {
    /// The base32 TOTP secret, shown once.
    pub base32_secret: SecretBytes,
    /// The same as an `otpauth://` URI.
    pub otpauth_uri: SecretBytes,
    /// The device's serial.
    pub serial: String,
}

/// What AssumeRole answers.
#[derive(Debug)]
pub struct AssumedRole {
    /// `ASIA...`.
    pub access_key_id: String,
    /// The secret, shown once.
    pub secret: SecretBytes,
    /// The session token, shown once.
    pub session_token: SecretBytes,
    /// When the credentials expire.
    pub expiration: Timestamp,
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
    /// `<role id>:<session>`.
    pub assumed_role_id: String,
}

/// Checks an IAM name: 1 to `max` characters of letters, digits and `+=,.@_-`.
pub(super) fn validate_name(what: &str, name: &str, max: usize) -> Result<()> {
    let ok = (1..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !ok {
        return Err(KmsError::validation(format!(
            "{what} '{name}' must be 1 to {max} characters of letters, digits and +=,.@_-"
        )));
    }
    Ok(())
}

/// Checks an IAM path: begins and ends with `/`, printable ASCII, at most 512.
pub(super) fn validate_path(path: &str) -> Result<()> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !ok {
        return Err(KmsError::validation(format!(
            "path '{path}' must begin and end with '/' and be at most 512 characters"
        )));
    }
    Ok(())
}

fn not_found(what: &str, name: &str) -> KmsError {
    KmsError::NotFoundException(format!("The {what} with name {name} cannot be found."))
}

fn conflict(what: &str, name: &str) -> impl FnOnce(crate::store::Error) -> KmsError {
    let msg = format!("{what} with name {name} already exists.");
    move |e| match KmsError::from(e) {
        KmsError::AlreadyExistsException(_) => KmsError::AlreadyExistsException(msg),
        other => other,
    }
}

fn mfa_binding(account_id: &str, user: &str) -> Vec<u8> {
    format!("{account_id}/{}", user.to_ascii_lowercase()).into_bytes()
}

fn totp_for(secret: [u8; 20], account_name: &str) -> Result<totp_rs::Totp> {
    Builder::new()
        .with_secret(TotpSecret::new_stack(secret))
        .with_issuer(Some("kmsd"))
        .with_account_name(account_name)
        .build()
        .map_err(KmsError::internal)
}

impl Kms {
    fn iam_arn(&self, account_id: &str, kind: &str, name: &str) -> String {
        format!("arn:aws:iam::{account_id}:{kind}/{name}")
    }

    /// CreateGroup.
    pub async fn create_group(
        &self,
        caller: &Caller,
        name: &str,
        path: Option<&str>,
    ) -> Result<Group> {
        validate_name("group name", name, 128)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        self.authorize_identity(
            caller,
            "iam:CreateGroup",
            &self.iam_arn(&caller.account_id, "group", name),
        )
        .await?;
        let group = Group {
            account_id: caller.account_id.clone(),
            name: name.to_owned(),
            group_id: identity::random_id("AGPA")?,
            path: path.to_owned(),
            created: self.clock.now(),
        };
        self.store
            .create_group(group.clone())
            .await
            .map_err(conflict("Group", name))?;
        Ok(group)
    }

    /// DeleteGroup, with its memberships and inline policies.
    pub async fn delete_group(&self, caller: &Caller, name: &str) -> Result<()> {
        validate_name("group name", name, 128)?;
        self.authorize_identity(
            caller,
            "iam:DeleteGroup",
            &self.iam_arn(&caller.account_id, "group", name),
        )
        .await?;
        if !self.store.delete_group(&caller.account_id, name).await? {
            return Err(not_found("group", name));
        }
        Ok(())
    }

    /// AddUserToGroup.
    pub async fn add_user_to_group(&self, caller: &Caller, group: &str, user: &str) -> Result<()> {
        validate_name("group name", group, 128)?;
        validate_name("user name", user, 64)?;
        self.authorize_identity(
            caller,
            "iam:AddUserToGroup",
            &self.iam_arn(&caller.account_id, "group", group),
        )
        .await?;
        self.store
            .get_group(&caller.account_id, group)
            .await?
            .ok_or_else(|| not_found("group", group))?;
        self.store
            .get_user(&caller.account_id, user)
            .await?
            .ok_or_else(|| not_found("user", user))?;
        Ok(self
            .store
            .add_user_to_group(&caller.account_id, group, user)
            .await?)
    }

    /// RemoveUserFromGroup.
    pub async fn remove_user_from_group(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
    ) -> Result<()> {
        validate_name("group name", group, 128)?;
        validate_name("user name", user, 64)?;
        self.authorize_identity(
            caller,
            "iam:RemoveUserFromGroup",
            &self.iam_arn(&caller.account_id, "group", group),
        )
        .await?;
        if !self
            .store
            .remove_user_from_group(&caller.account_id, group, user)
            .await?
        {
            return Err(KmsError::NotFoundException(format!(
                "User {user} is not a member of group {group}."
            )));
        }
        Ok(())
    }

    /// ListGroupsForUser.
    pub async fn list_groups_for_user(&self, caller: &Caller, user: &str) -> Result<Vec<Group>> {
        validate_name("user name", user, 64)?;
        self.authorize_identity(
            caller,
            "iam:ListGroupsForUser",
            &self.iam_arn(&caller.account_id, "user", user),
        )
        .await?;
        self.store
            .get_user(&caller.account_id, user)
            .await?
            .ok_or_else(|| not_found("user", user))?;
        Ok(self
            .store
            .list_groups_for_user(&caller.account_id, user)
            .await?)
    }

    /// CreateRole.
    pub async fn create_role(
        &self,
        caller: &Caller,
        name: &str,
        path: Option<&str>,
        trust_policy: &str,
        max_session_secs: Option<i32>,
        description: Option<&str>,
    ) -> Result<Role> {
        validate_name("role name", name, 64)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        self.policies.compile(trust_policy, PolicyKind::Trust)?;
        let max = max_session_secs.unwrap_or(DEFAULT_SESSION_SECS);
        if !(3600..=43_200).contains(&max) {
            return Err(KmsError::validation(format!(
                "max_session_duration must be between 3600 and 43200, got {max}"
            )));
        }
        let description = description.unwrap_or_default();
        if description.chars().count() > 1000 {
            return Err(KmsError::validation(
                "description must be at most 1000 characters",
            ));
        }
        self.authorize_identity(
            caller,
            "iam:CreateRole",
            &self.iam_arn(&caller.account_id, "role", name),
        )
        .await?;
        let role = Role {
            account_id: caller.account_id.clone(),
            name: name.to_owned(),
            role_id: identity::random_id("AROA")?,
            path: path.to_owned(),
            trust_policy: trust_policy.to_owned(),
            max_session_secs: max,
            description: description.to_owned(),
            created: self.clock.now(),
        };
        self.store
            .create_role(role.clone())
            .await
            .map_err(conflict("Role", name))?;
        Ok(role)
    }

    /// GetRole.
    pub async fn get_role(&self, caller: &Caller, name: &str) -> Result<Role> {
        validate_name("role name", name, 64)?;
        self.authorize_identity(
            caller,
            "iam:GetRole",
            &self.iam_arn(&caller.account_id, "role", name),
        )
        .await?;
        self.store
            .get_role(&caller.account_id, name)
            .await?
            .ok_or_else(|| not_found("role", name))
    }

    /// DeleteRole, with its inline policies; its sessions stop working.
    pub async fn delete_role(&self, caller: &Caller, name: &str) -> Result<()> {
        validate_name("role name", name, 64)?;
        self.authorize_identity(
            caller,
            "iam:DeleteRole",
            &self.iam_arn(&caller.account_id, "role", name),
        )
        .await?;
        if !self.store.delete_role(&caller.account_id, name).await? {
            return Err(not_found("role", name));
        }
        Ok(())
    }

    async fn check_principal_exists(
        &self,
        account_id: &str,
        kind: PrincipalType,
        name: &str,
    ) -> Result<()> {
        let exists = match kind {
            PrincipalType::User => self.store.get_user(account_id, name).await?.is_some(),
            PrincipalType::Group => self.store.get_group(account_id, name).await?.is_some(),
            PrincipalType::Role => self.store.get_role(account_id, name).await?.is_some(),
        };
        if !exists {
            return Err(not_found(kind.as_str(), name));
        }
        Ok(())
    }

    fn policy_action(kind: PrincipalType, verb: &str) -> String {
        let noun = match kind {
            PrincipalType::User => "User",
            PrincipalType::Group => "Group",
            PrincipalType::Role => "Role",
        };
        format!("iam:{verb}{noun}Policy")
    }

    /// PutUserPolicy, PutGroupPolicy, PutRolePolicy.
    pub async fn put_identity_policy(
        &self,
        caller: &Caller,
        kind: PrincipalType,
        principal: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        validate_name("name", principal, 128)?;
        validate_name("policy name", policy_name, 128)?;
        self.policies.compile(document, PolicyKind::Identity)?;
        let resource = self.iam_arn(&caller.account_id, kind.as_str(), principal);
        self.authorize_identity(caller, &Self::policy_action(kind, "Put"), &resource)
            .await?;
        self.check_principal_exists(&caller.account_id, kind, principal)
            .await?;
        Ok(self
            .store
            .put_identity_policy(&caller.account_id, kind, principal, policy_name, document)
            .await?)
    }

    /// GetUserPolicy, GetGroupPolicy, GetRolePolicy.
    pub async fn get_identity_policy(
        &self,
        caller: &Caller,
        kind: PrincipalType,
        principal: &str,
        policy_name: &str,
    ) -> Result<String> {
        validate_name("name", principal, 128)?;
        validate_name("policy name", policy_name, 128)?;
        let resource = self.iam_arn(&caller.account_id, kind.as_str(), principal);
        self.authorize_identity(caller, &Self::policy_action(kind, "Get"), &resource)
            .await?;
        self.store
            .get_identity_policy(&caller.account_id, kind, principal, policy_name)
            .await?
            .ok_or_else(|| not_found("policy", policy_name))
    }

    /// DeleteUserPolicy, DeleteGroupPolicy, DeleteRolePolicy.
    pub async fn delete_identity_policy(
        &self,
        caller: &Caller,
        kind: PrincipalType,
        principal: &str,
        policy_name: &str,
    ) -> Result<()> {
        validate_name("name", principal, 128)?;
        validate_name("policy name", policy_name, 128)?;
        let resource = self.iam_arn(&caller.account_id, kind.as_str(), principal);
        self.authorize_identity(caller, &Self::policy_action(kind, "Delete"), &resource)
            .await?;
        if !self
            .store
            .delete_identity_policy(&caller.account_id, kind, principal, policy_name)
            .await?
        {
            return Err(not_found("policy", policy_name));
        }
        Ok(())
    }

    /// EnableMfaDevice: enrols a TOTP device for the calling user.
    pub async fn enable_mfa_device(&self, caller: &Caller) -> Result<MfaEnrolment> {
        let Principal::User { name } = &caller.principal else {
            return Err(KmsError::validation("only a user can enrol an MFA device"));
        };
        // Its own device needs no Allow, but a Deny refuses it: a
        // quarantined user must not enrol a device of its choosing.
        let user_arn = self.iam_arn(&caller.account_id, "user", name);
        self.authorize_identity_unless_denied(caller, "iam:EnableMFADevice", &user_arn, true)
            .await?;
        let secret = crate::crypto::Secret::<20>::random()?;
        let serial = self.iam_arn(&caller.account_id, "mfa", name);
        let totp = totp_for(
            *secret.expose_secret(),
            &format!("{name}@{}", caller.account_id),
        )?;
        let uri = SecretBytes::new(totp.to_url().map_err(KmsError::internal)?.into_bytes());
        let base32 = SecretBytes::new(
            data_encoding::BASE32_NOPAD
                .encode(secret.expose_secret())
                .into_bytes(),
        );
        let device = MfaDevice {
            account_id: caller.account_id.clone(),
            user_name: name.clone(),
            serial: serial.clone(),
            wrapped_secret: wrap::wrap(
                &self.root,
                labels::MFA_V1,
                &mfa_binding(&caller.account_id, name),
                secret.expose_secret(),
            )?,
            last_step: 0,
            created: self.clock.now(),
        };
        self.store
            .create_mfa_device(device)
            .await
            .map_err(|e| match KmsError::from(e) {
                KmsError::AlreadyExistsException(_) => KmsError::AlreadyExistsException(format!(
                    "User {name} already has an MFA device."
                )),
                other => other,
            })?;
        Ok(MfaEnrolment {
            base32_secret: base32,
            otpauth_uri: uri,
            serial,
        })
    }

    /// Checks a TOTP code of the calling user against its device; the time
    /// step it belongs to, not yet used (see [`Self::use_mfa_step`]).
    async fn verify_mfa_code(&self, caller: &Caller, code: &str) -> Result<i64> {
        let Principal::User { name } = &caller.principal else {
            return Err(mfa_failed());
        };
        let device = self
            .store
            .get_mfa_device(&caller.account_id, name)
            .await?
            .ok_or_else(mfa_failed)?;
        let bytes = wrap::unwrap(
            &self.root,
            labels::MFA_V1,
            &mfa_binding(&caller.account_id, name),
            &device.wrapped_secret,
        )
        .map_err(KmsError::internal)?;
        let secret: [u8; 20] = bytes
            .expose_secret()
            .try_into()
            .map_err(|_| KmsError::internal("MFA secret has the wrong length"))?;
        let totp = totp_for(secret, name)?;
        let now_secs = u64::try_from(self.clock.now().0 / 1000).unwrap_or(0);
        let step = totp.check(code, now_secs).ok_or_else(mfa_failed)?;
        i64::try_from(step).map_err(KmsError::internal)
    }

    /// Uses a verified TOTP step, once: refused if a code of this step (or a
    /// later one) was already accepted.
    async fn use_mfa_step(&self, caller: &Caller, step: i64) -> Result<()> {
        let Principal::User { name } = &caller.principal else {
            return Err(mfa_failed());
        };
        if !self
            .store
            .use_mfa_step(&caller.account_id, name, step)
            .await?
        {
            return Err(mfa_failed());
        }
        Ok(())
    }

    /// AssumeRole: temporary credentials for a role whose trust policy
    /// allows the caller (and, across accounts or through an account
    /// principal, whose caller's identity policies allow `sts:AssumeRole`).
    pub async fn assume_role(
        &self,
        caller: &Caller,
        role_arn: &str,
        session_name: &str,
        duration_secs: Option<i32>,
        token_code: Option<&str>,
    ) -> Result<AssumedRole> {
        let ok = (2..=64).contains(&session_name.len())
            && session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !ok {
            return Err(KmsError::validation(
                "role_session_name must be 2 to 64 characters of letters, digits and +=,.@_-",
            ));
        }
        let duration = duration_secs.unwrap_or(DEFAULT_SESSION_SECS);
        if !SESSION_SECS.contains(&duration) {
            return Err(KmsError::validation(format!(
                "duration_seconds must be between 900 and 43200, got {duration}"
            )));
        }
        // As in AWS: a role is assumed by users and roles, never with an
        // account's root credentials, whatever the trust policy says.
        if caller.is_root() {
            return Err(KmsError::AccessDeniedException(format!(
                "User: {} is not authorized to perform: sts:AssumeRole: roles may not be assumed by root accounts",
                caller.arn
            )));
        }
        let (account_id, role_name) = match role_arn.strip_prefix("arn:aws:iam::") {
            Some(rest) => {
                let (acct, res) = rest.split_once(':').ok_or_else(|| {
                    KmsError::validation(format!("'{role_arn}' is not a role ARN"))
                })?;
                let name = res
                    .strip_prefix("role/")
                    .and_then(|p| p.rsplit('/').next())
                    .filter(|n| !n.is_empty() && super::is_account_id(acct))
                    .ok_or_else(|| {
                        KmsError::validation(format!("'{role_arn}' is not a role ARN"))
                    })?;
                (acct.to_owned(), name.to_owned())
            }
            None => (caller.account_id.clone(), role_arn.to_owned()),
        };
        validate_name("role name", &role_name, 64)?;
        let arn_for_errors = self.iam_arn(&account_id, "role", &role_name);
        crate::audit::notes::parameter("roleArn", &arn_for_errors);
        crate::audit::notes::parameter("roleSessionName", session_name);
        let denied = || {
            KmsError::AccessDeniedException(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {arn_for_errors}",
                caller.arn
            ))
        };
        let role = self
            .store
            .get_role(&account_id, &role_name)
            .await?
            .ok_or_else(denied)?;
        if duration > role.max_session_secs {
            return Err(KmsError::validation(format!(
                "duration_seconds {duration} exceeds the role's maximum session duration of {}",
                role.max_session_secs
            )));
        }
        // The code is checked here but its step used only after the reads
        // below, just before the session's insert: the call's writes hold
        // the store's writer until its event is recorded, so nothing slow
        // may come between them.
        let mfa_step = match token_code {
            Some(code) => Some(self.verify_mfa_code(caller, code).await?),
            None => None,
        };
        let mfa = mfa_step.is_some();
        let role_arn = identity::role_arn(&role.account_id, &role.path, &role.name);
        let trust = self.policies.get(&role.trust_policy, PolicyKind::Trust)?;
        let principal = authz::principal_info(caller);
        let mut context = self.condition_context(caller, None);
        if mfa {
            context.set("aws:MultiFactorAuthPresent", "true");
        }
        let req = Request {
            principal: &principal,
            action: "sts:AssumeRole",
            resource: &role_arn,
            context: &context,
        };
        let t = trust.evaluate(&req);
        if t.explicit_deny || !(t.allow_direct || t.allow_account) {
            return Err(denied());
        }
        let same_account = caller.account_id == role.account_id;
        if !(same_account && t.allow_direct) {
            // Delegated through the account, or across accounts: the caller's
            // own identity policies must allow it too.
            self.authorize_identity(caller, "sts:AssumeRole", &role_arn)
                .await
                .map_err(|_| denied())?;
        }
        if let Some(step) = mfa_step {
            self.use_mfa_step(caller, step).await?;
        }
        let (access_key_id, secret) = identity::new_access_key()?;
        let access_key_id = format!("ASIA{}", &access_key_id[4..]);
        let token = SecretBytes::new(
            data_encoding::BASE64
                .encode(SecretBytes::random(48)?.expose_secret())
                .into_bytes(),
        );
        let now = self.clock.now();
        let expiration = now.plus(std::time::Duration::from_secs(
            u64::try_from(duration).unwrap_or(900),
        ));
        self.store
            .create_session(SessionRecord {
                wrapped_secret: wrap::wrap_credential(
                    &self.root,
                    &access_key_id,
                    secret.expose_secret(),
                )?,
                token_hash: identity::token_hash(token.expose_secret()),
                access_key_id: access_key_id.clone(),
                account_id: role.account_id.clone(),
                role_name: role.name.clone(),
                session_name: session_name.to_owned(),
                mfa,
                source_arn: caller.arn.clone(),
                expires: expiration,
                created: now,
            })
            .await?;
        // The session's key id (never its secret or token): the session's
        // own events carry it, so the trail leads back to who assumed it.
        crate::audit::notes::response("accessKeyId", &access_key_id);
        Ok(AssumedRole {
            access_key_id,
            secret,
            session_token: token,
            expiration,
            assumed_role_arn: identity::assumed_role_arn(
                &role.account_id,
                &role.name,
                session_name,
            ),
            assumed_role_id: format!("{}:{session_name}", role.role_id),
        })
    }
}

/// A TOTP code refused: wrong, or of a step already used.
fn mfa_failed() -> KmsError {
    KmsError::AccessDeniedException(
        "MultiFactorAuthentication failed with invalid MFA one time pass code.".into(),
    )
}
