//! `kms.v1.IdentityService`: accounts, users, access keys, caller identity.

use tonic::{Request, Response, Status};

use super::Handler;
use crate::identity::root_arn;
use crate::model::{AccessKeyStatus, Group, PrincipalType, Role, User};
use crate::server::pb::{self, identity_service_server::IdentityService};

fn user(u: &User) -> pb::User {
    pb::User {
        arn: crate::identity::user_arn(&u.account_id, &u.path, &u.name),
        user_name: u.name.clone(),
        user_id: u.user_id.clone(),
        path: u.path.clone(),
        create_date: Some(u.created.to_proto()),
    }
}

fn group(g: &Group) -> pb::Group {
    pb::Group {
        arn: crate::identity::group_arn(&g.account_id, &g.path, &g.name),
        group_name: g.name.clone(),
        group_id: g.group_id.clone(),
        path: g.path.clone(),
        create_date: Some(g.created.to_proto()),
    }
}

fn role(r: &Role) -> pb::Role {
    pb::Role {
        arn: crate::identity::role_arn(&r.account_id, &r.path, &r.name),
        role_name: r.name.clone(),
        role_id: r.role_id.clone(),
        path: r.path.clone(),
        create_date: Some(r.created.to_proto()),
        assume_role_policy_document: r.trust_policy.clone(),
        max_session_duration: r.max_session_secs,
    }
}

fn status(s: AccessKeyStatus) -> i32 {
    match s {
        AccessKeyStatus::Active => pb::AccessKeyStatus::Active as i32,
        AccessKeyStatus::Inactive => pb::AccessKeyStatus::Inactive as i32,
    }
}

/// Turns a secret into the response string it must become.
fn reveal(secret: crate::crypto::secret::SecretBytes) -> String {
    // Secrets we generate are base64, so this never replaces anything.
    String::from_utf8_lossy(secret.expose_secret()).into_owned()
}

/// The inline-policy RPCs are the same for users, groups and roles but for
/// the kind of principal.
impl Handler {
    async fn put_policy(
        &self,
        op: &'static str,
        kind: PrincipalType,
        req: Request<pb::PutPrincipalPolicyRequest>,
    ) -> Result<Response<pb::PutPrincipalPolicyResponse>, Status> {
        self.call(op, req, |kms, caller, r| async move {
            kms.put_identity_policy(
                &caller,
                kind,
                &r.principal_name,
                &r.policy_name,
                &r.policy_document,
            )
            .await?;
            Ok(pb::PutPrincipalPolicyResponse {})
        })
        .await
    }

    async fn get_policy(
        &self,
        op: &'static str,
        kind: PrincipalType,
        req: Request<pb::GetPrincipalPolicyRequest>,
    ) -> Result<Response<pb::GetPrincipalPolicyResponse>, Status> {
        self.call(op, req, |kms, caller, r| async move {
            let doc = kms
                .get_identity_policy(&caller, kind, &r.principal_name, &r.policy_name)
                .await?;
            Ok(pb::GetPrincipalPolicyResponse {
                principal_name: r.principal_name,
                policy_name: r.policy_name,
                policy_document: doc,
            })
        })
        .await
    }

    async fn delete_policy(
        &self,
        op: &'static str,
        kind: PrincipalType,
        req: Request<pb::DeletePrincipalPolicyRequest>,
    ) -> Result<Response<pb::DeletePrincipalPolicyResponse>, Status> {
        self.call(op, req, |kms, caller, r| async move {
            kms.delete_identity_policy(&caller, kind, &r.principal_name, &r.policy_name)
                .await?;
            Ok(pb::DeletePrincipalPolicyResponse {})
        })
        .await
    }
}

#[tonic::async_trait]
impl IdentityService for Handler {
    async fn create_account(
        &self,
        req: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        self.call("CreateAccount", req, |kms, caller, r| async move {
            let created = kms.create_account(&caller, &r.account_name).await?;
            Ok(pb::CreateAccountResponse {
                root_arn: root_arn(&created.account.id),
                account_id: created.account.id,
                root_credentials: Some(pb::Credentials {
                    access_key_id: created.access_key_id,
                    secret_access_key: reveal(created.secret),
                    session_token: None,
                    expiration: None,
                }),
            })
        })
        .await
    }

    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        self.call("CreateUser", req, |kms, caller, r| async move {
            let u = kms
                .create_user(&caller, &r.user_name, r.path.as_deref())
                .await?;
            Ok(pb::CreateUserResponse {
                user: Some(user(&u)),
            })
        })
        .await
    }

    async fn delete_user(
        &self,
        req: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        self.call("DeleteUser", req, |kms, caller, r| async move {
            kms.delete_user(&caller, &r.user_name).await?;
            Ok(pb::DeleteUserResponse {})
        })
        .await
    }

    async fn list_users(
        &self,
        req: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.call("ListUsers", req, |kms, caller, r| async move {
            let (users, next) = kms
                .list_users(&caller, r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::ListUsersResponse {
                users: users.iter().map(user).collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn create_access_key(
        &self,
        req: Request<pb::CreateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        self.call("CreateAccessKey", req, |kms, caller, r| async move {
            let created = kms
                .create_access_key(&caller, r.user_name.as_deref())
                .await?;
            Ok(pb::CreateAccessKeyResponse {
                access_key: Some(pb::AccessKey {
                    user_name: created.record.user_name.clone().unwrap_or_default(),
                    access_key_id: created.record.access_key_id.clone(),
                    status: status(created.record.status),
                    secret_access_key: reveal(created.secret),
                    create_date: Some(created.record.created.to_proto()),
                }),
            })
        })
        .await
    }

    async fn delete_access_key(
        &self,
        req: Request<pb::DeleteAccessKeyRequest>,
    ) -> Result<Response<pb::DeleteAccessKeyResponse>, Status> {
        self.call("DeleteAccessKey", req, |kms, caller, r| async move {
            kms.delete_access_key(&caller, &r.access_key_id, r.user_name.as_deref())
                .await?;
            Ok(pb::DeleteAccessKeyResponse {})
        })
        .await
    }

    async fn list_access_keys(
        &self,
        req: Request<pb::ListAccessKeysRequest>,
    ) -> Result<Response<pb::ListAccessKeysResponse>, Status> {
        self.call("ListAccessKeys", req, |kms, caller, r| async move {
            let keys = kms
                .list_access_keys(&caller, r.user_name.as_deref())
                .await?;
            Ok(pb::ListAccessKeysResponse {
                access_key_metadata: keys
                    .into_iter()
                    .map(|k| pb::AccessKeyMetadata {
                        user_name: k.user_name.unwrap_or_default(),
                        access_key_id: k.access_key_id,
                        status: status(k.status),
                        create_date: Some(k.created.to_proto()),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn get_caller_identity(
        &self,
        req: Request<pb::GetCallerIdentityRequest>,
    ) -> Result<Response<pb::GetCallerIdentityResponse>, Status> {
        self.call("GetCallerIdentity", req, |_kms, caller, _r| async move {
            Ok(pb::GetCallerIdentityResponse {
                account: caller.account_id,
                arn: caller.arn,
                user_id: caller.user_id,
            })
        })
        .await
    }

    async fn create_group(
        &self,
        req: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        self.call("CreateGroup", req, |kms, caller, r| async move {
            let g = kms
                .create_group(&caller, &r.group_name, r.path.as_deref())
                .await?;
            Ok(pb::CreateGroupResponse {
                group: Some(group(&g)),
            })
        })
        .await
    }

    async fn delete_group(
        &self,
        req: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        self.call("DeleteGroup", req, |kms, caller, r| async move {
            kms.delete_group(&caller, &r.group_name).await?;
            Ok(pb::DeleteGroupResponse {})
        })
        .await
    }

    async fn add_user_to_group(
        &self,
        req: Request<pb::AddUserToGroupRequest>,
    ) -> Result<Response<pb::AddUserToGroupResponse>, Status> {
        self.call("AddUserToGroup", req, |kms, caller, r| async move {
            kms.add_user_to_group(&caller, &r.group_name, &r.user_name)
                .await?;
            Ok(pb::AddUserToGroupResponse {})
        })
        .await
    }

    async fn remove_user_from_group(
        &self,
        req: Request<pb::RemoveUserFromGroupRequest>,
    ) -> Result<Response<pb::RemoveUserFromGroupResponse>, Status> {
        self.call("RemoveUserFromGroup", req, |kms, caller, r| async move {
            kms.remove_user_from_group(&caller, &r.group_name, &r.user_name)
                .await?;
            Ok(pb::RemoveUserFromGroupResponse {})
        })
        .await
    }

    async fn list_groups_for_user(
        &self,
        req: Request<pb::ListGroupsForUserRequest>,
    ) -> Result<Response<pb::ListGroupsForUserResponse>, Status> {
        self.call("ListGroupsForUser", req, |kms, caller, r| async move {
            let groups = kms.list_groups_for_user(&caller, &r.user_name).await?;
            Ok(pb::ListGroupsForUserResponse {
                groups: groups.iter().map(group).collect(),
            })
        })
        .await
    }

    async fn create_role(
        &self,
        req: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        self.call("CreateRole", req, |kms, caller, r| async move {
            let created = kms
                .create_role(
                    &caller,
                    &r.role_name,
                    r.path.as_deref(),
                    &r.assume_role_policy_document,
                    r.max_session_duration,
                    r.description.as_deref(),
                )
                .await?;
            Ok(pb::CreateRoleResponse {
                role: Some(role(&created)),
            })
        })
        .await
    }

    async fn delete_role(
        &self,
        req: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        self.call("DeleteRole", req, |kms, caller, r| async move {
            kms.delete_role(&caller, &r.role_name).await?;
            Ok(pb::DeleteRoleResponse {})
        })
        .await
    }

    async fn get_role(
        &self,
        req: Request<pb::GetRoleRequest>,
    ) -> Result<Response<pb::GetRoleResponse>, Status> {
        self.call("GetRole", req, |kms, caller, r| async move {
            let got = kms.get_role(&caller, &r.role_name).await?;
            Ok(pb::GetRoleResponse {
                role: Some(role(&got)),
            })
        })
        .await
    }

    async fn put_user_policy(
        &self,
        req: Request<pb::PutPrincipalPolicyRequest>,
    ) -> Result<Response<pb::PutPrincipalPolicyResponse>, Status> {
        self.put_policy("PutUserPolicy", PrincipalType::User, req)
            .await
    }

    async fn get_user_policy(
        &self,
        req: Request<pb::GetPrincipalPolicyRequest>,
    ) -> Result<Response<pb::GetPrincipalPolicyResponse>, Status> {
        self.get_policy("GetUserPolicy", PrincipalType::User, req)
            .await
    }

    async fn delete_user_policy(
        &self,
        req: Request<pb::DeletePrincipalPolicyRequest>,
    ) -> Result<Response<pb::DeletePrincipalPolicyResponse>, Status> {
        self.delete_policy("DeleteUserPolicy", PrincipalType::User, req)
            .await
    }

    async fn put_group_policy(
        &self,
        req: Request<pb::PutPrincipalPolicyRequest>,
    ) -> Result<Response<pb::PutPrincipalPolicyResponse>, Status> {
        self.put_policy("PutGroupPolicy", PrincipalType::Group, req)
            .await
    }

    async fn get_group_policy(
        &self,
        req: Request<pb::GetPrincipalPolicyRequest>,
    ) -> Result<Response<pb::GetPrincipalPolicyResponse>, Status> {
        self.get_policy("GetGroupPolicy", PrincipalType::Group, req)
            .await
    }

    async fn delete_group_policy(
        &self,
        req: Request<pb::DeletePrincipalPolicyRequest>,
    ) -> Result<Response<pb::DeletePrincipalPolicyResponse>, Status> {
        self.delete_policy("DeleteGroupPolicy", PrincipalType::Group, req)
            .await
    }

    async fn put_role_policy(
        &self,
        req: Request<pb::PutPrincipalPolicyRequest>,
    ) -> Result<Response<pb::PutPrincipalPolicyResponse>, Status> {
        self.put_policy("PutRolePolicy", PrincipalType::Role, req)
            .await
    }

    async fn get_role_policy(
        &self,
        req: Request<pb::GetPrincipalPolicyRequest>,
    ) -> Result<Response<pb::GetPrincipalPolicyResponse>, Status> {
        self.get_policy("GetRolePolicy", PrincipalType::Role, req)
            .await
    }

    async fn delete_role_policy(
        &self,
        req: Request<pb::DeletePrincipalPolicyRequest>,
    ) -> Result<Response<pb::DeletePrincipalPolicyResponse>, Status> {
        self.delete_policy("DeleteRolePolicy", PrincipalType::Role, req)
            .await
    }

    async fn enable_mfa_device(
        &self,
        req: Request<pb::EnableMfaDeviceRequest>,
    ) -> Result<Response<pb::EnableMfaDeviceResponse>, Status> {
        self.call("EnableMfaDevice", req, |kms, caller, _r| async move {
            let e = kms.enable_mfa_device(&caller).await?;
            Ok(pb::EnableMfaDeviceResponse {
                base32_secret: reveal(e.base32_secret),
                otpauth_uri: reveal(e.otpauth_uri),
                serial_number: e.serial,
            })
        })
        .await
    }

    async fn assume_role(
        &self,
        req: Request<pb::AssumeRoleRequest>,
    ) -> Result<Response<pb::AssumeRoleResponse>, Status> {
        self.call("AssumeRole", req, |kms, caller, r| async move {
            let a = kms
                .assume_role(
                    &caller,
                    &r.role_arn,
                    &r.role_session_name,
                    r.duration_seconds,
                    r.token_code.as_deref(),
                )
                .await?;
            Ok(pb::AssumeRoleResponse {
                credentials: Some(pb::Credentials {
                    access_key_id: a.access_key_id,
                    secret_access_key: reveal(a.secret),
                    session_token: Some(reveal(a.session_token)),
                    expiration: Some(a.expiration.to_proto()),
                }),
                assumed_role_arn: a.assumed_role_arn,
                assumed_role_id: a.assumed_role_id,
            })
        })
        .await
    }
}
