//! The one mapping of [`KmsError`] to a gRPC [`Status`]: the code from
//! API.md's table, the human message, and an `ErrorInfo` whose `reason` is
//! the AWS error name and whose `domain` is `kms`. Internal errors get a
//! generic message; their cause goes to the log, never to the caller.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::KmsError;

/// The `ErrorInfo.domain` of every kmsd error.
pub const ERROR_DOMAIN: &str = "kms";

/// The gRPC code of each AWS error name.
pub fn code(e: &KmsError) -> Code {
    match e {
        KmsError::ValidationException(_)
        | KmsError::InvalidCiphertextException(_)
        | KmsError::IncorrectKeyException(_)
        | KmsError::InvalidKeyUsageException(_)
        | KmsError::InvalidGrantTokenException(_)
        | KmsError::InvalidGrantIdException(_)
        | KmsError::InvalidAliasNameException(_)
        | KmsError::InvalidArnException(_)
        | KmsError::InvalidMarkerException(_)
        | KmsError::MalformedPolicyDocumentException(_)
        | KmsError::TagException(_) => Code::InvalidArgument,
        KmsError::NotFoundException(_) => Code::NotFound,
        KmsError::AlreadyExistsException(_) => Code::AlreadyExists,
        KmsError::DisabledException(_) | KmsError::KMSInvalidStateException(_) => {
            Code::FailedPrecondition
        }
        KmsError::AccessDeniedException(_) => Code::PermissionDenied,
        KmsError::UnrecognizedClientException(_) | KmsError::ExpiredTokenException(_) => {
            Code::Unauthenticated
        }
        KmsError::LimitExceededException(_) | KmsError::ThrottlingException(_) => {
            Code::ResourceExhausted
        }
        KmsError::DependencyTimeoutException(_) => Code::Unavailable,
        KmsError::KMSInternalException(_) => Code::Internal,
    }
}

impl From<KmsError> for Status {
    fn from(e: KmsError) -> Self {
        let details = ErrorDetails::with_error_info(e.name(), ERROR_DOMAIN, HashMap::new());
        Status::with_error_details(code(&e), e.to_string(), details)
    }
}

/// The AWS error name carried by a status, if it came from kmsd.
pub fn error_name(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|i| i.domain == ERROR_DOMAIN)
        .map(|i| i.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_name_code_and_message() {
        let s = Status::from(KmsError::DisabledException("arn is disabled.".into()));
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "arn is disabled.");
        assert_eq!(error_name(&s).as_deref(), Some("DisabledException"));
    }

    #[test]
    fn internal_errors_are_generic() {
        let s = Status::from(KmsError::internal(std::io::Error::other(
            "disk /secret/path full",
        )));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
        assert_eq!(error_name(&s).as_deref(), Some("KMSInternalException"));
    }
}
