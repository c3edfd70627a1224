//! Aliases: CreateAlias, UpdateAlias, DeleteAlias and ListAliases.

use super::{Kms, paging};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::Alias;

/// Checks an alias name: `alias/` and then `[a-zA-Z0-9/_-]+`, at most 256
/// characters, and not in the reserved `alias/aws/` namespace.
pub fn validate_alias_name(name: &str) -> Result<()> {
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::InvalidAliasNameException(format!(
            "alias name '{name}' must begin with 'alias/'"
        )));
    };
    if name.len() > 256 {
        return Err(KmsError::InvalidAliasNameException(
            "alias name must be at most 256 characters".into(),
        ));
    }
    if rest.is_empty()
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(KmsError::InvalidAliasNameException(format!(
            "alias name '{name}' must match ^alias/[a-zA-Z0-9/_-]+$"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::InvalidAliasNameException(
            "the alias/aws/ prefix is reserved for AWS managed keys".into(),
        ));
    }
    Ok(())
}

impl Kms {
    /// CreateAlias.
    pub async fn create_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target_key_id: &str,
    ) -> Result<()> {
        validate_alias_name(alias_name)?;
        let key = self
            .resolve_key_only(caller, target_key_id, "CreateAlias")
            .await?;
        self.check_not_pending(&key)?;
        if key.account_id != caller.account_id {
            return Err(KmsError::validation(
                "an alias must be in the same account as its key",
            ));
        }
        let now = self.clock.now();
        self.store
            .create_alias(Alias {
                account_id: caller.account_id.clone(),
                name: alias_name.to_owned(),
                key_id: key.id,
                created: now,
                updated: now,
            })
            .await
            .map_err(|e| match KmsError::from(e) {
                KmsError::AlreadyExistsException(_) => KmsError::AlreadyExistsException(format!(
                    "An alias with the name {} already exists",
                    self.alias_arn(&caller.account_id, alias_name)
                )),
                other => other,
            })
    }

    /// UpdateAlias: points an existing alias at another key.
    pub async fn update_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target_key_id: &str,
    ) -> Result<()> {
        validate_alias_name(alias_name)?;
        let alias = self
            .store
            .get_alias(&caller.account_id, alias_name)
            .await?
            .ok_or_else(|| self.alias_not_found(caller, alias_name))?;
        // As in AWS, the caller needs kms:UpdateAlias on the key the alias
        // leaves as well as on the key it comes to.
        self.resolve(caller, &alias.key_id.to_string(), "UpdateAlias", None)
            .await?;
        let key = self
            .resolve_key_only(caller, target_key_id, "UpdateAlias")
            .await?;
        self.check_not_pending(&key)?;
        if key.account_id != caller.account_id {
            return Err(KmsError::validation(
                "an alias must be in the same account as its key",
            ));
        }
        let now = self.clock.now();
        if !self
            .store
            .update_alias(&caller.account_id, alias_name, key.id, now)
            .await?
        {
            return Err(self.alias_not_found(caller, alias_name));
        }
        Ok(())
    }

    /// DeleteAlias.
    pub async fn delete_alias(&self, caller: &Caller, alias_name: &str) -> Result<()> {
        validate_alias_name(alias_name)?;
        let alias = self
            .store
            .get_alias(&caller.account_id, alias_name)
            .await?
            .ok_or_else(|| self.alias_not_found(caller, alias_name))?;
        // The caller needs kms:DeleteAlias on the key the alias names.
        self.resolve(caller, &alias.key_id.to_string(), "DeleteAlias", None)
            .await?;
        if !self
            .store
            .delete_alias(&caller.account_id, alias_name)
            .await?
        {
            return Err(self.alias_not_found(caller, alias_name));
        }
        Ok(())
    }

    fn alias_not_found(&self, caller: &Caller, name: &str) -> KmsError {
        KmsError::NotFoundException(format!(
            "Alias {} is not found.",
            self.alias_arn(&caller.account_id, name)
        ))
    }

    /// ListAliases: the caller's account's aliases, optionally of one key.
    pub async fn list_aliases(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<Alias>, Option<String>)> {
        let limit = paging::limit(limit, 50, 100)?;
        let after = paging::position(marker)?;
        // As in AWS: the aliases of one key need kms:ListAliases on that key,
        // all of the account's need it from an identity policy.
        let key = match key_id {
            Some(k) => Some(self.resolve_key_only(caller, k, "ListAliases").await?.id),
            None => {
                self.authorize_identity(caller, "kms:ListAliases", "*")
                    .await?;
                None
            }
        };
        let aliases = self
            .store
            .list_aliases(&caller.account_id, key, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(aliases, limit, |a| a.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names() {
        for ok in [
            "alias/a",
            "alias/my-app/prod_1",
            &format!("alias/{}", "x".repeat(250)),
        ] {
            validate_alias_name(ok).unwrap();
        }
        for bad in [
            "a",
            "alias/",
            "alias/has space",
            "alias/é",
            "alias/aws/s3",
            "ALIAS/x",
            &format!("alias/{}", "x".repeat(251)),
        ] {
            assert!(
                matches!(
                    validate_alias_name(bad),
                    Err(KmsError::InvalidAliasNameException(_))
                ),
                "{bad}"
            );
        }
    }
}
