//! One integration-test binary: each module is an area; `common` starts a
//! real daemon on an ephemeral loopback port with a temporary data directory.

mod common;
mod smoke;
mod tls;
mod util;

mod aliases_tags;
mod binary;
mod cli;
mod client_lib;
mod crypto_ops;
mod deletion;
mod envelope;
mod grants;
mod identity;
mod lifecycle;
mod persistence;
mod rotation;

mod audit;
mod audit_util;
mod authz_matrix;
mod authz_rules;
mod authz_util;
mod iam_roles;
