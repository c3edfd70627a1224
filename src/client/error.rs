//! What a call answered when it failed, as a program wants it: the AWS
//! error name as an enum to match on, the gRPC code, and the daemon's
//! message.

use tonic::{Code, Status};

use crate::server::grpc::status::error_name;

/// The AWS error names kmsd answers with (API.md's table), plus the
/// failures that never reached kmsd's error mapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A parameter is missing, malformed or out of range.
    Validation,
    /// The key, alias, grant or principal does not exist.
    NotFound,
    /// The alias, user, group or role already exists.
    AlreadyExists,
    /// The key is disabled.
    Disabled,
    /// The key's state does not allow the operation (e.g. pending deletion).
    KmsInvalidState,
    /// The ciphertext blob is malformed, altered, or the context is wrong.
    InvalidCiphertext,
    /// The ciphertext was not made under the key named.
    IncorrectKey,
    /// The key's usage does not allow the operation.
    InvalidKeyUsage,
    /// A grant token is malformed or unknown.
    InvalidGrantToken,
    /// A grant id is malformed or unknown.
    InvalidGrantId,
    /// An alias name is malformed or reserved.
    InvalidAliasName,
    /// An ARN is malformed.
    InvalidArn,
    /// A paging marker is not one this listing issued.
    InvalidMarker,
    /// A policy document is malformed.
    MalformedPolicyDocument,
    /// A tag is malformed or there are too many.
    Tag,
    /// The caller is not allowed to make this call.
    AccessDenied,
    /// The credentials are not recognised.
    UnrecognizedClient,
    /// The session credentials have expired.
    ExpiredToken,
    /// A quota was reached.
    LimitExceeded,
    /// Too many requests; slow down and retry.
    Throttling,
    /// kmsd could not complete the call in time; retry.
    DependencyTimeout,
    /// kmsd failed internally.
    KmsInternal,
    /// An error name this client does not know (a newer daemon).
    Other(String),
    /// No AWS name: a transport failure (connection refused, reset, TLS)
    /// or a status from something other than kmsd, with its gRPC code.
    Transport(Code),
}

impl ErrorCode {
    /// The code of an AWS error name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "ValidationException" => Self::Validation,
            "NotFoundException" => Self::NotFound,
            "AlreadyExistsException" => Self::AlreadyExists,
            "DisabledException" => Self::Disabled,
            "KMSInvalidStateException" => Self::KmsInvalidState,
            "InvalidCiphertextException" => Self::InvalidCiphertext,
            "IncorrectKeyException" => Self::IncorrectKey,
            "InvalidKeyUsageException" => Self::InvalidKeyUsage,
            "InvalidGrantTokenException" => Self::InvalidGrantToken,
            "InvalidGrantIdException" => Self::InvalidGrantId,
            "InvalidAliasNameException" => Self::InvalidAliasName,
            "InvalidArnException" => Self::InvalidArn,
            "InvalidMarkerException" => Self::InvalidMarker,
            "MalformedPolicyDocumentException" => Self::MalformedPolicyDocument,
            "TagException" => Self::Tag,
            "AccessDeniedException" => Self::AccessDenied,
            "UnrecognizedClientException" => Self::UnrecognizedClient,
            "ExpiredTokenException" => Self::ExpiredToken,
            "LimitExceededException" => Self::LimitExceeded,
            "ThrottlingException" => Self::Throttling,
            "DependencyTimeoutException" => Self::DependencyTimeout,
            "KMSInternalException" => Self::KmsInternal,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code of a status: its AWS name if kmsd sent one, else the
    /// transport's gRPC code.
    pub fn of(status: &Status) -> Self {
        match error_name(status) {
            Some(name) => Self::from_name(&name),
            None => Self::Transport(status.code()),
        }
    }

    /// The AWS error name (`ThrottlingException`), or the gRPC code's name
    /// for a transport failure.
    pub fn name(&self) -> String {
        let s = match self {
            Self::Validation => "ValidationException",
            Self::NotFound => "NotFoundException",
            Self::AlreadyExists => "AlreadyExistsException",
            Self::Disabled => "DisabledException",
            Self::KmsInvalidState => "KMSInvalidStateException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::InvalidKeyUsage => "InvalidKeyUsageException",
            Self::InvalidGrantToken => "InvalidGrantTokenException",
            Self::InvalidGrantId => "InvalidGrantIdException",
            Self::InvalidAliasName => "InvalidAliasNameException",
            Self::InvalidArn => "InvalidArnException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            Self::Tag => "TagException",
            Self::AccessDenied => "AccessDeniedException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::LimitExceeded => "LimitExceededException",
            Self::Throttling => "ThrottlingException",
            Self::DependencyTimeout => "DependencyTimeoutException",
            Self::KmsInternal => "KMSInternalException",
            Self::Other(name) => return name.clone(),
            Self::Transport(code) => return format!("{code:?}"),
        };
        s.to_owned()
    }

    /// Whether repeating the same call later may succeed: throttling,
    /// timeouts, and the daemon being unreachable (refused connections are
    /// UNAVAILABLE; a connection closed under a request surfaces from hyper
    /// as CANCELLED without an AWS name). Everything else is an answer that
    /// a retry would only repeat.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttling
                | Self::DependencyTimeout
                | Self::Transport(Code::Unavailable)
                | Self::Transport(Code::Cancelled)
                | Self::Transport(Code::ResourceExhausted)
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The AWS error name, as an enum.
    pub code: ErrorCode,
    /// The gRPC status code.
    pub grpc_code: Code,
    /// The daemon's message (never holds secrets).
    pub message: String,
}

impl From<&Status> for ApiError {
    fn from(s: &Status) -> Self {
        Self {
            code: ErrorCode::of(s),
            grpc_code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        Self::from(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KmsError;

    #[test]
    fn every_daemon_error_has_its_own_code_and_round_trips() {
        let all = [
            KmsError::ValidationException(String::new()),
            KmsError::NotFoundException(String::new()),
            KmsError::AlreadyExistsException(String::new()),
            KmsError::DisabledException(String::new()),
            KmsError::KMSInvalidStateException(String::new()),
            KmsError::InvalidCiphertextException(String::new()),
            KmsError::IncorrectKeyException(String::new()),
            KmsError::InvalidKeyUsageException(String::new()),
            KmsError::InvalidGrantTokenException(String::new()),
            KmsError::InvalidGrantIdException(String::new()),
            KmsError::InvalidAliasNameException(String::new()),
            KmsError::InvalidArnException(String::new()),
            KmsError::InvalidMarkerException(String::new()),
            KmsError::MalformedPolicyDocumentException(String::new()),
            KmsError::TagException(String::new()),
            KmsError::AccessDeniedException(String::new()),
            KmsError::UnrecognizedClientException(String::new()),
            KmsError::ExpiredTokenException(String::new()),
            KmsError::LimitExceededException(String::new()),
            KmsError::ThrottlingException(String::new()),
            KmsError::DependencyTimeoutException(String::new()),
            KmsError::internal(std::io::Error::other("x")),
        ];
        for e in all {
            let name = e.name();
            let code = ErrorCode::of(&Status::from(e));
            assert!(!matches!(code, ErrorCode::Other(_)), "{name} unknown");
            assert_eq!(code.name(), name);
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let throttled = ApiError::from(Status::from(KmsError::ThrottlingException("x".into())));
        assert_eq!(throttled.code, ErrorCode::Throttling);
        assert!(throttled.code.is_retryable());
        assert!(ErrorCode::of(&Status::unavailable("connection refused")).is_retryable());
        assert!(
            !ErrorCode::of(&Status::from(KmsError::LimitExceededException(
                String::new()
            )))
            .is_retryable()
        );
        assert!(
            !ErrorCode::of(&Status::from(
                KmsError::AccessDeniedException(String::new())
            ))
            .is_retryable()
        );
        assert_eq!(
            ErrorCode::of(&Status::internal("x")),
            ErrorCode::Transport(Code::Internal)
        );
    }
}
