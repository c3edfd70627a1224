//! The domain layer: one method per operation, each taking the
//! authenticated [`Caller`] and plain arguments, and returning plain results
//! or a [`KmsError`]. Each follows the same order: validate, resolve and
//! authorize, act, and (from the audit issue on) record.
//!
//! Nothing here knows of gRPC or HTTP; the transports in `server` translate
//! at their boundary.

mod aliases;
mod audit_ops;
mod authz;
mod background;
mod crypto_ops;
mod grants;
mod iam;
mod iam_ext;
mod key_policy;
mod keys;
mod policy_doc;
mod rotation;
mod tags;

use std::sync::Arc;

use uuid::Uuid;

pub use audit_ops::{LookupFilter, TrailReport};
pub use authz::{allowing_grant, condition_context, grantee_names};
pub use background::{SweepReport, run_maintenance};
pub use crypto_ops::{DataKeyOutput, DataKeySpec, DecryptOutput, ReEncryptOutput};
pub use grants::{CreateGrantInput, GrantCreated};
pub use iam::{AccessKeyCreated, AccountCreated};
pub use iam_ext::{AssumedRole, MfaEnrolment};
pub use keys::{CreateKeyInput, ScheduledDeletion};
pub use rotation::RotationStatus;

use crate::clock::Clock;
use crate::crypto::secret::SecretBytes;
use crate::crypto::unwrapped::UnwrapCache;
use crate::crypto::{EncryptionContext, KeyMaterial, RootKey};
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::{KeyRecord, KeyState};
use crate::store::Store;

/// Settings of the domain layer.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// The region in ARNs.
    pub region: String,
    /// The partition in ARNs.
    pub partition: String,
    /// Most tags on one key.
    pub max_tags_per_key: usize,
    /// Most access keys per user (AWS: 2).
    pub max_access_keys_per_user: usize,
    /// Most grants on one key (AWS: 50000).
    pub max_grants_per_key: usize,
    /// Audit events older than this many days are pruned; `None` keeps
    /// them forever.
    pub audit_retention_days: Option<u32>,
}

impl Default for KmsSettings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            partition: "aws".into(),
            max_tags_per_key: 50,
            max_access_keys_per_user: 2,
            max_grants_per_key: 50_000,
            audit_retention_days: None,
        }
    }
}

/// The key-management service: state shared by every request.
pub struct Kms {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
    clock: Arc<dyn Clock>,
    settings: KmsSettings,
    policies: authz::PolicyCache,
    /// Key material by key id and version, unwrapped.
    material: UnwrapCache<(Uuid, u32), KeyMaterial>,
    /// Access-key and session secrets by access key id, unwrapped.
    credentials: Arc<UnwrapCache<String, SecretBytes>>,
}

/// How long an unwrapped secret is kept after it was unwrapped.
const UNWRAPPED_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Most unwrapped secrets of each kind kept.
const UNWRAPPED_CAPACITY: usize = 10_000;

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A reference to a key, as callers may write one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A bare key id.
    Id(Uuid),
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    KeyArn {
        /// The account in the ARN.
        account_id: String,
        /// The key id.
        id: Uuid,
    },
    /// `alias/<name>`, in the caller's account.
    AliasName(String),
    /// `arn:aws:kms:<region>:<account>:alias/<name>`.
    AliasArn {
        /// The account in the ARN.
        account_id: String,
        /// `alias/<name>`.
        name: String,
    },
}

/// Whether `s` is a 12-digit account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn invalid_key_id(s: &str) -> KmsError {
    KmsError::NotFoundException(format!("Invalid keyId '{s}'"))
}

/// A key id as AWS writes it: the 36-character hyphenated UUID (any case).
/// `Uuid::try_parse` also takes 32 bare hex digits, `{...}` and
/// `urn:uuid:...`, which AWS does not, and which name a key under another
/// spelling than the one every answer gives back.
fn key_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

impl KeyRef {
    /// Whether `s` names an alias (`alias/NAME`, or an ARN whose resource
    /// is `alias/NAME`), read as [`Self::parse`] reads it but without
    /// knowing the daemon's partition and region: for clients, which must
    /// tell an alias from a key before they ask.
    pub fn names_alias(s: &str) -> bool {
        s.starts_with("alias/")
            || (s.starts_with("arn:")
                && s.splitn(6, ':')
                    .nth(5)
                    .is_some_and(|resource| resource.starts_with("alias/")))
    }

    /// Parses a key id, key ARN, alias name or alias ARN for `region`.
    pub fn parse(s: &str, partition: &str, region: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(KmsError::validation("key_id must not be empty"));
        }
        if s.len() > 2048 {
            return Err(KmsError::validation(
                "key_id must be at most 2048 characters",
            ));
        }
        if s.starts_with("alias/") {
            return Ok(Self::AliasName(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [p, service, r, account, resource] = parts.as_slice() else {
                return Err(invalid_key_id(s));
            };
            if *p != partition || *service != "kms" || *r != region || !is_account_id(account) {
                return Err(invalid_key_id(s));
            }
            let account_id = (*account).to_owned();
            if let Some(id) = resource.strip_prefix("key/") {
                let id = key_uuid(id).ok_or_else(|| invalid_key_id(s))?;
                return Ok(Self::KeyArn { account_id, id });
            }
            if resource.starts_with("alias/") {
                return Ok(Self::AliasArn {
                    account_id,
                    name: (*resource).to_owned(),
                });
            }
            return Err(invalid_key_id(s));
        }
        key_uuid(s).map(Self::Id).ok_or_else(|| invalid_key_id(s))
    }

    fn is_alias(&self) -> bool {
        matches!(self, Self::AliasName(_) | Self::AliasArn { .. })
    }
}

impl Kms {
    /// The service over a store, a root key and a clock.
    pub fn new(
        store: Arc<dyn Store>,
        root: Arc<RootKey>,
        clock: Arc<dyn Clock>,
        settings: KmsSettings,
    ) -> Self {
        Self {
            store,
            root,
            clock,
            settings,
            policies: authz::PolicyCache::default(),
            material: UnwrapCache::new(UNWRAPPED_TTL, UNWRAPPED_CAPACITY),
            credentials: Arc::new(UnwrapCache::new(UNWRAPPED_TTL, UNWRAPPED_CAPACITY)),
        }
    }

    /// Unwrapped credential secrets, for authentication.
    pub fn credential_cache(&self) -> &UnwrapCache<String, SecretBytes> {
        &self.credentials
    }

    /// Drops unwrapped secrets older than their time to live, so that one
    /// no longer in use does not stay in memory (the maintenance sweep).
    pub fn purge_unwrapped(&self) {
        self.material.purge_expired();
        self.credentials.purge_expired();
    }

    /// The settings.
    pub fn settings(&self) -> &KmsSettings {
        &self.settings
    }

    /// The store (for the daemon's bootstrap and for tools).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The ARN of a key.
    pub fn key_arn(&self, account_id: &str, id: Uuid) -> String {
        format!(
            "arn:{}:kms:{}:{account_id}:key/{id}",
            self.settings.partition, self.settings.region
        )
    }

    /// The ARN of an alias.
    pub fn alias_arn(&self, account_id: &str, name: &str) -> String {
        format!(
            "arn:{}:kms:{}:{account_id}:{name}",
            self.settings.partition, self.settings.region
        )
    }

    pub(crate) fn parse_key_ref(&self, s: &str) -> Result<KeyRef> {
        KeyRef::parse(s, &self.settings.partition, &self.settings.region)
    }

    /// Finds the key `key_id` names for `caller` and checks that `caller` may
    /// perform `kms:<action>` on it (with `ctx`, the call's encryption
    /// context, if it has one). A bare id or alias name is looked up in the
    /// caller's own account; another account's key needs its ARN.
    async fn resolve(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
        ctx: Option<&EncryptionContext>,
    ) -> Result<KeyRecord> {
        let key = self.find_key(caller, key_id).await?;
        self.authorize(caller, action, &key, ctx).await?;
        Ok(key)
    }

    /// Like `resolve`, but refuses alias names and alias ARNs.
    async fn resolve_key_only(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
    ) -> Result<KeyRecord> {
        self.refuse_alias(key_id)?;
        self.resolve(caller, key_id, action, None).await
    }

    /// Refuses an alias name or alias ARN where AWS KMS takes only a key id
    /// or key ARN: the operations that manage a key or its grants act on the
    /// key named, never on whatever an alias points to at the moment.
    fn refuse_alias(&self, key_id: &str) -> Result<()> {
        if self.parse_key_ref(key_id)?.is_alias() {
            return Err(KmsError::validation(format!(
                "'{key_id}' is an alias; this operation needs a key id or key ARN"
            )));
        }
        Ok(())
    }

    async fn find_key(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let not_found = || {
            KmsError::NotFoundException(format!(
                "Key '{}' does not exist",
                self.describe_ref(caller, key_id)
            ))
        };
        let (account, id) = match self.parse_key_ref(key_id)? {
            KeyRef::Id(id) => (caller.account_id.clone(), id),
            KeyRef::KeyArn { account_id, id } => (account_id, id),
            KeyRef::AliasName(name) => {
                let account = caller.account_id.clone();
                let id = self.alias_target(&account, &name).await?;
                (account, id)
            }
            KeyRef::AliasArn { account_id, name } => {
                let id = self.alias_target(&account_id, &name).await?;
                (account_id, id)
            }
        };
        let key = self.store.get_key(id).await?.ok_or_else(not_found)?;
        if key.account_id != account {
            return Err(not_found());
        }
        crate::audit::notes::key(&self.key_arn(&key.account_id, key.id));
        Ok(key)
    }

    /// The key an alias of `account_id` names.
    async fn alias_target(&self, account_id: &str, name: &str) -> Result<Uuid> {
        let alias = self.store.get_alias(account_id, name).await?;
        alias.map(|a| a.key_id).ok_or_else(|| {
            KmsError::NotFoundException(format!(
                "Alias '{}' is not found.",
                self.alias_arn(account_id, name)
            ))
        })
    }

    fn describe_ref(&self, caller: &Caller, key_id: &str) -> String {
        match self.parse_key_ref(key_id) {
            Ok(KeyRef::Id(id)) => self.key_arn(&caller.account_id, id),
            _ => key_id.to_owned(),
        }
    }

    /// Refuses a key that cannot serve a cryptographic operation.
    fn check_usable(&self, key: &KeyRecord) -> Result<()> {
        // Formatted only for a refusal: Enabled is the hot path.
        let arn = || self.key_arn(&key.account_id, key.id);
        match key.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::DisabledException(format!(
                "{} is disabled.",
                arn()
            ))),
            KeyState::PendingDeletion => {
                let arn = arn();
                // Such an attempt reveals data still encrypted under the key:
                // flagged and counted in its audit event.
                crate::audit::notes::pending_deletion_use(&arn);
                tracing::warn!(key_arn = %arn, "attempt to use a key pending deletion");
                Err(KmsError::KMSInvalidStateException(format!(
                    "{arn} is pending deletion."
                )))
            }
        }
    }

    /// Refuses a change to a key pending deletion.
    fn check_not_pending(&self, key: &KeyRecord) -> Result<()> {
        if key.state == KeyState::PendingDeletion {
            return Err(KmsError::KMSInvalidStateException(format!(
                "{} is pending deletion.",
                self.key_arn(&key.account_id, key.id)
            )));
        }
        Ok(())
    }
}

/// Pagination: a page size within `1..=max` (default `default`), and an
/// opaque marker that encodes where the previous page ended.
pub(crate) mod paging {
    use super::{KmsError, Result};

    /// The page size.
    pub fn limit(limit: Option<i32>, default: usize, max: usize) -> Result<usize> {
        match limit {
            None => Ok(default),
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    KmsError::validation(format!("limit must be between 1 and {max}, got {n}"))
                }),
        }
    }

    /// Encodes the position after `last`.
    pub fn marker(last: &str) -> String {
        data_encoding::BASE64URL_NOPAD.encode(last.as_bytes())
    }

    /// Decodes a marker made by [`marker`].
    pub fn position(marker: Option<&str>) -> Result<Option<String>> {
        let Some(m) = marker else { return Ok(None) };
        let bad = || KmsError::InvalidMarkerException(format!("marker '{m}' is not valid"));
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(m.as_bytes())
            .map_err(|_| bad())?;
        String::from_utf8(bytes).map(Some).map_err(|_| bad())
    }

    /// Decodes a marker whose position is a number (a sequence or version).
    pub fn numeric_position<N: std::str::FromStr>(marker: Option<&str>) -> Result<Option<N>> {
        match position(marker)? {
            None => Ok(None),
            Some(s) => s.parse::<N>().map(Some).map_err(|_| {
                KmsError::InvalidMarkerException(format!("marker '{s}' is not valid"))
            }),
        }
    }

    /// A page: the items, and the marker for the next page if there is one.
    /// `items` must have been fetched with `limit + 1`.
    pub fn page<T>(
        mut items: Vec<T>,
        limit: usize,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        if items.len() > limit {
            items.truncate(limit);
            let next = items.last().map(|t| marker(&key(t)));
            (items, next)
        } else {
            (items, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_alias_agrees_with_parse() {
        let id = Uuid::new_v4();
        for s in [
            "alias/orders".to_owned(),
            "arn:aws:kms:us-east-1:111122223333:alias/orders".to_owned(),
            "arn:aws:kms:us-east-1:111122223333:alias/a:b".to_owned(),
            id.to_string(),
            id.to_string().to_uppercase(),
            format!("arn:aws:kms:us-east-1:111122223333:key/{id}"),
        ] {
            let parsed = KeyRef::parse(&s, "aws", "us-east-1").unwrap();
            assert_eq!(KeyRef::names_alias(&s), parsed.is_alias(), "{s}");
        }
        for s in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "1234ABCD-12AB-34CD-56EF-1234567890AB",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:key/alias/x",
            "aliases/orders",
            "",
        ] {
            assert!(!KeyRef::names_alias(s), "{s}");
        }
        for s in [
            "alias/orders",
            "arn:aws:kms:us-east-1:111122223333:alias/orders",
            "arn:aws:kms:us-east-1:111122223333:alias/a:b",
        ] {
            assert!(KeyRef::names_alias(s), "{s}");
        }
    }

    #[test]
    fn key_refs() {
        let id = Uuid::new_v4();
        let p = |s: &str| KeyRef::parse(s, "aws", "us-east-1");
        assert_eq!(p(&id.to_string()).unwrap(), KeyRef::Id(id));
        assert_eq!(
            p(&id.to_string().to_uppercase()).unwrap(),
            KeyRef::Id(id),
            "case does not matter"
        );
        assert_eq!(
            p(&format!("arn:aws:kms:us-east-1:111122223333:key/{id}")).unwrap(),
            KeyRef::KeyArn {
                account_id: "111122223333".into(),
                id
            }
        );
        assert_eq!(
            p("alias/app").unwrap(),
            KeyRef::AliasName("alias/app".into())
        );
        assert_eq!(
            p("arn:aws:kms:us-east-1:111122223333:alias/app").unwrap(),
            KeyRef::AliasArn {
                account_id: "111122223333".into(),
                name: "alias/app".into()
            }
        );
        for bad in [
            "nope",
            "arn:aws:kms:eu-west-1:111122223333:key/x",
            &format!("arn:aws:kms:eu-west-1:111122223333:key/{id}"),
            &format!("arn:aws:kms:us-east-1:1111:key/{id}"),
            &format!("arn:aws:s3:us-east-1:111122223333:key/{id}"),
            // Other spellings of a UUID than the key id's own.
            &id.simple().to_string(),
            &id.braced().to_string(),
            &id.urn().to_string(),
            &format!("arn:aws:kms:us-east-1:111122223333:key/{}", id.simple()),
        ] {
            assert!(
                matches!(p(bad), Err(KmsError::NotFoundException(_))),
                "{bad}"
            );
        }
        assert!(matches!(p(""), Err(KmsError::ValidationException(_))));
    }

    #[test]
    fn paging_round_trip() {
        assert_eq!(paging::limit(None, 100, 1000).unwrap(), 100);
        assert!(paging::limit(Some(0), 100, 1000).is_err());
        assert!(paging::limit(Some(1001), 100, 1000).is_err());
        let m = paging::marker("abc");
        assert_eq!(paging::position(Some(&m)).unwrap().as_deref(), Some("abc"));
        assert!(matches!(
            paging::position(Some("!!")),
            Err(KmsError::InvalidMarkerException(_))
        ));
        let (items, next) = paging::page(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(items, vec![1, 2]);
        assert_eq!(
            paging::position(next.as_deref()).unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(paging::page(vec![1, 2], 2, |n| n.to_string()).1, None);
    }
}
