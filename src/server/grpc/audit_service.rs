//! `kms.v1.AuditService`: the trail and key configuration history.

use tonic::{Request, Response, Status};

use super::Handler;
use crate::clock::Timestamp;
use crate::error::KmsError;
use crate::kms::LookupFilter;
use crate::server::pb::{self, audit_service_server::AuditService};

fn ts(t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    t.map(|t| {
        Timestamp(
            t.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos / 1_000_000)),
        )
    })
}

fn outcome_name(v: i32) -> Result<Option<String>, KmsError> {
    Ok(match pb::Outcome::try_from(v) {
        Ok(pb::Outcome::Allowed) => Some("allowed".into()),
        Ok(pb::Outcome::Denied) => Some("denied".into()),
        Ok(pb::Outcome::Failed) => Some("failed".into()),
        Ok(pb::Outcome::Unspecified) => None,
        Err(_) => return Err(KmsError::validation(format!("outcome {v} is not known"))),
    })
}

/// `requestParameters.<name>` of an event body, as a map.
fn context_of(
    v: &serde_json::Value,
    name: &str,
) -> Option<std::collections::HashMap<String, String>> {
    v["requestParameters"][name].as_object().map(|o| {
        o.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    })
}

/// The protobuf form of a stored event, read back from its canonical JSON.
fn event(seq: u64, body: String) -> pb::AuditEvent {
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let s = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let time_ms = time::OffsetDateTime::parse(
        &s("/eventTime"),
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
    .unwrap_or(0);
    pb::AuditEvent {
        sequence: seq,
        event_id: s("/eventID"),
        event_time: Some(Timestamp(time_ms).to_proto()),
        request_id: s("/requestID"),
        account_id: s("/userIdentity/accountId"),
        principal_arn: s("/userIdentity/arn"),
        session_name: s("/userIdentity/sessionContext/sessionName"),
        mfa_authenticated: s("/userIdentity/sessionContext/mfaAuthenticated") == "true",
        source_ip: s("/sourceIPAddress"),
        operation: s("/eventName"),
        key_arns: v["resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["ARN"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        // ReEncrypt records its two contexts apart, as CloudTrail does.
        encryption_context: context_of(&v, "encryptionContext")
            .or_else(|| context_of(&v, "sourceEncryptionContext"))
            .unwrap_or_default(),
        destination_encryption_context: context_of(&v, "destinationEncryptionContext")
            .unwrap_or_default(),
        grant_id: s("/grantId"),
        outcome: match s("/outcome").as_str() {
            "allowed" => pb::Outcome::Allowed as i32,
            "denied" => pb::Outcome::Denied as i32,
            "failed" => pb::Outcome::Failed as i32,
            _ => pb::Outcome::Unspecified as i32,
        },
        error_code: s("/errorCode"),
        pending_deletion_attempt: v
            .pointer("/pendingDeletionUse/attempt")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        canonical_json: body,
    }
}

#[tonic::async_trait]
impl AuditService for Handler {
    async fn lookup_events(
        &self,
        req: Request<pb::LookupEventsRequest>,
    ) -> Result<Response<pb::LookupEventsResponse>, Status> {
        self.call("LookupEvents", req, |kms, caller, r| async move {
            let filter = LookupFilter {
                start: ts(r.start_time.as_ref()),
                end: ts(r.end_time.as_ref()),
                key_id: r.key_id,
                principal_arn: r.principal_arn,
                operation: r.operation,
                outcome: r.outcome.map(outcome_name).transpose()?.flatten(),
            };
            let (events, next) = kms
                .lookup_events(&caller, filter, r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::LookupEventsResponse {
                events: events
                    .into_iter()
                    .map(|(seq, body)| event(seq, body))
                    .collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn verify_trail(
        &self,
        req: Request<pb::VerifyTrailRequest>,
    ) -> Result<Response<pb::VerifyTrailResponse>, Status> {
        self.call("VerifyTrail", req, |kms, caller, _r| async move {
            let t = kms.verify_trail(&caller).await?;
            Ok(pb::VerifyTrailResponse {
                valid: t.valid,
                events_checked: t.checked,
                first_broken_sequence: t.first_broken,
                problem: t.problem,
                head_sequence: t.head_sequence,
                head_hash: t.head_hash,
                pruned_before: t.pruned_before,
            })
        })
        .await
    }

    async fn get_key_configuration_history(
        &self,
        req: Request<pb::GetKeyConfigurationHistoryRequest>,
    ) -> Result<Response<pb::GetKeyConfigurationHistoryResponse>, Status> {
        self.call(
            "GetKeyConfigurationHistory",
            req,
            |kms, caller, r| async move {
                let page = kms
                    .key_configuration_history(
                        &caller,
                        &r.key_id,
                        ts(r.as_of.as_ref()),
                        r.limit,
                        r.marker.as_deref(),
                    )
                    .await?;
                Ok(pb::GetKeyConfigurationHistoryResponse {
                    key_arn: page.key_arn,
                    truncated: page.next_marker.is_some(),
                    next_marker: page.next_marker,
                    versions: page
                        .versions
                        .into_iter()
                        .map(|(version, changed, configuration)| pb::KeyConfiguration {
                            version,
                            changed_at: Some(changed.to_proto()),
                            configuration,
                        })
                        .collect(),
                })
            },
        )
        .await
    }
}
