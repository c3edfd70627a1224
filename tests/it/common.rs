//! The test daemon: the real `kmsd` server (store, domain, gRPC) in-process,
//! on a listener bound to 127.0.0.1:0 before it starts, with a temporary data
//! directory and a clock the test controls.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kmsd::client::{self, BearerAuth, IdentityClient, KmsClient};
use kmsd::clock::ManualClock;
use kmsd::daemon::{Daemon, Options};
use kmsd::kms::Kms;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Credentials of one principal.
#[derive(Clone)]
pub struct Creds {
    pub account_id: String,
    pub access_key_id: String,
    pub secret: String,
}

/// A running daemon.
pub struct TestDaemon {
    dir: Arc<TempDir>,
    pub addr: SocketAddr,
    pub endpoint: String,
    pub clock: ManualClock,
    pub kms: Arc<Kms>,
    /// The first account's `admin` user.
    pub admin: Creds,
    /// The first account's root.
    pub root: Creds,
    /// The operator account's root.
    pub operator: Creds,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestDaemon {
    /// A fresh daemon with a clock starting at the current time.
    pub async fn start() -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, ManualClock::starting_now(), |_| {}).await
    }

    /// A fresh daemon whose options `tweak` may change.
    pub async fn start_with(tweak: impl FnOnce(&mut Options)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, ManualClock::starting_now(), tweak).await
    }

    /// Starts on `dir` (an earlier daemon's, say) with `clock`.
    pub async fn start_in(
        dir: Arc<TempDir>,
        clock: ManualClock,
        tweak: impl FnOnce(&mut Options),
    ) -> Self {
        let mut options = Options::new(dir.path().join("data"));
        // Sweep often, so tests that move the clock see the background task act soon.
        options.sweep_interval = Duration::from_millis(50);
        tweak(&mut options);
        let daemon = Daemon::open(options, Arc::new(clock.clone())).expect("open daemon");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let endpoint = format!("http://{addr}");
        let creds = daemon.bootstrap_dev(&endpoint).await.expect("bootstrap");
        let to_creds = |p: &kmsd::daemon::Profile| Creds {
            account_id: p.account_id.clone(),
            access_key_id: p.access_key_id.clone(),
            secret: String::from_utf8(p.secret_access_key.expose_secret().to_vec()).unwrap(),
        };
        let profile =
            |p: &Option<kmsd::daemon::Profile>| to_creds(p.as_ref().expect("bootstrap profile"));
        let (admin, root, operator) = (
            profile(&creds.admin),
            profile(&creds.root),
            profile(&creds.operator),
        );
        let kms = Arc::clone(daemon.kms());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .serve(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("serve");
        });
        Self {
            dir,
            addr,
            endpoint,
            clock,
            kms,
            admin,
            root,
            operator,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the daemon gracefully and waits until its store is closed.
    pub async fn stop(mut self) -> (Arc<TempDir>, ManualClock) {
        self.shutdown().await;
        (Arc::clone(&self.dir), self.clock.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("daemon task");
        }
    }

    /// Stops and starts again on the same data directory and clock (on a new port).
    pub async fn restart(self) -> Self {
        let (dir, clock) = self.stop().await;
        Self::start_in(dir, clock, |_| {}).await
    }

    /// A KeyManagementService client authenticated as `creds`.
    pub async fn kms_client(&self, creds: &Creds) -> KmsClient {
        self.clients(creds).await.0
    }

    /// An IdentityService client authenticated as `creds`.
    pub async fn identity_client(&self, creds: &Creds) -> IdentityClient {
        self.clients(creds).await.1
    }

    /// Both clients, authenticated with a raw access key id and secret.
    pub async fn clients(&self, creds: &Creds) -> (KmsClient, IdentityClient) {
        let channel = client::connect(&self.endpoint).await.expect("connect");
        let auth = BearerAuth::new(&creds.access_key_id, &creds.secret, None).expect("auth");
        client::clients(channel, auth)
    }

    /// The admin user's KMS client.
    pub async fn admin_kms(&self) -> KmsClient {
        self.kms_client(&self.admin.clone()).await
    }

    /// Moves the daemon's clock.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Path of a file in the data directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.data_dir().join(name)
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The AWS error name a status carries (`ErrorInfo.reason`), or "" if none.
pub fn error_name(s: &tonic::Status) -> String {
    kmsd::server::grpc::status::error_name(s).unwrap_or_default()
}

/// Asserts that `r` failed with `code` and the AWS error `name`.
#[track_caller]
pub fn assert_err<T>(r: Result<T, tonic::Status>, code: tonic::Code, name: &str) -> tonic::Status {
    match r {
        Ok(_) => panic!("expected {name}, but the call succeeded"),
        Err(s) => {
            assert_eq!(error_name(&s), name, "status: {s:?}");
            assert_eq!(s.code(), code, "status: {s:?}");
            s
        }
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` (recursively), with its bytes.
pub fn read_all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(read_all_files(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}
