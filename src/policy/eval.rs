//! The compiled form of a statement and its evaluation against a request.
//!
//! Owns what "a statement matches" means: principal (direct or through the
//! caller's account), action, resource and conditions, and folding every
//! statement of one policy into an [`Evaluation`]. Does not combine policies
//! (key policy, identity policies, grants): that order is the caller's, per
//! DESIGN.md section 3. Evaluation allocates nothing.

use super::condition::Condition;
use super::wildcard::Pattern;
use super::{Evaluation, PrincipalInfo, Request};

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Allow,
    Deny,
}

/// One value of a statement's `Principal`/`NotPrincipal` `AWS` list.
/// `Service` and `Federated` values never match a caller and are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PrincipalValue {
    /// `"*"`: anyone.
    Anyone,
    /// An account, from its root ARN or its bare 12-digit id.
    Account(String),
    /// A user, role or role-session ARN, compared exactly.
    Arn(String),
}

/// How a statement names whom it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Principals {
    /// Identity policies: the statement applies to the policy's holder.
    Holder,
    /// `Principal`: applies to the callers it names.
    Only(Vec<PrincipalValue>),
    /// `NotPrincipal`: applies to callers it does not name directly.
    AllBut(Vec<PrincipalValue>),
}

/// How the caller relates to a statement's principals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PrincipalMatch {
    /// Named directly ("*", its ARN, its role's ARN, or its own account
    /// when the caller is that account's root).
    direct: bool,
    /// Named through its account (root ARN or bare id).
    account: bool,
}

impl PrincipalValue {
    fn match_caller(&self, caller: &PrincipalInfo) -> PrincipalMatch {
        match self {
            PrincipalValue::Anyone => PrincipalMatch {
                direct: true,
                account: false,
            },
            PrincipalValue::Arn(arn) => PrincipalMatch {
                direct: *arn == caller.arn || caller.role_arn.as_deref() == Some(arn.as_str()),
                account: false,
            },
            PrincipalValue::Account(id) => {
                let own = *id == caller.account_id;
                PrincipalMatch {
                    direct: own && caller.is_root,
                    account: own,
                }
            }
        }
    }
}

impl Principals {
    fn match_caller(&self, caller: &PrincipalInfo) -> PrincipalMatch {
        let fold = |values: &[PrincipalValue]| {
            values.iter().fold(PrincipalMatch::default(), |acc, v| {
                let m = v.match_caller(caller);
                PrincipalMatch {
                    direct: acc.direct || m.direct,
                    account: acc.account || m.account,
                }
            })
        };
        match self {
            Principals::Holder => PrincipalMatch {
                direct: true,
                account: false,
            },
            Principals::Only(values) => fold(values),
            // Being named only through one's account does not exclude a
            // caller: as in AWS, `NotPrincipal` must name the user, role or
            // session itself (or the account's root, for the root).
            Principals::AllBut(values) => PrincipalMatch {
                direct: !fold(values).direct,
                account: false,
            },
        }
    }
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: a list of patterns,
/// possibly inverted.
#[derive(Debug, Clone)]
pub(super) struct PatternList {
    patterns: Vec<Pattern>,
    inverted: bool,
}

impl PatternList {
    pub(super) fn new(patterns: Vec<Pattern>, inverted: bool) -> PatternList {
        PatternList { patterns, inverted }
    }

    fn matches(&self, input: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(input)) != self.inverted
    }
}

/// One compiled statement.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) effect: Effect,
    pub(super) principals: Principals,
    pub(super) actions: PatternList,
    /// `None` when the statement has no `Resource`: every resource.
    pub(super) resources: Option<PatternList>,
    pub(super) conditions: Vec<Condition>,
}

impl Statement {
    /// How the statement applies to the request, or `None` if it does not.
    fn applies(&self, req: &Request<'_>) -> Option<PrincipalMatch> {
        let principal = self.principals.match_caller(req.principal);
        let applies = (principal.direct || principal.account)
            && self.actions.matches(req.action)
            && self
                .resources
                .as_ref()
                .is_none_or(|r| r.matches(req.resource))
            && self.conditions.iter().all(|c| c.holds(req.context));
        applies.then_some(principal)
    }
}

/// Folds every statement into one [`Evaluation`].
pub(super) fn evaluate(statements: &[Statement], req: &Request<'_>) -> Evaluation {
    let mut out = Evaluation::default();
    for statement in statements {
        let Some(principal) = statement.applies(req) else {
            continue;
        };
        match statement.effect {
            Effect::Deny => out.explicit_deny = true,
            Effect::Allow => {
                out.allow_direct |= principal.direct;
                out.allow_account |= principal.account;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Evaluation through whole documents, so each case reads like a policy.

    use super::super::{ConditionContext, Evaluation, Policy, PolicyKind, PrincipalInfo, Request};

    const ACCT: &str = "111122223333";
    const OTHER: &str = "444455556666";
    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn user(account: &str, name: &str) -> PrincipalInfo {
        PrincipalInfo {
            arn: format!("arn:aws:iam::{account}:user/{name}"),
            account_id: account.to_string(),
            role_arn: None,
            is_root: false,
        }
    }

    fn root(account: &str) -> PrincipalInfo {
        PrincipalInfo {
            arn: format!("arn:aws:iam::{account}:root"),
            account_id: account.to_string(),
            role_arn: None,
            is_root: true,
        }
    }

    fn session(account: &str, role: &str, session: &str) -> PrincipalInfo {
        PrincipalInfo {
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            account_id: account.to_string(),
            role_arn: Some(format!("arn:aws:iam::{account}:role/{role}")),
            is_root: false,
        }
    }

    fn eval_with(
        policy: &str,
        kind: PolicyKind,
        who: &PrincipalInfo,
        action: &str,
        resource: &str,
        context: &ConditionContext,
    ) -> Evaluation {
        let policy = Policy::parse(policy, kind).unwrap_or_else(|e| panic!("{e}\n{policy}"));
        policy.evaluate(&Request {
            principal: who,
            action,
            resource,
            context,
        })
    }

    fn eval(policy: &str, who: &PrincipalInfo, action: &str) -> Evaluation {
        eval_with(
            policy,
            PolicyKind::Key,
            who,
            action,
            KEY,
            &ConditionContext::new(),
        )
    }

    const NONE: Evaluation = Evaluation {
        explicit_deny: false,
        allow_direct: false,
        allow_account: false,
    };
    const DIRECT: Evaluation = Evaluation {
        allow_direct: true,
        ..NONE
    };
    const ACCOUNT: Evaluation = Evaluation {
        allow_account: true,
        ..NONE
    };
    const BOTH: Evaluation = Evaluation {
        allow_direct: true,
        allow_account: true,
        ..NONE
    };

    /// A key policy with one Allow statement for `principal` on `kms:*`.
    fn allow_for(principal: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"kms:*","Resource":"*"}}]}}"#
        )
    }

    #[test]
    fn principal_kinds() {
        let alice = user(ACCT, "alice");
        let bob = user(ACCT, "bob");
        let app = session(ACCT, "app", "s1");
        let acct_root = root(ACCT);
        let stranger = user(OTHER, "mallory");
        let table: &[(&str, &PrincipalInfo, Evaluation)] = &[
            (r#""*""#, &alice, DIRECT),
            (r#"{"AWS":"*"}"#, &stranger, DIRECT),
            (
                r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
                &alice,
                DIRECT,
            ),
            (
                r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
                &bob,
                NONE,
            ),
            (
                r#"{"AWS":["arn:aws:iam::111122223333:user/bob","arn:aws:iam::111122223333:user/alice"]}"#,
                &alice,
                DIRECT,
            ),
            // Account-level: the root ARN or the bare id.
            (
                r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
                &alice,
                ACCOUNT,
            ),
            (r#"{"AWS":"111122223333"}"#, &alice, ACCOUNT),
            (r#"{"AWS":"111122223333"}"#, &app, ACCOUNT),
            (
                r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
                &stranger,
                NONE,
            ),
            // The root is its account, so it is named directly too.
            (
                r#"{"AWS":"arn:aws:iam::111122223333:root"}"#,
                &acct_root,
                BOTH,
            ),
            (r#"{"AWS":"111122223333"}"#, &acct_root, BOTH),
            (
                r#"{"AWS":"arn:aws:iam::444455556666:root"}"#,
                &acct_root,
                NONE,
            ),
            // Both kinds at once.
            (
                r#"{"AWS":["111122223333","arn:aws:iam::111122223333:user/alice"]}"#,
                &alice,
                BOTH,
            ),
            // A role session is named by its role or by its own ARN.
            (
                r#"{"AWS":"arn:aws:iam::111122223333:role/app"}"#,
                &app,
                DIRECT,
            ),
            (
                r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/app/s1"}"#,
                &app,
                DIRECT,
            ),
            (
                r#"{"AWS":"arn:aws:sts::111122223333:assumed-role/app/s2"}"#,
                &app,
                NONE,
            ),
            (
                r#"{"AWS":"arn:aws:iam::111122223333:role/other"}"#,
                &app,
                NONE,
            ),
            // A user with the role's name is not the role.
            (
                r#"{"AWS":"arn:aws:iam::111122223333:role/alice"}"#,
                &alice,
                NONE,
            ),
            // Service and Federated principals never match a caller.
            (r#"{"Service":"kms.amazonaws.com"}"#, &alice, NONE),
            (
                r#"{"Federated":"cognito-identity.amazonaws.com","AWS":"arn:aws:iam::111122223333:user/bob"}"#,
                &alice,
                NONE,
            ),
        ];
        for (principal, who, expected) in table {
            assert_eq!(
                eval(&allow_for(principal), who, "kms:Encrypt"),
                *expected,
                "{principal} for {}",
                who.arn
            );
        }
    }

    #[test]
    fn role_with_path_matches_session() {
        let mut app = session(ACCT, "app", "s1");
        app.role_arn = Some("arn:aws:iam::111122223333:role/team/app".into());
        let policy = allow_for(r#"{"AWS":"arn:aws:iam::111122223333:role/team/app"}"#);
        assert_eq!(eval(&policy, &app, "kms:Decrypt"), DIRECT);
        let policy = allow_for(r#"{"AWS":"arn:aws:iam::111122223333:role/app"}"#);
        assert_eq!(eval(&policy, &app, "kms:Decrypt"), NONE);
    }

    #[test]
    fn not_principal() {
        let policy = r#"{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":[
            "arn:aws:iam::111122223333:role/admin","arn:aws:iam::111122223333:root"]},
            "Action":"kms:*"}]}"#;
        let deny = Evaluation {
            explicit_deny: true,
            ..NONE
        };
        assert_eq!(eval(policy, &user(ACCT, "alice"), "kms:Encrypt"), deny);
        assert_eq!(
            eval(policy, &session(ACCT, "admin", "x"), "kms:Encrypt"),
            NONE
        );
        assert_eq!(eval(policy, &root(ACCT), "kms:Encrypt"), NONE);
        assert_eq!(eval(policy, &user(OTHER, "mallory"), "kms:Encrypt"), deny);

        // An Allow with NotPrincipal counts as direct for everyone not named.
        let policy = r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:Encrypt"}}"#;
        assert_eq!(eval(policy, &user(ACCT, "alice"), "kms:Encrypt"), DIRECT);
        assert_eq!(eval(policy, &user(ACCT, "bob"), "kms:Encrypt"), NONE);
        // "*" in NotPrincipal excludes everyone.
        let policy =
            r#"{"Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"kms:Encrypt"}}"#;
        assert_eq!(eval(policy, &user(ACCT, "alice"), "kms:Encrypt"), NONE);
    }

    #[test]
    fn deny_and_allow_are_both_reported() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Allow","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
            {"Sid":"AllowAlice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":"*"},
            {"Sid":"NoDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}"#;
        let alice = user(ACCT, "alice");
        assert_eq!(eval(policy, &alice, "kms:Encrypt"), BOTH);
        assert_eq!(
            eval(policy, &alice, "kms:Decrypt"),
            Evaluation {
                explicit_deny: true,
                allow_account: true,
                allow_direct: false
            }
        );
        assert_eq!(eval(policy, &alice, "kms:ScheduleKeyDeletion"), ACCOUNT);
    }

    #[test]
    fn deny_applies_through_the_account() {
        let policy = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"kms:*"},
            {"Effect":"Deny","Principal":{"AWS":"444455556666"},"Action":"kms:*"}]}"#;
        assert_eq!(eval(policy, &user(ACCT, "alice"), "kms:Encrypt"), DIRECT);
        assert!(eval(policy, &user(OTHER, "mallory"), "kms:Encrypt").explicit_deny);
    }

    #[test]
    fn actions() {
        let alice = user(ACCT, "alice");
        let table: &[(&str, &str, bool)] = &[
            (r#""kms:Encrypt""#, "kms:Encrypt", true),
            (r#""kms:Encrypt""#, "kms:Decrypt", false),
            (r#""kms:encrypt""#, "KMS:ENCRYPT", true),
            (
                r#""kms:Generate*""#,
                "kms:GenerateDataKeyWithoutPlaintext",
                true,
            ),
            (r#""kms:Generate*""#, "kms:generateDataKey", true),
            (r#""kms:*""#, "kms:Decrypt", true),
            (r#""kms:*""#, "iam:CreateUser", false),
            (r#""*""#, "iam:CreateUser", true),
            (r#"["kms:Encrypt","kms:Decrypt"]"#, "kms:Decrypt", true),
            (
                r#"["kms:Encrypt","kms:Decrypt"]"#,
                "kms:ReEncryptFrom",
                false,
            ),
            (r#""kms:?ecrypt""#, "kms:Decrypt", true),
        ];
        for (action, request, expected) in table {
            let policy = format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":{action}}}}}"#
            );
            assert_eq!(
                eval(&policy, &alice, request) == DIRECT,
                *expected,
                "{action} vs {request}"
            );
        }
    }

    #[test]
    fn not_action() {
        let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":["kms:ScheduleKeyDeletion","kms:Put*"]}]}"#;
        let alice = user(ACCT, "alice");
        assert_eq!(eval(policy, &alice, "kms:Encrypt"), DIRECT);
        assert_eq!(eval(policy, &alice, "kms:ScheduleKeyDeletion"), NONE);
        assert_eq!(eval(policy, &alice, "kms:putkeypolicy"), NONE);
    }

    #[test]
    fn resources() {
        let alice = user(ACCT, "alice");
        let ctx = ConditionContext::new();
        let identity = |resource: &str| {
            format!(r#"{{"Statement":{{"Effect":"Allow","Action":"kms:*",{resource}}}}}"#)
        };
        let table: &[(String, &str, bool)] = &[
            (identity(r#""Resource":"*""#), KEY, true),
            (
                identity(r#""Resource":"arn:aws:kms:*:111122223333:key/*""#),
                KEY,
                true,
            ),
            (
                identity(r#""Resource":"arn:aws:kms:*:444455556666:key/*""#),
                KEY,
                false,
            ),
            // Case-sensitive.
            (
                identity(r#""Resource":"arn:aws:kms:*:111122223333:KEY/*""#),
                KEY,
                false,
            ),
            (
                identity(&format!(
                    r#""Resource":["arn:aws:kms:us-east-1:111122223333:key/other","{KEY}"]"#
                )),
                KEY,
                true,
            ),
            (
                identity(r#""NotResource":"arn:aws:kms:*:444455556666:key/*""#),
                KEY,
                true,
            ),
            (
                identity(r#""NotResource":"arn:aws:kms:*:111122223333:key/*""#),
                KEY,
                false,
            ),
            (identity(r#""NotResource":["x","*"]"#), KEY, false),
            (
                identity(r#""Resource":"arn:aws:iam::111122223333:role/*""#),
                "*",
                false,
            ),
            (identity(r#""Resource":"*""#), "*", true),
        ];
        for (policy, resource, expected) in table {
            let got = eval_with(
                policy,
                PolicyKind::Identity,
                &alice,
                "kms:Encrypt",
                resource,
                &ctx,
            );
            assert_eq!(got == DIRECT, *expected, "{policy} on {resource}");
        }
        // A key policy statement without Resource covers every resource.
        let policy = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"}}"#;
        assert_eq!(
            eval_with(
                policy,
                PolicyKind::Key,
                &alice,
                "kms:Encrypt",
                "anything",
                &ctx
            ),
            DIRECT
        );
    }

    #[test]
    fn identity_policy_allows_directly() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:*:111122223333:key/*"},
            {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#;
        let alice = user(ACCT, "alice");
        let mut ctx = ConditionContext::new();
        ctx.set("aws:MultiFactorAuthPresent", "false");
        let got = eval_with(
            policy,
            PolicyKind::Identity,
            &alice,
            "kms:Decrypt",
            KEY,
            &ctx,
        );
        assert_eq!(
            got,
            Evaluation {
                explicit_deny: true,
                ..DIRECT
            }
        );
        ctx.set("aws:MultiFactorAuthPresent", "true");
        let got = eval_with(
            policy,
            PolicyKind::Identity,
            &alice,
            "kms:Decrypt",
            KEY,
            &ctx,
        );
        assert_eq!(got, DIRECT);
    }

    /// One Allow statement for `*` on `kms:*` with `condition`, evaluated
    /// against each context.
    #[test]
    fn conditions_in_statements() {
        let alice = user(ACCT, "alice");
        type Ctx = &'static [(&'static str, &'static [&'static str])];
        let table: &[(&str, Ctx, bool)] = &[
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                &[("aws:SourceIp", &["203.0.113.9"])],
                true,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                &[("aws:SourceIp", &["198.51.100.9"])],
                false,
            ),
            (
                r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                &[("aws:SourceIp", &["198.51.100.9"])],
                true,
            ),
            (
                r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                &[("aws:SourceIp", &["203.0.113.9"])],
                false,
            ),
            (
                r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
                &[("aws:MultiFactorAuthPresent", &["true"])],
                true,
            ),
            (
                r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
                &[("aws:MultiFactorAuthPresent", &["false"])],
                false,
            ),
            (
                r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
                &[],
                false,
            ),
            (
                r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#,
                &[],
                true,
            ),
            (
                r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#,
                &[("aws:MultiFactorAuthPresent", &["false"])],
                false,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Department":"Sales"}}"#,
                &[("kms:EncryptionContext:Department", &["Sales"])],
                true,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Department":"Sales"}}"#,
                &[("kms:EncryptionContext:Department", &["HR"])],
                false,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Department":"Sales"}}"#,
                &[],
                false,
            ),
            // Keys are case-insensitive both ways.
            (
                r#"{"StringEquals":{"KMS:ENCRYPTIONCONTEXT:DEPARTMENT":"Sales"}}"#,
                &[("kms:encryptioncontext:department", &["Sales"])],
                true,
            ),
            (
                r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#,
                &[("aws:CurrentTime", &["2026-07-01T00:00:00Z"])],
                true,
            ),
            (
                r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#,
                &[("aws:CurrentTime", &["2027-07-01T00:00:00Z"])],
                false,
            ),
            (
                r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#,
                &[("aws:CurrentTime", &["2025-07-01T00:00:00Z"])],
                false,
            ),
            (
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}"#,
                &[("kms:EncryptionContextKeys", &["Project"])],
                true,
            ),
            (
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}"#,
                &[("kms:EncryptionContextKeys", &["Project", "Secret"])],
                false,
            ),
            (
                r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Department"}}"#,
                &[("kms:EncryptionContextKeys", &["Project", "Department"])],
                true,
            ),
            (
                r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Department"}}"#,
                &[("kms:EncryptionContextKeys", &["Project"])],
                false,
            ),
            (
                r#"{"Null":{"kms:EncryptionContextKeys":"false"}}"#,
                &[("kms:EncryptionContextKeys", &["Project"])],
                true,
            ),
            (
                r#"{"Null":{"kms:EncryptionContextKeys":"false"}}"#,
                &[],
                false,
            ),
            (
                r#"{"NumericLessThan":{"kms:ExpirationDays":"90"}}"#,
                &[("kms:ExpirationDays", &["30"])],
                true,
            ),
            (
                r#"{"NumericLessThan":{"kms:ExpirationDays":"90"}}"#,
                &[("kms:ExpirationDays", &["365"])],
                false,
            ),
            (
                r#"{"StringEquals":{"kms:CallerAccount":"111122223333"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
                &[
                    ("kms:CallerAccount", &["111122223333"]),
                    (
                        "aws:PrincipalArn",
                        &["arn:aws:iam::111122223333:user/alice"],
                    ),
                ],
                true,
            ),
            (
                r#"{"StringEquals":{"kms:CallerAccount":"111122223333"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
                &[
                    ("kms:CallerAccount", &["111122223333"]),
                    ("aws:PrincipalArn", &["arn:aws:iam::111122223333:role/app"]),
                ],
                false,
            ),
            (
                r#"{"Bool":{"kms:GrantIsForAWSResource":true}}"#,
                &[("kms:GrantIsForAWSResource", &["true"])],
                true,
            ),
            (r#"{}"#, &[], true),
        ];
        for (condition, pairs, expected) in table {
            let policy = format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{condition}}}}}"#
            );
            let mut ctx = ConditionContext::new();
            for (k, v) in *pairs {
                ctx.set_many(k, v.iter().map(|s| s.to_string()).collect());
            }
            let got = eval_with(&policy, PolicyKind::Key, &alice, "kms:Encrypt", KEY, &ctx);
            assert_eq!(got == DIRECT, *expected, "{condition} with {pairs:?}");
        }
    }

    #[test]
    fn trust_policy() {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole",
            "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}"#;
        let mut ctx = ConditionContext::new();
        ctx.set("aws:MultiFactorAuthPresent", "true");
        let role = "arn:aws:iam::111122223333:role/app";
        let got = eval_with(
            policy,
            PolicyKind::Trust,
            &user(OTHER, "bob"),
            "sts:AssumeRole",
            role,
            &ctx,
        );
        assert_eq!(got, ACCOUNT);
        let got = eval_with(
            policy,
            PolicyKind::Trust,
            &user(ACCT, "bob"),
            "sts:AssumeRole",
            role,
            &ctx,
        );
        assert_eq!(got, NONE);
    }

    #[test]
    fn policy_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Policy>();
        assert_traits::<ConditionContext>();
    }
    #[test]
    fn has_conditions_says_whether_any_statement_reads_the_context() {
        let plain = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
        let conditional = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
            {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
             "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#;
        assert!(
            !Policy::parse(plain, PolicyKind::Key)
                .unwrap()
                .has_conditions()
        );
        let p = Policy::parse(conditional, PolicyKind::Key).unwrap();
        assert!(p.has_conditions());
        // The Deny applies only where its condition holds: evaluated against
        // the request's keys, not against an empty context.
        let mut ctx = ConditionContext::new();
        ctx.set("aws:MultiFactorAuthPresent", "false");
        let who = root(ACCT);
        let req = |context| Request {
            principal: &who,
            action: "kms:Decrypt",
            resource: KEY,
            context,
        };
        assert!(p.evaluate(&req(&ctx)).explicit_deny);
        assert!(!p.evaluate(&req(&ConditionContext::new())).explicit_deny);
    }
}
