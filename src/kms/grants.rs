//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant and
//! RevokeGrant. A grant lets one principal (possibly of another account) use
//! a key for a few operations, optionally only under certain encryption
//! contexts, without editing the key policy; it is honoured in
//! `authz::decide` as soon as it is stored.
//!
//! A grant token is `kgt1.<grant id>.<tag>`, the tag a keyed PRF of the
//! grant id under the root key: the daemon recognises tokens it issued
//! without storing them, and can issue the same token again for the same
//! grant.

use std::collections::BTreeMap;

use super::authz::{Verdict, grantee_names};
use super::{Kms, paging};
use crate::crypto::labels;
use crate::crypto::secret::ct_eq;
use crate::error::{KmsError, Result};
use crate::identity::Caller;
use crate::model::{Grant, GrantConstraints, GrantOperation, KeyRecord};
use crate::policy::PolicyKind;

const TOKEN_PREFIX: &str = "kgt1";

/// What CreateGrant answers.
#[derive(Debug, Clone)]
pub struct GrantCreated {
    /// The grant (an existing one, for a repeated named request).
    pub grant: Grant,
    /// A token usable at once in `grant_tokens`.
    pub token: String,
}

/// The arguments of CreateGrant.
#[derive(Debug, Clone, Default)]
pub struct CreateGrantInput {
    /// The key.
    pub key_id: String,
    /// Who the grant is for.
    pub grantee: String,
    /// Who may retire it.
    pub retiring_principal: Option<String>,
    /// What it allows.
    pub operations: Vec<GrantOperation>,
    /// Context subset constraint.
    pub context_subset: BTreeMap<String, String>,
    /// Context equality constraint.
    pub context_equals: BTreeMap<String, String>,
    /// Optional name.
    pub name: Option<String>,
}

/// Whether `arn` is a principal a grant can name.
fn is_grant_principal(arn: &str) -> bool {
    // AWS's constraint on GranteePrincipal and RetiringPrincipal: 1 to 256
    // characters of `[\w+=,.@:/-]`. No wildcard, control or bidi character
    // reaches the key owner's grant lists, trail or history, and no grantee
    // can make them megabytes long.
    if arn.len() > 256
        || !arn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
    {
        return false;
    }
    if let Some(rest) = arn.strip_prefix("arn:aws:sts::") {
        return rest.split_once(':').is_some_and(|(acct, res)| {
            super::is_account_id(acct)
                && res
                    .strip_prefix("assumed-role/")
                    .is_some_and(|r| r.split('/').count() == 2)
        });
    }
    let Some(rest) = arn.strip_prefix("arn:aws:iam::") else {
        return false;
    };
    rest.split_once(':').is_some_and(|(acct, res)| {
        super::is_account_id(acct)
            && (res == "root"
                || res.strip_prefix("user/").is_some_and(|n| !n.is_empty())
                || res.strip_prefix("role/").is_some_and(|n| !n.is_empty()))
    })
}

fn is_grant_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Whether a grant with `child` constraints is at least as strict as one
/// with `parent` constraints.
fn narrower(parent: Option<&GrantConstraints>, child: Option<&GrantConstraints>) -> bool {
    match (parent, child) {
        (None, _) => true,
        (Some(_), None) => false,
        (
            Some(GrantConstraints::Subset(p)),
            Some(GrantConstraints::Subset(c) | GrantConstraints::Equals(c)),
        ) => p.iter().all(|(k, v)| c.get(k) == Some(v)),
        (Some(GrantConstraints::Equals(p)), Some(GrantConstraints::Equals(c))) => p == c,
        (Some(GrantConstraints::Equals(_)), Some(GrantConstraints::Subset(_))) => false,
    }
}

impl Kms {
    /// The token of a grant.
    fn grant_token(&self, grant_id: &str) -> String {
        let tag = self.root.tag(labels::GRANT_TOKEN_V1, grant_id.as_bytes());
        format!(
            "{TOKEN_PREFIX}.{grant_id}.{}",
            data_encoding::BASE64URL_NOPAD.encode(&tag)
        )
    }

    /// The grant id a token names, if the token is one this daemon issued.
    fn parse_grant_token(&self, token: &str) -> Result<String> {
        let bad = || KmsError::InvalidGrantTokenException("the grant token is not valid".into());
        let mut parts = token.split('.');
        let (Some(TOKEN_PREFIX), Some(id), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !is_grant_id(id) {
            return Err(bad());
        }
        let expected = self.root.tag(labels::GRANT_TOKEN_V1, id.as_bytes());
        let given = data_encoding::BASE64URL_NOPAD
            .decode(tag.as_bytes())
            .map_err(|_| bad())?;
        if !ct_eq(&given, &expected) {
            return Err(bad());
        }
        Ok(id.to_owned())
    }

    /// Refuses grant tokens this daemon did not issue. (A valid token adds
    /// nothing else: a stored grant is effective at once.)
    pub(crate) fn check_grant_tokens(&self, tokens: &[String]) -> Result<()> {
        tokens
            .iter()
            .try_for_each(|t| self.parse_grant_token(t).map(drop))
    }

    /// CreateGrant.
    pub async fn create_grant(
        &self,
        caller: &Caller,
        input: CreateGrantInput,
        grant_tokens: &[String],
    ) -> Result<GrantCreated> {
        self.check_grant_tokens(grant_tokens)?;
        let mut ops = input.operations.clone();
        ops.sort();
        ops.dedup();
        if ops.is_empty() {
            return Err(KmsError::validation(
                "operations must name at least one operation",
            ));
        }
        if !is_grant_principal(&input.grantee) {
            return Err(KmsError::validation(format!(
                "grantee_principal '{}' is not a principal ARN",
                input.grantee
            )));
        }
        if let Some(r) = &input.retiring_principal
            && !is_grant_principal(r)
        {
            return Err(KmsError::validation(format!(
                "retiring_principal '{r}' is not a principal ARN"
            )));
        }
        let constraints = match (
            input.context_subset.is_empty(),
            input.context_equals.is_empty(),
        ) {
            (true, true) => None,
            (false, true) => Some(GrantConstraints::Subset(input.context_subset.clone())),
            (true, false) => Some(GrantConstraints::Equals(input.context_equals.clone())),
            (false, false) => {
                return Err(KmsError::validation(
                    "give encryption_context_subset or encryption_context_equals, not both",
                ));
            }
        };
        if let Some(GrantConstraints::Subset(c) | GrantConstraints::Equals(c)) = &constraints {
            // The same rules as a call's context: a constraint that no
            // valid call could meet is refused, not stored.
            super::crypto_ops::validate_context_and_tokens(&c.clone().into(), &[])?;
        }
        if constraints.is_some() && ops.iter().any(|o| !o.takes_context()) {
            return Err(KmsError::validation(
                "encryption context constraints apply only to operations that take an encryption context",
            ));
        }
        let name = input.name.clone().unwrap_or_default();
        // Given, a name has 1 to 256 characters (AWS's length constraint).
        if input.name.as_ref().is_some_and(String::is_empty)
            || name.len() > 256
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
        {
            return Err(KmsError::validation(
                "name must be 1 to 256 characters of letters, digits and :/_-",
            ));
        }
        self.refuse_alias(&input.key_id)?;
        let key = self.find_key(caller, &input.key_id).await?;
        // Authorized first: a caller who may not create grants on the key
        // learns nothing of its state.
        self.authorize_create_grant(caller, &key, &input, &ops, constraints.as_ref())
            .await?;
        self.check_usable(&key)?;
        let id_bytes = crate::crypto::rng::array::<32>()?;
        let grant = Grant {
            grant_id: id_bytes.iter().map(|b| format!("{b:02x}")).collect(),
            key_id: key.id,
            name,
            grantee: input.grantee,
            retiring_principal: input.retiring_principal.unwrap_or_default(),
            issuing_account: caller.account_id.clone(),
            operations: ops,
            constraints,
            created: self.clock.now(),
        };
        let stored = self
            .store
            .create_grant(grant, self.settings.max_grants_per_key)
            .await?;
        Ok(GrantCreated {
            token: self.grant_token(&stored.grant_id),
            grant: stored,
        })
    }

    /// kms:CreateGrant by policy, or through a grant of the caller's that
    /// allows CreateGrant and is at least as wide as the new one.
    async fn authorize_create_grant(
        &self,
        caller: &Caller,
        key: &KeyRecord,
        input: &CreateGrantInput,
        ops: &[GrantOperation],
        constraints: Option<&GrantConstraints>,
    ) -> Result<()> {
        let policy = self.policies.get(&key.policy, PolicyKind::Key)?;
        let mut context = self.condition_context(caller, None);
        context.set_many(
            "kms:GrantOperations",
            ops.iter().map(|o| o.as_str().to_owned()).collect(),
        );
        context.set("kms:GranteePrincipal", input.grantee.clone());
        if let Some(r) = &input.retiring_principal {
            context.set("kms:RetiringPrincipal", r.clone());
        }
        context.set("kms:GrantIsForAWSResource", "false");
        let denied = match self
            .verdict(
                caller,
                "CreateGrant",
                key,
                &policy,
                &super::authz::Conditions::ready(context),
                None,
            )
            .await?
        {
            Verdict::Allow => return Ok(()),
            Verdict::Deny {
                by_key_policy: true,
                error,
            } => return Err(error),
            Verdict::Deny {
                by_key_policy: false,
                error,
            } => error,
        };
        let parents = self.store.grants_for(key.id, grantee_names(caller)).await?;
        let allowed = parents.iter().any(|p| {
            p.operations.contains(&GrantOperation::CreateGrant)
                && ops.iter().all(|o| p.operations.contains(o))
                && narrower(p.constraints.as_ref(), constraints)
        });
        if allowed { Ok(()) } else { Err(denied) }
    }

    /// ListGrants.
    pub async fn list_grants(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i32>,
        marker: Option<&str>,
        grant_id: Option<&str>,
        grantee: Option<&str>,
    ) -> Result<(KeyRecord, Vec<Grant>, Option<String>)> {
        let limit = paging::limit(limit, 50, 100)?;
        let after = paging::position(marker)?;
        if let Some(g) = grant_id
            && !is_grant_id(g)
        {
            return Err(KmsError::InvalidGrantIdException(format!(
                "grant id '{g}' is not valid"
            )));
        }
        let key = self.resolve_key_only(caller, key_id, "ListGrants").await?;
        let grants = self
            .store
            .list_grants(key.id, grant_id, grantee, after.as_deref(), limit + 1)
            .await?;
        let (grants, next) = paging::page(grants, limit, |g| g.grant_id.clone());
        Ok((key, grants, next))
    }

    /// ListRetirableGrants: the grants `retiring_principal` (of the caller's
    /// account) may retire.
    pub async fn list_retirable_grants(
        &self,
        caller: &Caller,
        retiring_principal: &str,
        limit: Option<i32>,
        marker: Option<&str>,
    ) -> Result<(Vec<Grant>, Option<String>)> {
        let limit = paging::limit(limit, 50, 100)?;
        let after = paging::position(marker)?;
        if !is_grant_principal(retiring_principal) {
            return Err(KmsError::validation(format!(
                "'{retiring_principal}' is not a principal ARN"
            )));
        }
        self.authorize_identity(caller, "kms:ListRetirableGrants", "*")
            .await?;
        let account = retiring_principal.split(':').nth(4).unwrap_or_default();
        if account != caller.account_id {
            return Err(KmsError::AccessDeniedException(format!(
                "User: {} is not authorized to list the grants of {retiring_principal}, a principal of another account",
                caller.arn
            )));
        }
        let grants = self
            .store
            .list_retirable_grants(retiring_principal, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(grants, limit, |g| g.grant_id.clone()))
    }

    /// RetireGrant, by token or by key and grant id. The caller must be the
    /// grant's retiring principal, its grantee when the grant includes
    /// RetireGrant, or the root of the account that created it.
    pub async fn retire_grant(
        &self,
        caller: &Caller,
        grant_token: Option<&str>,
        key_id: Option<&str>,
        grant_id: Option<&str>,
    ) -> Result<()> {
        if let Some(k) = key_id {
            // Before any lookup, as for the other grant operations.
            self.refuse_alias(k)?;
        }
        let id = match (grant_token, key_id, grant_id) {
            (Some(t), _, _) => self.parse_grant_token(t)?,
            (None, Some(_), Some(g)) if is_grant_id(g) => g.to_owned(),
            (None, Some(_), Some(g)) => {
                return Err(KmsError::InvalidGrantIdException(format!(
                    "grant id '{g}' is not valid"
                )));
            }
            _ => {
                return Err(KmsError::validation(
                    "give grant_token, or key_id and grant_id",
                ));
            }
        };
        let not_found = || KmsError::NotFoundException(format!("Grant {id} does not exist."));
        let grant = self.store.get_grant(&id).await?.ok_or_else(not_found)?;
        if let Some(k) = key_id {
            let key = self.find_key(caller, k).await?;
            if key.id != grant.key_id {
                return Err(not_found());
            }
        }
        let names = grantee_names(caller);
        // As in AWS: the retiring principal, the grantee when the grant allows
        // RetireGrant, or the account in which the grant was created.
        let may = names.contains(&grant.retiring_principal)
            || (caller.is_root() && caller.account_id == grant.issuing_account)
            || (names.contains(&grant.grantee)
                && grant.operations.contains(&GrantOperation::RetireGrant));
        if !may {
            return Err(KmsError::AccessDeniedException(format!(
                "User: {} is not authorized to perform: kms:RetireGrant on grant {id}",
                caller.arn
            )));
        }
        if !self.store.delete_grant(&id).await? {
            return Err(not_found());
        }
        Ok(())
    }

    /// RevokeGrant: needs kms:RevokeGrant on the key.
    pub async fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<()> {
        if !is_grant_id(grant_id) {
            return Err(KmsError::InvalidGrantIdException(format!(
                "grant id '{grant_id}' is not valid"
            )));
        }
        let key = self.resolve_key_only(caller, key_id, "RevokeGrant").await?;
        let not_found = || KmsError::NotFoundException(format!("Grant {grant_id} does not exist."));
        let grant = self
            .store
            .get_grant(grant_id)
            .await?
            .ok_or_else(not_found)?;
        if grant.key_id != key.id || !self.store.delete_grant(grant_id).await? {
            return Err(not_found());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::authz::constraints_allow;

    /// Whether `g` would admit an operation under `ctx`.
    fn admits(g: &Grant, op: GrantOperation, ctx: &crate::crypto::EncryptionContext) -> bool {
        g.operations.contains(&op) && constraints_allow(g.constraints.as_ref(), Some(ctx))
    }
    use crate::crypto::EncryptionContext;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn constraints() {
        let mut g = Grant {
            grant_id: "0".repeat(64),
            key_id: uuid::Uuid::nil(),
            name: String::new(),
            grantee: "arn:aws:iam::111122223333:user/a".into(),
            retiring_principal: String::new(),
            issuing_account: "111122223333".into(),
            operations: vec![GrantOperation::Decrypt],
            constraints: Some(GrantConstraints::Subset(map(&[("dept", "fin")]))),
            created: crate::clock::Timestamp(0),
        };
        let ctx = |p: &[(&str, &str)]| EncryptionContext::from(map(p));
        assert!(admits(
            &g,
            GrantOperation::Decrypt,
            &ctx(&[("dept", "fin"), ("x", "y")])
        ));
        assert!(!admits(
            &g,
            GrantOperation::Decrypt,
            &ctx(&[("dept", "hr")])
        ));
        assert!(!admits(&g, GrantOperation::Decrypt, &ctx(&[])));
        assert!(!admits(
            &g,
            GrantOperation::Encrypt,
            &ctx(&[("dept", "fin")])
        ));
        g.constraints = Some(GrantConstraints::Equals(map(&[("dept", "fin")])));
        assert!(admits(
            &g,
            GrantOperation::Decrypt,
            &ctx(&[("dept", "fin")])
        ));
        assert!(!admits(
            &g,
            GrantOperation::Decrypt,
            &ctx(&[("dept", "fin"), ("x", "y")])
        ));
    }

    #[test]
    fn narrowing() {
        let sub = |p: &[(&str, &str)]| Some(GrantConstraints::Subset(map(p)));
        let eq = |p: &[(&str, &str)]| Some(GrantConstraints::Equals(map(p)));
        assert!(narrower(None, None));
        assert!(narrower(None, sub(&[("a", "1")]).as_ref()));
        assert!(!narrower(sub(&[("a", "1")]).as_ref(), None));
        assert!(narrower(
            sub(&[("a", "1")]).as_ref(),
            sub(&[("a", "1"), ("b", "2")]).as_ref()
        ));
        assert!(!narrower(
            sub(&[("a", "1")]).as_ref(),
            sub(&[("b", "2")]).as_ref()
        ));
        assert!(narrower(
            sub(&[("a", "1")]).as_ref(),
            eq(&[("a", "1")]).as_ref()
        ));
        assert!(narrower(
            eq(&[("a", "1")]).as_ref(),
            eq(&[("a", "1")]).as_ref()
        ));
        assert!(!narrower(
            eq(&[("a", "1")]).as_ref(),
            sub(&[("a", "1")]).as_ref()
        ));
    }

    #[test]
    fn principals_and_ids() {
        assert!(is_grant_principal("arn:aws:iam::111122223333:role/app"));
        assert!(is_grant_principal("arn:aws:iam::111122223333:user/a"));
        assert!(is_grant_principal("arn:aws:iam::111122223333:root"));
        assert!(is_grant_principal(
            "arn:aws:sts::111122223333:assumed-role/app/s"
        ));
        assert!(!is_grant_principal("arn:aws:iam::1111:role/app"));
        assert!(!is_grant_principal("alice"));
        assert!(is_grant_id(&"a".repeat(64)));
        assert!(!is_grant_id(&"A".repeat(64)));
        assert!(!is_grant_id("abc"));
    }
}
