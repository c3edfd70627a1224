//! The gRPC adapter: `KeyManagementService` and `IdentityService` over
//! tonic, plus `grpc.health.v1`. Every handler goes through [`Handler::call`],
//! which authenticates the caller from the `authorization` metadata, runs the
//! domain operation, logs one line per call (never a secret), and maps the
//! error at one place (`status`).

mod audit_service;
pub mod codec;
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

use crate::audit::{self, AuditRecord};
use crate::crypto::RootKey;
use crate::error::KmsError;
use crate::identity::{self, BearerCredentials, Caller, Principal};
use crate::kms::Kms;
use crate::server::pb;

/// Shared state of the gRPC handlers.
#[derive(Clone)]
pub struct Handler {
    kms: Arc<Kms>,
    root: Arc<RootKey>,
    audit: bool,
}

impl Handler {
    /// Turns per-call audit events off (for measuring their cost only).
    pub fn with_audit(mut self, audit: bool) -> Self {
        self.audit = audit;
        self
    }

    /// Handlers over the domain service.
    pub fn new(kms: Arc<Kms>, root: Arc<RootKey>) -> Self {
        Self {
            kms,
            root,
            audit: true,
        }
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
        let caller = identity::authenticate(
            self.kms.store().as_ref(),
            &self.root,
            self.kms.credential_cache(),
            &creds,
            peer,
            now,
        )
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
        // The OS RNG failing would fail the call's cryptography anyway;
        // uuid's own generator then reports it the same way.
        let (request_id, event_id) = crate::crypto::rng::uuid_pair()
            .unwrap_or_else(|_| (uuid::Uuid::new_v4(), uuid::Uuid::new_v4()));
        // Formatted once: for the event and for the response's header.
        let request_id = request_id.to_string();
        let source_ip = req
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let presented_key = presented_access_key(&req);
        // Boxed where it is made: the operation's future is a few KB, and the
        // notes scope around it would otherwise hold it three times over
        // (6.8 KB for Encrypt, copied again by every wrapper up to tonic's
        // own boxing); boxed, the scope is 168 bytes.
        let inner = Box::pin(async {
            match self.authenticate(&req).await {
                Ok(caller) => {
                    let who = caller.clone();
                    (
                        Some(who),
                        f(Arc::clone(&self.kms), caller, req.into_inner()).await,
                    )
                }
                Err(e) => (None, Err(e)),
            }
        });
        let served = async {
            let ((caller, result), notes) = audit::notes::scope(inner).await;
            if !self.audit {
                return (caller, result, Ok(()));
            }
            let error_code = result.as_ref().err().map(KmsError::name);
            let record = self.audit_record(
                op,
                &request_id,
                &event_id,
                caller.as_ref(),
                presented_key,
                source_ip,
                notes,
                error_code,
            );
            // The call is answered only once its event is committed: a call
            // that cannot be recorded fails instead.
            let recorded = self.kms.record(record).await.map(drop);
            (caller, result, recorded)
        };
        // The call's writes commit with its event, or not at all.
        let (caller, result, recorded) = if self.audit {
            crate::store::one_transaction(served).await
        } else {
            served.await
        };
        let result = match recorded {
            Ok(_) => result,
            Err(e) => {
                tracing::error!(%request_id, op, error = %e, "audit trail write failed; refusing the call");
                Err(KmsError::internal(std::io::Error::other(
                    "the audit trail could not be written",
                )))
            }
        };
        let principal = caller.as_ref().map_or("-", |c| c.arn.as_str());
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
        if let Ok(mut value) = request_id.parse::<tonic::metadata::MetadataValue<_>>() {
            // Never indexed by HPACK: a value used once would only push
            // the connection's reusable headers out of its table.
            value.set_sensitive(true);
            match &mut response {
                Ok(r) => r.metadata_mut().insert("x-request-id", value),
                Err(s) => s.metadata_mut().insert("x-request-id", value),
            };
        }
        response
    }

    /// The audit event of one call.
    #[allow(clippy::too_many_arguments)]
    fn audit_record(
        &self,
        op: &str,
        request_id: &str,
        event_id: &uuid::Uuid,
        caller: Option<&Caller>,
        presented_key: String,
        source_ip: String,
        notes: audit::notes::Notes,
        error_code: Option<&'static str>,
    ) -> AuditRecord {
        let (identity_type, session_name) = match caller.map(|c| &c.principal) {
            None => ("Unknown", String::new()),
            Some(Principal::Root) => ("Root", String::new()),
            Some(Principal::User { .. }) => ("IAMUser", String::new()),
            Some(Principal::AssumedRole { session_name, .. }) => {
                ("AssumedRole", session_name.clone())
            }
        };
        AuditRecord {
            event_id: event_id.to_string(),
            time: self.kms.clock().now(),
            request_id: request_id.to_owned(),
            account_id: caller.map(|c| c.account_id.clone()).unwrap_or_default(),
            principal_arn: caller.map(|c| c.arn.clone()).unwrap_or_default(),
            identity_type,
            access_key_id: caller.map_or(presented_key, |c| c.access_key_id.clone()),
            session_name,
            mfa: caller.is_some_and(|c| c.mfa_present),
            source_ip,
            operation: op.to_owned(),
            region: self.kms.settings().region.clone(),
            key_arns: notes.key_arns,
            encryption_context: notes.encryption_context,
            // A ReEncrypt refused before its contexts were read still has
            // the ReEncrypt shape (both contexts, empty).
            destination_encryption_context: notes
                .destination_context
                .or_else(|| (op == "ReEncrypt").then(Default::default)),
            grant_id: notes.grant_id.unwrap_or_default(),
            outcome: audit::Outcome::of(error_code),
            error_code: error_code.unwrap_or_default().to_owned(),
            pending_deletion_key: notes.pending_deletion_key,
            parameters: notes.parameters,
            response: notes.response,
        }
    }
}

/// The access key id a request presented (not the secret), for the audit
/// event of a call whose authentication failed.
fn presented_access_key<T>(req: &Request<T>) -> String {
    req.metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|h| h.split_once(':'))
        .map(|(id, _)| id.chars().take(128).collect())
        .unwrap_or_default()
}

/// Serves gRPC on `listener` until `shutdown` resolves, then finishes the
/// calls in flight. The caller binds the listener, so tests can pass one
/// bound to port 0 and learn its address first.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    tls: Option<tonic::transport::ServerTlsConfig>,
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
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(health_service)
        .add_service(
            pb::key_management_service_server::KeyManagementServiceServer::new(handler.clone()),
        )
        .add_service(pb::identity_service_server::IdentityServiceServer::new(
            handler.clone(),
        ))
        .add_service(pb::audit_service_server::AuditServiceServer::new(handler))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Whether plaintext gRPC may be served on `addr` (loopback only).
pub fn plaintext_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
