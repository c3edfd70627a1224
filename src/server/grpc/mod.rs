//! The gRPC adapter: `KeyManagementService` and `IdentityService` over
//! tonic, plus `grpc.health.v1`. Every handler goes through [`Handler::call`],
//! which authenticates the caller from the `authorization` metadata, runs the
//! domain operation, logs one line per call (never a secret), and maps the
//! error at one place (`status`).

mod identity_service;
mod kms_service;
pub mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::crypto::RootKey;
use crate::error::KmsError;
use crate::identity::{self, BearerCredentials, Caller};
use crate::kms::Kms;
use crate::server::pb;

/// Shared state of the gRPC handlers.
#[derive(Clone)]
pub struct Handler {
    kms: Arc<Kms>,
    root: Arc<RootKey>,
}

impl Handler {
    /// Handlers over the domain service.
    pub fn new(kms: Arc<Kms>, root: Arc<RootKey>) -> Self {
        Self { kms, root }
    }

    async fn authenticate<T>(&self, req: &Request<T>) -> Result<Caller, KmsError> {
        let header = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                KmsError::UnrecognizedClientException("missing authentication token".into())
            })?
            .to_str()
            .map_err(|_| {
                KmsError::UnrecognizedClientException("malformed authentication token".into())
            })?;
        let mut creds = BearerCredentials::parse(header)?;
        if let Some(token) = req.metadata().get("x-kms-session-token") {
            let token = token.to_str().map_err(|_| {
                KmsError::UnrecognizedClientException("malformed session token".into())
            })?;
            creds.session_token = Some(crate::crypto::secret::SecretBytes::new(
                token.as_bytes().to_vec(),
            ));
        }
        let peer = req.remote_addr().map(|a| a.ip());
        let now = self.kms.clock().now();
        let caller =
            identity::authenticate(self.kms.store().as_ref(), &self.root, &creds, peer, now)
                .await?;
        if caller.is_root() {
            tracing::warn!(principal = %caller.arn, "call made with an account's root credentials; use an IAM user or role instead");
        }
        Ok(caller)
    }

    /// Runs one RPC: authenticate, act, log, map errors.
    async fn call<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Request<Req>,
        f: F,
    ) -> Result<Response<Resp>, Status>
    where
        F: FnOnce(Arc<Kms>, Caller, Req) -> Fut,
        Fut: Future<Output = Result<Resp, KmsError>>,
    {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4();
        let result = match self.authenticate(&req).await {
            Ok(caller) => {
                let arn = caller.arn.clone();
                let r = f(Arc::clone(&self.kms), caller, req.into_inner()).await;
                (Some(arn), r)
            }
            Err(e) => (None, Err(e)),
        };
        let (principal, result) = result;
        let principal = principal.as_deref().unwrap_or("-");
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match &result {
            Ok(_) => tracing::debug!(%request_id, op, principal, micros, "ok"),
            Err(KmsError::KMSInternalException(source)) => {
                tracing::error!(%request_id, op, principal, micros, error = %source, "internal error")
            }
            Err(e) => {
                tracing::info!(%request_id, op, principal, micros, error = e.name(), "refused")
            }
        }
        let mut response = result.map(Response::new).map_err(Status::from);
        if let Ok(value) = request_id.to_string().parse() {
            match &mut response {
                Ok(r) => r.metadata_mut().insert("x-request-id", value),
                Err(s) => s.metadata_mut().insert("x-request-id", value),
            };
        }
        response
    }
}

/// Serves gRPC on `listener` until `shutdown` resolves, then finishes the
/// calls in flight. The caller binds the listener, so tests can pass one
/// bound to port 0 and learn its address first.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::key_management_service_server::KeyManagementServiceServer<Handler>>()
        .await;
    health_reporter
        .set_serving::<pb::identity_service_server::IdentityServiceServer<Handler>>()
        .await;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(
            pb::key_management_service_server::KeyManagementServiceServer::new(handler.clone()),
        )
        .add_service(pb::identity_service_server::IdentityServiceServer::new(
            handler,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Whether plaintext gRPC may be served on `addr` (loopback only).
pub fn plaintext_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
