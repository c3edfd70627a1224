//! `kms.v1.IdentityService`: accounts, users, access keys, caller identity.

use tonic::{Request, Response, Status};

use super::Handler;
use crate::identity::root_arn;
use crate::model::{AccessKeyStatus, User};
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
}
