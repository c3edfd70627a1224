//! The `Condition` element: operator names, their typed values, and their
//! evaluation against a request's [`ConditionContext`].
//!
//! Owns the operator vocabulary (`StringEquals` ... `Null`, the `IfExists`
//! suffix and the `ForAllValues:`/`ForAnyValue:` set qualifiers), checking
//! typed values once at parse time (numbers, dates, IP blocks, booleans), and
//! the missing-key and multi-value rules AWS documents. Does not know which
//! keys exist or where their values come from: the caller fills the context.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use super::ParseError;
use super::parse::json_kind;
use super::wildcard::{Case, Pattern};

/// Condition keys and their values for one request.
///
/// Keys are case-insensitive (they are stored lowercased, as policy keys
/// are); each key has one or more string values. A key set with an empty
/// list of values is treated as missing by every operator.
#[derive(Debug, Clone, Default)]
pub struct ConditionContext {
    entries: HashMap<String, Vec<String>>,
}

impl ConditionContext {
    /// An empty context: every key is missing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to the single `value`, replacing any previous values.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.entries.insert(key.to_lowercase(), vec![value.into()]);
        self
    }

    /// Sets a multi-valued key (for example `kms:EncryptionContextKeys` or
    /// `kms:GrantOperations`), replacing any previous values.
    pub fn set_many(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.entries.insert(key.to_lowercase(), values);
        self
    }

    /// The values of `key` (compared case-insensitively), if it was set.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.get_lowercase(&lowercase(key))
    }

    /// Lookup with a key that is already lowercase (as compiled condition
    /// keys are), so evaluation does not allocate.
    pub(super) fn get_lowercase(&self, key: &str) -> Option<&[String]> {
        self.entries.get(key).map(Vec::as_slice)
    }
}

/// Lowercases without allocating when there is nothing to change.
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// `ForAllValues:` or `ForAnyValue:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// Ordering test: `request <op> policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// The operator family, before its values are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Arn,
    Null,
}

/// Base operator names, AWS spelling, with whether each is a negation.
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::StringEquals, false),
    ("StringNotEquals", Base::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Base::StringLike, false),
    ("StringNotLike", Base::StringLike, true),
    ("NumericEquals", Base::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Base::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Base::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Base::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Base::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Base::Numeric(Cmp::Ge), false),
    ("DateEquals", Base::Date(Cmp::Eq), false),
    ("DateNotEquals", Base::Date(Cmp::Eq), true),
    ("DateLessThan", Base::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Base::Date(Cmp::Le), false),
    ("DateGreaterThan", Base::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Base::Date(Cmp::Ge), false),
    ("Bool", Base::Bool, false),
    ("IpAddress", Base::Ip, false),
    ("NotIpAddress", Base::Ip, true),
    ("ArnEquals", Base::Arn, false),
    ("ArnLike", Base::Arn, false),
    ("ArnNotEquals", Base::Arn, true),
    ("ArnNotLike", Base::Arn, true),
    ("Null", Base::Null, false),
];

/// A parsed operator name such as `ForAnyValue:StringNotLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    base: Base,
    negated: bool,
    if_exists: bool,
    set: Option<SetQualifier>,
}

impl Operator {
    fn parse(name: &str) -> Result<Operator, String> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, name)
        };
        let (if_exists, base_name) = match rest.strip_suffix("IfExists") {
            Some(base_name) => (true, base_name),
            None => (false, rest),
        };
        let Some((_, base, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base_name) else {
            return Err(format!("unknown condition operator '{name}'"));
        };
        if *base == Base::Null && if_exists {
            return Err(format!(
                "unknown condition operator '{name}' (Null has no IfExists form)"
            ));
        }
        Ok(Operator {
            base: *base,
            negated: *negated,
            if_exists,
            set,
        })
    }
}

/// An ARN pattern, compared component by component.
#[derive(Debug, Clone)]
enum ArnPattern {
    /// The colon-separated components (at most six; the sixth keeps any
    /// further colons), each a case-sensitive wildcard pattern. A request
    /// value matches when it has the same number of components and each
    /// matches its pattern, so a `*` never reaches across a colon except
    /// in the resource component.
    Segments(Vec<Pattern>),
    /// A value made only of `*`s matches every request value.
    Anything,
}

const ARN_SEGMENTS: usize = 6;

impl ArnPattern {
    fn new(value: &str) -> ArnPattern {
        if !value.is_empty() && value.chars().all(|c| c == '*') {
            return ArnPattern::Anything;
        }
        ArnPattern::Segments(
            value
                .splitn(ARN_SEGMENTS, ':')
                .map(|s| Pattern::new(s, Case::Sensitive))
                .collect(),
        )
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            ArnPattern::Anything => true,
            ArnPattern::Segments(segments) => {
                let mut parts = value.splitn(ARN_SEGMENTS, ':');
                segments
                    .iter()
                    .all(|seg| parts.next().is_some_and(|part| seg.matches(part)))
                    && parts.next().is_none()
            }
        }
    }
}

/// The policy values of one condition, compiled for their operator.
#[derive(Debug, Clone)]
enum Test {
    StringEquals(Vec<String>),
    StringEqualsIgnoreCase(Vec<String>),
    StringLike(Vec<Pattern>),
    Numeric(Cmp, Vec<f64>),
    /// Instants as Unix nanoseconds.
    Date(Cmp, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
    Arn(Vec<ArnPattern>),
    /// `true`: the key must be missing; `false`: it must be present.
    Null(Vec<bool>),
}

impl Test {
    fn compile(base: Base, values: Vec<String>) -> Result<Test, String> {
        Ok(match base {
            Base::StringEquals => Test::StringEquals(values),
            Base::StringEqualsIgnoreCase => Test::StringEqualsIgnoreCase(values),
            Base::StringLike => Test::StringLike(
                values
                    .iter()
                    .map(|v| Pattern::new(v, Case::Sensitive))
                    .collect(),
            ),
            Base::Numeric(cmp) => Test::Numeric(
                cmp,
                values
                    .iter()
                    .map(|v| parse_number(v).ok_or_else(|| format!("invalid number '{v}'")))
                    .collect::<Result<_, _>>()?,
            ),
            Base::Date(cmp) => Test::Date(
                cmp,
                values
                    .iter()
                    .map(|v| {
                        parse_date(v).ok_or_else(|| {
                            format!(
                                "invalid date '{v}' (expected RFC 3339 / ISO 8601, \
                                 e.g. 2026-01-01T00:00:00Z, or epoch seconds)"
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Base::Bool | Base::Null => {
                let bools = values
                    .iter()
                    .map(|v| {
                        parse_bool(v).ok_or_else(|| {
                            format!("invalid boolean '{v}' (expected true or false)")
                        })
                    })
                    .collect::<Result<_, _>>()?;
                if base == Base::Null {
                    Test::Null(bools)
                } else {
                    Test::Bool(bools)
                }
            }
            Base::Ip => Test::Ip(
                values
                    .iter()
                    .map(|v| {
                        parse_ip_block(v)
                            .ok_or_else(|| format!("invalid IP address or CIDR block '{v}'"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Base::Arn => Test::Arn(values.iter().map(|v| ArnPattern::new(v)).collect()),
        })
    }

    /// Whether one request value equals (in the operator's sense) any of the
    /// policy values. A request value of the wrong type equals none.
    fn any_equal(&self, value: &str) -> bool {
        match self {
            Test::StringEquals(policy) => policy.iter().any(|p| p == value),
            Test::StringEqualsIgnoreCase(policy) => policy.iter().any(|p| eq_ignore_case(p, value)),
            Test::StringLike(policy) => policy.iter().any(|p| p.matches(value)),
            Test::Numeric(cmp, policy) => {
                parse_number(value).is_some_and(|n| policy.iter().any(|p| cmp.holds(n, *p)))
            }
            Test::Date(cmp, policy) => {
                parse_date(value).is_some_and(|t| policy.iter().any(|p| cmp.holds(t, *p)))
            }
            Test::Bool(policy) => parse_bool(value).is_some_and(|b| policy.contains(&b)),
            Test::Ip(policy) => parse_request_ip(value).is_some_and(|(ip, mapped)| {
                policy
                    .iter()
                    .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
            }),
            Test::Arn(policy) => policy.iter().any(|p| p.matches(value)),
            // Null is decided on presence alone, before values are looked at.
            Test::Null(_) => false,
        }
    }
}

/// One compiled `operator: { key: values }` entry.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    /// Lowercased condition key.
    key: String,
    test: Test,
    negated: bool,
    if_exists: bool,
    set: Option<SetQualifier>,
}

impl Condition {
    /// Whether the condition holds for the request's context.
    pub(super) fn holds(&self, context: &ConditionContext) -> bool {
        let values = context
            .get_lowercase(&self.key)
            .filter(|values| !values.is_empty());
        if let Test::Null(expect_missing) = &self.test {
            let missing = values.is_none();
            return expect_missing.contains(&missing);
        }
        let Some(values) = values else {
            return self.if_exists
                || match self.set {
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                    None => self.negated,
                };
        };
        // A negated operator's value "matches" when it equals none of the
        // policy values.
        let matches = |value: &String| self.test.any_equal(value) != self.negated;
        match self.set {
            Some(SetQualifier::ForAllValues) => values.iter().all(matches),
            Some(SetQualifier::ForAnyValue) | None => values.iter().any(matches),
        }
    }
}

/// Parses a statement's `Condition` object. `path` is the path of the
/// `Condition` element itself.
pub(super) fn parse_block(value: &Value, path: &str) -> Result<Vec<Condition>, ParseError> {
    let Value::Object(operators) = value else {
        return Err(ParseError::new(
            path,
            format!("expected an object, found {}", json_kind(value)),
        ));
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let op_path = format!("{path}.{name}");
        let operator = Operator::parse(name).map_err(|m| ParseError::new(&op_path, m))?;
        let Value::Object(keys) = keys else {
            return Err(ParseError::new(
                &op_path,
                format!(
                    "expected an object of condition keys, found {}",
                    json_kind(keys)
                ),
            ));
        };
        if keys.is_empty() {
            return Err(ParseError::new(&op_path, "no condition keys"));
        }
        for (key, values) in keys {
            let key_path = format!("{op_path}.{key}");
            if key.is_empty() {
                return Err(ParseError::new(&key_path, "empty condition key"));
            }
            let values = condition_values(values).map_err(|m| ParseError::new(&key_path, m))?;
            let test =
                Test::compile(operator.base, values).map_err(|m| ParseError::new(&key_path, m))?;
            conditions.push(Condition {
                key: key.to_lowercase(),
                test,
                negated: operator.negated,
                if_exists: operator.if_exists,
                set: operator.set,
            });
        }
    }
    Ok(conditions)
}

/// A condition's values as strings: a string, boolean or number, or a
/// non-empty list of them.
fn condition_values(value: &Value) -> Result<Vec<String>, String> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    let expected = "expected a string, boolean or number, or a non-empty list of them";
    match value {
        Value::Array(items) if items.is_empty() => Err(format!("{expected}, found an empty list")),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                scalar(item)
                    .ok_or_else(|| format!("{expected}, found a list holding {}", json_kind(item)))
            })
            .collect(),
        other => scalar(other)
            .map(|s| vec![s])
            .ok_or_else(|| format!("{expected}, found {}", json_kind(other))),
    }
}

/// Unicode case-insensitive equality without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// A finite `f64`; `NaN` and infinities are refused.
fn parse_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// An instant as Unix nanoseconds: RFC 3339, ISO 8601 (a date-time without
/// an offset, or a bare date, is taken as UTC) or integer epoch seconds.
fn parse_date(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .ok()
            .map(|secs| i128::from(secs) * NANOS_PER_SECOND);
    }
    let instant = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .or_else(|_| {
            PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|_| Date::parse(s, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()))
        .ok()?;
    Some(instant.unix_timestamp_nanos())
}

/// A CIDR block, or a single address taken as a /32 or /128.
fn parse_ip_block(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .ok()
}

/// A request address, plus its IPv4 form when it is an IPv4-mapped IPv6
/// address (as dual-stack sockets report IPv4 peers).
fn parse_request_ip(s: &str) -> Option<(IpAddr, Option<IpAddr>)> {
    let ip = s.parse::<IpAddr>().ok()?;
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    Some((ip, mapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Compiles `{op: {key: values}}` into its one condition.
    fn condition(op: &str, key: &str, values: Value) -> Condition {
        let block = json!({ op: { key: values } });
        let mut parsed = parse_block(&block, "Condition").expect("valid condition");
        assert_eq!(parsed.len(), 1);
        parsed.remove(0)
    }

    fn ctx(pairs: &[(&str, &[&str])]) -> ConditionContext {
        let mut context = ConditionContext::new();
        for (key, values) in pairs {
            context.set_many(key, values.iter().map(|v| v.to_string()).collect());
        }
        context
    }

    /// (operator, key, policy values, request values or None for missing,
    /// expected)
    type Case<'a> = (&'a str, &'a str, Value, Option<&'a [&'a str]>, bool);

    fn run(table: Vec<Case<'_>>) {
        for (op, key, values, request, expected) in table {
            let cond = condition(op, key, values.clone());
            let context = match request {
                Some(vals) => ctx(&[(key, vals)]),
                None => ConditionContext::new(),
            };
            assert_eq!(
                cond.holds(&context),
                expected,
                "{op} {key} {values} against {request:?}"
            );
        }
    }

    #[test]
    fn string_operators() {
        let k = "kms:EncryptionContext:Department";
        run(vec![
            ("StringEquals", k, json!("Sales"), Some(&["Sales"]), true),
            ("StringEquals", k, json!("Sales"), Some(&["sales"]), false),
            (
                "StringEquals",
                k,
                json!(["HR", "Sales"]),
                Some(&["Sales"]),
                true,
            ),
            ("StringEquals", k, json!("Sales"), None, false),
            ("StringNotEquals", k, json!("Sales"), Some(&["HR"]), true),
            (
                "StringNotEquals",
                k,
                json!("Sales"),
                Some(&["Sales"]),
                false,
            ),
            (
                "StringNotEquals",
                k,
                json!(["HR", "Sales"]),
                Some(&["Sales"]),
                false,
            ),
            ("StringNotEquals", k, json!("Sales"), None, true),
            (
                "StringEqualsIgnoreCase",
                k,
                json!("SALES"),
                Some(&["sales"]),
                true,
            ),
            (
                "StringEqualsIgnoreCase",
                k,
                json!("Straße"),
                Some(&["STRAßE"]),
                true,
            ),
            (
                "StringEqualsIgnoreCase",
                k,
                json!("SALES"),
                Some(&["hr"]),
                false,
            ),
            (
                "StringNotEqualsIgnoreCase",
                k,
                json!("SALES"),
                Some(&["sales"]),
                false,
            ),
            (
                "StringNotEqualsIgnoreCase",
                k,
                json!("SALES"),
                Some(&["hr"]),
                true,
            ),
            ("StringNotEqualsIgnoreCase", k, json!("SALES"), None, true),
            ("StringLike", k, json!("Sa*"), Some(&["Sales"]), true),
            ("StringLike", k, json!("Sa?es"), Some(&["Sales"]), true),
            ("StringLike", k, json!("sa*"), Some(&["Sales"]), false),
            ("StringLike", k, json!("Sa*"), None, false),
            ("StringNotLike", k, json!("Sa*"), Some(&["HR"]), true),
            ("StringNotLike", k, json!("Sa*"), Some(&["Sales"]), false),
            ("StringNotLike", k, json!("Sa*"), None, true),
            ("StringEqualsIfExists", k, json!("Sales"), None, true),
            (
                "StringEqualsIfExists",
                k,
                json!("Sales"),
                Some(&["HR"]),
                false,
            ),
            (
                "StringEqualsIfExists",
                k,
                json!("Sales"),
                Some(&["Sales"]),
                true,
            ),
            (
                "StringNotLikeIfExists",
                k,
                json!("Sa*"),
                Some(&["Sales"]),
                false,
            ),
            // Numbers and booleans in the policy become their string form.
            (
                "StringEquals",
                "kms:CallerAccount",
                json!(111122223333u64),
                Some(&["111122223333"]),
                true,
            ),
            ("StringEquals", "x:flag", json!(true), Some(&["true"]), true),
            // Several request values without a qualifier: any may match.
            (
                "StringEquals",
                "x:multi",
                json!("b"),
                Some(&["a", "b"]),
                true,
            ),
            (
                "StringNotEquals",
                "x:multi",
                json!("a"),
                Some(&["a", "b"]),
                true,
            ),
            (
                "StringNotEquals",
                "x:multi",
                json!(["a", "b"]),
                Some(&["a", "b"]),
                false,
            ),
            // A key set to no values counts as missing.
            ("StringEquals", k, json!("Sales"), Some(&[]), false),
            ("StringNotEquals", k, json!("Sales"), Some(&[]), true),
        ]);
    }

    #[test]
    fn numeric_operators() {
        let k = "kms:ExpirationDays";
        run(vec![
            ("NumericLessThan", k, json!(30), Some(&["29"]), true),
            ("NumericLessThan", k, json!(30), Some(&["30"]), false),
            ("NumericLessThan", k, json!("30"), Some(&["29.5"]), true),
            (
                "NumericLessThan",
                k,
                json!(30),
                Some(&["not a number"]),
                false,
            ),
            ("NumericLessThan", k, json!(30), Some(&["NaN"]), false),
            ("NumericLessThan", k, json!(30), None, false),
            ("NumericLessThanEquals", k, json!(30), Some(&["30"]), true),
            ("NumericLessThanEquals", k, json!(30), Some(&["31"]), false),
            ("NumericGreaterThan", k, json!(30), Some(&["31"]), true),
            ("NumericGreaterThan", k, json!(30), Some(&["30"]), false),
            (
                "NumericGreaterThanEquals",
                k,
                json!(30),
                Some(&["30"]),
                true,
            ),
            (
                "NumericGreaterThanEquals",
                k,
                json!(30),
                Some(&["29"]),
                false,
            ),
            ("NumericEquals", k, json!(30), Some(&["30.0"]), true),
            ("NumericEquals", k, json!(30), Some(&["31"]), false),
            ("NumericNotEquals", k, json!(30), Some(&["31"]), true),
            ("NumericNotEquals", k, json!(30), Some(&["30"]), false),
            ("NumericNotEquals", k, json!(30), None, true),
            ("NumericLessThanIfExists", k, json!(30), None, true),
            (
                "NumericLessThanIfExists",
                k,
                json!(30),
                Some(&["40"]),
                false,
            ),
        ]);
    }

    #[test]
    fn date_operators() {
        let k = "aws:CurrentTime";
        run(vec![
            (
                "DateGreaterThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-06-01T12:00:00Z"]),
                true,
            ),
            (
                "DateGreaterThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2025-12-31T23:59:59Z"]),
                false,
            ),
            (
                "DateGreaterThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:00Z"]),
                false,
            ),
            (
                "DateGreaterThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                None,
                false,
            ),
            (
                "DateGreaterThanEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:00Z"]),
                true,
            ),
            (
                "DateLessThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2025-12-31T23:59:59Z"]),
                true,
            ),
            (
                "DateLessThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:01Z"]),
                false,
            ),
            (
                "DateLessThanEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:00Z"]),
                true,
            ),
            // Instants, not strings: an offset is honoured.
            (
                "DateEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T01:00:00+01:00"]),
                true,
            ),
            (
                "DateEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:01Z"]),
                false,
            ),
            (
                "DateNotEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["2026-01-01T00:00:01Z"]),
                true,
            ),
            (
                "DateNotEquals",
                k,
                json!("2026-01-01T00:00:00Z"),
                None,
                true,
            ),
            // Epoch seconds, in the policy (as a number) or the request.
            (
                "DateLessThan",
                k,
                json!(1767225600),
                Some(&["2025-12-31T23:59:59Z"]),
                true,
            ),
            (
                "DateLessThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["1767225599"]),
                true,
            ),
            (
                "DateLessThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["1767225600"]),
                false,
            ),
            // A bare ISO 8601 date is midnight UTC.
            (
                "DateEquals",
                k,
                json!("2026-01-01"),
                Some(&["2026-01-01T00:00:00Z"]),
                true,
            ),
            (
                "DateLessThan",
                k,
                json!("2026-01-01T00:00:00Z"),
                Some(&["yesterday"]),
                false,
            ),
        ]);
    }

    #[test]
    fn bool_operator() {
        let k = "aws:MultiFactorAuthPresent";
        run(vec![
            ("Bool", k, json!("true"), Some(&["true"]), true),
            ("Bool", k, json!(true), Some(&["TRUE"]), true),
            ("Bool", k, json!("True"), Some(&["false"]), false),
            ("Bool", k, json!("false"), Some(&["false"]), true),
            ("Bool", k, json!("true"), Some(&["yes"]), false),
            ("Bool", k, json!("true"), None, false),
            ("BoolIfExists", k, json!("true"), None, true),
            ("BoolIfExists", k, json!("true"), Some(&["false"]), false),
            ("BoolIfExists", k, json!("true"), Some(&["true"]), true),
            ("BoolIfExists", k, json!("false"), None, true),
        ]);
    }

    #[test]
    fn ip_operators() {
        let k = "aws:SourceIp";
        run(vec![
            (
                "IpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["10.1.2.3"]),
                true,
            ),
            (
                "IpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["192.168.0.1"]),
                false,
            ),
            (
                "IpAddress",
                k,
                json!(["192.168.0.0/16", "10.0.0.0/8"]),
                Some(&["10.1.2.3"]),
                true,
            ),
            ("IpAddress", k, json!("10.0.0.7"), Some(&["10.0.0.7"]), true),
            (
                "IpAddress",
                k,
                json!("10.0.0.7"),
                Some(&["10.0.0.8"]),
                false,
            ),
            // Host bits in a block are ignored, as AWS does.
            (
                "IpAddress",
                k,
                json!("10.9.9.9/8"),
                Some(&["10.1.2.3"]),
                true,
            ),
            (
                "IpAddress",
                k,
                json!("2001:db8::/32"),
                Some(&["2001:db8::1"]),
                true,
            ),
            (
                "IpAddress",
                k,
                json!("2001:db8::/32"),
                Some(&["2001:db9::1"]),
                false,
            ),
            (
                "IpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["::ffff:10.1.2.3"]),
                true,
            ),
            (
                "IpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["not-an-ip"]),
                false,
            ),
            ("IpAddress", k, json!("10.0.0.0/8"), None, false),
            (
                "NotIpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["192.168.0.1"]),
                true,
            ),
            (
                "NotIpAddress",
                k,
                json!("10.0.0.0/8"),
                Some(&["10.1.2.3"]),
                false,
            ),
            ("NotIpAddress", k, json!("10.0.0.0/8"), None, true),
            ("IpAddressIfExists", k, json!("10.0.0.0/8"), None, true),
        ]);
    }

    #[test]
    fn arn_operators() {
        let k = "aws:PrincipalArn";
        let alice = "arn:aws:iam::111122223333:user/alice";
        run(vec![
            ("ArnEquals", k, json!(alice), Some(&[alice]), true),
            (
                "ArnEquals",
                k,
                json!(alice),
                Some(&["arn:aws:iam::111122223333:user/bob"]),
                false,
            ),
            (
                "ArnLike",
                k,
                json!("arn:aws:iam::*:user/*"),
                Some(&[alice]),
                true,
            ),
            (
                "ArnLike",
                k,
                json!("arn:aws:iam::*:role/*"),
                Some(&[alice]),
                false,
            ),
            // A wildcard stays inside its component.
            (
                "ArnLike",
                k,
                json!("arn:aws:*:111122223333:user/alice"),
                Some(&["arn:aws:iam:us-east-1:111122223333:user/alice"]),
                false,
            ),
            (
                "ArnLike",
                k,
                json!("arn:aws:*:*:111122223333:user/alice"),
                Some(&["arn:aws:iam:us-east-1:111122223333:user/alice"]),
                true,
            ),
            // The resource component keeps its colons.
            (
                "ArnLike",
                k,
                json!("arn:aws:kms:*:*:key/*"),
                Some(&["arn:aws:kms:eu-west-1:111122223333:key/a:b"]),
                true,
            ),
            (
                "ArnLike",
                k,
                json!("arn:aws:iam::111122223333:user/*"),
                Some(&["not-an-arn"]),
                false,
            ),
            (
                "ArnLike",
                k,
                json!("arn:aws:iam::111122223333:user/alice"),
                Some(&["arn:aws:IAM::111122223333:user/alice"]),
                false,
            ),
            ("ArnLike", k, json!("*"), Some(&["anything"]), true),
            ("ArnLike", k, json!("*"), Some(&[alice]), true),
            // Component counts must agree.
            (
                "ArnLike",
                k,
                json!("arn:aws:iam::111122223333"),
                Some(&[alice]),
                false,
            ),
            ("ArnLike", k, json!("arn:*"), Some(&[alice]), false),
            (
                "ArnEquals",
                k,
                json!("not-an-arn"),
                Some(&["not-an-arn"]),
                true,
            ),
            (
                "ArnNotEquals",
                k,
                json!(alice),
                Some(&["arn:aws:iam::111122223333:user/bob"]),
                true,
            ),
            ("ArnNotEquals", k, json!(alice), Some(&[alice]), false),
            (
                "ArnNotLike",
                k,
                json!("arn:aws:iam::*:role/*"),
                Some(&[alice]),
                true,
            ),
            (
                "ArnNotLike",
                k,
                json!("arn:aws:iam::*:user/*"),
                Some(&[alice]),
                false,
            ),
            ("ArnNotLike", k, json!("arn:aws:iam::*:user/*"), None, true),
            (
                "ArnLikeIfExists",
                k,
                json!("arn:aws:iam::*:user/*"),
                None,
                true,
            ),
        ]);
    }

    #[test]
    fn null_operator() {
        let k = "kms:EncryptionContext:Department";
        run(vec![
            ("Null", k, json!("true"), None, true),
            ("Null", k, json!("true"), Some(&["Sales"]), false),
            ("Null", k, json!("false"), Some(&["Sales"]), true),
            ("Null", k, json!("false"), None, false),
            ("Null", k, json!(true), Some(&[]), true),
        ]);
    }

    #[test]
    fn set_qualifiers() {
        let k = "kms:EncryptionContextKeys";
        let allowed = json!(["Department", "Project"]);
        run(vec![
            (
                "ForAllValues:StringEquals",
                k,
                allowed.clone(),
                Some(&["Department"]),
                true,
            ),
            (
                "ForAllValues:StringEquals",
                k,
                allowed.clone(),
                Some(&["Department", "Project"]),
                true,
            ),
            (
                "ForAllValues:StringEquals",
                k,
                allowed.clone(),
                Some(&["Department", "Owner"]),
                false,
            ),
            ("ForAllValues:StringEquals", k, allowed.clone(), None, true),
            (
                "ForAllValues:StringEquals",
                k,
                allowed.clone(),
                Some(&[]),
                true,
            ),
            (
                "ForAnyValue:StringEquals",
                k,
                allowed.clone(),
                Some(&["Owner", "Project"]),
                true,
            ),
            (
                "ForAnyValue:StringEquals",
                k,
                allowed.clone(),
                Some(&["Owner"]),
                false,
            ),
            ("ForAnyValue:StringEquals", k, allowed.clone(), None, false),
            (
                "ForAnyValue:StringEqualsIfExists",
                k,
                allowed.clone(),
                None,
                true,
            ),
            (
                "ForAllValues:StringLike",
                k,
                json!("Dep*"),
                Some(&["Department", "Deputy"]),
                true,
            ),
            (
                "ForAllValues:StringLike",
                k,
                json!("Dep*"),
                Some(&["Department", "Owner"]),
                false,
            ),
            // Negated: every (or some) request value equals none of the list.
            (
                "ForAllValues:StringNotEquals",
                k,
                json!("Secret"),
                Some(&["Department", "Project"]),
                true,
            ),
            (
                "ForAllValues:StringNotEquals",
                k,
                json!("Secret"),
                Some(&["Department", "Secret"]),
                false,
            ),
            (
                "ForAnyValue:StringNotEquals",
                k,
                json!("Secret"),
                Some(&["Department", "Secret"]),
                true,
            ),
            (
                "ForAnyValue:StringNotEquals",
                k,
                json!("Secret"),
                Some(&["Secret"]),
                false,
            ),
            (
                "ForAnyValue:StringNotEquals",
                k,
                json!("Secret"),
                None,
                false,
            ),
            (
                "ForAllValues:StringEquals",
                "kms:GrantOperations",
                json!(["Encrypt", "Decrypt"]),
                Some(&["Decrypt", "Encrypt"]),
                true,
            ),
            (
                "ForAllValues:StringEquals",
                "kms:GrantOperations",
                json!(["Encrypt", "Decrypt"]),
                Some(&["Decrypt", "CreateGrant"]),
                false,
            ),
        ]);
    }

    #[test]
    fn keys_are_case_insensitive() {
        let cond = condition(
            "StringEquals",
            "KMS:EncryptionContext:Department",
            json!("Sales"),
        );
        let mut context = ConditionContext::new();
        context.set("kms:encryptioncontext:DEPARTMENT", "Sales");
        assert!(cond.holds(&context));
        assert_eq!(
            context.get("Kms:EncryptionContext:Department"),
            Some(&["Sales".to_string()][..])
        );
        assert_eq!(context.get("kms:EncryptionContext:Other"), None);
    }

    #[test]
    fn context_set_replaces() {
        let mut context = ConditionContext::new();
        context
            .set_many("k", vec!["a".into(), "b".into()])
            .set("K", "c");
        assert_eq!(context.get("k"), Some(&["c".to_string()][..]));
    }

    #[test]
    fn all_conditions_in_a_block_must_hold() {
        let block = json!({
            "StringEquals": { "k:a": "1", "k:b": "2" },
            "Bool": { "k:c": "true" }
        });
        let conditions = parse_block(&block, "Condition").expect("valid");
        assert_eq!(conditions.len(), 3);
        let mut context = ctx(&[("k:a", &["1"]), ("k:b", &["2"]), ("k:c", &["true"])]);
        assert!(conditions.iter().all(|c| c.holds(&context)));
        context.set("k:b", "3");
        assert!(!conditions.iter().all(|c| c.holds(&context)));
    }

    #[test]
    fn every_operator_name_parses() {
        for (name, _, _) in OPERATORS {
            for set in ["", "ForAllValues:", "ForAnyValue:"] {
                let full = format!("{set}{name}");
                assert!(Operator::parse(&full).is_ok(), "{full}");
                let if_exists = format!("{full}IfExists");
                assert_eq!(
                    Operator::parse(&if_exists).is_ok(),
                    *name != "Null",
                    "{if_exists}"
                );
            }
        }
    }

    #[test]
    fn malformed_conditions() {
        let table: &[(Value, &str, &str)] = &[
            (
                json!({"StringEqual": {"k": "v"}}),
                "Condition.StringEqual",
                "unknown condition operator 'StringEqual'",
            ),
            (
                json!({"stringequals": {"k": "v"}}),
                "Condition.stringequals",
                "unknown condition operator",
            ),
            (
                json!({"ForAllValue:StringEquals": {"k": "v"}}),
                "Condition.ForAllValue:StringEquals",
                "unknown condition operator",
            ),
            (
                json!({"NullIfExists": {"k": "true"}}),
                "Condition.NullIfExists",
                "Null has no IfExists form",
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}}),
                "Condition.IpAddress.aws:SourceIp",
                "invalid IP address or CIDR block '10.0.0.300/8'",
            ),
            (
                json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "10.0.0.0/33"]}}),
                "Condition.IpAddress.aws:SourceIp",
                "'10.0.0.0/33'",
            ),
            (
                json!({"DateLessThan": {"aws:CurrentTime": "next tuesday"}}),
                "Condition.DateLessThan.aws:CurrentTime",
                "invalid date 'next tuesday'",
            ),
            (
                json!({"DateLessThan": {"aws:CurrentTime": "2026-13-01T00:00:00Z"}}),
                "Condition.DateLessThan.aws:CurrentTime",
                "invalid date",
            ),
            (
                json!({"NumericLessThan": {"k": "ten"}}),
                "Condition.NumericLessThan.k",
                "invalid number 'ten'",
            ),
            (
                json!({"NumericLessThan": {"k": "NaN"}}),
                "Condition.NumericLessThan.k",
                "invalid number 'NaN'",
            ),
            (
                json!({"Bool": {"k": "yes"}}),
                "Condition.Bool.k",
                "invalid boolean 'yes'",
            ),
            (
                json!({"Null": {"k": "maybe"}}),
                "Condition.Null.k",
                "invalid boolean",
            ),
            (
                json!({"StringEquals": {"k": []}}),
                "Condition.StringEquals.k",
                "found an empty list",
            ),
            (
                json!({"StringEquals": {"k": null}}),
                "Condition.StringEquals.k",
                "found null",
            ),
            (
                json!({"StringEquals": {"k": {"a": "b"}}}),
                "Condition.StringEquals.k",
                "found an object",
            ),
            (
                json!({"StringEquals": {"k": ["a", ["b"]]}}),
                "Condition.StringEquals.k",
                "found a list holding a list",
            ),
            (
                json!({"StringEquals": {}}),
                "Condition.StringEquals",
                "no condition keys",
            ),
            (
                json!({"StringEquals": "k"}),
                "Condition.StringEquals",
                "expected an object of condition keys",
            ),
            (
                json!({"StringEquals": {"": "v"}}),
                "Condition.StringEquals.",
                "empty condition key",
            ),
            (
                json!(["StringEquals"]),
                "Condition",
                "expected an object, found a list",
            ),
        ];
        for (block, path, message) in table {
            let err = parse_block(block, "Condition").expect_err(&block.to_string());
            assert_eq!(err.path, *path, "{block}");
            assert!(err.message.contains(message), "{block}: {}", err.message);
        }
    }

    #[test]
    fn date_formats() {
        let midnight = 1_767_225_600 * NANOS_PER_SECOND;
        for s in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T01:00:00+01:00",
            "2026-01-01T00:00:00",
            "2026-01-01",
            "1767225600",
        ] {
            assert_eq!(parse_date(s), Some(midnight), "{s}");
        }
        for s in [
            "",
            "-",
            "20x6",
            "2026-01-01T25:00:00Z",
            "99999999999999999999",
            "1.5",
        ] {
            assert_eq!(parse_date(s), None, "{s}");
        }
    }
}
