//! Authorization: DESIGN.md section 3's evaluation order, applied to every
//! call on a key, and the identity-policy check for calls on no key
//! (CreateKey, ListKeys, IAM operations).
//!
//! 0. A caller of another account asking for an operation AWS KMS keeps
//!    to the key's own account (managing the key rather than using it):
//!    denied, whatever the policies say.
//! 1. Any matching Deny, in the key policy or any identity policy of the
//!    caller (its own, its groups', its role's): denied.
//! 2. The root of the key's account: allowed (it owns everything in it).
//! 3. The key policy allows the caller directly: allowed, if the caller is of
//!    the key's account.
//! 4. The key policy allows the caller (directly or through its account),
//!    and an identity policy of the caller allows the action: allowed. For a
//!    caller of another account this is the only way in (its own root
//!    standing in for an identity policy): cross-account access is never
//!    implicit.
//! 5. A live grant names the caller (or its role) for this operation and
//!    its constraints admit the call's encryption context: allowed, even if
//!    an identity policy denies; only a key-policy Deny overrides a grant.
//! 6. Otherwise denied.
//!
//! Policies are compiled once per distinct document and kept in a bounded
//! cache keyed by the document's text, so a changed policy is never served
//! from a stale entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::Kms;
use crate::crypto::EncryptionContext;
use crate::error::{KmsError, Result};
use crate::identity::{Caller, Principal};
use crate::model::{GrantConstraints, GrantOperation, KeyRecord};
use crate::policy::{ConditionContext, Evaluation, Policy, PolicyKind, PrincipalInfo, Request};

/// Most compiled policies kept; the cache is cleared when it is full.
const CACHE_LIMIT: usize = 4096;

/// Compiled policies by kind, then by document text (looked up by `&str`,
/// so a hit costs no allocation).
#[derive(Default)]
pub(crate) struct PolicyCache(Mutex<[HashMap<String, Arc<Policy>>; 3]>);

fn kind_index(kind: PolicyKind) -> usize {
    match kind {
        PolicyKind::Key => 0,
        PolicyKind::Identity => 1,
        PolicyKind::Trust => 2,
    }
}

impl PolicyCache {
    fn lookup(&self, document: &str, kind: PolicyKind) -> Option<Arc<Policy>> {
        // The guard is never held across an await: this function is sync.
        let maps = self.0.lock().unwrap_or_else(|p| p.into_inner());
        maps.get(kind_index(kind))
            .and_then(|m| m.get(document))
            .map(Arc::clone)
    }

    fn insert(&self, document: &str, kind: PolicyKind, policy: Policy) -> Arc<Policy> {
        let compiled = Arc::new(policy);
        let mut maps = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = maps.get_mut(kind_index(kind)) {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(document.to_owned(), Arc::clone(&compiled));
        }
        compiled
    }

    /// The compiled form of a stored document.
    pub(crate) fn get(&self, document: &str, kind: PolicyKind) -> Result<Arc<Policy>> {
        if let Some(p) = self.lookup(document, kind) {
            return Ok(p);
        }
        // A stored document was validated on write; failing now is our bug.
        let policy = Policy::parse(document, kind).map_err(KmsError::internal)?;
        Ok(self.insert(document, kind, policy))
    }

    /// Compiles a document about to be stored, mapping errors to AWS's
    /// name; the compiled form is kept, so its first use does not parse it
    /// again.
    pub(crate) fn compile(&self, document: &str, kind: PolicyKind) -> Result<Arc<Policy>> {
        // A parameter below its minimum length, as AWS says it: not a
        // malformed document but a missing one.
        if document.is_empty() {
            return Err(KmsError::validation("policy must not be empty"));
        }
        if let Some(p) = self.lookup(document, kind) {
            return Ok(p);
        }
        let policy = Policy::parse(document, kind)
            .map_err(|e| KmsError::MalformedPolicyDocumentException(e.to_string()))?;
        Ok(self.insert(document, kind, policy))
    }
}

/// The caller as the policy evaluator sees it.
pub(crate) fn principal_info(caller: &Caller) -> PrincipalInfo {
    PrincipalInfo {
        arn: caller.arn.clone(),
        account_id: caller.account_id.clone(),
        role_arn: caller.role_arn(),
        is_root: caller.is_root(),
    }
}

/// The outcome of the evaluation order for one call.
pub(crate) enum Verdict {
    /// Allowed.
    Allow,
    /// Denied; `by_key_policy` when a Deny in the key policy matched, which
    /// nothing overrides.
    Deny {
        /// Whether the key policy's explicit Deny decided it.
        by_key_policy: bool,
        /// The error to return.
        error: KmsError,
    },
}

/// The identity policies' verdict combined.
#[derive(Debug, Default, Clone, Copy)]
struct Combined {
    deny: bool,
    allow: bool,
}

fn combine(evals: impl IntoIterator<Item = Evaluation>) -> Combined {
    evals
        .into_iter()
        .fold(Combined::default(), |c, e| Combined {
            deny: c.deny || e.explicit_deny,
            allow: c.allow || e.allow_direct,
        })
}

/// Whether AWS KMS lets a principal of another account perform `action`
/// on a key (the "Cross-account use: Yes" operations): using the key,
/// describing it and working with its grants. Managing a key (its state,
/// deletion, policy, description, tags, rotation, aliases) is for its own
/// account only, whatever its key policy allows another account.
fn cross_account_action(action: &str) -> bool {
    matches!(
        action,
        "Encrypt"
            | "Decrypt"
            | "ReEncryptFrom"
            | "ReEncryptTo"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "DescribeKey"
            | "CreateGrant"
            | "ListGrants"
            | "RevokeGrant"
            | "RetireGrant"
            | "GetKeyRotationStatus"
    )
}

/// The ARNs a grant may name to reach `caller`: its own, and its role's.
pub fn grantee_names(caller: &Caller) -> Vec<String> {
    let mut names = vec![caller.arn.clone()];
    names.extend(caller.role_arn());
    names
}

/// The first of `grants` (those naming the caller) that allows `op` under
/// the call's encryption context.
pub fn allowing_grant<'g>(
    grants: &'g [crate::model::Grant],
    op: GrantOperation,
    ctx: Option<&EncryptionContext>,
) -> Option<&'g crate::model::Grant> {
    grants
        .iter()
        .find(|g| g.operations.contains(&op) && constraints_allow(g.constraints.as_ref(), ctx))
}

/// Whether a grant's constraints admit the call's encryption context.
pub(crate) fn constraints_allow(
    c: Option<&GrantConstraints>,
    ctx: Option<&EncryptionContext>,
) -> bool {
    let empty = EncryptionContext::new();
    let ctx = ctx.unwrap_or(&empty).entries();
    match c {
        None => true,
        Some(GrantConstraints::Subset(m)) => m.iter().all(|(k, v)| ctx.get(k) == Some(v)),
        Some(GrantConstraints::Equals(m)) => ctx == m,
    }
}

/// Why a call was denied, in AWS's words.
fn denial(caller: &Caller, action: &str, resource: &str, why: &str) -> KmsError {
    KmsError::AccessDeniedException(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        caller.arn
    ))
}

/// The condition keys every request by `caller` at `now` has, with the
/// call's encryption context if it has one.
pub fn condition_context(
    now: crate::clock::Timestamp,
    caller: &Caller,
    ctx: Option<&EncryptionContext>,
) -> ConditionContext {
    let mut c = ConditionContext::new();
    c.set("aws:CurrentTime", now.to_rfc3339());
    c.set("aws:EpochTime", (now.0 / 1000).to_string());
    c.set(
        "aws:PrincipalArn",
        caller.role_arn().unwrap_or_else(|| caller.arn.clone()),
    );
    c.set("aws:PrincipalAccount", caller.account_id.clone());
    c.set("aws:userid", caller.user_id.clone());
    c.set("kms:CallerAccount", caller.account_id.clone());
    if let Some(ip) = caller.source_ip {
        c.set("aws:SourceIp", ip.to_string());
    }
    // As in AWS: present for temporary credentials only.
    if matches!(caller.principal, Principal::AssumedRole { .. }) {
        c.set("aws:MultiFactorAuthPresent", caller.mfa_present.to_string());
    }
    if let Principal::User { name } = &caller.principal {
        c.set("aws:username", name.clone());
    }
    if let Some(ctx) = ctx {
        for (k, v) in ctx.entries() {
            c.set(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        c.set_many(
            "kms:EncryptionContextKeys",
            ctx.entries().keys().cloned().collect(),
        );
    }
    c
}

/// A request's condition keys, built the first time a policy with a
/// `Condition` is evaluated. Most policies (the default key policy among
/// them) have none, and building the keys (a dozen lowercased names and
/// formatted values) cost more than evaluating such a policy.
pub(crate) enum Conditions<'a> {
    /// Built from the call on first use.
    Lazy {
        built: OnceLock<ConditionContext>,
        now: crate::clock::Timestamp,
        caller: &'a Caller,
        ctx: Option<&'a EncryptionContext>,
    },
    /// Built (and extended) by the caller.
    Ready(ConditionContext),
}

/// What a policy without conditions is evaluated against.
static NO_CONDITIONS: std::sync::LazyLock<ConditionContext> =
    std::sync::LazyLock::new(ConditionContext::new);

impl<'a> Conditions<'a> {
    /// The keys of a call by `caller` at `now` with encryption context
    /// `ctx`, built on first use.
    pub(crate) fn lazy(
        now: crate::clock::Timestamp,
        caller: &'a Caller,
        ctx: Option<&'a EncryptionContext>,
    ) -> Self {
        Self::Lazy {
            built: OnceLock::new(),
            now,
            caller,
            ctx,
        }
    }

    /// Keys already built (and extended by the caller).
    pub(crate) fn ready(context: ConditionContext) -> Self {
        Self::Ready(context)
    }

    /// The keys `policy` is evaluated against: none for a policy without
    /// conditions (which cannot tell the difference).
    fn for_policy(&self, policy: &Policy) -> &ConditionContext {
        if !policy.has_conditions() {
            return &NO_CONDITIONS;
        }
        match self {
            Self::Lazy {
                built,
                now,
                caller,
                ctx,
            } => built.get_or_init(|| condition_context(*now, caller, *ctx)),
            Self::Ready(context) => context,
        }
    }
}

impl Kms {
    /// The condition keys of a request now, built when first needed.
    pub(crate) fn conditions<'a>(
        &self,
        caller: &'a Caller,
        ctx: Option<&'a EncryptionContext>,
    ) -> Conditions<'a> {
        Conditions::lazy(self.clock.now(), caller, ctx)
    }

    /// The condition keys of a request now.
    pub(crate) fn condition_context(
        &self,
        caller: &Caller,
        ctx: Option<&EncryptionContext>,
    ) -> ConditionContext {
        condition_context(self.clock.now(), caller, ctx)
    }

    /// The compiled identity policies that apply to the caller.
    async fn identity_policies(&self, caller: &Caller) -> Result<Vec<Arc<Policy>>> {
        let docs = match &caller.principal {
            Principal::Root => return Ok(Vec::new()),
            Principal::User { name } => self.store.user_policies(&caller.account_id, name).await?,
            Principal::AssumedRole { role_name, .. } => {
                self.store
                    .role_policies(&caller.account_id, role_name)
                    .await?
            }
        };
        docs.iter()
            .map(|d| self.policies.get(d, PolicyKind::Identity))
            .collect()
    }

    /// Decides `kms:<action>` on `key` for `caller` under `key_policy`, with
    /// the condition keys of `context`; `ctx` is the call's encryption
    /// context (for grant constraints).
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        key_policy: &Policy,
        context: &Conditions<'_>,
        ctx: Option<&EncryptionContext>,
    ) -> Result<()> {
        match self
            .verdict(caller, action, key, key_policy, context, ctx)
            .await?
        {
            Verdict::Allow => Ok(()),
            Verdict::Deny { error, .. } => Err(error),
        }
    }

    /// The decision with its reason, for callers that may try another way
    /// in (CreateGrant through a grant) unless the key policy denied.
    pub(crate) async fn verdict(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        key_policy: &Policy,
        context: &Conditions<'_>,
        ctx: Option<&EncryptionContext>,
    ) -> Result<Verdict> {
        let full_action = format!("kms:{action}");
        let resource = self.key_arn(&key.account_id, key.id);
        let principal = principal_info(caller);
        let evaluate = |p: &Policy| {
            p.evaluate(&Request {
                principal: &principal,
                action: &full_action,
                resource: &resource,
                context: context.for_policy(p),
            })
        };
        if caller.account_id != key.account_id && !cross_account_action(action) {
            return Ok(Verdict::Deny {
                by_key_policy: false,
                error: denial(
                    caller,
                    &full_action,
                    &resource,
                    "because this operation cannot be used on a key of another account",
                ),
            });
        }
        let kp = evaluate(key_policy);
        if kp.explicit_deny {
            return Ok(Verdict::Deny {
                by_key_policy: true,
                error: denial(
                    caller,
                    &full_action,
                    &resource,
                    "with an explicit deny in a resource-based policy",
                ),
            });
        }
        let ids = combine(
            self.identity_policies(caller)
                .await?
                .iter()
                .map(|p| evaluate(p)),
        );
        if !ids.deny {
            let same_account = caller.account_id == key.account_id;
            if same_account && (caller.is_root() || kp.allow_direct) {
                return Ok(Verdict::Allow);
            }
            if (kp.allow_direct || kp.allow_account) && (ids.allow || caller.is_root()) {
                return Ok(Verdict::Allow);
            }
        }
        // A grant allows its operations to its grantee whatever the
        // grantee's identity policies say; only the key policy's deny
        // (above) overrides it. CreateGrant through a grant is decided by
        // `create_grant`, which must also check the new grant's width.
        if action != "CreateGrant" && self.grant_allows(caller, action, key, ctx).await? {
            return Ok(Verdict::Allow);
        }
        let why = if ids.deny {
            "with an explicit deny in an identity-based policy"
        } else if kp.allow_direct || kp.allow_account {
            "because no identity-based policy allows the action"
        } else {
            "because no resource-based policy allows the action"
        };
        Ok(Verdict::Deny {
            by_key_policy: false,
            error: denial(caller, &full_action, &resource, why),
        })
    }

    /// Whether a live grant on `key` gives `caller` the operation `action`
    /// under the call's encryption context.
    async fn grant_allows(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        ctx: Option<&EncryptionContext>,
    ) -> Result<bool> {
        let Some(op) = GrantOperation::parse(action) else {
            return Ok(false);
        };
        let grants = self.store.grants_for(key.id, grantee_names(caller)).await?;
        let allowing = allowing_grant(&grants, op, ctx);
        if let Some(g) = allowing {
            crate::audit::notes::grant(&g.grant_id);
        }
        Ok(allowing.is_some())
    }

    /// Whether `caller` may perform `kms:<action>` on `key`; `ctx` is the
    /// call's encryption context, for `kms:EncryptionContext:` conditions.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        key: &KeyRecord,
        ctx: Option<&EncryptionContext>,
    ) -> Result<()> {
        let policy = self.policies.get(&key.policy, PolicyKind::Key)?;
        let context = self.conditions(caller, ctx);
        self.decide(caller, action, key, &policy, &context, ctx)
            .await
    }

    /// The lockout check: whether `caller` could still call PutKeyPolicy on
    /// `key` if its policy were `new_policy`.
    pub(crate) async fn would_keep_access(
        &self,
        caller: &Caller,
        key: &KeyRecord,
        new_policy: &Policy,
    ) -> bool {
        let context = self.conditions(caller, None);
        self.decide(caller, "PutKeyPolicy", key, new_policy, &context, None)
            .await
            .is_ok()
    }

    /// Whether `caller` may perform `action` (e.g. `kms:CreateKey`,
    /// `iam:CreateUser`) on `resource` by its identity policies alone: the
    /// account's root may; anyone else needs an Allow and no Deny.
    pub(crate) async fn authorize_identity(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Result<()> {
        self.authorize_identity_unless_denied(caller, action, resource, false)
            .await
    }

    /// [`Self::authorize_identity`] for an action `caller` may take without
    /// an Allow when `implicit` (a user managing its own credentials): an
    /// explicit Deny still refuses it, so that a Deny-all policy
    /// quarantines a user, who cannot then mint itself new credentials.
    pub(crate) async fn authorize_identity_unless_denied(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        implicit: bool,
    ) -> Result<()> {
        let principal = principal_info(caller);
        let context = self.conditions(caller, None);
        let ids = combine(self.identity_policies(caller).await?.iter().map(|p| {
            p.evaluate(&Request {
                principal: &principal,
                action,
                resource,
                context: context.for_policy(p),
            })
        }));
        if ids.deny {
            return Err(denial(
                caller,
                action,
                resource,
                "with an explicit deny in an identity-based policy",
            ));
        }
        if implicit || caller.is_root() || ids.allow {
            return Ok(());
        }
        Err(denial(
            caller,
            action,
            resource,
            "because no identity-based policy allows the action",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_built_only_for_policies_that_read_them() {
        let caller = Caller {
            account_id: "111122223333".into(),
            arn: "arn:aws:iam::111122223333:user/app".into(),
            principal: Principal::User { name: "app".into() },
            user_id: "AIDAEXAMPLE".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            source_ip: None,
            mfa_present: false,
            session_expiry: None,
        };
        let plain = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        let conditional = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
                "Condition":{"StringEquals":{"aws:username":"app"}}}]}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        let lazy = Conditions::lazy(crate::clock::Timestamp(1_700_000_000_000), &caller, None);
        assert_eq!(lazy.for_policy(&plain).get("aws:username"), None);
        assert_eq!(
            lazy.for_policy(&conditional).get("aws:username"),
            Some(&["app".to_owned()][..])
        );
        let mut extended = ConditionContext::new();
        extended.set("kms:GranteePrincipal", "arn:aws:iam::111122223333:role/r");
        let ready = Conditions::ready(extended);
        assert!(
            ready
                .for_policy(&conditional)
                .get("kms:GranteePrincipal")
                .is_some()
        );
    }
}
