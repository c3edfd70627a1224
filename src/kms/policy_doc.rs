//! Key policy documents as written by CreateKey: the default policy, the
//! administrators/users policy, and the checks made on a supplied one.
//!
//! Parsing and evaluation belong to `crate::policy`.

use serde_json::json;

use crate::error::{KmsError, Result};

const ADMIN_ACTIONS: &[&str] = &[
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
];

const USER_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
    "kms:CreateGrant",
    "kms:ListGrants",
    "kms:RevokeGrant",
];

/// Whether `arn` names an IAM principal: an account root, user or role.
fn is_principal_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:iam::") else {
        return false;
    };
    let Some((account, resource)) = rest.split_once(':') else {
        return false;
    };
    super::is_account_id(account)
        && (resource == "root"
            || resource
                .strip_prefix("user/")
                .is_some_and(|n| !n.is_empty())
            || resource
                .strip_prefix("role/")
                .is_some_and(|n| !n.is_empty()))
}

/// The policy CreateKey writes when it is given none: AWS's default policy
/// (the account root may do everything), or, when administrators or users
/// are named, a statement for each as the AWS console writes them.
pub fn default_policy(
    partition: &str,
    account_id: &str,
    admins: &[String],
    users: &[String],
) -> Result<String> {
    for arn in admins.iter().chain(users) {
        if !is_principal_arn(arn) {
            return Err(KmsError::validation(format!(
                "'{arn}' is not a principal ARN (arn:aws:iam::<account>:root, :user/<name> or :role/<name>)"
            )));
        }
    }
    let doc = if admins.is_empty() && users.is_empty() {
        json!({
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [{
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:{partition}:iam::{account_id}:root")},
                "Action": "kms:*",
                "Resource": "*"
            }]
        })
    } else {
        let mut statements = Vec::new();
        if !admins.is_empty() {
            statements.push(json!({
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": admins},
                "Action": ADMIN_ACTIONS,
                "Resource": "*"
            }));
        }
        if !users.is_empty() {
            statements.push(json!({
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": users},
                "Action": USER_ACTIONS,
                "Resource": "*"
            }));
        }
        json!({"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements})
    };
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_allows_root() {
        let p = default_policy("aws", "111122223333", &[], &[]).unwrap();
        crate::policy::Policy::parse(&p, crate::policy::PolicyKind::Key).unwrap();
        assert!(p.contains("arn:aws:iam::111122223333:root"));
        assert!(p.contains("kms:*"));
    }

    #[test]
    fn admins_and_users_get_separate_statements() {
        let p = default_policy(
            "aws",
            "111122223333",
            &["arn:aws:iam::111122223333:user/alice".into()],
            &["arn:aws:iam::111122223333:role/app".into()],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        let st = v["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2);
        assert!(!st[0]["Action"].to_string().contains("kms:Encrypt"));
        assert!(st[1]["Action"].to_string().contains("kms:Encrypt"));
        assert!(default_policy("aws", "111122223333", &["bob".into()], &[]).is_err());
    }
}
