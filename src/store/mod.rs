//! Persistence. [`Store`] is what the domain needs from a back end; the
//! SQLite implementation is in [`sqlite`]. A PostgreSQL back end for a fleet
//! of replicas would implement the same trait without touching `kms`.
//!
//! Read-modify-write operations take a closure that runs inside the write
//! transaction on the current row, so two concurrent state changes can never
//! both act on a stale copy.

pub mod sqlite;

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;

use async_trait::async_trait;
use uuid::Uuid;

use crate::audit::{AuditRecord, ChainRow};
use crate::clock::Timestamp;
use crate::error::KmsError;
use crate::model::{
    AccessKeyRecord, Account, Alias, Grant, Group, KeyRecord, KeyVersion, MfaDevice, PrincipalType,
    Role, SessionRecord, Tag, User,
};

tokio::task_local! {
    /// The API call being served; see [`one_transaction`].
    static CALL: RefCell<CallScope>;
}

/// What the store keeps about the call being served.
#[derive(Default)]
struct CallScope {
    /// The call's open transaction (the back end's own handle to it), once
    /// the call has written.
    transaction: Option<Box<dyn Any + Send>>,
    /// The call has recorded its event: later writes commit on their own.
    ended: bool,
    /// What to do once the call's writes are committed.
    after_commit: Vec<AfterCommit>,
}

/// Something to do once a call's writes are committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

/// Runs `call`, one API call, so that every write it makes and its audit
/// event commit in one transaction, or none of them does: a change can
/// never stand without the event that says who made it. Inside the scope a
/// write is applied at once, but stays uncommitted until
/// [`Store::append_audit`] records the call: the call gets the values its
/// writes return, and nobody (not even the call's own reads) sees the
/// writes before the commit. An event that cannot be written undoes the
/// call's writes, and so does a call that goes away without recording one.
/// Outside the scope every write commits on its own.
pub async fn one_transaction<F: Future>(call: F) -> F::Output {
    CALL.scope(RefCell::new(CallScope::default()), call).await
}

/// Runs `f` once the call's writes are committed (at once outside a call
/// or when the call has not written): for what must not happen before,
/// such as dropping a deleted credential's cached secret, which a
/// concurrent authentication could otherwise cache again from the row
/// still committed. Dropped if the call's writes are undone.
pub fn after_commit(f: impl FnOnce() + Send + 'static) {
    let mut f = Some(f);
    let _ = CALL.try_with(|scope| {
        let mut scope = scope.borrow_mut();
        if scope.transaction.is_some()
            && let Some(f) = f.take()
        {
            scope.after_commit.push(Box::new(f));
        }
    });
    if let Some(f) = f {
        f();
    }
}

/// Whether the task is serving a call inside [`one_transaction`] that has
/// not recorded its event yet.
fn in_call() -> bool {
    CALL.try_with(|scope| !scope.borrow().ended)
        .unwrap_or(false)
}

/// The call's open transaction, if the call has written and `T` is this
/// back end's handle to it.
fn call_transaction<T: Clone + 'static>() -> Option<T> {
    CALL.try_with(|scope| {
        let scope = scope.borrow();
        scope.transaction.as_ref()?.downcast_ref::<T>().cloned()
    })
    .ok()
    .flatten()
}

/// Keeps `handle` as the call's open transaction.
fn set_call_transaction<T: Send + 'static>(handle: T) {
    let _ = CALL.try_with(|scope| scope.borrow_mut().transaction = Some(Box::new(handle)));
}

/// Marks the call ended if it has written nothing (its event is on its
/// way): later writes commit on their own. A call with a transaction open
/// on another store is left to that store's event.
fn mark_call_ended() {
    let _ = CALL.try_with(|scope| {
        let mut scope = scope.borrow_mut();
        if scope.transaction.is_none() {
            scope.ended = true;
        }
    });
}

/// Ends the call (its event is on its way): takes its open transaction
/// and what was to run after its commit.
fn end_call<T: 'static>() -> Option<(T, Vec<AfterCommit>)> {
    CALL.try_with(|scope| {
        let mut scope = scope.borrow_mut();
        scope.ended = true;
        let after = std::mem::take(&mut scope.after_commit);
        let handle = scope.transaction.take()?.downcast::<T>().ok()?;
        Some((*handle, after))
    })
    .ok()
    .flatten()
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A batch could not be committed; every write in it failed.
    #[error("commit failed: {0}")]
    Commit(std::sync::Arc<rusqlite::Error>),
    /// The row would duplicate a unique name.
    #[error("{0} already exists")]
    Conflict(String),
    /// A stored value could not be read back (a bug or a damaged database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database is newer than this build.
    #[error("database schema version {found} is newer than this build's {supported}")]
    TooNew {
        /// Found in the file.
        found: i64,
        /// Known to this build.
        supported: i64,
    },
    /// Another open store (another kmsd, most likely) holds the database's lock.
    #[error("the database is in use by another kmsd: {} is locked", .0.display())]
    InUse(std::path::PathBuf),
    /// The database's lock file could not be opened or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is closed")]
    Closed,
    /// I/O on the data directory failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A read-modify-write closure refused the change.
    #[error(transparent)]
    Rejected(KmsError),
}

impl From<Error> for KmsError {
    fn from(e: Error) -> Self {
        match e {
            Error::Rejected(k) => k,
            Error::Conflict(what) => {
                KmsError::AlreadyExistsException(format!("{what} already exists"))
            }
            other => KmsError::internal(other),
        }
    }
}

/// Result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A change to a key row, checked and applied inside the write transaction.
pub type KeyChange = Box<dyn FnOnce(&mut KeyRecord) -> Result<(), KmsError> + Send>;

/// What the domain needs from persistence.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A value from the `meta` table.
    async fn get_meta(&self, name: &str) -> Result<Option<String>>;
    /// Sets a value in the `meta` table.
    async fn set_meta(&self, name: &str, value: &str) -> Result<()>;

    /// Creates an account with its root's first access key.
    async fn create_account(&self, account: Account, root_key: AccessKeyRecord) -> Result<()>;
    /// An account by id.
    async fn get_account(&self, id: &str) -> Result<Option<Account>>;

    /// Creates a user; `Conflict` if the name is taken in the account.
    async fn create_user(&self, user: User) -> Result<()>;
    /// A user by account and name.
    async fn get_user(&self, account_id: &str, name: &str) -> Result<Option<User>>;
    /// Deletes a user and its access keys; false if there was none.
    async fn delete_user(&self, account_id: &str, name: &str) -> Result<bool>;
    /// Users of an account in name order, after `after`.
    async fn list_users(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>>;

    /// Stores an access key unless its owner already has `max_per_owner`.
    async fn create_access_key(&self, key: AccessKeyRecord, max_per_owner: usize) -> Result<()>;
    /// An access key by id.
    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>>;
    /// The access keys of a user (or of the root, for `None`).
    async fn list_access_keys(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<AccessKeyRecord>>;
    /// Deletes an access key of the account; false if there was none.
    async fn delete_access_key(&self, account_id: &str, id: &str) -> Result<bool>;

    /// Creates a key with its first version and tags.
    async fn create_key(&self, key: KeyRecord, first: KeyVersion, tags: Vec<Tag>) -> Result<()>;
    /// A key by id, whatever its account.
    async fn get_key(&self, id: Uuid) -> Result<Option<KeyRecord>>;
    /// Keys of an account in id order, after `after`.
    async fn list_keys(
        &self,
        account_id: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>>;
    /// Applies `change` to the current row; returns the row as written.
    /// `NotFoundException` if there is no such key.
    async fn update_key(&self, id: Uuid, change: KeyChange) -> Result<KeyRecord>;
    /// Applies `change` (which must advance `current_version`) and stores the
    /// new version's wrapped material, in one transaction. With
    /// `on_demand_limit`, refuses (`LimitExceededException`, changing
    /// nothing) when the key already has that many on-demand versions.
    async fn rotate_key(
        &self,
        id: Uuid,
        change: KeyChange,
        make_version: VersionMaker,
        on_demand_limit: Option<u32>,
    ) -> Result<KeyRecord>;
    /// One version of a key's material.
    async fn get_key_version(&self, id: Uuid, version: u32) -> Result<Option<KeyVersion>>;
    /// Versions of a key in order, after `after`.
    async fn list_key_versions(
        &self,
        id: Uuid,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<KeyVersion>>;
    /// Destroys a key if it is still pending deletion with a date at or
    /// before `now`: every version of its material, its aliases and tags,
    /// securely deleted. Returns the destroyed key's account, if it
    /// destroyed one.
    async fn destroy_key_if_due(&self, id: Uuid, now: Timestamp) -> Result<Option<String>>;
    /// Keys pending deletion whose date is at or before `now`.
    async fn keys_due_for_deletion(&self, now: Timestamp) -> Result<Vec<Uuid>>;
    /// Keys with automatic rotation due at or before `now`.
    async fn keys_due_for_rotation(&self, now: Timestamp) -> Result<Vec<Uuid>>;

    /// Creates an alias; `Conflict` if the name is taken in the account.
    async fn create_alias(&self, alias: Alias) -> Result<()>;
    /// Points an existing alias at another key; false if there is none.
    async fn update_alias(
        &self,
        account_id: &str,
        name: &str,
        key_id: Uuid,
        now: Timestamp,
    ) -> Result<bool>;
    /// Deletes an alias; false if there was none.
    async fn delete_alias(&self, account_id: &str, name: &str) -> Result<bool>;
    /// An alias by account and name.
    async fn get_alias(&self, account_id: &str, name: &str) -> Result<Option<Alias>>;
    /// Aliases of an account (optionally of one key) in name order, after `after`.
    async fn list_aliases(
        &self,
        account_id: &str,
        key_id: Option<Uuid>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alias>>;

    /// Adds or replaces tags, refusing to go over `max` tags on the key.
    async fn put_tags(&self, key_id: Uuid, tags: Vec<Tag>, max: usize) -> Result<()>;
    /// Removes tags by key; absent ones are ignored.
    async fn remove_tags(&self, key_id: Uuid, keys: Vec<String>) -> Result<()>;
    /// Tags of a key in key order, after `after`.
    async fn list_tags(&self, key_id: Uuid, after: Option<&str>, limit: usize) -> Result<Vec<Tag>>;

    /// Creates a group; `Conflict` if the name is taken.
    async fn create_group(&self, group: Group) -> Result<()>;
    /// A group by name.
    async fn get_group(&self, account_id: &str, name: &str) -> Result<Option<Group>>;
    /// Deletes a group, its memberships and its inline policies.
    async fn delete_group(&self, account_id: &str, name: &str) -> Result<bool>;
    /// Adds a user to a group (idempotent).
    async fn add_user_to_group(&self, account_id: &str, group: &str, user: &str) -> Result<()>;
    /// Removes a user from a group; false if it was not a member.
    async fn remove_user_from_group(
        &self,
        account_id: &str,
        group: &str,
        user: &str,
    ) -> Result<bool>;
    /// The groups a user belongs to.
    async fn list_groups_for_user(&self, account_id: &str, user: &str) -> Result<Vec<Group>>;

    /// Creates a role; `Conflict` if the name is taken.
    async fn create_role(&self, role: Role) -> Result<()>;
    /// A role by name.
    async fn get_role(&self, account_id: &str, name: &str) -> Result<Option<Role>>;
    /// Deletes a role, its inline policies and its sessions.
    async fn delete_role(&self, account_id: &str, name: &str) -> Result<bool>;

    /// Creates or replaces an inline identity policy.
    async fn put_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()>;
    /// One inline identity policy's document.
    async fn get_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
    ) -> Result<Option<String>>;
    /// Deletes an inline identity policy; false if there was none.
    async fn delete_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
    ) -> Result<bool>;
    /// Every inline policy that applies to a user: its own and its groups'.
    async fn user_policies(&self, account_id: &str, user: &str) -> Result<Vec<String>>;
    /// Every inline policy of a role.
    async fn role_policies(&self, account_id: &str, role: &str) -> Result<Vec<String>>;

    /// Stores temporary credentials.
    async fn create_session(&self, session: SessionRecord) -> Result<()>;
    /// Temporary credentials by access key id.
    async fn get_session(&self, access_key_id: &str) -> Result<Option<SessionRecord>>;
    /// Deletes sessions that expired before `before`.
    async fn delete_expired_sessions(&self, before: Timestamp) -> Result<usize>;

    /// Enrols a user's TOTP device; `Conflict` if it has one.
    async fn create_mfa_device(&self, device: MfaDevice) -> Result<()>;
    /// A user's TOTP device.
    async fn get_mfa_device(&self, account_id: &str, user: &str) -> Result<Option<MfaDevice>>;
    /// Stores a grant unless the key already has `max_per_key`; if a grant
    /// with the same name and parameters exists, returns it instead.
    async fn create_grant(&self, grant: Grant, max_per_key: usize) -> Result<Grant>;
    /// A grant by id.
    async fn get_grant(&self, grant_id: &str) -> Result<Option<Grant>>;
    /// Grants of a key in id order after `after`, optionally filtered.
    async fn list_grants(
        &self,
        key_id: Uuid,
        grant_id: Option<&str>,
        grantee: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Grant>>;
    /// Grants, of any key, that `retiring_principal` may retire.
    async fn list_retirable_grants(
        &self,
        retiring_principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Grant>>;
    /// The grants of a key whose grantee is one of `grantees`.
    async fn grants_for(&self, key_id: Uuid, grantees: Vec<String>) -> Result<Vec<Grant>>;
    /// Deletes a grant; false if there was none.
    async fn delete_grant(&self, grant_id: &str) -> Result<bool>;

    /// Seals `record` into the hash chain (after every event committed
    /// before it) and stores it; returns its sequence number. Inside
    /// [`one_transaction`] it also ends the call: the call's writes commit
    /// with it, or not at all.
    async fn append_audit(&self, record: AuditRecord) -> Result<u64>;
    /// Events newest first, before sequence `before`, matching `filter`.
    async fn lookup_audit(
        &self,
        filter: AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>>;
    /// Stored events in chain order after sequence `after`, for verification.
    async fn audit_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainRow>>;
    /// The last pruned event's sequence and hash, if retention has pruned.
    async fn audit_anchor(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// Deletes events older than `before`, recording the hash at the cut.
    async fn prune_audit(&self, before: Timestamp) -> Result<usize>;
    /// A key's configuration versions after `after`, oldest first, at most
    /// `limit`: (version, account, time, JSON).
    async fn key_config_history(
        &self,
        key_id: Uuid,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, Timestamp, String)>>;
    /// The configuration version of a key in force at `at`, if it existed.
    async fn key_config_at(
        &self,
        key_id: Uuid,
        at: Timestamp,
    ) -> Result<Option<(u64, String, Timestamp, String)>>;

    /// Records that the code of `step` was used, if no code of that step or
    /// a later one was; returns false for a replayed code.
    async fn use_mfa_step(&self, account_id: &str, user: &str, step: i64) -> Result<bool>;
}

/// What LookupEvents filters on; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this account's events.
    pub account_id: Option<String>,
    /// From this time on (inclusive).
    pub start: Option<Timestamp>,
    /// Up to this time (inclusive).
    pub end: Option<Timestamp>,
    /// Events that touched this key ARN.
    pub key_arn: Option<String>,
    /// Events by this principal.
    pub principal_arn: Option<String>,
    /// Events of this operation.
    pub operation: Option<String>,
    /// Events with this outcome (`allowed`, `denied`, `failed`).
    pub outcome: Option<String>,
}

/// Makes the new version's record once the new version number is known
/// (inside the write transaction).
pub type VersionMaker = Box<dyn FnOnce(&KeyRecord) -> Result<KeyVersion, KmsError> + Send>;
