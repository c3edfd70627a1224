//! Key policies: GetKeyPolicy, PutKeyPolicy and ListKeyPolicies. A key has
//! exactly one policy, named `default`.

use super::keys::lockout;
use super::{Kms, paging};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::policy::PolicyKind;

/// The only policy name.
pub const DEFAULT_POLICY_NAME: &str = "default";

fn check_name(name: Option<&str>) -> Result<()> {
    match name {
        None | Some(DEFAULT_POLICY_NAME) => Ok(()),
        Some(other) => Err(KmsError::validation(format!(
            "policy_name '{other}' is not valid; the only key policy is named 'default'"
        ))),
    }
}

impl Kms {
    /// GetKeyPolicy.
    pub async fn get_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
    ) -> Result<String> {
        check_name(policy_name)?;
        Ok(self
            .resolve_key_only(caller, key_id, "GetKeyPolicy")
            .await?
            .policy)
    }

    /// PutKeyPolicy: refuses a policy that would stop the caller from
    /// changing it again, unless the caller bypasses that check.
    pub async fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
        policy: String,
        bypass_lockout_check: bool,
    ) -> Result<()> {
        check_name(policy_name)?;
        let compiled = self.policies.compile(&policy, PolicyKind::Key)?;
        let key = self
            .resolve_key_only(caller, key_id, "PutKeyPolicy")
            .await?;
        if !bypass_lockout_check && !self.would_keep_access(caller, &key, &compiled).await {
            return Err(lockout());
        }
        self.store
            .update_key(
                key.id,
                Box::new(move |k| {
                    k.policy = policy;
                    Ok(())
                }),
            )
            .await?;
        Ok(())
    }

    /// ListKeyPolicies: always `["default"]`.
    pub async fn list_key_policies(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<Vec<String>> {
        paging::limit(limit, 100, 1000)?;
        if paging::position(marker)?.is_some() {
            // There is never a second page.
            return Ok(Vec::new());
        }
        self.resolve_key_only(caller, key_id, "ListKeyPolicies")
            .await?;
        Ok(vec![DEFAULT_POLICY_NAME.to_owned()])
    }
}
