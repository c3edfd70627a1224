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

use serde_json::Value;
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
    /// The call's encryption context (not secret, as in AWS); for
    /// ReEncrypt, the source's.
    pub encryption_context: BTreeMap<String, String>,
    /// ReEncrypt only: the destination's encryption context. The event then
    /// records `sourceEncryptionContext` and `destinationEncryptionContext`,
    /// as CloudTrail does, instead of `encryptionContext`.
    pub destination_encryption_context: Option<BTreeMap<String, String>>,
    /// The grant that allowed the call, if one did.
    pub grant_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The AWS error name, if it failed.
    pub error_code: String,
    /// The key pending deletion the call tried to use, if any.
    pub pending_deletion_key: Option<String>,
    /// What an IAM call acted on, by CloudTrail's parameter names.
    pub parameters: BTreeMap<String, String>,
    /// What an IAM call issued (an access key id), by CloudTrail's names.
    pub response: BTreeMap<String, String>,
}

impl AuditRecord {
    /// The canonical JSON of the event, in a CloudTrail-like shape; the
    /// attempt count is filled in by the store, which keeps the counters.
    ///
    /// Canonical means compact, with every object's keys in byte order: the
    /// exact string `serde_json::Value::to_string` gives for the same
    /// document (the hash chain is over these bytes, so they must never
    /// change). It is written directly rather than through a `Value`, which
    /// cost about five times as much on every call; a test checks the two
    /// agree.
    pub fn canonical_json(&self, pending_deletion_attempt: u64) -> String {
        let mut w = JsonWriter::with_capacity(768);
        // Keys below are in byte order (uppercase sorts before lowercase).
        w.open();
        w.key("awsRegion").string(&self.region);
        if !self.error_code.is_empty() {
            w.key("errorCode").string(&self.error_code);
        }
        w.key("eventID").string(&self.event_id);
        w.key("eventName").string(&self.operation);
        w.key("eventSource").string("kms.amazonaws.com");
        w.key("eventTime").string(&self.time.to_rfc3339_millis());
        w.key("eventType").string("AwsApiCall");
        w.key("eventVersion").string("1.08");
        if !self.grant_id.is_empty() {
            w.key("grantId").string(&self.grant_id);
        }
        w.key("outcome").string(self.outcome.as_str());
        if let Some(k) = &self.pending_deletion_key {
            w.key("pendingDeletionUse").open();
            w.key("attempt").number(pending_deletion_attempt);
            w.key("keyArn").string(k);
            w.close();
        }
        w.key("recipientAccountId").string(
            self.key_arns
                .first()
                .and_then(|a| account_of(a))
                .unwrap_or(&self.account_id),
        );
        w.key("requestID").string(&self.request_id);
        w.key("requestParameters").open();
        // The contexts and the IAM parameters, merged in byte order; both
        // are sorted already, so nothing is collected (this runs per call).
        let contexts = match &self.destination_encryption_context {
            Some(destination) => [
                Some(("destinationEncryptionContext", destination)),
                Some(("sourceEncryptionContext", &self.encryption_context)),
            ],
            None => [Some(("encryptionContext", &self.encryption_context)), None],
        };
        let mut params = self.parameters.iter().peekable();
        for (name, ctx) in contexts.into_iter().flatten() {
            while let Some((k, v)) = params.next_if(|(k, _)| k.as_str() < name) {
                w.key(k).string(v);
            }
            w.key(name).context(ctx);
        }
        for (k, v) in params {
            w.key(k).string(v);
        }
        w.close();
        w.key("resources").open_array();
        for arn in &self.key_arns {
            w.element().open();
            w.key("ARN").string(arn);
            w.key("accountId")
                .string(account_of(arn).unwrap_or_default());
            w.key("type").string("AWS::KMS::Key");
            w.close();
        }
        w.close_array();
        if !self.response.is_empty() {
            w.key("responseElements").open();
            for (k, v) in &self.response {
                w.key(k).string(v);
            }
            w.close();
        }
        w.key("sourceIPAddress").string(&self.source_ip);
        w.key("userIdentity").open();
        w.key("accessKeyId").string(&self.access_key_id);
        w.key("accountId").string(&self.account_id);
        w.key("arn").string(&self.principal_arn);
        if self.identity_type == "AssumedRole" {
            w.key("sessionContext").open();
            w.key("mfaAuthenticated")
                .string(if self.mfa { "true" } else { "false" });
            w.key("sessionName").string(&self.session_name);
            w.close();
        }
        w.key("type").string(self.identity_type);
        w.close();
        w.close();
        w.finish()
    }
}

/// The account field of an ARN.
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4)
}

/// A compact JSON writer for documents whose key order the caller fixes.
/// Strings are escaped by serde_json itself, so they come out exactly as
/// serde_json writes them.
struct JsonWriter {
    out: Vec<u8>,
    /// Whether the innermost open object or array has no member yet.
    first: bool,
}

impl JsonWriter {
    fn with_capacity(n: usize) -> Self {
        Self {
            out: Vec::with_capacity(n),
            first: true,
        }
    }

    fn separator(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn open(&mut self) {
        self.out.push(b'{');
        self.first = true;
    }

    fn close(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    fn open_array(&mut self) {
        self.out.push(b'[');
        self.first = true;
    }

    fn close_array(&mut self) {
        self.out.push(b']');
        self.first = false;
    }

    /// Starts an array element.
    fn element(&mut self) -> &mut Self {
        self.separator();
        self
    }

    /// Starts an object member; its value follows.
    fn key(&mut self, k: &str) -> &mut Self {
        self.separator();
        self.escaped(k);
        self.out.push(b':');
        self
    }

    fn string(&mut self, v: &str) {
        self.escaped(v);
        self.first = false;
    }

    /// An encryption context as an object; a BTreeMap iterates in byte
    /// order of its keys, as canonical JSON requires.
    fn context(&mut self, ctx: &BTreeMap<String, String>) {
        self.open();
        for (k, v) in ctx {
            self.key(k).string(v);
        }
        self.close();
    }

    fn number(&mut self, v: u64) {
        self.out.extend_from_slice(v.to_string().as_bytes());
        self.first = false;
    }

    fn escaped(&mut self, s: &str) {
        // Writing to a Vec cannot fail, and a &str always serializes.
        let _ = serde_json::to_writer(&mut self.out, s);
    }

    fn finish(self) -> String {
        // An empty body would be hashed and stored silently; this cannot
        // fail, so say so loudly if it ever does.
        String::from_utf8(self.out).expect("only &str pieces and ASCII punctuation are written")
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
impl AuditRecord {
    /// A complete record of an allowed Encrypt, for tests.
    pub(crate) fn sample() -> Self {
        Self {
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
            encryption_context: std::collections::BTreeMap::from([("dept".into(), "fin".into())]),
            destination_encryption_context: None,
            grant_id: String::new(),
            outcome: Outcome::Allowed,
            error_code: String::new(),
            pending_deletion_key: None,
            parameters: Default::default(),
            response: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord::sample()
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

    /// The implementation the hand-written writer replaced: a `Value`,
    /// whose keys serde_json sorts. Kept as the reference the chain's bytes
    /// must match.
    fn reference_json(r: &AuditRecord, attempt: u64) -> String {
        use serde_json::json;
        let mut identity = json!({
            "type": r.identity_type,
            "arn": r.principal_arn,
            "accountId": r.account_id,
            "accessKeyId": r.access_key_id,
        });
        if r.identity_type == "AssumedRole" {
            identity["sessionContext"] = json!({
                "sessionName": r.session_name,
                "mfaAuthenticated": r.mfa.to_string(),
            });
        }
        let resources: Vec<Value> = r
            .key_arns
            .iter()
            .map(|a| json!({"ARN": a, "type": "AWS::KMS::Key", "accountId": a.split(':').nth(4).unwrap_or_default()}))
            .collect();
        let mut v = json!({
            "eventVersion": "1.08",
            "eventID": r.event_id,
            "eventTime": r.time.to_rfc3339_millis(),
            "eventSource": "kms.amazonaws.com",
            "eventName": r.operation,
            "eventType": "AwsApiCall",
            "awsRegion": r.region,
            "requestID": r.request_id,
            "sourceIPAddress": r.source_ip,
            "userIdentity": identity,
            "requestParameters": match &r.destination_encryption_context {
                Some(d) => json!({"sourceEncryptionContext": r.encryption_context, "destinationEncryptionContext": d}),
                None => json!({"encryptionContext": r.encryption_context}),
            },
            "resources": resources,
            "outcome": r.outcome.as_str(),
            "recipientAccountId": r.key_arns.first().and_then(|a| a.split(':').nth(4)).unwrap_or(&r.account_id),
        });
        if !r.error_code.is_empty() {
            v["errorCode"] = json!(r.error_code);
        }
        if !r.grant_id.is_empty() {
            v["grantId"] = json!(r.grant_id);
        }
        if let Some(k) = &r.pending_deletion_key {
            v["pendingDeletionUse"] = json!({"keyArn": k, "attempt": attempt});
        }
        for (k, p) in &r.parameters {
            v["requestParameters"][k] = json!(p);
        }
        if !r.response.is_empty() {
            v["responseElements"] = json!(r.response);
        }
        v.to_string()
    }

    #[test]
    fn canonical_json_is_byte_identical_to_serde_json_sorted_values() {
        let awkward = [
            "",
            "plain",
            "quote\" and \\ backslash",
            "control \u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "unicode é ü 日本 🎉 \u{2028}",
            "</script>&'",
            "Zebra",
            "apple",
        ];
        let mut cases = Vec::new();
        for (i, s) in awkward.iter().enumerate() {
            let mut r = record();
            r.encryption_context = awkward
                .iter()
                .enumerate()
                .map(|(j, k)| (format!("{k}{j}"), (*s).to_owned()))
                .collect();
            r.source_ip = (*s).to_owned();
            r.session_name = (*s).to_owned();
            r.identity_type = ["Root", "IAMUser", "AssumedRole", "Unknown"][i % 4];
            r.mfa = i % 2 == 0;
            r.key_arns = (0..i % 3)
                .map(|n| format!("arn:aws:kms:us-east-1:{n}{s}:key/k{n}"))
                .collect();
            r.grant_id = if i % 2 == 1 {
                (*s).to_owned()
            } else {
                String::new()
            };
            r.error_code = if i % 3 == 1 {
                "AccessDeniedException".into()
            } else {
                String::new()
            };
            r.outcome = [Outcome::Allowed, Outcome::Denied, Outcome::Failed][i % 3];
            r.pending_deletion_key = (i % 2 == 0).then(|| format!("arn:{s}"));
            r.destination_encryption_context =
                (i % 3 == 2).then(|| BTreeMap::from([(format!("{s}d"), (*s).to_owned())]));
            r.account_id = (*s).to_owned();
            r.time = Timestamp(1_700_000_000_000 + i64::try_from(i).unwrap() * 1_234_567);
            // IAM parameters sort among the contexts: before, between and
            // after them.
            if i % 2 == 0 {
                r.parameters = BTreeMap::from([
                    ("accessKeyId".into(), (*s).to_owned()),
                    ("roleArn".into(), format!("arn:{s}")),
                    ("userName".into(), (*s).to_owned()),
                    ("encryptionContextX".into(), (*s).to_owned()),
                ]);
                r.response = BTreeMap::from([("accessKeyId".into(), format!("ASIA{s}"))]);
            }
            cases.push(r);
        }
        let mut empty = record();
        empty.key_arns.clear();
        empty.encryption_context.clear();
        empty.identity_type = "Unknown";
        empty.account_id.clear();
        empty.principal_arn.clear();
        cases.push(empty);
        cases.push(record());
        for (i, r) in cases.iter().enumerate() {
            for attempt in [0, 1, u64::MAX] {
                assert_eq!(
                    r.canonical_json(attempt),
                    reference_json(r, attempt),
                    "case {i}, attempt {attempt}"
                );
            }
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
