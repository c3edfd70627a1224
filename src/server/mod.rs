//! Transports. Each adapter authenticates, converts its wire types to the
//! domain's plain ones, calls `kms::Kms`, and maps `KmsError` at one
//! boundary. Today: gRPC (`grpc`). The AWS JSON 1.1 protocol is the next
//! adapter over the same domain calls.

pub mod grpc;
pub mod pb;
