//! The records the domain keeps: accounts, users, access keys, keys and
//! their versions, aliases and tags. Plain data shared by `kms` and `store`;
//! no behaviour beyond naming and state checks.

use uuid::Uuid;

use crate::clock::Timestamp;

/// The account whose root is the operator: it alone may create accounts.
pub const OPERATOR_ACCOUNT: &str = "000000000000";

/// An account: every resource belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// 12 digits.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
}

/// An IAM-style user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account it belongs to.
    pub account_id: String,
    /// Its name, unique in the account.
    pub name: String,
    /// A stable unique id (`AIDA...`).
    pub user_id: String,
    /// Its IAM path (`/` by default).
    pub path: String,
    /// When it was created.
    pub created: Timestamp,
}

/// Whether an access key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKeyStatus {
    /// It authenticates.
    Active,
    /// It is kept but does not authenticate.
    Inactive,
}

impl AccessKeyStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Active" => Some(Self::Active),
            "Inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// A stored access key. The secret is kept wrapped under the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// `AKIA` and 16 characters.
    pub access_key_id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// The user it belongs to; `None` for the account's root.
    pub user_name: Option<String>,
    /// The secret access key, wrapped (see `crypto::wrap::wrap_credential`).
    pub wrapped_secret: Vec<u8>,
    /// Whether it authenticates.
    pub status: AccessKeyStatus,
    /// When it was created.
    pub created: Timestamp,
}

/// A key's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Kept, but serves no cryptographic operation.
    Disabled,
    /// Scheduled for destruction; serves no cryptographic operation.
    PendingDeletion,
}

impl KeyState {
    /// AWS's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
        }
    }

    /// Parses AWS's name of a state.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Enabled" => Some(Self::Enabled),
            "Disabled" => Some(Self::Disabled),
            "PendingDeletion" => Some(Self::PendingDeletion),
            _ => None,
        }
    }
}

/// How a key version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationType {
    /// By the rotation schedule.
    Automatic,
    /// By `RotateKeyOnDemand`.
    OnDemand,
}

impl RotationType {
    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "AUTOMATIC",
            Self::OnDemand => "ON_DEMAND",
        }
    }

    /// Parses AWS's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AUTOMATIC" => Some(Self::Automatic),
            "ON_DEMAND" => Some(Self::OnDemand),
            _ => None,
        }
    }
}

/// A customer master key's metadata (its material is in [`KeyVersion`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key id.
    pub id: Uuid,
    /// The account that owns it.
    pub account_id: String,
    /// Free text, at most 8192 characters.
    pub description: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// When it was created.
    pub created: Timestamp,
    /// When it will be destroyed; set only while PendingDeletion.
    pub deletion_date: Option<Timestamp>,
    /// The waiting period chosen; set only while PendingDeletion.
    pub pending_window_days: Option<i32>,
    /// Whether automatic rotation is on.
    pub rotation_enabled: bool,
    /// The automatic rotation period; set only while rotation is on.
    pub rotation_period_days: Option<i32>,
    /// When automatic rotation will next add a version.
    pub next_rotation: Option<Timestamp>,
    /// The newest version of the material, used for new ciphertexts.
    pub current_version: u32,
    /// The key policy document (evaluated from issue 3 on).
    pub policy: String,
}

/// One version of a key's material, wrapped under the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// The key.
    pub key_id: Uuid,
    /// 1 for the original material, then one more per rotation.
    pub version: u32,
    /// `crypto::wrap::wrap_key_material` of the material.
    pub wrapped_material: Vec<u8>,
    /// When the version was made.
    pub created: Timestamp,
    /// How it was made; `None` for version 1.
    pub rotation_type: Option<RotationType>,
}

/// An alias: a friendly name for a key in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The account.
    pub account_id: String,
    /// `alias/...`.
    pub name: String,
    /// The key it points at.
    pub key_id: Uuid,
    /// When it was created.
    pub created: Timestamp,
    /// When it was last pointed at a key.
    pub updated: Timestamp,
}

/// A tag on a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// 1 to 128 characters, not starting with `aws:`.
    pub key: String,
    /// 0 to 256 characters.
    pub value: String,
}

/// A group of users, whose inline policies apply to its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The account.
    pub account_id: String,
    /// Its name, unique in the account regardless of case.
    pub name: String,
    /// A stable unique id (`AGPA...`).
    pub group_id: String,
    /// Its IAM path.
    pub path: String,
    /// When it was created.
    pub created: Timestamp,
}

/// A role: an identity that principals its trust policy names may assume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The account.
    pub account_id: String,
    /// Its name, unique in the account regardless of case.
    pub name: String,
    /// A stable unique id (`AROA...`).
    pub role_id: String,
    /// Its IAM path.
    pub path: String,
    /// Who may assume it (a policy document of kind Trust).
    pub trust_policy: String,
    /// Longest session, in seconds (3600 to 43200).
    pub max_session_secs: i32,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created: Timestamp,
}

/// What an inline identity policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    /// A user.
    User,
    /// A group.
    Group,
    /// A role.
    Role,
}

impl PrincipalType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Role => "role",
        }
    }
}

/// Temporary credentials issued by AssumeRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// `ASIA...`.
    pub access_key_id: String,
    /// The role's account.
    pub account_id: String,
    /// The role.
    pub role_name: String,
    /// The session name the caller chose.
    pub session_name: String,
    /// The secret, wrapped under the root key.
    pub wrapped_secret: Vec<u8>,
    /// SHA-256 of the session token.
    pub token_hash: Vec<u8>,
    /// Whether the session was opened with a valid TOTP code.
    pub mfa: bool,
    /// Who assumed the role.
    pub source_arn: String,
    /// When the credentials stop working.
    pub expires: Timestamp,
    /// When they were issued.
    pub created: Timestamp,
}

/// A user's TOTP device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDevice {
    /// The account.
    pub account_id: String,
    /// The user.
    pub user_name: String,
    /// Its serial (an ARN, as AWS's virtual devices have).
    pub serial: String,
    /// The TOTP secret, wrapped under the root key.
    pub wrapped_secret: Vec<u8>,
    /// The last time step whose code was accepted (codes are single-use).
    pub last_step: i64,
    /// When it was enrolled.
    pub created: Timestamp,
}

/// An operation a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantOperation {
    /// Decrypt.
    Decrypt,
    /// Encrypt.
    Encrypt,
    /// GenerateDataKey.
    GenerateDataKey,
    /// GenerateDataKeyWithoutPlaintext.
    GenerateDataKeyWithoutPlaintext,
    /// ReEncrypt, as the source key.
    ReEncryptFrom,
    /// ReEncrypt, as the destination key.
    ReEncryptTo,
    /// CreateGrant (no wider than the grant itself).
    CreateGrant,
    /// RetireGrant.
    RetireGrant,
    /// DescribeKey.
    DescribeKey,
}

impl GrantOperation {
    /// Every operation, in a fixed order.
    pub const ALL: [Self; 9] = [
        Self::Decrypt,
        Self::Encrypt,
        Self::GenerateDataKey,
        Self::GenerateDataKeyWithoutPlaintext,
        Self::ReEncryptFrom,
        Self::ReEncryptTo,
        Self::CreateGrant,
        Self::RetireGrant,
        Self::DescribeKey,
    ];

    /// AWS's name, which is also the action after `kms:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decrypt => "Decrypt",
            Self::Encrypt => "Encrypt",
            Self::GenerateDataKey => "GenerateDataKey",
            Self::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Self::ReEncryptFrom => "ReEncryptFrom",
            Self::ReEncryptTo => "ReEncryptTo",
            Self::CreateGrant => "CreateGrant",
            Self::RetireGrant => "RetireGrant",
            Self::DescribeKey => "DescribeKey",
        }
    }

    /// Parses AWS's name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether the operation takes an encryption context (and so can be
    /// constrained by one).
    pub fn takes_context(self) -> bool {
        !matches!(self, Self::DescribeKey)
    }
}

/// Encryption-context constraints of a grant (at most one kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantConstraints {
    /// The call's context must contain every pair.
    Subset(std::collections::BTreeMap<String, String>),
    /// The call's context must be exactly this.
    Equals(std::collections::BTreeMap<String, String>),
}

/// A grant: a narrow, revocable permission on one key for one grantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// 64 hex characters.
    pub grant_id: String,
    /// The key.
    pub key_id: uuid::Uuid,
    /// An optional name (empty if none); same name and parameters make
    /// CreateGrant idempotent.
    pub name: String,
    /// The principal ARN the grant allows.
    pub grantee: String,
    /// The principal ARN that may retire it (empty if none).
    pub retiring_principal: String,
    /// The account of the principal that created it.
    pub issuing_account: String,
    /// What it allows, sorted.
    pub operations: Vec<GrantOperation>,
    /// Encryption-context constraints.
    pub constraints: Option<GrantConstraints>,
    /// When it was created.
    pub created: Timestamp,
}
