//! The audit trail: one event per call, allowed or not, hash-chained so that
//! an edited, removed or reordered event is found by `VerifyTrail`.
//!
//! This module owns the event's shape, its canonical bytes (CloudTrail-like
//! JSON with sorted keys) and the chain arithmetic, and the per-request
//! notes the domain fills in as it works (which keys, which context, which
//! grant). It never sees a plaintext, data key, ciphertext body, secret,
//! session token or TOTP code: nothing that carries one is ever passed in.

pub mod notes;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;

/// The hash before the first event.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Allowed,
    /// Authentication or authorization refused it.
    Denied,
    /// It was let in but failed.
    Failed,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Self::Allowed),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// The outcome of a call that ended with `error` (`None`: success).
    pub fn of(error: Option<&str>) -> Self {
        match error {
            None => Self::Allowed,
            Some(
                "AccessDeniedException" | "UnrecognizedClientException" | "ExpiredTokenException",
            ) => Self::Denied,
            Some(_) => Self::Failed,
        }
    }
}

/// Everything recorded about one call, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// A unique id.
    pub event_id: String,
    /// When the call was answered.
    pub time: Timestamp,
    /// The request id returned to the caller.
    pub request_id: String,
    /// The caller's account ("" if the caller was not authenticated).
    pub account_id: String,
    /// The caller's principal ARN ("" if not authenticated).
    pub principal_arn: String,
    /// `Root`, `IAMUser`, `AssumedRole` or `Unknown`.
    pub identity_type: &'static str,
    /// The access key id presented (not secret).
    pub access_key_id: String,
    /// For a role session, its name.
    pub session_name: String,
    /// Whether the session proved a second factor.
    pub mfa: bool,
    /// The peer address.
    pub source_ip: String,
    /// The RPC, e.g. `Encrypt`.
    pub operation: String,
    /// The region (for the CloudTrail-like shape).
    pub region: String,
    /// The keys the call touched.
    pub key_arns: Vec<String>,
    /// The call's encryption context (not secret, as in AWS).
    pub encryption_context: BTreeMap<String, String>,
    /// The grant that allowed the call, if one did.
    pub grant_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The AWS error name, if it failed.
    pub error_code: String,
    /// The key pending deletion the call tried to use, if any.
    pub pending_deletion_key: Option<String>,
}

impl AuditRecord {
    /// The canonical JSON of the event, in a CloudTrail-like shape; the
    /// attempt count is filled in by the store, which keeps the counters.
    pub fn canonical_json(&self, pending_deletion_attempt: u64) -> String {
        let mut identity = json!({
            "type": self.identity_type,
            "arn": self.principal_arn,
            "accountId": self.account_id,
            "accessKeyId": self.access_key_id,
        });
        if self.identity_type == "AssumedRole" {
            identity["sessionContext"] = json!({
                "sessionName": self.session_name,
                "mfaAuthenticated": self.mfa.to_string(),
            });
        }
        let resources: Vec<Value> = self
            .key_arns
            .iter()
            .map(|a| json!({"ARN": a, "type": "AWS::KMS::Key", "accountId": a.split(':').nth(4).unwrap_or_default()}))
            .collect();
        let mut v = json!({
            "eventVersion": "1.08",
            "eventID": self.event_id,
            "eventTime": self.time.to_rfc3339_millis(),
            "eventSource": "kms.amazonaws.com",
            "eventName": self.operation,
            "eventType": "AwsApiCall",
            "awsRegion": self.region,
            "requestID": self.request_id,
            "sourceIPAddress": self.source_ip,
            "userIdentity": identity,
            "requestParameters": {"encryptionContext": self.encryption_context},
            "resources": resources,
            "outcome": self.outcome.as_str(),
            "recipientAccountId": self.key_arns.first().and_then(|a| a.split(':').nth(4)).unwrap_or(&self.account_id),
        });
        if !self.error_code.is_empty() {
            v["errorCode"] = json!(self.error_code);
        }
        if !self.grant_id.is_empty() {
            v["grantId"] = json!(self.grant_id);
        }
        if let Some(k) = &self.pending_deletion_key {
            v["pendingDeletionUse"] = json!({"keyArn": k, "attempt": pending_deletion_attempt});
        }
        // serde_json sorts object keys, so the string is canonical.
        v.to_string()
    }
}

/// The chain step: SHA-256(previous hash || canonical bytes).
pub fn chain_hash(prev: &[u8], body: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body.as_bytes());
    h.finalize().into()
}

/// One stored event, as VerifyTrail reads it.
#[derive(Debug, Clone)]
pub struct ChainRow {
    /// Position in the chain.
    pub seq: u64,
    /// Searchable copies of the body's fields.
    pub account_id: String,
    /// Searchable copy.
    pub principal_arn: String,
    /// Searchable copy.
    pub operation: String,
    /// Searchable copy.
    pub outcome: String,
    /// Searchable copy: key ARNs separated by spaces.
    pub key_arns: String,
    /// The canonical JSON.
    pub body: String,
    /// The hash the row claims came before it.
    pub prev_hash: Vec<u8>,
    /// The row's hash.
    pub hash: Vec<u8>,
}

/// Why a link is broken.
pub fn check_link(expected_prev: &[u8], row: &ChainRow) -> Result<(), String> {
    if row.prev_hash != expected_prev {
        return Err(format!(
            "event {} does not follow the event before it (an event was removed, inserted or reordered)",
            row.seq
        ));
    }
    if chain_hash(&row.prev_hash, &row.body).as_slice() != row.hash.as_slice() {
        return Err(format!(
            "event {} was altered: its hash does not match its contents",
            row.seq
        ));
    }
    let v: Value = serde_json::from_str(&row.body)
        .map_err(|_| format!("event {} is not valid JSON", row.seq))?;
    let keys: Vec<&str> = v["resources"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["ARN"].as_str()).collect())
        .unwrap_or_default();
    let agrees = v["userIdentity"]["accountId"].as_str() == Some(row.account_id.as_str())
        && v["userIdentity"]["arn"].as_str() == Some(row.principal_arn.as_str())
        && v["eventName"].as_str() == Some(row.operation.as_str())
        && v["outcome"].as_str() == Some(row.outcome.as_str())
        && keys.join(" ") == row.key_arns;
    if !agrees {
        return Err(format!(
            "event {}'s searchable columns were altered",
            row.seq
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            event_id: "e1".into(),
            time: Timestamp(1_700_000_000_123),
            request_id: "r1".into(),
            account_id: "111122223333".into(),
            principal_arn: "arn:aws:iam::111122223333:user/a".into(),
            identity_type: "IAMUser",
            access_key_id: "AKIAEXAMPLE".into(),
            session_name: String::new(),
            mfa: false,
            source_ip: "127.0.0.1".into(),
            operation: "Encrypt".into(),
            region: "us-east-1".into(),
            key_arns: vec!["arn:aws:kms:us-east-1:111122223333:key/k".into()],
            encryption_context: BTreeMap::from([("dept".into(), "fin".into())]),
            grant_id: String::new(),
            outcome: Outcome::Allowed,
            error_code: String::new(),
            pending_deletion_key: None,
        }
    }

    fn row(seq: u64, prev: &[u8], r: &AuditRecord) -> ChainRow {
        let body = r.canonical_json(0);
        ChainRow {
            seq,
            account_id: r.account_id.clone(),
            principal_arn: r.principal_arn.clone(),
            operation: r.operation.clone(),
            outcome: r.outcome.as_str().into(),
            key_arns: r.key_arns.join(" "),
            hash: chain_hash(prev, &body).to_vec(),
            prev_hash: prev.to_vec(),
            body,
        }
    }

    #[test]
    fn canonical_json_is_deterministic_and_has_the_cloudtrail_fields() {
        let r = record();
        assert_eq!(r.canonical_json(0), r.canonical_json(0));
        let v: Value = serde_json::from_str(&r.canonical_json(0)).unwrap();
        assert_eq!(v["eventName"], "Encrypt");
        assert_eq!(v["userIdentity"]["arn"], "arn:aws:iam::111122223333:user/a");
        assert_eq!(v["requestParameters"]["encryptionContext"]["dept"], "fin");
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn links_detect_edits_and_gaps() {
        let a = row(1, &GENESIS, &record());
        let b = row(2, &a.hash, &record());
        assert!(check_link(&GENESIS, &a).is_ok());
        assert!(check_link(&a.hash, &b).is_ok());
        assert!(
            check_link(&GENESIS, &b).is_err(),
            "a removed event is found"
        );
        let mut edited = b.clone();
        edited.body = edited.body.replace("Encrypt", "Decrypt");
        assert!(check_link(&a.hash, &edited).is_err());
        let mut column = b.clone();
        column.principal_arn = "arn:aws:iam::111122223333:user/b".into();
        assert!(check_link(&a.hash, &column).is_err());
    }
}
