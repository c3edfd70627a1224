//! `kmsctl iam ...`: accounts, users, access keys, groups, roles, inline
//! policies, MFA and AssumeRole (the IdentityService).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;
use kmsd::client::IdentityClient;
use kmsd::pb;
use serde_json::{Value, json};

use crate::output::print;
use crate::{Conn, all_pages, credentials_path, read_text, ts};

#[derive(Debug, Subcommand)]
pub enum IamCmd {
    /// Create an account (operator only); prints its root credentials once.
    CreateAccount {
        name: String,
        /// Also write the root credentials to the credentials file as this profile.
        #[arg(long, value_parser = profile_name)]
        save_profile: Option<String>,
    },
    /// Create a user.
    CreateUser {
        name: String,
        #[arg(long)]
        path: Option<String>,
    },
    /// Delete a user (its access keys, group memberships and inline policies go with it).
    DeleteUser { name: String },
    /// List the account's users.
    ListUsers,
    /// List a user's access keys (yours by default); secrets are never shown again.
    ListAccessKeys {
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete an access key (of a user, or yours).
    DeleteAccessKey {
        /// The access key id. (Not named `access_key_id`: that is the
        /// global credentials option's id, and clap would mix the two.)
        #[arg(value_name = "ACCESS_KEY_ID")]
        key_id: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Create an access key (for a user, or for yourself).
    CreateAccessKey {
        #[arg(long)]
        user: Option<String>,
        /// Also write the key to the credentials file as this profile.
        #[arg(long, value_parser = profile_name)]
        save_profile: Option<String>,
    },
    /// Attach an inline policy (file, or - for stdin) to a user.
    PutUserPolicy {
        user: String,
        policy_name: String,
        file: PathBuf,
    },
    /// Create a group.
    CreateGroup { name: String },
    /// Delete a group.
    DeleteGroup { name: String },
    /// Add a user to a group.
    AddUserToGroup { group: String, user: String },
    /// Remove a user from a group.
    RemoveUserFromGroup { group: String, user: String },
    /// The groups a user belongs to.
    ListGroupsForUser { user: String },
    /// Attach an inline policy to a group.
    PutGroupPolicy {
        group: String,
        policy_name: String,
        file: PathBuf,
    },
    /// Create a role whose trust policy (file) names who may assume it.
    CreateRole {
        name: String,
        #[arg(long)]
        trust_policy: PathBuf,
    },
    /// Describe a role, with its trust policy.
    GetRole { name: String },
    /// Delete a role.
    DeleteRole { name: String },
    /// Print a user's inline policy.
    GetUserPolicy { user: String, policy_name: String },
    /// Remove a user's inline policy.
    DeleteUserPolicy { user: String, policy_name: String },
    /// Print a group's inline policy.
    GetGroupPolicy { group: String, policy_name: String },
    /// Remove a group's inline policy.
    DeleteGroupPolicy { group: String, policy_name: String },
    /// Print a role's inline policy.
    GetRolePolicy { role: String, policy_name: String },
    /// Remove a role's inline policy.
    DeleteRolePolicy { role: String, policy_name: String },
    /// Attach an inline policy to a role.
    PutRolePolicy {
        role: String,
        policy_name: String,
        file: PathBuf,
    },
    /// Enrol a TOTP device for yourself; prints its secret once.
    EnableMfa,
    /// Assume a role; prints temporary credentials.
    AssumeRole {
        /// Role ARN, or a role name in your account.
        role: String,
        #[arg(long, default_value = "kmsctl")]
        session_name: String,
        #[arg(long)]
        duration_seconds: Option<i32>,
        /// A current code from your TOTP device (for an MFA session).
        #[arg(long)]
        token_code: Option<String>,
        /// Also write the credentials to the credentials file as this profile.
        #[arg(long, value_parser = profile_name)]
        save_profile: Option<String>,
    },
}

fn user_json(u: &pb::User) -> Value {
    json!({"UserName": u.user_name, "UserId": u.user_id, "Arn": u.arn, "Path": u.path, "CreateDate": ts(u.create_date.as_ref())})
}

pub async fn run_iam(
    cmd: IamCmd,
    iam: &mut IdentityClient,
    conn: &Conn,
    endpoint: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<()> {
    match cmd {
        IamCmd::CreateAccount { name, save_profile } => {
            let r = iam
                .create_account(pb::CreateAccountRequest { account_name: name })
                .await?
                .into_inner();
            let c = r
                .root_credentials
                .ok_or_else(|| anyhow!("the daemon returned no credentials"))?;
            let secret = zeroize::Zeroizing::new(c.secret_access_key.clone());
            print_then_save(
                &json!({
                    "AccountId": r.account_id,
                    "RootArn": r.root_arn,
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": secret.as_str(),
                    "SavedAsProfile": save_profile,
                }),
                conn,
                ca_file,
                save_profile.as_deref(),
                &[
                    ("endpoint", endpoint),
                    ("account_id", &r.account_id),
                    ("access_key_id", &c.access_key_id),
                    ("secret_access_key", &secret),
                ],
            )
        }
        IamCmd::CreateUser { name, path } => {
            let r = iam
                .create_user(pb::CreateUserRequest {
                    user_name: name,
                    path,
                })
                .await?
                .into_inner();
            print(&json!({"User": r.user.as_ref().map(user_json)}))
        }
        IamCmd::ListUsers => {
            let users = all_pages(|marker| {
                let mut iam = iam.clone();
                async move {
                    let r = iam
                        .list_users(pb::ListUsersRequest {
                            limit: Some(1000),
                            marker,
                        })
                        .await?
                        .into_inner();
                    Ok((r.users, r.next_marker, r.truncated))
                }
            })
            .await?;
            print(&json!({"Users": users.iter().map(user_json).collect::<Vec<_>>()}))
        }
        IamCmd::CreateAccessKey { user, save_profile } => {
            let me = iam
                .get_caller_identity(pb::GetCallerIdentityRequest {})
                .await?
                .into_inner();
            let k = iam
                .create_access_key(pb::CreateAccessKeyRequest { user_name: user })
                .await?
                .into_inner()
                .access_key
                .ok_or_else(|| anyhow!("the daemon returned no access key"))?;
            let secret = zeroize::Zeroizing::new(k.secret_access_key.clone());
            print_then_save(
                &json!({"AccessKey": {
                    "UserName": k.user_name,
                    "AccessKeyId": k.access_key_id,
                    "SecretAccessKey": secret.as_str(),
                    "SavedAsProfile": save_profile,
                }}),
                conn,
                ca_file,
                save_profile.as_deref(),
                &[
                    ("endpoint", endpoint),
                    ("account_id", &me.account),
                    ("access_key_id", &k.access_key_id),
                    ("secret_access_key", &secret),
                ],
            )
        }
        IamCmd::PutUserPolicy {
            user,
            policy_name,
            file,
        } => {
            iam.put_user_policy(pb::PutPrincipalPolicyRequest {
                principal_name: user,
                policy_name,
                policy_document: read_text(&file)?,
            })
            .await?;
            Ok(())
        }
        IamCmd::CreateGroup { name } => {
            let r = iam
                .create_group(pb::CreateGroupRequest {
                    group_name: name,
                    path: None,
                })
                .await?
                .into_inner();
            print(&json!({"Group": group_json(&r.group.unwrap_or_default())}))
        }
        IamCmd::AddUserToGroup { group, user } => {
            iam.add_user_to_group(pb::AddUserToGroupRequest {
                group_name: group,
                user_name: user,
            })
            .await?;
            Ok(())
        }
        IamCmd::PutGroupPolicy {
            group,
            policy_name,
            file,
        } => {
            iam.put_group_policy(pb::PutPrincipalPolicyRequest {
                principal_name: group,
                policy_name,
                policy_document: read_text(&file)?,
            })
            .await?;
            Ok(())
        }
        IamCmd::CreateRole { name, trust_policy } => {
            let r = iam
                .create_role(pb::CreateRoleRequest {
                    role_name: name,
                    assume_role_policy_document: read_text(&trust_policy)?,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let role = r.role.unwrap_or_default();
            print(
                &json!({"Role": {"RoleName": role.role_name, "Arn": role.arn, "RoleId": role.role_id}}),
            )
        }
        IamCmd::PutRolePolicy {
            role,
            policy_name,
            file,
        } => {
            iam.put_role_policy(pb::PutPrincipalPolicyRequest {
                principal_name: role,
                policy_name,
                policy_document: read_text(&file)?,
            })
            .await?;
            Ok(())
        }
        IamCmd::DeleteUser { name } => {
            iam.delete_user(pb::DeleteUserRequest { user_name: name })
                .await?;
            Ok(())
        }
        IamCmd::ListAccessKeys { user } => {
            let r = iam
                .list_access_keys(pb::ListAccessKeysRequest { user_name: user })
                .await?
                .into_inner();
            let keys: Vec<Value> = r
                .access_key_metadata
                .iter()
                .map(|k| {
                    json!({
                        "UserName": k.user_name,
                        "AccessKeyId": k.access_key_id,
                        "Status": access_key_status(k.status),
                        "CreateDate": ts(k.create_date.as_ref()),
                    })
                })
                .collect();
            print(&json!({"AccessKeyMetadata": keys}))
        }
        IamCmd::DeleteAccessKey { key_id, user } => {
            iam.delete_access_key(pb::DeleteAccessKeyRequest {
                access_key_id: key_id,
                user_name: user,
            })
            .await?;
            Ok(())
        }
        IamCmd::DeleteGroup { name } => {
            iam.delete_group(pb::DeleteGroupRequest { group_name: name })
                .await?;
            Ok(())
        }
        IamCmd::RemoveUserFromGroup { group, user } => {
            iam.remove_user_from_group(pb::RemoveUserFromGroupRequest {
                group_name: group,
                user_name: user,
            })
            .await?;
            Ok(())
        }
        IamCmd::ListGroupsForUser { user } => {
            let r = iam
                .list_groups_for_user(pb::ListGroupsForUserRequest { user_name: user })
                .await?
                .into_inner();
            print(&json!({"Groups": r.groups.iter().map(group_json).collect::<Vec<_>>()}))
        }
        IamCmd::GetRole { name } => {
            let r = iam
                .get_role(pb::GetRoleRequest { role_name: name })
                .await?
                .into_inner();
            let role = r.role.unwrap_or_default();
            print(&json!({"Role": {
                "RoleName": role.role_name,
                "RoleId": role.role_id,
                "Arn": role.arn,
                "Path": role.path,
                "CreateDate": ts(role.create_date.as_ref()),
                "MaxSessionDuration": role.max_session_duration,
                "AssumeRolePolicyDocument": policy_value(&role.assume_role_policy_document),
            }}))
        }
        IamCmd::DeleteRole { name } => {
            iam.delete_role(pb::DeleteRoleRequest { role_name: name })
                .await?;
            Ok(())
        }
        IamCmd::GetUserPolicy { user, policy_name } => {
            let r = iam
                .get_user_policy(principal_policy(user, policy_name))
                .await?;
            print_policy("UserName", r.into_inner())
        }
        IamCmd::GetGroupPolicy { group, policy_name } => {
            let r = iam
                .get_group_policy(principal_policy(group, policy_name))
                .await?;
            print_policy("GroupName", r.into_inner())
        }
        IamCmd::GetRolePolicy { role, policy_name } => {
            let r = iam
                .get_role_policy(principal_policy(role, policy_name))
                .await?;
            print_policy("RoleName", r.into_inner())
        }
        IamCmd::DeleteUserPolicy { user, policy_name } => {
            iam.delete_user_policy(pb::DeletePrincipalPolicyRequest {
                principal_name: user,
                policy_name,
            })
            .await?;
            Ok(())
        }
        IamCmd::DeleteGroupPolicy { group, policy_name } => {
            iam.delete_group_policy(pb::DeletePrincipalPolicyRequest {
                principal_name: group,
                policy_name,
            })
            .await?;
            Ok(())
        }
        IamCmd::DeleteRolePolicy { role, policy_name } => {
            iam.delete_role_policy(pb::DeletePrincipalPolicyRequest {
                principal_name: role,
                policy_name,
            })
            .await?;
            Ok(())
        }
        IamCmd::EnableMfa => {
            let r = iam
                .enable_mfa_device(pb::EnableMfaDeviceRequest {})
                .await?
                .into_inner();
            let secret = zeroize::Zeroizing::new(r.base32_secret.clone());
            let uri = zeroize::Zeroizing::new(r.otpauth_uri.clone());
            print(
                &json!({"SerialNumber": r.serial_number, "Base32StringSeed": secret.as_str(), "OtpauthUri": uri.as_str()}),
            )
        }
        IamCmd::AssumeRole {
            role,
            session_name,
            duration_seconds,
            token_code,
            save_profile,
        } => {
            let r = iam
                .assume_role(pb::AssumeRoleRequest {
                    role_arn: role,
                    role_session_name: session_name,
                    duration_seconds,
                    token_code,
                })
                .await?
                .into_inner();
            let c = r
                .credentials
                .ok_or_else(|| anyhow!("the daemon returned no credentials"))?;
            let secret = zeroize::Zeroizing::new(c.secret_access_key.clone());
            let token = zeroize::Zeroizing::new(c.session_token.clone().unwrap_or_default());
            let account = r
                .assumed_role_arn
                .split(':')
                .nth(4)
                .unwrap_or_default()
                .to_owned();
            print_then_save(
                &json!({
                    "AssumedRoleUser": {"Arn": r.assumed_role_arn, "AssumedRoleId": r.assumed_role_id},
                    "Credentials": {
                        "AccessKeyId": c.access_key_id,
                        "SecretAccessKey": secret.as_str(),
                        "SessionToken": token.as_str(),
                        "Expiration": ts(c.expiration.as_ref()),
                    },
                    "SavedAsProfile": save_profile,
                }),
                conn,
                ca_file,
                save_profile.as_deref(),
                &[
                    ("endpoint", endpoint),
                    ("account_id", &account),
                    ("access_key_id", &c.access_key_id),
                    ("secret_access_key", &secret),
                    ("session_token", &token),
                ],
            )
        }
    }
}

fn group_json(g: &pb::Group) -> Value {
    json!({
        "GroupName": g.group_name,
        "GroupId": g.group_id,
        "Arn": g.arn,
        "Path": g.path,
        "CreateDate": ts(g.create_date.as_ref()),
    })
}

fn access_key_status(v: i32) -> &'static str {
    match pb::AccessKeyStatus::try_from(v) {
        Ok(pb::AccessKeyStatus::Active) => "Active",
        Ok(pb::AccessKeyStatus::Inactive) => "Inactive",
        _ => "Unknown",
    }
}

fn principal_policy(principal_name: String, policy_name: String) -> pb::GetPrincipalPolicyRequest {
    pb::GetPrincipalPolicyRequest {
        principal_name,
        policy_name,
    }
}

/// A stored policy document as JSON (as text if it somehow is not JSON).
fn policy_value(doc: &str) -> Value {
    serde_json::from_str(doc).unwrap_or_else(|_| Value::String(doc.to_owned()))
}

fn print_policy(principal_field: &str, r: pb::GetPrincipalPolicyResponse) -> anyhow::Result<()> {
    print(&json!({
        principal_field: r.principal_name,
        "PolicyName": r.policy_name,
        "PolicyDocument": policy_value(&r.policy_document),
    }))
}

/// A `--save-profile` name, checked before any call is made.
fn profile_name(name: &str) -> Result<String, String> {
    if kmsd::profile::is_valid_name(name) {
        Ok(name.to_owned())
    } else {
        Err(kmsd::profile::ProfileError::BadName(name.to_owned()).to_string())
    }
}

/// Prints an answer that holds a secret shown only once and, if asked,
/// saves the credentials as a profile (with the CA the call trusted). The
/// save is tried first so that the answer can say whether it worked; the
/// answer is printed either way, so a file that cannot be written never
/// costs the secret.
fn print_then_save(
    answer: &Value,
    conn: &Conn,
    ca_file: Option<&Path>,
    profile: Option<&str>,
    fields: &[(&str, &str)],
) -> anyhow::Result<()> {
    let Some(name) = profile else {
        return print(answer);
    };
    let ca = ca_file.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
    let ca = ca.as_ref().map(|p| p.display().to_string());
    let mut fields = fields.to_vec();
    if let Some(ca) = &ca {
        fields.push(("ca_file", ca));
    }
    let saved = credentials_path(conn)
        .and_then(|path| kmsd::profile::save(&path, name, &fields).map_err(Into::into));
    match saved {
        Ok(()) => print(answer),
        Err(e) => {
            // The secret is shown once: print it anyway, without claiming
            // it was saved, then say why it was not.
            let mut unsaved = answer.clone();
            forget_saved_profile(&mut unsaved);
            print(&unsaved)?;
            Err(e.context(format!(
                "the credentials above were printed but not saved as profile [{name}]"
            )))
        }
    }
}

/// Sets every `SavedAsProfile` in `v` to null.
fn forget_saved_profile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, field) in m.iter_mut() {
                if k == "SavedAsProfile" {
                    *field = Value::Null;
                } else {
                    forget_saved_profile(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forget_saved_profile),
        _ => {}
    }
}
