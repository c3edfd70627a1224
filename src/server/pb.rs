//! The generated protobuf types and gRPC stubs of package `kms.v1`.
//!
//! Messages that carry plaintext, data keys or secrets have no derived
//! `Debug` (see `build.rs`); the impls below print everything else and
//! redact those fields, so a `{:?}` can never leak them.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

use std::fmt;

tonic::include_proto!("kms.v1");

const REDACTED: &str = "[redacted]";

impl fmt::Debug for EncryptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptRequest")
            .field("key_id", &self.key_id)
            .field("plaintext", &REDACTED)
            .field("encryption_context", &self.encryption_context)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish()
    }
}

impl fmt::Debug for DecryptResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptResponse")
            .field("plaintext", &REDACTED)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl fmt::Debug for GenerateDataKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateDataKeyResponse")
            .field("plaintext", &REDACTED)
            .field("ciphertext_blob", &self.ciphertext_blob.len())
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl fmt::Debug for GenerateRandomResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateRandomResponse")
            .field("plaintext", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| REDACTED),
            )
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field("status", &self.status)
            .field("secret_access_key", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for CreateAccessKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAccessKeyResponse")
            .field("access_key", &self.access_key)
            .finish()
    }
}

impl fmt::Debug for CreateAccountResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAccountResponse")
            .field("account_id", &self.account_id)
            .field("root_arn", &self.root_arn)
            .field("root_credentials", &self.root_credentials)
            .finish()
    }
}

impl fmt::Debug for EnableMfaDeviceResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnableMfaDeviceResponse")
            .field("base32_secret", &REDACTED)
            .field("otpauth_uri", &REDACTED)
            .field("serial_number", &self.serial_number)
            .finish()
    }
}

impl fmt::Debug for AssumeRoleRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleRequest")
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .field("token_code", &self.token_code.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl fmt::Debug for AssumeRoleResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleResponse")
            .field("credentials", &self.credentials)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .field("assumed_role_id", &self.assumed_role_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bearing_messages_redact() {
        let r = EncryptRequest {
            key_id: "k".into(),
            plaintext: b"canary-123".to_vec(),
            ..Default::default()
        };
        let g = GenerateDataKeyResponse {
            plaintext: b"canary-123".to_vec(),
            ..Default::default()
        };
        let c = CreateAccountResponse {
            root_credentials: Some(Credentials {
                secret_access_key: "canary-123".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        for s in [format!("{r:?}"), format!("{g:?}"), format!("{c:?}")] {
            assert!(!s.contains("canary") && !s.contains("99, 97, 110"), "{s}");
        }
    }
}
