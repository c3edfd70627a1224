//! The AuditService operations: LookupEvents, VerifyTrail and
//! GetKeyConfigurationHistory, and the recording of each call's event.
//!
//! A caller sees its own account's events, and other accounts' events on
//! its keys (as CloudTrail delivers them to the key owner), and its key
//! histories; the operator sees all. Reading needs the account root or an identity policy allowing
//! `audit:<Operation>`.

use super::{KeyRef, Kms, paging};
use crate::audit::{AuditRecord, GENESIS, check_link};
use crate::clock::Timestamp;
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::store::AuditFilter;

/// How many chain rows VerifyTrail reads at a time.
const VERIFY_PAGE: usize = 2048;

/// LookupEvents' filters.
#[derive(Debug, Clone, Default)]
pub struct LookupFilter {
    /// From (inclusive).
    pub start: Option<Timestamp>,
    /// To (inclusive).
    pub end: Option<Timestamp>,
    /// A key id or key ARN.
    pub key_id: Option<String>,
    /// A principal ARN.
    pub principal_arn: Option<String>,
    /// An operation name.
    pub operation: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
}

/// What VerifyTrail found.
#[derive(Debug, Clone, Default)]
pub struct TrailReport {
    /// Whether every link held.
    pub valid: bool,
    /// Events read.
    pub checked: u64,
    /// The first event whose link is broken.
    pub first_broken: Option<u64>,
    /// What is wrong with it.
    pub problem: String,
    /// The newest event's sequence.
    pub head_sequence: u64,
    /// The newest event's hash, hex.
    pub head_hash: String,
    /// Events before this sequence were pruned (0: none).
    pub pruned_before: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Kms {
    /// Appends one call's event to the trail; the call is answered only
    /// after this returns, so an unrecordable call fails instead.
    pub async fn record(&self, record: AuditRecord) -> Result<u64> {
        Ok(self.store.append_audit(record).await?)
    }

    /// LookupEvents: newest first, paginated by sequence.
    pub async fn lookup_events(
        &self,
        caller: &Caller,
        filter: LookupFilter,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<(u64, String)>, Option<String>)> {
        let limit = paging::limit(limit, 50, 1000)?;
        let before = paging::numeric_position::<u64>(marker)?;
        // As CloudTrail refuses one (InvalidTimeRangeException): a range
        // that ends before it starts is a mistake, not an empty answer.
        if let (Some(start), Some(end)) = (filter.start, filter.end)
            && start > end
        {
            return Err(KmsError::validation(
                "start_time must not be after end_time",
            ));
        }
        if let Some(o) = &filter.outcome
            && crate::audit::Outcome::parse(o).is_none()
        {
            return Err(KmsError::validation(
                "outcome must be allowed, denied or failed",
            ));
        }
        self.authorize_identity(caller, "audit:LookupEvents", "*")
            .await?;
        let key_arn = match &filter.key_id {
            None => None,
            Some(k) => Some(match self.parse_key_ref(k)? {
                KeyRef::Id(id) => self.key_arn(&caller.account_id, id),
                KeyRef::KeyArn { account_id, id } => self.key_arn(&account_id, id),
                _ => return Err(KmsError::validation("key_id must be a key id or key ARN")),
            }),
        };
        let f = AuditFilter {
            account_id: (!caller.is_operator()).then(|| caller.account_id.clone()),
            start: filter.start,
            end: filter.end,
            key_arn,
            principal_arn: filter.principal_arn,
            operation: filter.operation,
            outcome: filter.outcome,
        };
        let events = self.store.lookup_audit(f, before, limit + 1).await?;
        Ok(paging::page(events, limit, |(seq, _)| seq.to_string()))
    }

    /// VerifyTrail: walks the whole chain from the start (or from the hash
    /// recorded where retention cut it) and reports the first broken link.
    pub async fn verify_trail(&self, caller: &Caller) -> Result<TrailReport> {
        self.authorize_identity(caller, "audit:VerifyTrail", "*")
            .await?;
        let anchor = self.store.audit_anchor().await?;
        let (mut after, mut expected) = anchor.clone().unwrap_or((0, GENESIS.to_vec()));
        let mut report = TrailReport {
            valid: true,
            pruned_before: anchor.map_or(0, |(seq, _)| seq + 1),
            head_sequence: after,
            head_hash: hex(&expected),
            ..TrailReport::default()
        };
        loop {
            let rows = self.store.audit_chain(after, VERIFY_PAGE).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                report.checked += 1;
                if let Err(problem) = check_link(&expected, row) {
                    report.valid = false;
                    report.first_broken = Some(row.seq);
                    report.problem = problem;
                    return Ok(report);
                }
                expected.clone_from(&row.hash);
                after = row.seq;
                report.head_sequence = row.seq;
                report.head_hash = hex(&row.hash);
            }
        }
        Ok(report)
    }

    /// GetKeyConfigurationHistory: the versions, a page at a time (at most
    /// `limit`, and no more than [`HISTORY_PAGE_BYTES`] of configurations
    /// past the first), or the one in force at `as_of`. Works after the
    /// key was destroyed.
    pub async fn key_configuration_history(
        &self,
        caller: &Caller,
        key_id: &str,
        as_of: Option<Timestamp>,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<HistoryPage> {
        let limit = paging::limit(limit, 100, 1000)?;
        let after = paging::numeric_position::<u64>(marker)?.unwrap_or(0);
        let (account, id) = match self.parse_key_ref(key_id)? {
            KeyRef::Id(id) => (caller.account_id.clone(), id),
            KeyRef::KeyArn { account_id, id } => (account_id, id),
            _ => return Err(KmsError::validation("key_id must be a key id or key ARN")),
        };
        let arn = self.key_arn(&account, id);
        self.authorize_identity(caller, "audit:GetKeyConfigurationHistory", &arn)
            .await?;
        let first = self.store.key_config_history(id, 0, 1).await?;
        let visible = first.first().is_some_and(|(_, a, _, _)| {
            *a == account && (caller.is_operator() || *a == caller.account_id)
        });
        if !visible {
            return Err(KmsError::NotFoundException(format!(
                "Key '{arn}' has no configuration history"
            )));
        }
        if let Some(t) = as_of {
            let Some((v, _, changed, config)) = self.store.key_config_at(id, t).await? else {
                return Err(KmsError::NotFoundException(format!(
                    "Key '{arn}' did not exist at {}",
                    t.to_rfc3339()
                )));
            };
            return Ok(HistoryPage {
                key_arn: arn,
                versions: vec![(v, changed, config)],
                next_marker: None,
            });
        }
        let rows = self.store.key_config_history(id, after, limit + 1).await?;
        let mut versions = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        for (v, _, changed, config) in rows {
            if versions.len() == limit
                || (!versions.is_empty() && bytes + config.len() > HISTORY_PAGE_BYTES)
            {
                more = true;
                break;
            }
            bytes += config.len();
            versions.push((v, changed, config));
        }
        let next_marker = if more {
            versions
                .last()
                .map(|(v, _, _)| paging::marker(&v.to_string()))
        } else {
            None
        };
        Ok(HistoryPage {
            key_arn: arn,
            versions,
            next_marker,
        })
    }
}

/// Configuration bytes past which a page of history stops (it always holds
/// one version): a key's history grows by a whole configuration, grants and
/// policy included, with every change, so pages are bounded by size as
/// well as by count, well under gRPC's 4 MiB default message limit.
pub const HISTORY_PAGE_BYTES: usize = 1024 * 1024;

/// A page of a key's configuration history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The key's ARN.
    pub key_arn: String,
    /// (version, time of the change, configuration JSON), oldest first.
    pub versions: Vec<(u64, Timestamp, String)>,
    /// Where the next page starts, if there is one.
    pub next_marker: Option<String>,
}
