//! AWS JSON policy documents: parsing (once, on write) into a compiled form,
//! and evaluation against a request. Pure: no I/O, no clock, no store.
//!
//! This module owns the policy language: which documents are valid for each
//! [`PolicyKind`], and what one policy says about one [`Request`]. It does
//! not decide access: [`Policy::evaluate`] reports an [`Evaluation`] (any
//! explicit deny, any direct allow, any account-level allow) and the caller
//! combines the key policy, identity policies and grants in the order of
//! DESIGN.md section 3. Nothing here reads the clock or the network: the
//! caller puts `aws:CurrentTime`, `aws:SourceIp` and the other condition
//! keys into a [`ConditionContext`].
//!
//! - `parse`: document shape, per-kind rules, principals and actions.
//! - `condition`: condition operators, typed values, [`ConditionContext`].
//! - `eval`: the compiled statement and what "matches" means.
//! - `wildcard`: `*`/`?` patterns, compiled once, matched without
//!   backtracking blow-up.
//!
//! Not supported: policy variables (`${aws:username}` is matched literally)
//! and wildcards in principal ARNs (refused at parse time).
//!
//! ```
//! use kmsd::policy::{ConditionContext, Policy, PolicyKind, PrincipalInfo, Request};
//!
//! let policy = Policy::parse(
//!     r#"{"Version": "2012-10-17", "Statement": [{
//!         "Effect": "Allow",
//!         "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
//!         "Action": ["kms:Encrypt", "kms:GenerateDataKey*"],
//!         "Resource": "*",
//!         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
//!     }]}"#,
//!     PolicyKind::Key,
//! )?;
//! let alice = PrincipalInfo {
//!     arn: "arn:aws:iam::111122223333:user/alice".into(),
//!     account_id: "111122223333".into(),
//!     role_arn: None,
//!     is_root: false,
//! };
//! let mut context = ConditionContext::new();
//! context.set("aws:SourceIp", "10.1.2.3");
//! let outcome = policy.evaluate(&Request {
//!     principal: &alice,
//!     action: "kms:GenerateDataKeyWithoutPlaintext",
//!     resource: "arn:aws:kms:us-east-1:111122223333:key/k1",
//!     context: &context,
//! });
//! assert!(outcome.allow_direct && !outcome.explicit_deny);
//! # Ok::<(), kmsd::policy::ParseError>(())
//! ```

mod condition;
mod eval;
mod parse;
mod wildcard;

pub use condition::ConditionContext;

/// The largest policy document accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// What a policy is attached to, which decides the statements it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A key policy: every statement names a `Principal` or `NotPrincipal`;
    /// `Resource` is optional (meaning `*`).
    Key,
    /// An identity policy (user, group or role): no `Principal` or
    /// `NotPrincipal`; `Resource` or `NotResource` is required.
    Identity,
    /// A role's trust policy: like a key policy, every statement names a
    /// `Principal` or `NotPrincipal`.
    Trust,
}

/// Why a document was refused. The fault is the document's author's.
///
/// Displays as `"{path}: {message}"`, for example
/// `Statement[1].Effect: unknown effect 'Allo' (expected Allow or Deny)`,
/// or as just the message when `path` is empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}{message}", separator(.path))]
pub struct ParseError {
    /// Where in the document: `""` for the document as a whole, otherwise
    /// a path such as `Statement[0].Condition.IpAddress.aws:SourceIp` (a
    /// single statement object is `Statement`). A bad element of a list is
    /// named in the message rather than indexed in the path.
    pub path: String,
    /// What is wrong, naming the offending value where there is one.
    pub message: String,
}

fn separator(path: &str) -> &'static str {
    if path.is_empty() { "" } else { ": " }
}

impl ParseError {
    fn new(path: &str, message: impl Into<String>) -> ParseError {
        ParseError {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// A compiled policy: patterns and typed condition values are prepared at
/// parse time, so evaluation is cheap and allocation-free.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<eval::Statement>,
}

impl Policy {
    /// Parses and validates `document` as a policy of `kind`.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] for a document over [`MAX_POLICY_BYTES`], one that
    /// is not JSON, or one that breaks any rule of the policy grammar for
    /// `kind`; it names the first element at fault.
    pub fn parse(document: &str, kind: PolicyKind) -> Result<Policy, ParseError> {
        Ok(Policy {
            statements: parse::parse(document, kind)?,
        })
    }

    /// Evaluates every statement against the request and reports what the
    /// matching ones say. Never fails and never panics.
    #[must_use]
    pub fn evaluate(&self, req: &Request<'_>) -> Evaluation {
        eval::evaluate(&self.statements, req)
    }

    /// Whether any statement has a `Condition`: a policy without one never
    /// reads the request's condition keys, so they need not be built.
    #[must_use]
    pub fn has_conditions(&self) -> bool {
        self.statements.iter().any(|s| !s.conditions.is_empty())
    }
}

/// The principal making the call, as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct PrincipalInfo {
    /// The caller's ARN: `arn:aws:iam::111122223333:user/alice`,
    /// `arn:aws:iam::111122223333:root`, or for a role session
    /// `arn:aws:sts::111122223333:assumed-role/app/session1`.
    pub arn: String,
    /// The caller's 12-digit account id.
    pub account_id: String,
    /// For a role session, the role's ARN with its path, e.g.
    /// `arn:aws:iam::111122223333:role/app`; `None` otherwise.
    pub role_arn: Option<String>,
    /// Whether the caller is its account's root.
    pub is_root: bool,
}

/// One call to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who is calling.
    pub principal: &'a PrincipalInfo,
    /// The action, e.g. `kms:Encrypt`, `iam:CreateUser`, `sts:AssumeRole`.
    pub action: &'a str,
    /// The resource: a key ARN, a role ARN, or `*`.
    pub resource: &'a str,
    /// The request's condition keys.
    pub context: &'a ConditionContext,
}

/// Outcome of one policy for one request. A statement "matches" when its
/// principal (if any), action, resource and every condition match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Some `Deny` statement matched.
    pub explicit_deny: bool,
    /// Some `Allow` statement matched whose principal names the caller
    /// directly: `*`, the caller's ARN, its role's ARN for a session, its
    /// own account when the caller is that account's root, or (through
    /// `NotPrincipal`) by not naming it. In an identity policy, which has
    /// no principal, any matching `Allow` sets this.
    pub allow_direct: bool,
    /// Some `Allow` statement matched whose principal names the caller's
    /// account (its root ARN or bare 12-digit id). Only meaningful for key
    /// policies, where it delegates to the caller's identity policies.
    pub allow_account: bool,
}
