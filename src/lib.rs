//! kmsd: a self-hosted key-management service in the mould of AWS KMS.
//!
//! Layout (see `DESIGN.md` in the shared docs):
//! - [`server`]: transports. `server::grpc` authenticates, converts and maps
//!   errors at one boundary; `server::pb` holds the generated types.
//! - [`kms`]: the domain, one method per operation (validate, authorize,
//!   act); knows nothing of gRPC.
//! - [`identity`]: credentials, callers and ARNs.
//! - [`crypto`]: root key, wrapping at rest, the v1 ciphertext blob.
//! - [`store`]: the persistence trait and its SQLite back end.
//! - [`daemon`]: data directory, bootstrap and serving.
//! - [`clock`], [`model`], [`error`]: time, records and the error type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod bench;
pub mod client;
pub mod clock;
pub mod crypto;
pub mod daemon;
pub mod envelope;
pub mod error;
pub mod identity;
pub mod kms;
pub mod model;
pub mod policy;
pub mod private_file;
pub mod profile;
pub mod server;
pub mod store;
pub mod tls;

pub use error::KmsError;
pub use server::pb;
