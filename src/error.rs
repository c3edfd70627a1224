//! [`KmsError`]: the one error type of the domain layer. Its variants are
//! AWS KMS's error names; each transport maps them once, at its boundary
//! (`server::grpc::status` for gRPC). Messages are sentences for a human and
//! never carry a secret.

/// A failed operation, named as AWS KMS names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(clippy::enum_variant_names)]
pub enum KmsError {
    /// A parameter is malformed or out of range (the caller's fault).
    #[error("{0}")]
    ValidationException(String),
    /// The key, alias, user or other resource does not exist.
    #[error("{0}")]
    NotFoundException(String),
    /// A resource with that name already exists.
    #[error("{0}")]
    AlreadyExistsException(String),
    /// The key is disabled.
    #[error("{0}")]
    DisabledException(String),
    /// The key's state does not allow the operation.
    #[error("{0}")]
    KMSInvalidStateException(String),
    /// The ciphertext is malformed, altered, or made under another context.
    #[error("{0}")]
    InvalidCiphertextException(String),
    /// The ciphertext was made under a different key than the one named.
    #[error("{0}")]
    IncorrectKeyException(String),
    /// The key's usage does not allow the operation.
    #[error("{0}")]
    InvalidKeyUsageException(String),
    /// A grant token is malformed or unknown.
    #[error("{0}")]
    InvalidGrantTokenException(String),
    /// A grant id is unknown or malformed.
    #[error("{0}")]
    InvalidGrantIdException(String),
    /// An alias name is malformed or reserved.
    #[error("{0}")]
    InvalidAliasNameException(String),
    /// An ARN is malformed.
    #[error("{0}")]
    InvalidArnException(String),
    /// A pagination marker is malformed or was not issued by us.
    #[error("{0}")]
    InvalidMarkerException(String),
    /// A policy document is malformed.
    #[error("{0}")]
    MalformedPolicyDocumentException(String),
    /// A tag is malformed or reserved.
    #[error("{0}")]
    TagException(String),
    /// The caller is not allowed to perform the operation.
    #[error("{0}")]
    AccessDeniedException(String),
    /// No credentials, unknown credentials or wrong secret.
    #[error("{0}")]
    UnrecognizedClientException(String),
    /// Temporary credentials have expired.
    #[error("{0}")]
    ExpiredTokenException(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceededException(String),
    /// The caller sends too many requests.
    #[error("{0}")]
    ThrottlingException(String),
    /// A dependency (the store) did not answer in time.
    #[error("{0}")]
    DependencyTimeoutException(String),
    /// Our fault: the store failed, or an invariant was broken. The message
    /// shown to callers is generic; the source goes to the log.
    #[error("an internal error occurred")]
    KMSInternalException(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl KmsError {
    /// The AWS error name, as in `ErrorInfo.reason`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ValidationException(_) => "ValidationException",
            Self::NotFoundException(_) => "NotFoundException",
            Self::AlreadyExistsException(_) => "AlreadyExistsException",
            Self::DisabledException(_) => "DisabledException",
            Self::KMSInvalidStateException(_) => "KMSInvalidStateException",
            Self::InvalidCiphertextException(_) => "InvalidCiphertextException",
            Self::IncorrectKeyException(_) => "IncorrectKeyException",
            Self::InvalidKeyUsageException(_) => "InvalidKeyUsageException",
            Self::InvalidGrantTokenException(_) => "InvalidGrantTokenException",
            Self::InvalidGrantIdException(_) => "InvalidGrantIdException",
            Self::InvalidAliasNameException(_) => "InvalidAliasNameException",
            Self::InvalidArnException(_) => "InvalidArnException",
            Self::InvalidMarkerException(_) => "InvalidMarkerException",
            Self::MalformedPolicyDocumentException(_) => "MalformedPolicyDocumentException",
            Self::TagException(_) => "TagException",
            Self::AccessDeniedException(_) => "AccessDeniedException",
            Self::UnrecognizedClientException(_) => "UnrecognizedClientException",
            Self::ExpiredTokenException(_) => "ExpiredTokenException",
            Self::LimitExceededException(_) => "LimitExceededException",
            Self::ThrottlingException(_) => "ThrottlingException",
            Self::DependencyTimeoutException(_) => "DependencyTimeoutException",
            Self::KMSInternalException(_) => "KMSInternalException",
        }
    }

    /// An internal error caused by `e`.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::KMSInternalException(e.into())
    }

    /// Shorthand for a [`KmsError::ValidationException`].
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::ValidationException(msg.into())
    }
}

impl From<crate::crypto::Error> for KmsError {
    fn from(e: crate::crypto::Error) -> Self {
        match e {
            crate::crypto::Error::InvalidCiphertext => {
                Self::InvalidCiphertextException(e.to_string())
            }
            other => Self::internal(other),
        }
    }
}

/// Result of a domain operation.
pub type Result<T, E = KmsError> = std::result::Result<T, E>;
