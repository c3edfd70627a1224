//! Key lifecycle: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
//! EnableKey, DisableKey, ScheduleKeyDeletion and CancelKeyDeletion. The
//! state transitions are pure functions on a [`KeyRecord`], applied by the
//! store inside its write transaction.

use uuid::Uuid;

use super::{Kms, paging, policy_doc, tags};
use crate::clock::Timestamp;
use crate::crypto::{KeyMaterial, wrap};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::{KeyRecord, KeyState, KeyVersion, Tag};
use crate::policy::PolicyKind;

/// Longest key description.
pub const MAX_DESCRIPTION: usize = 8192;
/// Shortest and longest deletion waiting period, in days.
pub const DELETION_WINDOW_DAYS: std::ops::RangeInclusive<i32> = 7..=30;
/// Waiting period when none is given.
pub const DEFAULT_DELETION_WINDOW_DAYS: i32 = 30;

/// The arguments of CreateKey.
#[derive(Debug, Default, Clone)]
pub struct CreateKeyInput {
    /// A key policy document; the default policy when `None`.
    pub policy: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Tags to put on the key.
    pub tags: Vec<Tag>,
    /// Skip the policy lockout check.
    pub bypass_policy_lockout_safety_check: bool,
    /// Principals that may manage but not use the key.
    pub key_administrators: Vec<String>,
    /// Principals that may use but not manage the key.
    pub key_users: Vec<String>,
}

/// What ScheduleKeyDeletion answers.
#[derive(Debug, Clone)]
pub struct ScheduledDeletion {
    /// The key as it now is.
    pub key: KeyRecord,
    /// When it will be destroyed.
    pub deletion_date: Timestamp,
    /// The waiting period.
    pub pending_window_days: i32,
}

fn validate_description(d: &str) -> Result<()> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(KmsError::validation(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// EnableKey's transition.
pub(crate) fn enable(k: &mut KeyRecord, arn: &str) -> Result<()> {
    match k.state {
        KeyState::PendingDeletion => Err(pending(arn)),
        KeyState::Enabled | KeyState::Disabled => {
            k.state = KeyState::Enabled;
            Ok(())
        }
    }
}

/// DisableKey's transition.
pub(crate) fn disable(k: &mut KeyRecord, arn: &str) -> Result<()> {
    match k.state {
        KeyState::PendingDeletion => Err(pending(arn)),
        KeyState::Enabled | KeyState::Disabled => {
            k.state = KeyState::Disabled;
            Ok(())
        }
    }
}

/// ScheduleKeyDeletion's transition.
pub(crate) fn schedule_deletion(
    k: &mut KeyRecord,
    arn: &str,
    now: Timestamp,
    days: i32,
) -> Result<()> {
    if k.state == KeyState::PendingDeletion {
        return Err(pending(arn));
    }
    k.state = KeyState::PendingDeletion;
    k.deletion_date = Some(now.plus_days(days));
    k.pending_window_days = Some(days);
    Ok(())
}

/// CancelKeyDeletion's transition: back to Disabled, as in AWS.
pub(crate) fn cancel_deletion(k: &mut KeyRecord, arn: &str) -> Result<()> {
    if k.state != KeyState::PendingDeletion {
        return Err(KmsError::KMSInvalidStateException(format!(
            "{arn} is not pending deletion (it is {}).",
            k.state.as_str()
        )));
    }
    k.state = KeyState::Disabled;
    k.deletion_date = None;
    k.pending_window_days = None;
    Ok(())
}

/// The refusal of a policy that would lock its writer out.
pub(crate) fn lockout() -> KmsError {
    KmsError::MalformedPolicyDocumentException(
        "The new key policy will not allow you to update the key policy in the future.".into(),
    )
}

fn pending(arn: &str) -> KmsError {
    KmsError::KMSInvalidStateException(format!("{arn} is pending deletion."))
}

impl Kms {
    /// CreateKey.
    pub async fn create_key(&self, caller: &Caller, input: CreateKeyInput) -> Result<KeyRecord> {
        let description = input.description.unwrap_or_default();
        validate_description(&description)?;
        tags::validate_tags(&input.tags, self.settings.max_tags_per_key)?;
        self.authorize_identity(caller, "kms:CreateKey", "*")
            .await?;
        let default_policy = input.policy.is_none()
            && input.key_administrators.is_empty()
            && input.key_users.is_empty();
        let policy = match input.policy {
            Some(p) => {
                if !input.key_administrators.is_empty() || !input.key_users.is_empty() {
                    return Err(KmsError::validation(
                        "key_administrators and key_users cannot be given together with a policy",
                    ));
                }
                self.policies.compile(&p, PolicyKind::Key)?;
                p
            }
            None => policy_doc::default_policy(
                &self.settings.partition,
                &caller.account_id,
                &input.key_administrators,
                &input.key_users,
            )?,
        };
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let material = KeyMaterial::random()?;
        let wrapped = wrap::wrap_key_material(&self.root, &id, 1, &material)?;
        let key = KeyRecord {
            id,
            account_id: caller.account_id.clone(),
            description,
            state: KeyState::Enabled,
            created: now,
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation: None,
            current_version: 1,
            policy,
        };
        // As in AWS, AWS's default policy is not checked (it may leave a
        // caller with only kms:CreateKey unable to change it, by design); a
        // supplied policy, or the administrators/users policy, is.
        if !input.bypass_policy_lockout_safety_check && !default_policy {
            let compiled = self.policies.get(&key.policy, PolicyKind::Key)?;
            if !self.would_keep_access(caller, &key, &compiled).await {
                return Err(lockout());
            }
        }
        let first = KeyVersion {
            key_id: id,
            version: 1,
            wrapped_material: wrapped,
            created: now,
            rotation_type: None,
        };
        self.store
            .create_key(key.clone(), first, input.tags)
            .await?;
        crate::audit::notes::key(&self.key_arn(&key.account_id, key.id));
        Ok(key)
    }

    /// DescribeKey.
    pub async fn describe_key(
        &self,
        caller: &Caller,
        key_id: &str,
        grant_tokens: &[String],
    ) -> Result<KeyRecord> {
        self.check_grant_tokens(grant_tokens)?;
        self.resolve(caller, key_id, "DescribeKey", None).await
    }

    /// ListKeys: the caller's account's keys, by id.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<KeyRecord>, Option<String>)> {
        let limit = paging::limit(limit, 100, 1000)?;
        self.authorize_identity(caller, "kms:ListKeys", "*").await?;
        let after = match paging::position(marker)? {
            None => None,
            Some(s) => Some(Uuid::try_parse(&s).map_err(|_| {
                KmsError::InvalidMarkerException(format!(
                    "marker '{}' is not valid",
                    marker.unwrap_or_default()
                ))
            })?),
        };
        let keys = self
            .store
            .list_keys(&caller.account_id, after, limit + 1)
            .await?;
        Ok(paging::page(keys, limit, |k| k.id.to_string()))
    }

    /// UpdateKeyDescription.
    pub async fn update_key_description(
        &self,
        caller: &Caller,
        key_id: &str,
        description: String,
    ) -> Result<()> {
        validate_description(&description)?;
        let key = self
            .resolve_key_only(caller, key_id, "UpdateKeyDescription")
            .await?;
        let arn = self.key_arn(&key.account_id, key.id);
        self.store
            .update_key(
                key.id,
                Box::new(move |k| {
                    if k.state == KeyState::PendingDeletion {
                        return Err(pending(&arn));
                    }
                    k.description = description;
                    Ok(())
                }),
            )
            .await?;
        Ok(())
    }

    /// EnableKey.
    pub async fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        let key = self.resolve_key_only(caller, key_id, "EnableKey").await?;
        let arn = self.key_arn(&key.account_id, key.id);
        self.store
            .update_key(key.id, Box::new(move |k| enable(k, &arn)))
            .await?;
        Ok(())
    }

    /// DisableKey.
    pub async fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        let key = self.resolve_key_only(caller, key_id, "DisableKey").await?;
        let arn = self.key_arn(&key.account_id, key.id);
        self.store
            .update_key(key.id, Box::new(move |k| disable(k, &arn)))
            .await?;
        Ok(())
    }

    /// ScheduleKeyDeletion: 7 to 30 days, 30 by default; nothing else, for anyone.
    pub async fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_window_in_days: Option<i32>,
    ) -> Result<ScheduledDeletion> {
        let days = pending_window_in_days.unwrap_or(DEFAULT_DELETION_WINDOW_DAYS);
        if !DELETION_WINDOW_DAYS.contains(&days) {
            return Err(KmsError::validation(format!(
                "pending_window_in_days must be between 7 and 30, got {days}"
            )));
        }
        let key = self
            .resolve_key_only(caller, key_id, "ScheduleKeyDeletion")
            .await?;
        let arn = self.key_arn(&key.account_id, key.id);
        let now = self.clock.now();
        let key = self
            .store
            .update_key(
                key.id,
                Box::new(move |k| schedule_deletion(k, &arn, now, days)),
            )
            .await?;
        tracing::info!(
            key_arn = %self.key_arn(&key.account_id, key.id),
            deletion_date = %now.plus_days(days).to_rfc3339(),
            "key scheduled for deletion"
        );
        Ok(ScheduledDeletion {
            deletion_date: now.plus_days(days),
            pending_window_days: days,
            key,
        })
    }

    /// CancelKeyDeletion.
    pub async fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let key = self
            .resolve_key_only(caller, key_id, "CancelKeyDeletion")
            .await?;
        let arn = self.key_arn(&key.account_id, key.id);
        Ok(self
            .store
            .update_key(key.id, Box::new(move |k| cancel_deletion(k, &arn)))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: KeyState) -> KeyRecord {
        KeyRecord {
            id: Uuid::nil(),
            account_id: "111122223333".into(),
            description: String::new(),
            state,
            created: Timestamp(0),
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation: None,
            current_version: 1,
            policy: String::new(),
        }
    }

    #[test]
    fn lifecycle_transitions() {
        let mut k = key(KeyState::Enabled);
        disable(&mut k, "arn").unwrap();
        assert_eq!(k.state, KeyState::Disabled);
        enable(&mut k, "arn").unwrap();
        schedule_deletion(&mut k, "arn", Timestamp(0), 7).unwrap();
        assert_eq!(k.state, KeyState::PendingDeletion);
        assert_eq!(k.deletion_date, Some(Timestamp(7 * Timestamp::DAY_MS)));
        assert!(matches!(
            enable(&mut k, "arn"),
            Err(KmsError::KMSInvalidStateException(_))
        ));
        assert!(matches!(
            disable(&mut k, "arn"),
            Err(KmsError::KMSInvalidStateException(_))
        ));
        assert!(matches!(
            schedule_deletion(&mut k, "arn", Timestamp(0), 7),
            Err(KmsError::KMSInvalidStateException(_))
        ));
        cancel_deletion(&mut k, "arn").unwrap();
        assert_eq!(k.state, KeyState::Disabled);
        assert_eq!((k.deletion_date, k.pending_window_days), (None, None));
        assert!(matches!(
            cancel_deletion(&mut k, "arn"),
            Err(KmsError::KMSInvalidStateException(_))
        ));
    }
}
