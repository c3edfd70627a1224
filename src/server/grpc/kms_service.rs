//! `kms.v1.KeyManagementService`: protobuf in, domain call, protobuf out.

use tonic::{Request, Response, Status};

use super::Handler;
use crate::crypto::EncryptionContext;
use crate::crypto::secret::SecretBytes;
use crate::error::KmsError;
use crate::kms::{CreateGrantInput, CreateKeyInput, DataKeySpec, Kms};
use crate::model::{
    Alias, Grant, GrantConstraints, GrantOperation, KeyRecord, KeyState, RotationType, Tag,
};
use crate::server::pb::{self, key_management_service_server::KeyManagementService};

const SYMMETRIC: i32 = pb::EncryptionAlgorithmSpec::SymmetricDefault as i32;

fn key_state(s: KeyState) -> pb::KeyState {
    match s {
        KeyState::Enabled => pb::KeyState::Enabled,
        KeyState::Disabled => pb::KeyState::Disabled,
        KeyState::PendingDeletion => pb::KeyState::PendingDeletion,
    }
}

/// The protobuf metadata of a key.
pub fn key_metadata(kms: &Kms, k: &KeyRecord) -> pb::KeyMetadata {
    pb::KeyMetadata {
        key_id: k.id.to_string(),
        arn: kms.key_arn(&k.account_id, k.id),
        aws_account_id: k.account_id.clone(),
        creation_date: Some(k.created.to_proto()),
        enabled: k.state == KeyState::Enabled,
        description: k.description.clone(),
        key_usage: pb::KeyUsage::EncryptDecrypt as i32,
        key_spec: pb::KeySpec::SymmetricDefault as i32,
        key_state: key_state(k.state) as i32,
        deletion_date: k.deletion_date.map(|t| t.to_proto()),
        pending_deletion_window_in_days: k.pending_window_days,
        origin: pb::OriginType::AwsKms as i32,
        key_manager: pb::KeyManagerType::Customer as i32,
        encryption_algorithms: vec![SYMMETRIC],
        key_rotation_enabled: k.rotation_enabled,
        rotation_period_in_days: k.rotation_period_days,
        next_rotation_date: k.next_rotation.map(|t| t.to_proto()),
        current_key_material_version: k.current_version,
    }
}

fn tags_from_pb(tags: Vec<pb::Tag>) -> Vec<Tag> {
    tags.into_iter()
        .map(|t| Tag {
            key: t.tag_key,
            value: t.tag_value,
        })
        .collect()
}

fn check_algorithm(a: Option<i32>) -> Result<(), KmsError> {
    match a {
        None => Ok(()),
        Some(v) if v == SYMMETRIC || v == pb::EncryptionAlgorithmSpec::Unspecified as i32 => Ok(()),
        Some(v) => Err(KmsError::validation(format!(
            "encryption_algorithm {v} is not supported; only SYMMETRIC_DEFAULT"
        ))),
    }
}

fn data_key_spec(v: Option<i32>) -> Result<Option<DataKeySpec>, KmsError> {
    match v.map(pb::DataKeySpec::try_from) {
        None => Ok(None),
        Some(Ok(pb::DataKeySpec::Aes256)) => Ok(Some(DataKeySpec::Aes256)),
        Some(Ok(pb::DataKeySpec::Aes128)) => Ok(Some(DataKeySpec::Aes128)),
        Some(_) => Err(KmsError::validation("key_spec must be AES_256 or AES_128")),
    }
}

fn grant_op_from_pb(v: i32) -> Result<GrantOperation, KmsError> {
    use pb::GrantOperation as P;
    Ok(match P::try_from(v) {
        Ok(P::Decrypt) => GrantOperation::Decrypt,
        Ok(P::Encrypt) => GrantOperation::Encrypt,
        Ok(P::GenerateDataKey) => GrantOperation::GenerateDataKey,
        Ok(P::GenerateDataKeyWithoutPlaintext) => GrantOperation::GenerateDataKeyWithoutPlaintext,
        Ok(P::ReEncryptFrom) => GrantOperation::ReEncryptFrom,
        Ok(P::ReEncryptTo) => GrantOperation::ReEncryptTo,
        Ok(P::CreateGrant) => GrantOperation::CreateGrant,
        Ok(P::RetireGrant) => GrantOperation::RetireGrant,
        Ok(P::DescribeKey) => GrantOperation::DescribeKey,
        Ok(P::Unspecified) | Err(_) => {
            return Err(KmsError::validation(format!(
                "operation {v} is not one a grant can allow"
            )));
        }
    })
}

fn grant_op_to_pb(o: GrantOperation) -> i32 {
    use pb::GrantOperation as P;
    (match o {
        GrantOperation::Decrypt => P::Decrypt,
        GrantOperation::Encrypt => P::Encrypt,
        GrantOperation::GenerateDataKey => P::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext => P::GenerateDataKeyWithoutPlaintext,
        GrantOperation::ReEncryptFrom => P::ReEncryptFrom,
        GrantOperation::ReEncryptTo => P::ReEncryptTo,
        GrantOperation::CreateGrant => P::CreateGrant,
        GrantOperation::RetireGrant => P::RetireGrant,
        GrantOperation::DescribeKey => P::DescribeKey,
    }) as i32
}

fn grant_entry(kms: &Kms, account_id: &str, g: &Grant) -> pb::GrantListEntry {
    pb::GrantListEntry {
        key_id: kms.key_arn(account_id, g.key_id),
        grant_id: g.grant_id.clone(),
        name: g.name.clone(),
        creation_date: Some(g.created.to_proto()),
        grantee_principal: g.grantee.clone(),
        retiring_principal: g.retiring_principal.clone(),
        issuing_account: crate::identity::root_arn(&g.issuing_account),
        operations: g.operations.iter().map(|o| grant_op_to_pb(*o)).collect(),
        constraints: g.constraints.as_ref().map(|c| match c {
            GrantConstraints::Subset(m) => pb::GrantConstraints {
                encryption_context_subset: m.clone().into_iter().collect(),
                ..Default::default()
            },
            GrantConstraints::Equals(m) => pb::GrantConstraints {
                encryption_context_equals: m.clone().into_iter().collect(),
                ..Default::default()
            },
        }),
    }
}

fn alias_entry(kms: &Kms, a: &Alias) -> pb::AliasListEntry {
    pb::AliasListEntry {
        alias_name: a.name.clone(),
        alias_arn: kms.alias_arn(&a.account_id, &a.name),
        target_key_id: a.key_id.to_string(),
        creation_date: Some(a.created.to_proto()),
        last_updated_date: Some(a.updated.to_proto()),
    }
}

#[tonic::async_trait]
impl KeyManagementService for Handler {
    async fn create_key(
        &self,
        req: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        self.call("CreateKey", req, |kms, caller, r| async move {
            if r.key_usage
                .is_some_and(|u| u != pb::KeyUsage::EncryptDecrypt as i32 && u != 0)
            {
                return Err(KmsError::validation("key_usage must be ENCRYPT_DECRYPT"));
            }
            if r.key_spec
                .is_some_and(|s| s != pb::KeySpec::SymmetricDefault as i32 && s != 0)
            {
                return Err(KmsError::validation("key_spec must be SYMMETRIC_DEFAULT"));
            }
            let input = CreateKeyInput {
                policy: r.policy,
                description: r.description,
                tags: tags_from_pb(r.tags),
                bypass_policy_lockout_safety_check: r.bypass_policy_lockout_safety_check,
                key_administrators: r.key_administrators,
                key_users: r.key_users,
            };
            let key = kms.create_key(&caller, input).await?;
            Ok(pb::CreateKeyResponse {
                key_metadata: Some(key_metadata(&kms, &key)),
            })
        })
        .await
    }

    async fn describe_key(
        &self,
        req: Request<pb::DescribeKeyRequest>,
    ) -> Result<Response<pb::DescribeKeyResponse>, Status> {
        self.call("DescribeKey", req, |kms, caller, r| async move {
            let key = kms
                .describe_key(&caller, &r.key_id, &r.grant_tokens)
                .await?;
            Ok(pb::DescribeKeyResponse {
                key_metadata: Some(key_metadata(&kms, &key)),
            })
        })
        .await
    }

    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.call("ListKeys", req, |kms, caller, r| async move {
            let (keys, next) = kms.list_keys(&caller, r.limit, r.marker.as_deref()).await?;
            Ok(pb::ListKeysResponse {
                keys: keys
                    .iter()
                    .map(|k| pb::KeyListEntry {
                        key_id: k.id.to_string(),
                        key_arn: kms.key_arn(&k.account_id, k.id),
                    })
                    .collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn update_key_description(
        &self,
        req: Request<pb::UpdateKeyDescriptionRequest>,
    ) -> Result<Response<pb::UpdateKeyDescriptionResponse>, Status> {
        self.call("UpdateKeyDescription", req, |kms, caller, r| async move {
            kms.update_key_description(&caller, &r.key_id, r.description)
                .await?;
            Ok(pb::UpdateKeyDescriptionResponse {})
        })
        .await
    }

    async fn enable_key(
        &self,
        req: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::EnableKeyResponse>, Status> {
        self.call("EnableKey", req, |kms, caller, r| async move {
            kms.enable_key(&caller, &r.key_id).await?;
            Ok(pb::EnableKeyResponse {})
        })
        .await
    }

    async fn disable_key(
        &self,
        req: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::DisableKeyResponse>, Status> {
        self.call("DisableKey", req, |kms, caller, r| async move {
            kms.disable_key(&caller, &r.key_id).await?;
            Ok(pb::DisableKeyResponse {})
        })
        .await
    }

    async fn schedule_key_deletion(
        &self,
        req: Request<pb::ScheduleKeyDeletionRequest>,
    ) -> Result<Response<pb::ScheduleKeyDeletionResponse>, Status> {
        self.call("ScheduleKeyDeletion", req, |kms, caller, r| async move {
            let s = kms
                .schedule_key_deletion(&caller, &r.key_id, r.pending_window_in_days)
                .await?;
            Ok(pb::ScheduleKeyDeletionResponse {
                key_id: kms.key_arn(&s.key.account_id, s.key.id),
                deletion_date: Some(s.deletion_date.to_proto()),
                key_state: key_state(s.key.state) as i32,
                pending_window_in_days: s.pending_window_days,
            })
        })
        .await
    }

    async fn cancel_key_deletion(
        &self,
        req: Request<pb::CancelKeyDeletionRequest>,
    ) -> Result<Response<pb::CancelKeyDeletionResponse>, Status> {
        self.call("CancelKeyDeletion", req, |kms, caller, r| async move {
            let k = kms.cancel_key_deletion(&caller, &r.key_id).await?;
            Ok(pb::CancelKeyDeletionResponse {
                key_id: kms.key_arn(&k.account_id, k.id),
            })
        })
        .await
    }

    async fn encrypt(
        &self,
        req: Request<pb::EncryptRequest>,
    ) -> Result<Response<pb::EncryptResponse>, Status> {
        self.call("Encrypt", req, |kms, caller, r| async move {
            check_algorithm(r.encryption_algorithm)?;
            let ctx = EncryptionContext::from(r.encryption_context);
            let plaintext = SecretBytes::new(r.plaintext);
            let (blob, arn) = kms
                .encrypt(&caller, &r.key_id, plaintext, &ctx, &r.grant_tokens)
                .await?;
            Ok(pb::EncryptResponse {
                ciphertext_blob: blob,
                key_id: arn,
                encryption_algorithm: SYMMETRIC,
            })
        })
        .await
    }

    async fn decrypt(
        &self,
        req: Request<pb::DecryptRequest>,
    ) -> Result<Response<pb::DecryptResponse>, Status> {
        self.call("Decrypt", req, |kms, caller, r| async move {
            check_algorithm(r.encryption_algorithm)?;
            let ctx = EncryptionContext::from(r.encryption_context);
            let out = kms
                .decrypt(
                    &caller,
                    &r.ciphertext_blob,
                    r.key_id.as_deref(),
                    &ctx,
                    &r.grant_tokens,
                )
                .await?;
            Ok(pb::DecryptResponse {
                // The caller asked for this plaintext; it leaves our custody here.
                plaintext: out.plaintext.into_exposed(),
                key_id: out.key_arn,
                encryption_algorithm: SYMMETRIC,
            })
        })
        .await
    }

    async fn re_encrypt(
        &self,
        req: Request<pb::ReEncryptRequest>,
    ) -> Result<Response<pb::ReEncryptResponse>, Status> {
        self.call("ReEncrypt", req, |kms, caller, r| async move {
            let out = kms
                .re_encrypt(
                    &caller,
                    &r.ciphertext_blob,
                    &EncryptionContext::from(r.source_encryption_context),
                    r.source_key_id.as_deref(),
                    &r.destination_key_id,
                    &EncryptionContext::from(r.destination_encryption_context),
                    &r.grant_tokens,
                )
                .await?;
            Ok(pb::ReEncryptResponse {
                ciphertext_blob: out.ciphertext_blob,
                source_key_id: out.source_key_arn,
                key_id: out.key_arn,
                source_encryption_algorithm: SYMMETRIC,
                destination_encryption_algorithm: SYMMETRIC,
            })
        })
        .await
    }

    async fn generate_data_key(
        &self,
        req: Request<pb::GenerateDataKeyRequest>,
    ) -> Result<Response<pb::GenerateDataKeyResponse>, Status> {
        self.call("GenerateDataKey", req, |kms, caller, r| async move {
            let spec = data_key_spec(r.key_spec)?;
            let ctx = EncryptionContext::from(r.encryption_context);
            let out = kms
                .generate_data_key(
                    &caller,
                    &r.key_id,
                    spec,
                    r.number_of_bytes,
                    &ctx,
                    &r.grant_tokens,
                    true,
                )
                .await?;
            Ok(pb::GenerateDataKeyResponse {
                // The caller asked for the data key; it leaves our custody here.
                plaintext: out
                    .plaintext
                    .map(SecretBytes::into_exposed)
                    .unwrap_or_default(),
                ciphertext_blob: out.ciphertext_blob,
                key_id: out.key_arn,
            })
        })
        .await
    }

    async fn generate_data_key_without_plaintext(
        &self,
        req: Request<pb::GenerateDataKeyWithoutPlaintextRequest>,
    ) -> Result<Response<pb::GenerateDataKeyWithoutPlaintextResponse>, Status> {
        self.call(
            "GenerateDataKeyWithoutPlaintext",
            req,
            |kms, caller, r| async move {
                let spec = data_key_spec(r.key_spec)?;
                let ctx = EncryptionContext::from(r.encryption_context);
                let out = kms
                    .generate_data_key(
                        &caller,
                        &r.key_id,
                        spec,
                        r.number_of_bytes,
                        &ctx,
                        &r.grant_tokens,
                        false,
                    )
                    .await?;
                Ok(pb::GenerateDataKeyWithoutPlaintextResponse {
                    ciphertext_blob: out.ciphertext_blob,
                    key_id: out.key_arn,
                })
            },
        )
        .await
    }

    async fn generate_random(
        &self,
        req: Request<pb::GenerateRandomRequest>,
    ) -> Result<Response<pb::GenerateRandomResponse>, Status> {
        self.call("GenerateRandom", req, |kms, caller, r| async move {
            let bytes = kms.generate_random(&caller, r.number_of_bytes).await?;
            Ok(pb::GenerateRandomResponse {
                plaintext: bytes.into_exposed(),
            })
        })
        .await
    }

    async fn create_alias(
        &self,
        req: Request<pb::CreateAliasRequest>,
    ) -> Result<Response<pb::CreateAliasResponse>, Status> {
        self.call("CreateAlias", req, |kms, caller, r| async move {
            kms.create_alias(&caller, &r.alias_name, &r.target_key_id)
                .await?;
            Ok(pb::CreateAliasResponse {})
        })
        .await
    }

    async fn update_alias(
        &self,
        req: Request<pb::UpdateAliasRequest>,
    ) -> Result<Response<pb::UpdateAliasResponse>, Status> {
        self.call("UpdateAlias", req, |kms, caller, r| async move {
            kms.update_alias(&caller, &r.alias_name, &r.target_key_id)
                .await?;
            Ok(pb::UpdateAliasResponse {})
        })
        .await
    }

    async fn delete_alias(
        &self,
        req: Request<pb::DeleteAliasRequest>,
    ) -> Result<Response<pb::DeleteAliasResponse>, Status> {
        self.call("DeleteAlias", req, |kms, caller, r| async move {
            kms.delete_alias(&caller, &r.alias_name).await?;
            Ok(pb::DeleteAliasResponse {})
        })
        .await
    }

    async fn list_aliases(
        &self,
        req: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        self.call("ListAliases", req, |kms, caller, r| async move {
            let (aliases, next) = kms
                .list_aliases(&caller, r.key_id.as_deref(), r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::ListAliasesResponse {
                aliases: aliases.iter().map(|a| alias_entry(&kms, a)).collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn tag_resource(
        &self,
        req: Request<pb::TagResourceRequest>,
    ) -> Result<Response<pb::TagResourceResponse>, Status> {
        self.call("TagResource", req, |kms, caller, r| async move {
            kms.tag_resource(&caller, &r.key_id, tags_from_pb(r.tags))
                .await?;
            Ok(pb::TagResourceResponse {})
        })
        .await
    }

    async fn untag_resource(
        &self,
        req: Request<pb::UntagResourceRequest>,
    ) -> Result<Response<pb::UntagResourceResponse>, Status> {
        self.call("UntagResource", req, |kms, caller, r| async move {
            kms.untag_resource(&caller, &r.key_id, r.tag_keys).await?;
            Ok(pb::UntagResourceResponse {})
        })
        .await
    }

    async fn list_resource_tags(
        &self,
        req: Request<pb::ListResourceTagsRequest>,
    ) -> Result<Response<pb::ListResourceTagsResponse>, Status> {
        self.call("ListResourceTags", req, |kms, caller, r| async move {
            let (tags, next) = kms
                .list_resource_tags(&caller, &r.key_id, r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::ListResourceTagsResponse {
                tags: tags
                    .into_iter()
                    .map(|t| pb::Tag {
                        tag_key: t.key,
                        tag_value: t.value,
                    })
                    .collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn enable_key_rotation(
        &self,
        req: Request<pb::EnableKeyRotationRequest>,
    ) -> Result<Response<pb::EnableKeyRotationResponse>, Status> {
        self.call("EnableKeyRotation", req, |kms, caller, r| async move {
            kms.enable_key_rotation(&caller, &r.key_id, r.rotation_period_in_days)
                .await?;
            Ok(pb::EnableKeyRotationResponse {})
        })
        .await
    }

    async fn disable_key_rotation(
        &self,
        req: Request<pb::DisableKeyRotationRequest>,
    ) -> Result<Response<pb::DisableKeyRotationResponse>, Status> {
        self.call("DisableKeyRotation", req, |kms, caller, r| async move {
            kms.disable_key_rotation(&caller, &r.key_id).await?;
            Ok(pb::DisableKeyRotationResponse {})
        })
        .await
    }

    async fn get_key_rotation_status(
        &self,
        req: Request<pb::GetKeyRotationStatusRequest>,
    ) -> Result<Response<pb::GetKeyRotationStatusResponse>, Status> {
        self.call("GetKeyRotationStatus", req, |kms, caller, r| async move {
            let s = kms.get_key_rotation_status(&caller, &r.key_id).await?;
            Ok(pb::GetKeyRotationStatusResponse {
                key_rotation_enabled: s.key.rotation_enabled,
                key_id: kms.key_arn(&s.key.account_id, s.key.id),
                rotation_period_in_days: s.key.rotation_period_days,
                next_rotation_date: s.key.next_rotation.map(|t| t.to_proto()),
                on_demand_rotation_start_date: s
                    .on_demand_rotation_start_date
                    .map(|t| t.to_proto()),
            })
        })
        .await
    }

    async fn rotate_key_on_demand(
        &self,
        req: Request<pb::RotateKeyOnDemandRequest>,
    ) -> Result<Response<pb::RotateKeyOnDemandResponse>, Status> {
        self.call("RotateKeyOnDemand", req, |kms, caller, r| async move {
            let k = kms.rotate_key_on_demand(&caller, &r.key_id).await?;
            Ok(pb::RotateKeyOnDemandResponse {
                key_id: kms.key_arn(&k.account_id, k.id),
            })
        })
        .await
    }

    async fn list_key_rotations(
        &self,
        req: Request<pb::ListKeyRotationsRequest>,
    ) -> Result<Response<pb::ListKeyRotationsResponse>, Status> {
        self.call("ListKeyRotations", req, |kms, caller, r| async move {
            let (versions, next) = kms
                .list_key_rotations(&caller, &r.key_id, r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::ListKeyRotationsResponse {
                rotations: versions
                    .iter()
                    .map(|v| pb::RotationsListEntry {
                        key_id: v.key_id.to_string(),
                        rotation_date: Some(v.created.to_proto()),
                        rotation_type: match v.rotation_type {
                            Some(RotationType::Automatic) => pb::RotationType::Automatic as i32,
                            Some(RotationType::OnDemand) => pb::RotationType::OnDemand as i32,
                            None => pb::RotationType::Unspecified as i32,
                        },
                        key_material_version: v.version,
                    })
                    .collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn get_key_policy(
        &self,
        req: Request<pb::GetKeyPolicyRequest>,
    ) -> Result<Response<pb::GetKeyPolicyResponse>, Status> {
        self.call("GetKeyPolicy", req, |kms, caller, r| async move {
            let policy = kms
                .get_key_policy(&caller, &r.key_id, r.policy_name.as_deref())
                .await?;
            Ok(pb::GetKeyPolicyResponse {
                policy,
                policy_name: "default".into(),
            })
        })
        .await
    }

    async fn put_key_policy(
        &self,
        req: Request<pb::PutKeyPolicyRequest>,
    ) -> Result<Response<pb::PutKeyPolicyResponse>, Status> {
        self.call("PutKeyPolicy", req, |kms, caller, r| async move {
            kms.put_key_policy(
                &caller,
                &r.key_id,
                r.policy_name.as_deref(),
                r.policy,
                r.bypass_policy_lockout_safety_check,
            )
            .await?;
            Ok(pb::PutKeyPolicyResponse {})
        })
        .await
    }

    async fn list_key_policies(
        &self,
        req: Request<pb::ListKeyPoliciesRequest>,
    ) -> Result<Response<pb::ListKeyPoliciesResponse>, Status> {
        self.call("ListKeyPolicies", req, |kms, caller, r| async move {
            let names = kms
                .list_key_policies(&caller, &r.key_id, r.limit, r.marker.as_deref())
                .await?;
            Ok(pb::ListKeyPoliciesResponse {
                policy_names: names,
                next_marker: None,
                truncated: false,
            })
        })
        .await
    }

    async fn create_grant(
        &self,
        req: Request<pb::CreateGrantRequest>,
    ) -> Result<Response<pb::CreateGrantResponse>, Status> {
        self.call("CreateGrant", req, |kms, caller, r| async move {
            let operations = r
                .operations
                .iter()
                .map(|o| grant_op_from_pb(*o))
                .collect::<Result<Vec<_>, _>>()?;
            let constraints = r.constraints.unwrap_or_default();
            let input = CreateGrantInput {
                key_id: r.key_id,
                grantee: r.grantee_principal,
                retiring_principal: r.retiring_principal,
                operations,
                context_subset: constraints.encryption_context_subset.into_iter().collect(),
                context_equals: constraints.encryption_context_equals.into_iter().collect(),
                name: r.name,
            };
            let created = kms.create_grant(&caller, input, &r.grant_tokens).await?;
            Ok(pb::CreateGrantResponse {
                grant_token: created.token,
                grant_id: created.grant.grant_id,
            })
        })
        .await
    }

    async fn list_grants(
        &self,
        req: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        self.call("ListGrants", req, |kms, caller, r| async move {
            let (key, grants, next) = kms
                .list_grants(
                    &caller,
                    &r.key_id,
                    r.limit,
                    r.marker.as_deref(),
                    r.grant_id.as_deref(),
                    r.grantee_principal.as_deref(),
                )
                .await?;
            Ok(pb::ListGrantsResponse {
                grants: grants
                    .iter()
                    .map(|g| grant_entry(&kms, &key.account_id, g))
                    .collect(),
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn list_retirable_grants(
        &self,
        req: Request<pb::ListRetirableGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        self.call("ListRetirableGrants", req, |kms, caller, r| async move {
            let (grants, next) = kms
                .list_retirable_grants(&caller, &r.retiring_principal, r.limit, r.marker.as_deref())
                .await?;
            let mut entries = Vec::with_capacity(grants.len());
            for g in &grants {
                let account = kms
                    .store()
                    .get_key(g.key_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|k| k.account_id)
                    .unwrap_or_default();
                entries.push(grant_entry(&kms, &account, g));
            }
            Ok(pb::ListGrantsResponse {
                grants: entries,
                truncated: next.is_some(),
                next_marker: next,
            })
        })
        .await
    }

    async fn retire_grant(
        &self,
        req: Request<pb::RetireGrantRequest>,
    ) -> Result<Response<pb::RetireGrantResponse>, Status> {
        self.call("RetireGrant", req, |kms, caller, r| async move {
            kms.retire_grant(
                &caller,
                r.grant_token.as_deref(),
                r.key_id.as_deref(),
                r.grant_id.as_deref(),
            )
            .await?;
            Ok(pb::RetireGrantResponse {})
        })
        .await
    }

    async fn revoke_grant(
        &self,
        req: Request<pb::RevokeGrantRequest>,
    ) -> Result<Response<pb::RevokeGrantResponse>, Status> {
        self.call("RevokeGrant", req, |kms, caller, r| async move {
            kms.revoke_grant(&caller, &r.key_id, &r.grant_id).await?;
            Ok(pb::RevokeGrantResponse {})
        })
        .await
    }
}
