//! Identity operations: accounts, users and access keys.
//!
//! Creating accounts is the operator's right only. Within an account, the
//! root may do everything; anyone else needs an identity policy allowing the
//! `iam:` action, except that a user may always manage its own access keys.

use super::iam_ext::{validate_name, validate_path};
use super::{Kms, paging};
use crate::crypto::secret::SecretBytes;
use crate::crypto::wrap;
use crate::error::{KmsError, Result};
use crate::identity::{self, Caller, Principal};
use crate::model::{AccessKeyRecord, AccessKeyStatus, Account, User};

/// What CreateAccount answers.
#[derive(Debug)]
pub struct AccountCreated {
    /// The new account.
    pub account: Account,
    /// Its root's access key id.
    pub access_key_id: String,
    /// Its root's secret, shown once.
    pub secret: SecretBytes,
}

/// What CreateAccessKey answers.
#[derive(Debug)]
pub struct AccessKeyCreated {
    /// The stored key (wrapped secret).
    pub record: AccessKeyRecord,
    /// The secret, shown once.
    pub secret: SecretBytes,
}

fn validate_user_name(name: &str) -> Result<()> {
    validate_name("user name", name, 64)
}

impl Kms {
    fn operator_only(&self, caller: &Caller, action: &str) -> Result<()> {
        if caller.is_operator() {
            return Ok(());
        }
        Err(KmsError::AccessDeniedException(format!(
            "User: {} is not authorized to perform: iam:{action}; only the operator may",
            caller.arn
        )))
    }

    /// Whether `caller` may perform `iam:<action>` on the user `target`
    /// (`None`: the account's user list). A user may manage its own access
    /// keys without an Allow, unless an identity policy denies it; anything
    /// else needs the account's root or an identity policy that allows it.
    async fn authorize_iam(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
    ) -> Result<()> {
        if let Some(t) = target {
            crate::audit::notes::parameter("userName", t);
        }
        let own_keys = matches!(
            (&caller.principal, target),
            (Principal::User { name }, Some(t))
                if action.contains("AccessKey") && name.eq_ignore_ascii_case(t)
        );
        let resource = format!(
            "arn:aws:iam::{}:user/{}",
            caller.account_id,
            target.unwrap_or("*")
        );
        self.authorize_identity_unless_denied(caller, &format!("iam:{action}"), &resource, own_keys)
            .await
    }

    /// Makes a new access key for `user_name` (`None`: the account root).
    async fn issue_access_key(
        &self,
        account_id: &str,
        user_name: Option<String>,
    ) -> Result<(AccessKeyRecord, SecretBytes)> {
        let (id, secret) = identity::new_access_key()?;
        let record = AccessKeyRecord {
            wrapped_secret: wrap::wrap_credential(&self.root, &id, secret.expose_secret())?,
            access_key_id: id,
            account_id: account_id.to_owned(),
            user_name,
            status: AccessKeyStatus::Active,
            created: self.clock.now(),
        };
        Ok((record, secret))
    }

    /// CreateAccount (operator only), or the bootstrap's creation of an
    /// account with a chosen id.
    pub async fn create_account(&self, caller: &Caller, name: &str) -> Result<AccountCreated> {
        self.operator_only(caller, "CreateAccount")?;
        if name.is_empty() || name.len() > 50 {
            return Err(KmsError::validation(
                "account_name must be 1 to 50 characters",
            ));
        }
        self.create_account_with_id(&identity::new_account_id()?, name)
            .await
    }

    /// Creates an account with a given id and a root access key.
    pub async fn create_account_with_id(&self, id: &str, name: &str) -> Result<AccountCreated> {
        let account = Account {
            id: id.to_owned(),
            name: name.to_owned(),
            created: self.clock.now(),
        };
        let (record, secret) = self.issue_access_key(id, None).await?;
        let access_key_id = record.access_key_id.clone();
        self.store.create_account(account.clone(), record).await?;
        Ok(AccountCreated {
            account,
            access_key_id,
            secret,
        })
    }

    /// CreateUser.
    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        path: Option<&str>,
    ) -> Result<User> {
        validate_user_name(name)?;
        self.authorize_iam(caller, "CreateUser", Some(name)).await?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        let user = User {
            account_id: caller.account_id.clone(),
            name: name.to_owned(),
            user_id: identity::random_id("AIDA")?,
            path: path.to_owned(),
            created: self.clock.now(),
        };
        self.store
            .create_user(user.clone())
            .await
            .map_err(|e| match KmsError::from(e) {
                KmsError::AlreadyExistsException(_) => KmsError::AlreadyExistsException(format!(
                    "User with name {name} already exists."
                )),
                other => other,
            })?;
        Ok(user)
    }

    /// DeleteUser, with its access keys.
    pub async fn delete_user(&self, caller: &Caller, name: &str) -> Result<()> {
        validate_user_name(name)?;
        self.authorize_iam(caller, "DeleteUser", Some(name)).await?;
        if !self.store.delete_user(&caller.account_id, name).await? {
            return Err(KmsError::NotFoundException(format!(
                "The user with name {name} cannot be found."
            )));
        }
        Ok(())
    }

    /// ListUsers.
    pub async fn list_users(
        &self,
        caller: &Caller,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<User>, Option<String>)> {
        let limit = paging::limit(limit, 100, 1000)?;
        let after = paging::position(marker)?;
        self.authorize_iam(caller, "ListUsers", None).await?;
        let users = self
            .store
            .list_users(&caller.account_id, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(users, limit, |u| u.name.clone()))
    }

    /// The user an access-key operation is about (its stored name): the
    /// named one, or the caller itself; `None` for the account's root.
    async fn key_owner(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
        action: &str,
    ) -> Result<Option<String>> {
        let target = match (user_name, &caller.principal) {
            (Some(n), _) => n.to_owned(),
            (None, Principal::User { name }) => name.clone(),
            (None, Principal::Root) => return Ok(None),
            (None, Principal::AssumedRole { .. }) => {
                return Err(KmsError::validation(
                    "a role session has no access keys; name a user_name",
                ));
            }
        };
        validate_user_name(&target)?;
        self.authorize_iam(caller, action, Some(&target)).await?;
        let user = self
            .store
            .get_user(&caller.account_id, &target)
            .await?
            .ok_or_else(|| {
                KmsError::NotFoundException(format!("The user with name {target} cannot be found."))
            })?;
        Ok(Some(user.name))
    }

    /// CreateAccessKey: the secret is returned once, here.
    pub async fn create_access_key(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<AccessKeyCreated> {
        let owner = self.key_owner(caller, user_name, "CreateAccessKey").await?;
        let (record, secret) = self.issue_access_key(&caller.account_id, owner).await?;
        self.store
            .create_access_key(record.clone(), self.settings.max_access_keys_per_user)
            .await?;
        // The id only: later events name it as the caller's key.
        crate::audit::notes::response("accessKeyId", &record.access_key_id);
        Ok(AccessKeyCreated { record, secret })
    }

    /// DeleteAccessKey.
    pub async fn delete_access_key(
        &self,
        caller: &Caller,
        access_key_id: &str,
        user_name: Option<&str>,
    ) -> Result<()> {
        crate::audit::notes::parameter("accessKeyId", access_key_id);
        let owner = self.key_owner(caller, user_name, "DeleteAccessKey").await?;
        let not_found = || {
            KmsError::NotFoundException(format!(
                "The Access Key with id {access_key_id} cannot be found."
            ))
        };
        let rec = self
            .store
            .get_access_key(access_key_id)
            .await?
            .ok_or_else(not_found)?;
        let same_owner = match (&rec.user_name, &owner) {
            (None, None) => true,
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        if rec.account_id != caller.account_id || !same_owner {
            return Err(not_found());
        }
        if !self
            .store
            .delete_access_key(&caller.account_id, access_key_id)
            .await?
        {
            return Err(not_found());
        }
        // Its secret, if a recent call unwrapped it, goes from memory as
        // soon as the deletion commits rather than when it expires (a call
        // with it is refused either way: the stored row is read first).
        // Not before: until then authentication still finds the row and
        // could cache the secret again.
        let (credentials, id) = (
            std::sync::Arc::clone(&self.credentials),
            access_key_id.to_owned(),
        );
        crate::store::after_commit(move || credentials.forget(|k| *k == id));
        Ok(())
    }

    /// ListAccessKeys.
    pub async fn list_access_keys(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<Vec<AccessKeyRecord>> {
        let owner = self.key_owner(caller, user_name, "ListAccessKeys").await?;
        Ok(self
            .store
            .list_access_keys(&caller.account_id, owner.as_deref())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_and_paths() {
        validate_user_name("alice.smith+ops@example").unwrap();
        assert!(validate_user_name("").is_err());
        assert!(validate_user_name("has space").is_err());
        assert!(validate_user_name(&"a".repeat(65)).is_err());
        validate_path("/").unwrap();
        validate_path("/division/team/").unwrap();
        assert!(validate_path("nope").is_err());
        assert!(validate_path("/a").is_err());
    }
}
