//! Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations, and the automatic rotation the
//! maintenance task performs. A rotation adds a version of the material;
//! new ciphertexts use the newest, old ones name theirs and still decrypt.

use super::{Kms, paging};
use crate::clock::Timestamp;
use crate::crypto::{KeyMaterial, wrap};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::{KeyRecord, KeyState, KeyVersion, RotationType};

/// Shortest and longest automatic rotation period, in days.
pub const ROTATION_PERIOD_DAYS: std::ops::RangeInclusive<i32> = 90..=2560;
/// On-demand rotations a key may have: AWS's quota (10 when the operation
/// came out, 25 since), which AWS does not let anyone raise. Past it,
/// `LimitExceededException`; automatic rotations are not counted.
pub const MAX_ON_DEMAND_ROTATIONS: u32 = 25;

/// Period when none is given.
pub const DEFAULT_ROTATION_PERIOD_DAYS: i32 = 365;

/// What GetKeyRotationStatus answers.
#[derive(Debug, Clone)]
pub struct RotationStatus {
    /// The key.
    pub key: KeyRecord,
    /// When the last on-demand rotation happened, if any.
    pub on_demand_rotation_start_date: Option<Timestamp>,
}

/// Refuses rotation settings changes on keys that are not enabled.
fn check_enabled(k: &KeyRecord, arn: &str) -> Result<()> {
    match k.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::DisabledException(format!("{arn} is disabled."))),
        KeyState::PendingDeletion => Err(KmsError::KMSInvalidStateException(format!(
            "{arn} is pending deletion."
        ))),
    }
}

/// Moves `k` to its next version of material, as a rotation of kind `how`
/// at `now`. An automatic one must still be due on the row being changed:
/// the sweep found it due, but a DisableKeyRotation or a new period may
/// have committed since.
fn next_version(k: &mut KeyRecord, arn: &str, how: RotationType, now: Timestamp) -> Result<()> {
    check_enabled(k, arn)?;
    if how == RotationType::Automatic
        && !(k.rotation_enabled && k.next_rotation.is_some_and(|d| d <= now))
    {
        return Err(KmsError::KMSInvalidStateException(format!(
            "automatic rotation of {arn} is no longer due"
        )));
    }
    k.current_version += 1;
    if how == RotationType::Automatic {
        k.next_rotation = k.rotation_period_days.map(|d| now.plus_days(d));
    }
    Ok(())
}

impl Kms {
    /// EnableKeyRotation: the first rotation comes one period from now.
    pub async fn enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        period_days: Option<i32>,
    ) -> Result<()> {
        let days = period_days.unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
        if !ROTATION_PERIOD_DAYS.contains(&days) {
            return Err(KmsError::validation(format!(
                "rotation_period_in_days must be between 90 and 2560, got {days}"
            )));
        }
        let key = self
            .resolve_key_only(caller, key_id, "EnableKeyRotation")
            .await?;
        let arn = self.key_arn(&key.account_id, key.id);
        let now = self.clock.now();
        self.store
            .update_key(
                key.id,
                Box::new(move |k| {
                    check_enabled(k, &arn)?;
                    k.rotation_enabled = true;
                    k.rotation_period_days = Some(days);
                    k.next_rotation = Some(now.plus_days(days));
                    Ok(())
                }),
            )
            .await?;
        Ok(())
    }

    /// DisableKeyRotation.
    pub async fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<()> {
        let key = self
            .resolve_key_only(caller, key_id, "DisableKeyRotation")
            .await?;
        let arn = self.key_arn(&key.account_id, key.id);
        self.store
            .update_key(
                key.id,
                Box::new(move |k| {
                    check_enabled(k, &arn)?;
                    k.rotation_enabled = false;
                    k.rotation_period_days = None;
                    k.next_rotation = None;
                    Ok(())
                }),
            )
            .await?;
        Ok(())
    }

    /// GetKeyRotationStatus.
    pub async fn get_key_rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<RotationStatus> {
        let key = self
            .resolve_key_only(caller, key_id, "GetKeyRotationStatus")
            .await?;
        let on_demand = self
            .store
            .list_key_versions(key.id, None, usize::MAX >> 1)
            .await?
            .into_iter()
            .rev()
            .find(|v| v.rotation_type == Some(RotationType::OnDemand))
            .map(|v| v.created);
        Ok(RotationStatus {
            key,
            on_demand_rotation_start_date: on_demand,
        })
    }

    /// RotateKeyOnDemand: adds a version now; the automatic schedule is
    /// unchanged. At most [`MAX_ON_DEMAND_ROTATIONS`] per key, as in AWS.
    pub async fn rotate_key_on_demand(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let key = self
            .resolve_key_only(caller, key_id, "RotateKeyOnDemand")
            .await?;
        self.rotate(&key, RotationType::OnDemand).await
    }

    /// Adds a version of `key`'s material.
    pub(super) async fn rotate(&self, key: &KeyRecord, how: RotationType) -> Result<KeyRecord> {
        let arn = self.key_arn(&key.account_id, key.id);
        let now = self.clock.now();
        let root = std::sync::Arc::clone(&self.root);
        let change = Box::new(move |k: &mut KeyRecord| next_version(k, &arn, how, now));
        let make_version = Box::new(move |k: &KeyRecord| {
            let material = KeyMaterial::random()?;
            Ok(KeyVersion {
                key_id: k.id,
                version: k.current_version,
                wrapped_material: wrap::wrap_key_material(
                    &root,
                    &k.id,
                    k.current_version,
                    &material,
                )?,
                created: now,
                rotation_type: Some(how),
            })
        });
        let limit = (how == RotationType::OnDemand).then_some(MAX_ON_DEMAND_ROTATIONS);
        Ok(self
            .store
            .rotate_key(key.id, change, make_version, limit)
            .await?)
    }

    /// ListKeyRotations: every rotation (not the original material), oldest first.
    pub async fn list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<KeyVersion>, Option<String>)> {
        let limit = paging::limit(limit, 100, 1000)?;
        let after = paging::numeric_position::<u32>(marker)?.unwrap_or(1);
        let key = self
            .resolve_key_only(caller, key_id, "ListKeyRotations")
            .await?;
        let versions = self
            .store
            .list_key_versions(key.id, Some(after), limit + 1)
            .await?;
        Ok(paging::page(versions, limit, |v| v.version.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotating_key(next: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: uuid::Uuid::nil(),
            account_id: "111122223333".into(),
            description: String::new(),
            state: KeyState::Enabled,
            created: Timestamp(0),
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: next.is_some(),
            rotation_period_days: next.map(|_| 90),
            next_rotation: next.map(Timestamp),
            current_version: 1,
            policy: String::new(),
        }
    }

    #[test]
    fn an_automatic_rotation_runs_only_when_still_due() {
        let now = Timestamp(1_000);
        // Rotation disabled (its date cleared, or left as it was), or the
        // date moved on, since the sweep looked.
        let disabled_with_a_date = KeyRecord {
            rotation_enabled: false,
            ..rotating_key(Some(1_000))
        };
        for mut k in [
            rotating_key(None),
            disabled_with_a_date,
            rotating_key(Some(1_001)),
        ] {
            let before = k.clone();
            assert!(matches!(
                next_version(&mut k, "arn", RotationType::Automatic, now),
                Err(KmsError::KMSInvalidStateException(_))
            ));
            assert_eq!(k, before, "nothing changed");
        }
        let mut k = rotating_key(Some(1_000));
        next_version(&mut k, "arn", RotationType::Automatic, now).unwrap();
        assert_eq!(k.current_version, 2);
        assert_eq!(k.next_rotation, Some(now.plus_days(90)));
    }

    #[test]
    fn an_on_demand_rotation_leaves_the_schedule_alone() {
        for next in [None, Some(5_000)] {
            let mut k = rotating_key(next);
            next_version(&mut k, "arn", RotationType::OnDemand, Timestamp(1_000)).unwrap();
            assert_eq!(k.current_version, 2);
            assert_eq!(k.next_rotation, next.map(Timestamp));
        }
    }
}
