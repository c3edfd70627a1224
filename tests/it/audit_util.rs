//! Helpers for the audit tests: the AuditService client, the request id a
//! response carries, the trail read straight from SQLite, a daemon reopened
//! on an existing data directory, and the real `kmsd dev` binary with its
//! standard output and standard error captured to files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmsd::client::{self, BearerAuth};
use kmsd::clock::ManualClock;
use kmsd::daemon::{Daemon, Options};
use kmsd::pb;
use kmsd::pb::audit_service_client::AuditServiceClient;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::{Creds, TestDaemon};

/// An AuditService client with credentials.
pub type AuditClient = AuditServiceClient<InterceptedService<Channel, BearerAuth>>;

/// An AuditService client for `endpoint`.
pub async fn audit_at(
    endpoint: &str,
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
) -> AuditClient {
    let channel = client::connect(endpoint).await.expect("connect");
    let auth = BearerAuth::new(access_key_id, secret, session_token).expect("auth");
    AuditServiceClient::with_interceptor(channel, auth)
}

/// An AuditService client of the test daemon, as `creds`.
pub async fn audit(d: &TestDaemon, creds: &Creds) -> AuditClient {
    audit_at(&d.endpoint, &creds.access_key_id, &creds.secret, None).await
}

/// VerifyTrail, which must answer.
pub async fn verify(a: &mut AuditClient) -> pb::VerifyTrailResponse {
    a.verify_trail(pb::VerifyTrailRequest {})
        .await
        .expect("VerifyTrail")
        .into_inner()
}

/// Every event `req` matches, all pages (1000 a page unless `req` says),
/// newest first.
pub async fn lookup_all(
    a: &mut AuditClient,
    mut req: pb::LookupEventsRequest,
) -> Vec<pb::AuditEvent> {
    if req.limit.is_none() {
        req.limit = Some(1000);
    }
    let mut out = Vec::new();
    loop {
        let page = a
            .lookup_events(req.clone())
            .await
            .expect("LookupEvents")
            .into_inner();
        out.extend(page.events);
        match page.next_marker {
            Some(m) if page.truncated => req.marker = Some(m),
            _ => return out,
        }
    }
}

/// The one event `req` matches whose request id is `request_id`.
#[track_caller]
pub fn the_event(events: &[pb::AuditEvent], request_id: &str) -> pb::AuditEvent {
    let found: Vec<&pb::AuditEvent> = events
        .iter()
        .filter(|e| e.request_id == request_id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one event has request id {request_id}; the events: {:#?}",
        events
            .iter()
            .map(|e| (&e.operation, &e.request_id))
            .collect::<Vec<_>>()
    );
    found[0].clone()
}

/// The event of request `request_id`, looked up (as `a`) among the events of
/// `operation`.
pub async fn event_of(a: &mut AuditClient, operation: &str, request_id: &str) -> pb::AuditEvent {
    let events = lookup_all(
        a,
        pb::LookupEventsRequest {
            operation: Some(operation.to_owned()),
            ..Default::default()
        },
    )
    .await;
    the_event(&events, request_id)
}

/// The `x-request-id` the daemon put on an answer (success or error).
#[track_caller]
pub fn request_id<T>(r: &Result<tonic::Response<T>, tonic::Status>) -> String {
    let md = match r {
        Ok(resp) => resp.metadata(),
        Err(s) => s.metadata(),
    };
    md.get("x-request-id")
        .expect("every answer carries x-request-id")
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

/// The canonical JSON of an event, parsed.
pub fn body(e: &pb::AuditEvent) -> serde_json::Value {
    serde_json::from_str(&e.canonical_json).expect("canonical_json is JSON")
}

/// A protobuf timestamp at `ms` milliseconds since the epoch.
pub fn at_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).expect("nanos"),
    }
}

// ------------------------------------------------------------- the table

/// A connection of our own to a daemon's database (it may be running).
/// A trigger that makes every audit event's insert fail, as a full disk
/// would (`DROP TRIGGER block` lifts it).
pub const BLOCK: &str = "CREATE TRIGGER block BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;";

pub fn open_db(path: &Path) -> Connection {
    let c = Connection::open(path).expect("open the database");
    c.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    c
}

/// One row of `audit_events`.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub time_ms: i64,
    pub account_id: String,
    pub principal_arn: String,
    pub operation: String,
    pub outcome: String,
    pub key_arns: String,
    pub body: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Every stored event, in sequence order.
pub fn stored_events(c: &Connection) -> Vec<StoredEvent> {
    let mut st = c
        .prepare(
            "SELECT seq, time_ms, account_id, principal_arn, operation, outcome, key_arns, body, prev_hash, hash \
             FROM audit_events ORDER BY seq",
        )
        .expect("prepare");
    st.query_map([], |r| {
        Ok(StoredEvent {
            seq: r.get(0)?,
            time_ms: r.get(1)?,
            account_id: r.get(2)?,
            principal_arn: r.get(3)?,
            operation: r.get(4)?,
            outcome: r.get(5)?,
            key_arns: r.get(6)?,
            body: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

/// The number of stored events.
pub fn event_count(c: &Connection) -> u64 {
    let n: i64 = c
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .expect("count");
    u64::try_from(n).expect("a count")
}

/// SHA-256(prev || body), the chain step.
pub fn chain_hash(prev: &[u8], body: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(body.as_bytes());
    h.finalize().to_vec()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Copies the files of a (stopped) daemon's data directory.
pub fn copy_data_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
        }
    }
}

// ----------------------------------------------- a daemon on a given dir

/// A daemon served in-process on an existing data directory (the
/// harness's `TestDaemon` always starts on a fresh one).
pub struct Reopened {
    pub endpoint: String,
    pub clock: ManualClock,
    pub admin: Creds,
    pub operator: Creds,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Reopened {
    /// Opens `data_dir` and serves it on an ephemeral loopback port.
    pub async fn start(data_dir: &Path) -> Self {
        let mut options = Options::new(data_dir);
        options.sweep_interval = Duration::from_secs(3600);
        let clock = ManualClock::starting_now();
        let daemon = Daemon::open(options, Arc::new(clock.clone())).expect("open daemon");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let creds = daemon.bootstrap_dev(&endpoint).await.expect("bootstrap");
        let to_creds = |p: &Option<kmsd::daemon::Profile>| {
            let p = p.as_ref().expect("profile");
            Creds {
                account_id: p.account_id.clone(),
                access_key_id: p.access_key_id.clone(),
                secret: String::from_utf8(p.secret_access_key.expose_secret().to_vec()).unwrap(),
            }
        };
        let (admin, operator) = (to_creds(&creds.admin), to_creds(&creds.operator));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Self {
            endpoint,
            clock,
            admin,
            operator,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// VerifyTrail as the operator.
    pub async fn verify(&self) -> pb::VerifyTrailResponse {
        let mut a = audit_at(
            &self.endpoint,
            &self.operator.access_key_id,
            &self.operator.secret,
            None,
        )
        .await;
        verify(&mut a).await
    }

    /// Stops it and waits until its store is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("daemon task");
        }
    }
}

impl Drop for Reopened {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------ the real binary

/// A `kmsd dev` process whose standard output and standard error go to
/// files, so that everything it ever printed can be searched.
pub struct DevProcess {
    child: Child,
    pub endpoint: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl DevProcess {
    /// Starts `kmsd dev` on `data_dir` with `RUST_LOG=rust_log`, its output
    /// in `<logs>/<tag>.stdout` and `<logs>/<tag>.stderr`, and waits (at most
    /// a minute) until it prints `listening on`.
    pub async fn start(data_dir: &Path, logs: &Path, tag: &str, rust_log: &str) -> Self {
        std::fs::create_dir_all(logs).expect("logs dir");
        let stdout = logs.join(format!("{tag}.stdout"));
        let stderr = logs.join(format!("{tag}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_kmsd"))
            .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn kmsd");
        let mut p = Self {
            child,
            endpoint: String::new(),
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = std::fs::read_to_string(&p.stdout).unwrap_or_default();
            if let Some(addr) = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("listening on "))
            {
                p.endpoint = format!("http://{addr}");
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "kmsd exited ({status}) before listening:\n{out}\n{}",
                    String::from_utf8_lossy(&std::fs::read(&p.stderr).unwrap_or_default())
                );
            }
            assert!(
                Instant::now() < deadline,
                "kmsd did not start within a minute:\n{out}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait for a clean exit (at most a minute).
    pub async fn terminate(&mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "kmsd exited with {status} after SIGTERM");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kmsd did not stop within a minute of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it printed so far: standard output, then standard error.
    pub fn output(&self) -> Vec<u8> {
        let mut all = std::fs::read(&self.stdout).unwrap_or_default();
        all.extend(std::fs::read(&self.stderr).unwrap_or_default());
        all
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Credentials from the credentials file `kmsd dev` writes.
pub fn dev_creds(data_dir: &Path, profile: &str) -> Creds {
    let p = kmsd::profile::load(&data_dir.join("credentials"), profile).expect("profile");
    Creds {
        account_id: String::new(),
        access_key_id: p.access_key_id.clone(),
        secret: p.secret_access_key.to_string(),
    }
}
