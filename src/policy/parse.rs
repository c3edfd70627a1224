//! Parsing a policy document into compiled statements.
//!
//! Owns the document's shape: the size limit, `Version`/`Id`/`Statement`,
//! the keys a statement may have and which are required for each
//! [`PolicyKind`], and validation of principals and actions. Every refusal
//! is a [`ParseError`] naming the element at fault. Condition blocks are
//! handed to the `condition` module; nothing here evaluates anything.
//!
//! JSON objects are read through `serde_json::Value`, so when a key appears
//! twice in one object the last occurrence wins.

use serde_json::{Map, Value};

use super::condition;
use super::eval::{Effect, PatternList, PrincipalValue, Principals, Statement};
use super::wildcard::{Case, Pattern};
use super::{MAX_POLICY_BYTES, ParseError, PolicyKind};

const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];
const TOP_LEVEL_KEYS: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

/// Parses and compiles `document` as a policy of `kind`.
pub(super) fn parse(document: &str, kind: PolicyKind) -> Result<Vec<Statement>, ParseError> {
    if document.len() > MAX_POLICY_BYTES {
        return Err(ParseError::new(
            "",
            format!(
                "policy document is {} bytes, over the limit of {MAX_POLICY_BYTES} bytes",
                document.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(document)
        .map_err(|e| ParseError::new("", format!("policy document is not valid JSON: {e}")))?;
    let Value::Object(top) = &value else {
        return Err(ParseError::new(
            "",
            format!(
                "policy document must be a JSON object, found {}",
                json_kind(&value)
            ),
        ));
    };
    if let Some(key) = top.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
        return Err(ParseError::new(
            "",
            format!("unknown top-level key '{key}' (expected Version, Id or Statement)"),
        ));
    }
    if let Some(version) = top.get("Version") {
        let version = expect_str(version, "Version")?;
        if !VERSIONS.contains(&version) {
            return Err(ParseError::new(
                "Version",
                format!("unsupported version '{version}' (expected 2012-10-17 or 2008-10-17)"),
            ));
        }
    }
    if let Some(id) = top.get("Id") {
        expect_str(id, "Id")?;
    }
    match top.get("Statement") {
        None => Err(ParseError::new("", "missing Statement")),
        Some(Value::Object(statement)) => Ok(vec![parse_statement(statement, "Statement", kind)?]),
        Some(Value::Array(items)) if items.is_empty() => {
            Err(ParseError::new("Statement", "no statements"))
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("Statement[{i}]");
                match item {
                    Value::Object(statement) => parse_statement(statement, &path, kind),
                    other => Err(ParseError::new(
                        &path,
                        format!("expected a statement object, found {}", json_kind(other)),
                    )),
                }
            })
            .collect(),
        Some(other) => Err(ParseError::new(
            "Statement",
            format!(
                "expected a statement object or a non-empty list of them, found {}",
                json_kind(other)
            ),
        )),
    }
}

fn parse_statement(
    statement: &Map<String, Value>,
    path: &str,
    kind: PolicyKind,
) -> Result<Statement, ParseError> {
    if let Some(key) = statement
        .keys()
        .find(|k| !STATEMENT_KEYS.contains(&k.as_str()))
    {
        return Err(ParseError::new(
            path,
            format!(
                "unknown key '{key}' (expected Sid, Effect, Principal, NotPrincipal, Action, \
                 NotAction, Resource, NotResource or Condition)"
            ),
        ));
    }
    let child = |key: &str| format!("{path}.{key}");

    if let Some(sid) = statement.get("Sid") {
        expect_str(sid, &child("Sid"))?;
    }

    let effect = match statement.get("Effect") {
        None => return Err(ParseError::new(path, "missing Effect")),
        Some(value) => match expect_str(value, &child("Effect"))? {
            "Allow" => Effect::Allow,
            "Deny" => Effect::Deny,
            other => {
                return Err(ParseError::new(
                    &child("Effect"),
                    format!("unknown effect '{other}' (expected Allow or Deny)"),
                ));
            }
        },
    };

    let principals = match (statement.get("Principal"), statement.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(
                path,
                "Principal and NotPrincipal cannot both be present",
            ));
        }
        (Some(_), None) | (None, Some(_)) if kind == PolicyKind::Identity => {
            let key = if statement.contains_key("Principal") {
                "Principal"
            } else {
                "NotPrincipal"
            };
            return Err(ParseError::new(
                &child(key),
                format!("{key} is not allowed in an identity policy"),
            ));
        }
        (Some(value), None) => Principals::Only(parse_principal(value, &child("Principal"))?),
        (None, Some(value)) => Principals::AllBut(parse_principal(value, &child("NotPrincipal"))?),
        (None, None) if kind == PolicyKind::Identity => Principals::Holder,
        (None, None) => {
            return Err(ParseError::new(
                path,
                format!(
                    "missing Principal or NotPrincipal (required in a {} policy)",
                    kind_name(kind)
                ),
            ));
        }
    };

    let actions = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(
                path,
                "Action and NotAction cannot both be present",
            ));
        }
        (None, None) => return Err(ParseError::new(path, "missing Action or NotAction")),
        (Some(value), None) => PatternList::new(parse_actions(value, &child("Action"))?, false),
        (None, Some(value)) => PatternList::new(parse_actions(value, &child("NotAction"))?, true),
    };

    let resources = match (statement.get("Resource"), statement.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(ParseError::new(
                path,
                "Resource and NotResource cannot both be present",
            ));
        }
        (None, None) if kind == PolicyKind::Identity => {
            return Err(ParseError::new(
                path,
                "missing Resource or NotResource (required in an identity policy)",
            ));
        }
        (None, None) => None,
        (Some(value), None) => Some(PatternList::new(
            parse_resources(value, &child("Resource"))?,
            false,
        )),
        (None, Some(value)) => Some(PatternList::new(
            parse_resources(value, &child("NotResource"))?,
            true,
        )),
    };

    let conditions = match statement.get("Condition") {
        None => Vec::new(),
        Some(value) => condition::parse_block(value, &child("Condition"))?,
    };

    Ok(Statement {
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

fn kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Key => "key",
        PolicyKind::Identity => "identity",
        PolicyKind::Trust => "trust",
    }
}

/// `"*"`, or an object of `AWS`, `Service` and `Federated` values.
fn parse_principal(value: &Value, path: &str) -> Result<Vec<PrincipalValue>, ParseError> {
    let map = match value {
        Value::String(s) if s == "*" => return Ok(vec![PrincipalValue::Anyone]),
        Value::Object(map) => map,
        Value::String(s) => {
            return Err(ParseError::new(
                path,
                format!(
                    "invalid principal '{s}' (expected \"*\" or an object such as {{\"AWS\": ...}})"
                ),
            ));
        }
        other => {
            return Err(ParseError::new(
                path,
                format!(
                    "expected \"*\" or an object such as {{\"AWS\": ...}}, found {}",
                    json_kind(other)
                ),
            ));
        }
    };
    if map.is_empty() {
        return Err(ParseError::new(path, "no principals"));
    }
    let mut values = Vec::new();
    for (key, entry) in map {
        let entry_path = format!("{path}.{key}");
        let strings = string_or_list(entry, &entry_path)?;
        match key.as_str() {
            "AWS" => {
                for s in strings {
                    values
                        .push(parse_aws_principal(s).map_err(|m| ParseError::new(&entry_path, m))?);
                }
            }
            // Accepted so documents written for AWS parse, but kmsd has no
            // service or federated callers: these never match anyone.
            "Service" | "Federated" => {
                if let Some(empty) = strings.iter().find(|s| s.is_empty()) {
                    return Err(ParseError::new(
                        &entry_path,
                        format!("invalid principal '{empty}'"),
                    ));
                }
            }
            other => {
                return Err(ParseError::new(
                    path,
                    format!(
                        "unknown principal type '{other}' (expected AWS, Service or Federated)"
                    ),
                ));
            }
        }
    }
    Ok(values)
}

/// One `AWS` principal: `*`, a 12-digit account id, or an IAM root, user or
/// role ARN, or an STS assumed-role session ARN. No other wildcards.
fn parse_aws_principal(s: &str) -> Result<PrincipalValue, String> {
    let invalid = || {
        format!(
            "invalid AWS principal '{s}' (expected \"*\", a 12-digit account id, \
             arn:aws:iam::<account>:root|user/<name>|role/<name>, or \
             arn:aws:sts::<account>:assumed-role/<role>/<session>)"
        )
    };
    if s == "*" {
        return Ok(PrincipalValue::Anyone);
    }
    if is_account_id(s) {
        return Ok(PrincipalValue::Account(s.to_string()));
    }
    let (service, rest) = if let Some(rest) = s.strip_prefix("arn:aws:iam::") {
        ("iam", rest)
    } else if let Some(rest) = s.strip_prefix("arn:aws:sts::") {
        ("sts", rest)
    } else {
        return Err(invalid());
    };
    let Some((account, resource)) = rest.split_once(':') else {
        return Err(invalid());
    };
    if !is_account_id(account) {
        return Err(invalid());
    }
    let valid = match service {
        "iam" if resource == "root" => return Ok(PrincipalValue::Account(account.to_string())),
        "iam" => resource
            .strip_prefix("user/")
            .or_else(|| resource.strip_prefix("role/"))
            .is_some_and(is_iam_path_and_name),
        _ => resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(role, session)| is_iam_name(role) && is_iam_name(session)),
    };
    if valid {
        Ok(PrincipalValue::Arn(s.to_string()))
    } else {
        Err(invalid())
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM user, role or session name: letters, digits and `+=,.@_-`.
fn is_iam_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// `path/segments/name`: every `/`-separated part a non-empty name.
fn is_iam_path_and_name(s: &str) -> bool {
    s.split('/').all(is_iam_name)
}

/// `*` or `<service>:<name-pattern>`, compiled case-insensitively.
fn parse_actions(value: &Value, path: &str) -> Result<Vec<Pattern>, ParseError> {
    string_or_list(value, path)?
        .into_iter()
        .map(|action| {
            if is_valid_action(action) {
                Ok(Pattern::new(action, Case::InsensitiveAscii))
            } else {
                Err(ParseError::new(
                    path,
                    format!(
                        "invalid action '{action}' (expected \"*\" or <service>:<action>, \
                         e.g. kms:Encrypt or kms:Generate*)"
                    ),
                ))
            }
        })
        .collect()
}

fn is_valid_action(action: &str) -> bool {
    if action == "*" {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
}

/// Resource patterns, compiled case-sensitively.
fn parse_resources(value: &Value, path: &str) -> Result<Vec<Pattern>, ParseError> {
    string_or_list(value, path)?
        .into_iter()
        .map(|resource| {
            if resource.is_empty() {
                Err(ParseError::new(path, "empty resource"))
            } else {
                Ok(Pattern::new(resource, Case::Sensitive))
            }
        })
        .collect()
}

/// A string, or a non-empty list of strings.
fn string_or_list<'v>(value: &'v Value, path: &str) -> Result<Vec<&'v str>, ParseError> {
    let expected = "expected a string or a non-empty list of strings";
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if items.is_empty() => Err(ParseError::new(
            path,
            format!("{expected}, found an empty list"),
        )),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.as_str()),
                other => Err(ParseError::new(
                    path,
                    format!("{expected}, found a list holding {}", json_kind(other)),
                )),
            })
            .collect(),
        other => Err(ParseError::new(
            path,
            format!("{expected}, found {}", json_kind(other)),
        )),
    }
}

fn expect_str<'v>(value: &'v Value, path: &str) -> Result<&'v str, ParseError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(ParseError::new(
            path,
            format!("expected a string, found {}", json_kind(other)),
        )),
    }
}

/// "a string", "an object", ... for error messages.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Policy, PolicyKind};
    use super::*;

    fn key_policy(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#)
    }

    #[test]
    fn valid_documents() {
        let table: &[(&str, PolicyKind, usize)] = &[
            // Statement as an object, no Version.
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"}}"#,
                PolicyKind::Key,
                1,
            ),
            // Statement as a list; Principal "*", string and list; Action string and list.
            (
                r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[
                    {"Sid":"Enable IAM User Permissions","Effect":"Allow",
                     "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
                    {"Sid":"Users","Effect":"Allow",
                     "Principal":{"AWS":["arn:aws:iam::111122223333:user/alice",
                                        "arn:aws:iam::111122223333:role/path/to/app",
                                        "arn:aws:sts::111122223333:assumed-role/app/session@1",
                                        "444455556666","*"]},
                     "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],
                     "Resource":["*"]},
                    {"Effect":"Deny","Principal":"*","Action":"kms:*"}]}"#,
                PolicyKind::Key,
                3,
            ),
            // NotAction, NotPrincipal, NotResource, Service and Federated principals.
            (
                r#"{"Version":"2008-10-17","Statement":[
                    {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/admin"},
                     "NotAction":["kms:Encrypt","kms:Decrypt"],"NotResource":"arn:aws:kms:*:*:key/k"},
                    {"Effect":"Allow","Principal":{"Service":["logs.amazonaws.com"],"Federated":"x"},"Action":"kms:Encrypt"}]}"#,
                PolicyKind::Key,
                2,
            ),
            // Conditions with several operators and value types.
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:CreateGrant","Condition":{
                    "StringEquals":{"kms:CallerAccount":["111122223333",444455556666]},
                    "StringLikeIfExists":{"kms:EncryptionContext:Department":"Sa*"},
                    "ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","Decrypt"]},
                    "ForAnyValue:StringNotLike":{"kms:EncryptionContextKeys":"x*"},
                    "Bool":{"kms:GrantIsForAWSResource":true,"aws:MultiFactorAuthPresent":"TRUE"},
                    "IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32","192.0.2.1"]},
                    "NotIpAddress":{"aws:SourceIp":"10.1.0.0/16"},
                    "DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},
                    "DateLessThan":{"aws:CurrentTime":1893456000},
                    "NumericLessThanEquals":{"kms:ExpirationDays":90.5},
                    "ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"},
                    "Null":{"kms:EncryptionContext:Secret":"true"}}}]}"#,
                PolicyKind::Key,
                1,
            ),
            // Identity policy: no Principal, Resource required.
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:CreateUser","kms:*"],"Resource":"*"}]}"#,
                PolicyKind::Identity,
                1,
            ),
            // Trust policy.
            (
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}"#,
                PolicyKind::Trust,
                1,
            ),
            // Action service names may hold digits and dashes.
            (
                r#"{"Statement":{"Effect":"Allow","Action":["s3:Get?bject","kms-v2:*","*"],"Resource":"*"}}"#,
                PolicyKind::Identity,
                1,
            ),
        ];
        for (document, kind, statements) in table {
            let policy =
                Policy::parse(document, *kind).unwrap_or_else(|e| panic!("{e}\n{document}"));
            assert_eq!(policy.statements.len(), *statements, "{document}");
        }
    }

    #[test]
    fn principal_values_compile() {
        let table: &[(&str, PrincipalValue)] = &[
            ("*", PrincipalValue::Anyone),
            (
                "111122223333",
                PrincipalValue::Account("111122223333".into()),
            ),
            (
                "arn:aws:iam::111122223333:root",
                PrincipalValue::Account("111122223333".into()),
            ),
            (
                "arn:aws:iam::111122223333:user/alice",
                PrincipalValue::Arn("arn:aws:iam::111122223333:user/alice".into()),
            ),
            (
                "arn:aws:iam::111122223333:user/division/alice",
                PrincipalValue::Arn("arn:aws:iam::111122223333:user/division/alice".into()),
            ),
            (
                "arn:aws:sts::111122223333:assumed-role/app/s1",
                PrincipalValue::Arn("arn:aws:sts::111122223333:assumed-role/app/s1".into()),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(parse_aws_principal(input).as_ref(), Ok(expected), "{input}");
        }
        for bad in [
            "",
            "**",
            "11112222333",
            "1111222233334",
            "11112222333x",
            "alice",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::111122223333:user/a//b",
            "arn:aws:iam::111122223333:group/admins",
            "arn:aws:iam::111122223333:Root",
            "arn:aws:iam::*:root",
            "arn:aws:iam::111122223333",
            "arn:aws:iam:us-east-1:111122223333:user/alice",
            "arn:aws:sts::111122223333:assumed-role/app",
            "arn:aws:sts::111122223333:assumed-role/app/s1/extra",
            "arn:aws:sts::111122223333:root",
            "arn:aws:kms:us-east-1:111122223333:key/k",
            "arn:aws-cn:iam::111122223333:root",
        ] {
            let err = parse_aws_principal(bad).expect_err(bad);
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn malformed_documents() {
        let big = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:*","Sid":"{}"}}}}"#,
            "x".repeat(33 * 1024)
        );
        let allow = r#""Effect":"Allow","Principal":"*","Action":"kms:*""#;
        let too_big = format!("is {} bytes, over the limit of 32768 bytes", big.len());
        let table: Vec<(String, PolicyKind, &str, &str)> = vec![
            (
                "{".into(),
                PolicyKind::Key,
                "",
                "not valid JSON: EOF while parsing an object at line 1 column 1",
            ),
            ("".into(), PolicyKind::Key, "", "not valid JSON"),
            (
                r#"{"Statement": [}"#.into(),
                PolicyKind::Key,
                "",
                "line 1 column 16",
            ),
            (
                "[]".into(),
                PolicyKind::Key,
                "",
                "must be a JSON object, found a list",
            ),
            ("null".into(), PolicyKind::Key, "", "found null"),
            (big, PolicyKind::Key, "", &too_big),
            (
                r#"{"Version":"2012-10-17"}"#.into(),
                PolicyKind::Key,
                "",
                "missing Statement",
            ),
            (
                key_policy("[]"),
                PolicyKind::Key,
                "Statement",
                "no statements",
            ),
            (
                key_policy(r#""x""#),
                PolicyKind::Key,
                "Statement",
                "found a string",
            ),
            (
                key_policy(&format!(r#"[{{{allow}}}, 7]"#)),
                PolicyKind::Key,
                "Statement[1]",
                "found a number",
            ),
            (
                format!(r#"{{"Statement":{{{allow}}},"Statment":[]}}"#),
                PolicyKind::Key,
                "",
                "unknown top-level key 'Statment'",
            ),
            (
                format!(r#"{{"Version":"2012-10-18","Statement":{{{allow}}}}}"#),
                PolicyKind::Key,
                "Version",
                "unsupported version '2012-10-18'",
            ),
            (
                format!(r#"{{"Version":20121017,"Statement":{{{allow}}}}}"#),
                PolicyKind::Key,
                "Version",
                "expected a string, found a number",
            ),
            (
                format!(r#"{{"Id":1,"Statement":{{{allow}}}}}"#),
                PolicyKind::Key,
                "Id",
                "expected a string",
            ),
            (
                key_policy(&format!(
                    r#"[{{{allow}}},{{"Effect":"Allo","Principal":"*","Action":"kms:*"}}]"#
                )),
                PolicyKind::Key,
                "Statement[1].Effect",
                "unknown effect 'Allo' (expected Allow or Deny)",
            ),
            (
                key_policy(r#"{"Effect":"allow","Principal":"*","Action":"kms:*"}"#),
                PolicyKind::Key,
                "Statement.Effect",
                "unknown effect 'allow'",
            ),
            (
                key_policy(r#"[{"Principal":"*","Action":"kms:*"}]"#),
                PolicyKind::Key,
                "Statement[0]",
                "missing Effect",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*"}]"#),
                PolicyKind::Key,
                "Statement[0]",
                "missing Action or NotAction",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Encrypt"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0]",
                "Action and NotAction cannot both be present",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":[]}]"#),
                PolicyKind::Key,
                "Statement[0].Action",
                "found an empty list",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":["kms:Encrypt",1]}]"#),
                PolicyKind::Key,
                "Statement[0].Action",
                "found a list holding a number",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":"Encrypt"}]"#),
                PolicyKind::Key,
                "Statement[0].Action",
                "invalid action 'Encrypt'",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":"KMS:Encrypt"}]"#),
                PolicyKind::Key,
                "Statement[0].Action",
                "invalid action 'KMS:Encrypt'",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":"kms:"}]"#),
                PolicyKind::Key,
                "Statement[0].Action",
                "invalid action",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","NotAction":"kms:En crypt"}]"#),
                PolicyKind::Key,
                "Statement[0].NotAction",
                "invalid action",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","NotResource":"x"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0]",
                "Resource and NotResource cannot both be present",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":""}]"#,
                ),
                PolicyKind::Key,
                "Statement[0].Resource",
                "empty resource",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":7}]"#),
                PolicyKind::Key,
                "Statement[0].Resource",
                "found a number",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Action":"kms:*"}]"#),
                PolicyKind::Key,
                "Statement[0]",
                "missing Principal or NotPrincipal (required in a key policy)",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Action":"sts:AssumeRole"}]"#),
                PolicyKind::Trust,
                "Statement[0]",
                "required in a trust policy",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]"#,
                ),
                PolicyKind::Identity,
                "Statement[0].Principal",
                "Principal is not allowed in an identity policy",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","NotPrincipal":"*","Action":"kms:*","Resource":"*"}]"#,
                ),
                PolicyKind::Identity,
                "Statement[0].NotPrincipal",
                "not allowed in an identity policy",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Action":"kms:*"}]"#),
                PolicyKind::Identity,
                "Statement[0]",
                "missing Resource or NotResource (required in an identity policy)",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"kms:*"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0]",
                "Principal and NotPrincipal cannot both be present",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:root","bob"]},"Action":"kms:*"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0].Principal.AWS",
                "invalid AWS principal 'bob'",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"kms:*"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0].Principal.AWS",
                "'arn:aws:iam::111122223333:user/*'",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root","Action":"kms:*"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0].Principal",
                "invalid principal 'arn:aws:iam::111122223333:root'",
            ),
            (
                key_policy(
                    r#"[{"Effect":"Allow","Principal":{"CanonicalUser":"abc"},"Action":"kms:*"}]"#,
                ),
                PolicyKind::Key,
                "Statement[0].Principal",
                "unknown principal type 'CanonicalUser'",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":{},"Action":"kms:*"}]"#),
                PolicyKind::Key,
                "Statement[0].Principal",
                "no principals",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":{"AWS":[]},"Action":"kms:*"}]"#),
                PolicyKind::Key,
                "Statement[0].Principal.AWS",
                "found an empty list",
            ),
            (
                key_policy(r#"[{"Effect":"Allow","Principal":["*"],"Action":"kms:*"}]"#),
                PolicyKind::Key,
                "Statement[0].Principal",
                "found a list",
            ),
            (
                key_policy(&format!(r#"[{{{allow},"Sid":5}}]"#)),
                PolicyKind::Key,
                "Statement[0].Sid",
                "expected a string",
            ),
            (
                key_policy(&format!(r#"[{{{allow},"Conditions":{{}}}}]"#)),
                PolicyKind::Key,
                "Statement[0]",
                "unknown key 'Conditions'",
            ),
            (
                key_policy(&format!(r#"[{{{allow},"":1}}]"#)),
                PolicyKind::Key,
                "Statement[0]",
                "unknown key ''",
            ),
            (
                key_policy(&format!(r#"[{{{allow},"effect":"Deny"}}]"#)),
                PolicyKind::Key,
                "Statement[0]",
                "unknown key 'effect'",
            ),
            (
                key_policy(&format!(
                    r#"[{{{allow},"Condition":{{"StringEqualz":{{"k":"v"}}}}}}]"#
                )),
                PolicyKind::Key,
                "Statement[0].Condition.StringEqualz",
                "unknown condition operator 'StringEqualz'",
            ),
            (
                key_policy(&format!(
                    r#"[{{{allow},"Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.256"}}}}}}]"#
                )),
                PolicyKind::Key,
                "Statement[0].Condition.IpAddress.aws:SourceIp",
                "invalid IP address or CIDR block '10.0.0.256'",
            ),
            (
                key_policy(&format!(
                    r#"[{{{allow},"Condition":{{"DateGreaterThan":{{"aws:CurrentTime":"2026-02-30T00:00:00Z"}}}}}}]"#
                )),
                PolicyKind::Key,
                "Statement[0].Condition.DateGreaterThan.aws:CurrentTime",
                "invalid date '2026-02-30T00:00:00Z'",
            ),
            (
                key_policy(&format!(r#"[{{{allow},"Condition":"x"}}]"#)),
                PolicyKind::Key,
                "Statement[0].Condition",
                "expected an object",
            ),
        ];
        for (document, kind, path, message) in table {
            let shown: String = document.chars().take(300).collect();
            let err = Policy::parse(&document, kind).expect_err(&shown);
            assert_eq!(err.path, path, "{shown}\n{err}");
            assert!(
                err.message.contains(message),
                "{shown}\nwanted {message:?}, got {err}"
            );
        }
    }

    #[test]
    fn size_limit_is_inclusive() {
        let head = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Sid":""#;
        let tail = r#""}}"#;
        let fill = MAX_POLICY_BYTES - head.len() - tail.len();
        let exact = format!("{head}{}{tail}", "x".repeat(fill));
        assert_eq!(exact.len(), MAX_POLICY_BYTES);
        assert!(Policy::parse(&exact, PolicyKind::Key).is_ok());
        let over = format!("{head}{}{tail}", "x".repeat(fill + 1));
        assert!(Policy::parse(&over, PolicyKind::Key).is_err());
    }

    #[test]
    fn error_display() {
        let err = Policy::parse(
            &key_policy(r#"[{"Effect":"Allow","Principal":"*","Action":"kms:*"},{"Effect":"Allo","Principal":"*","Action":"kms:*"}]"#),
            PolicyKind::Key,
        )
        .expect_err("bad effect");
        assert_eq!(
            err.to_string(),
            "Statement[1].Effect: unknown effect 'Allo' (expected Allow or Deny)"
        );
        let err = Policy::parse("{}", PolicyKind::Key).expect_err("no statement");
        assert_eq!(err.to_string(), "missing Statement");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let inputs = [
            deep.as_str(),
            "\u{0}",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/é/ß"},"Action":"kms:*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:é*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"NumericEquals":{"k":1e999}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"DateEquals":{"k":"-99999999999999999999"}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"DateEquals":{"k":-9223372036854775808}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"ForAllValues:":{"k":"v"}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"IfExists":{"k":"v"}}}}"#,
        ];
        for input in inputs {
            let _ = Policy::parse(input, PolicyKind::Key);
            let _ = Policy::parse(input, PolicyKind::Identity);
        }
    }
}
