//! Background maintenance, driven by the injected clock: destroys keys whose
//! deletion date has passed, and performs due automatic rotations.
//!
//! The store re-checks the deletion date inside its write transaction, so a
//! key is never destroyed early, whatever the order of events or a clock
//! moved back between the scan and the destruction.

use std::sync::Arc;
use std::time::Duration;

use super::Kms;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::model::RotationType;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Keys destroyed.
    pub destroyed: usize,
    /// Keys rotated.
    pub rotated: usize,
}

impl Kms {
    /// Destroys the keys that are due and rotates the keys that are due.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.clock.now();
        self.purge_unwrapped();
        for id in self.store.keys_due_for_deletion(now).await? {
            // The destruction and its event commit together or not at all:
            // while the trail cannot be written the key stays pending
            // deletion (unusable), and a later sweep destroys it.
            let destroyed = crate::store::one_transaction(async {
                match self.store.destroy_key_if_due(id, now).await? {
                    Some(account) => self
                        .record_service_event("DeleteKey", &account, id)
                        .await
                        .map(|_| true),
                    None => Ok(false),
                }
            })
            .await;
            match destroyed {
                Ok(true) => {
                    // No unwrapped copy of the material outlives the key.
                    self.material.forget(|(key, _)| *key == id);
                    report.destroyed += 1;
                    tracing::info!(key_id = %id, "key material destroyed: the deletion window has passed");
                }
                Ok(false) => {}
                // One key's failure must not stop the rest of the sweep.
                Err(e) => {
                    tracing::error!(key_id = %id, error = %e, "key not destroyed (the destruction or its event failed); a later sweep retries");
                }
            }
        }
        // Expired sessions are kept a day, so their use is reported as
        // ExpiredTokenException rather than as unknown credentials.
        self.store
            .delete_expired_sessions(Timestamp(now.0 - Timestamp::DAY_MS))
            .await?;
        if let Some(days) = self.settings.audit_retention_days {
            let cut = Timestamp(now.0 - i64::from(days) * Timestamp::DAY_MS);
            let pruned = self.store.prune_audit(cut).await?;
            if pruned > 0 {
                tracing::info!(
                    pruned,
                    retention_days = days,
                    "audit events past retention pruned; the chain keeps the hash at the cut"
                );
            }
        }
        for id in self.store.keys_due_for_rotation(now).await? {
            let Some(key) = self.store.get_key(id).await? else {
                continue;
            };
            // As for destruction: the new version and its event commit
            // together, or the rotation is left to a later sweep.
            let rotated = crate::store::one_transaction(async {
                let k = self.rotate(&key, RotationType::Automatic).await?;
                self.record_service_event("RotateKey", &k.account_id, id)
                    .await?;
                Ok::<_, crate::error::KmsError>(k)
            })
            .await;
            match rotated {
                Ok(k) => {
                    report.rotated += 1;
                    tracing::info!(key_id = %id, version = k.current_version, "key rotated automatically");
                }
                Err(e) => {
                    tracing::warn!(key_id = %id, error = %e, "automatic rotation failed; a later sweep retries")
                }
            }
        }
        Ok(report)
    }

    /// The audit event of something kmsd did on its own (as CloudTrail
    /// records KMS's DeleteKey and RotateKey): no caller, the service as
    /// the identity, the key as the resource.
    async fn record_service_event(
        &self,
        operation: &str,
        account_id: &str,
        key: uuid::Uuid,
    ) -> Result<u64> {
        self.record(crate::audit::AuditRecord {
            event_id: uuid::Uuid::new_v4().to_string(),
            time: self.clock.now(),
            request_id: uuid::Uuid::new_v4().to_string(),
            account_id: account_id.to_owned(),
            principal_arn: "kms.amazonaws.com".to_owned(),
            identity_type: "AWSService",
            access_key_id: String::new(),
            session_name: String::new(),
            mfa: false,
            source_ip: "kms.amazonaws.com".to_owned(),
            operation: operation.to_owned(),
            region: self.settings.region.clone(),
            key_arns: vec![self.key_arn(account_id, key)],
            encryption_context: Default::default(),
            grant_id: String::new(),
            outcome: crate::audit::Outcome::Allowed,
            error_code: String::new(),
            pending_deletion_key: None,
            destination_encryption_context: None,
            parameters: Default::default(),
            response: Default::default(),
        })
        .await
    }
}

/// Sweeps every `interval` until `shutdown` resolves.
pub async fn run_maintenance(
    kms: Arc<Kms>,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                if let Err(e) = kms.sweep().await {
                    tracing::error!(error = %e, "maintenance sweep failed");
                }
            }
        }
    }
}
