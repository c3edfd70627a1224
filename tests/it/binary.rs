//! The real binaries: `kmsd dev` as a newcomer runs it (first run, reuse,
//! SIGTERM, `kill -9` and restart) and `kmsctl` against it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use kmsd::client::{self, BearerAuth, KmsClient};
use kmsd::pb;

/// A `kmsd dev` process.
pub(crate) struct Kmsd {
    child: Child,
    endpoint: String,
    stdout: String,
    /// Where its stderr (its log, at `warn`) goes: beside the data directory.
    log: PathBuf,
}

impl Kmsd {
    /// Starts `kmsd dev` on an ephemeral port and waits for `listening on`.
    pub(crate) fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// `start` with extra `kmsd dev` options. Once returned, `Drop` kills
    /// and reaps the child; the paths that panic before that end the test
    /// process, which takes the child with it.
    pub(crate) fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// `start_with` listening on `listen`.
    #[allow(clippy::zombie_processes)]
    pub(crate) fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        // A file, not a pipe: nobody has to drain it for kmsd to go on.
        let log = data_dir.with_extension("kmsd.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_kmsd"))
            .args(["dev", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("kmsd's log file"))
            .spawn()
            .expect("spawn kmsd");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut stdout = String::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read stdout");
            if n == 0 {
                let status = child.wait();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "kmsd exited ({status:?}) before listening; it printed:\n{stdout}\nand logged:\n{log}"
                );
            }
            stdout.push_str(&line);
            if let Some(addr) = line.trim().strip_prefix("listening on ") {
                let endpoint = format!("http://{addr}");
                // Keep draining stdout so the process never blocks on a full pipe.
                std::thread::spawn(move || for _ in reader.lines() {});
                return Self {
                    child,
                    endpoint,
                    stdout,
                    log,
                };
            }
        }
    }

    /// What kmsd has logged so far (at `warn`).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("kmsd's log")
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Kmsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn profile(data_dir: &Path, name: &str) -> kmsd::profile::ClientProfile {
    kmsd::profile::load(&data_dir.join("credentials"), name).expect("profile")
}

pub(crate) async fn kms_client(endpoint: &str, p: &kmsd::profile::ClientProfile) -> KmsClient {
    let auth = BearerAuth::new(&p.access_key_id, &p.secret_access_key, None).unwrap();
    client::clients(client::connect(endpoint).await.unwrap(), auth).0
}

/// The command `kmsctl --credentials <data_dir>/credentials ARGS`, with
/// nothing from the caller's shell that could change who kmsctl is or how
/// it answers: every KMS_* variable goes (KMS_ACCESS_KEY_ID and friends
/// would override the profiles these tests choose).
pub(crate) fn kmsctl_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmsctl"));
    cmd.arg("--credentials")
        .arg(data_dir.join("credentials"))
        .args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KMS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub(crate) fn kmsctl(data_dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = kmsctl_command(data_dir, args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kmsctl");
    {
        use std::io::Write;
        let mut sin = child.stdin.take().unwrap();
        if let Some(b) = stdin {
            sin.write_all(b).unwrap();
        }
    }
    child.wait_with_output().expect("kmsctl output")
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "kmsctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kmsctl prints JSON")
}

pub(crate) fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("kmsd-data");
    (t, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_first_run_prints_credentials_once_and_later_runs_reuse_them() {
    let (_t, dir) = data_dir();
    let first = Kmsd::start(&dir);
    let admin = profile(&dir, "default");
    assert!(
        first.stdout.contains(&admin.access_key_id),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains(admin.secret_access_key.as_str()));
    for f in ["root.key", "credentials", "kmsd.db"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    assert_eq!(std::fs::metadata(dir.join("root.key")).unwrap().len(), 32);
    let mut kms = kms_client(&first.endpoint, &admin).await;
    let key = kms
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    drop(kms);
    first.signal("-TERM");
    assert!(first.wait().success(), "SIGTERM is a clean exit");

    let second = Kmsd::start(&dir);
    assert!(second.stdout.contains("reusing"), "{}", second.stdout);
    assert!(
        !second.stdout.contains(admin.secret_access_key.as_str()),
        "the secret is printed only once"
    );
    let again = profile(&dir, "default");
    assert_eq!(again.access_key_id, admin.access_key_id);
    assert_eq!(
        again.endpoint, second.endpoint,
        "the credentials file follows the new endpoint"
    );
    let mut kms = kms_client(&second.endpoint, &again).await;
    let described = kms
        .describe_key(pb::DescribeKeyRequest {
            key_id: key.key_id.clone(),
            grant_tokens: vec![],
        })
        .await
        .unwrap();
    assert_eq!(described.into_inner().key_metadata.unwrap().arn, key.arn);
    let op = profile(&dir, "operator");
    let mut iam = client::clients(
        client::connect(&second.endpoint).await.unwrap(),
        BearerAuth::new(&op.access_key_id, &op.secret_access_key, None).unwrap(),
    )
    .1;
    let me = iam
        .get_caller_identity(pb::GetCallerIdentityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.arn, "arn:aws:iam::000000000000:root");
}

#[test]
fn dev_refuses_a_non_loopback_address() {
    let (_t, dir) = data_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_kmsd"))
        .args(["dev", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    assert!(!dir.exists(), "refused before making anything");
}

/// A wrong `--tls-cert`/`--tls-key` stops kmsd before it makes a data
/// directory, and says which flag.
#[test]
fn dev_reads_its_own_tls_pair_first() {
    let (t, dir) = data_dir();
    // kmsd dev with this pair: its exit code and what it printed.
    let run = |cert: &Path, key: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_kmsd"))
            .args(["dev", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = t.path().join("missing.pem");
    let (code, stderr) = run(&missing, &missing);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
    assert!(!dir.exists(), "refused before making anything");
    // A good certificate but no key: the key too is read first.
    let cert = t.path().join("cert.pem");
    let pair = kmsd::tls::ServerTls::self_signed(&["localhost"]).unwrap();
    std::fs::write(&cert, pair.cert_pem()).unwrap();
    let (code, stderr) = run(&cert, &missing);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
    assert!(
        !dir.exists(),
        "refused before making anything, for the key too"
    );
}

/// A second daemon on a data directory in use is refused before it touches
/// anything, and the first goes on serving; once the first is gone (even by
/// `kill -9`), the directory opens again.
#[tokio::test]
async fn a_data_directory_serves_one_daemon_at_a_time() {
    let (_t, dir) = data_dir();
    let first = Kmsd::start(&dir);
    // A daemon that did start would rewrite this with its own endpoint.
    let credentials_before = std::fs::read(dir.join("credentials")).expect("credentials");
    // With --tls, which would make a certificate pair if it got that far;
    // and without a root key in place, which it would make (or read) if it
    // got that far.
    std::fs::rename(dir.join("root.key"), dir.join("root.key.aside")).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_kmsd"))
        .args(["dev", "--tls", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kmsd");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second daemon started on a data directory in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another kmsd") && stderr.contains("kmsd.db.lock"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.join("credentials")).expect("credentials"),
        credentials_before,
        "the refused daemon wrote nothing"
    );
    assert!(!dir.join("tls").exists(), "nor made a certificate");
    assert!(
        !dir.join("root.key").exists(),
        "nor touched the root key before finding the lock"
    );
    std::fs::rename(dir.join("root.key.aside"), dir.join("root.key")).unwrap();
    let mut kms = kms_client(&first.endpoint, &profile(&dir, "default")).await;
    kms.create_key(pb::CreateKeyRequest::default())
        .await
        .expect("the first daemon still serves");

    first.signal("-KILL");
    let _ = first.wait();
    let again = Kmsd::start(&dir);
    let mut kms = kms_client(&again.endpoint, &profile(&dir, "default")).await;
    kms.create_key(pb::CreateKeyRequest::default())
        .await
        .expect("the directory opens again once its daemon is gone");
}

/// Every call that was answered before a `kill -9` is still there after a
/// restart: the writer answers only after its batch is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let (_t, dir) = data_dir();
    let d = Kmsd::start(&dir);
    let admin = profile(&dir, "default");
    let endpoint = d.endpoint.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>, Vec<u8>)>();
    let mut workers = Vec::new();
    for w in 0..16u8 {
        let tx = tx.clone();
        let mut kms = kms_client(&endpoint, &admin).await;
        workers.push(tokio::spawn(async move {
            for i in 0..1000u32 {
                let Ok(k) = kms.create_key(pb::CreateKeyRequest::default()).await else {
                    return;
                };
                let key_id = k.into_inner().key_metadata.unwrap().key_id;
                let plaintext = format!("worker {w} call {i}").into_bytes();
                let Ok(ct) = kms
                    .encrypt(pb::EncryptRequest {
                        key_id: key_id.clone(),
                        plaintext: plaintext.clone(),
                        ..Default::default()
                    })
                    .await
                else {
                    return;
                };
                if tx
                    .send((key_id, plaintext, ct.into_inner().ciphertext_blob))
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    drop(tx);
    // Let the load run, then kill without warning.
    let mut acknowledged = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        acknowledged.push(item);
    }
    d.signal("-KILL");
    let _ = d.wait();
    while let Some(item) = rx.recv().await {
        acknowledged.push(item);
    }
    for w in workers {
        let _ = w.await;
    }
    assert!(
        acknowledged.len() > 10,
        "the load made progress ({} calls)",
        acknowledged.len()
    );

    let d = Kmsd::start(&dir);
    let mut kms = kms_client(&d.endpoint, &profile(&dir, "default")).await;
    for (key_id, plaintext, blob) in &acknowledged {
        let pt = kms
            .decrypt(pb::DecryptRequest {
                ciphertext_blob: blob.clone(),
                key_id: Some(key_id.clone()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged key {key_id} lost after kill -9: {e:?}"));
        assert_eq!(&pt.into_inner().plaintext, plaintext);
    }
}

#[tokio::test]
async fn kmsctl_tour() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let who = json(&kmsctl(&dir, &["whoami"], None));
    assert!(who["Arn"].as_str().unwrap().ends_with(":user/admin"));
    let created = json(&kmsctl(
        &dir,
        &["key", "create", "--description", "orders"],
        None,
    ));
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(created["KeyMetadata"]["KeyState"], "Enabled");
    assert_eq!(created["KeyMetadata"]["Description"], "orders");
    assert!(
        kmsctl(&dir, &["alias", "create", "alias/orders", &key_id], None)
            .status
            .success()
    );
    let listed = json(&kmsctl(&dir, &["key", "list"], None));
    assert_eq!(listed["Keys"][0]["KeyId"], key_id.as_str());

    let blob = kmsctl(
        &dir,
        &[
            "encrypt-blob",
            "--key",
            "alias/orders",
            "--context",
            "t=orders",
        ],
        Some(b"card 4111"),
    );
    assert!(blob.status.success());
    let blob_file = dir.join("blob.bin");
    std::fs::write(&blob_file, &blob.stdout).unwrap();
    let decrypt_args = [
        "decrypt-blob",
        "--in",
        blob_file.to_str().unwrap(),
        "--context",
        "t=orders",
    ];
    let back = kmsctl(&dir, &decrypt_args, None);
    assert_eq!(back.stdout, b"card 4111");
    let wrong = kmsctl(
        &dir,
        &["decrypt-blob", "--in", blob_file.to_str().unwrap()],
        None,
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("InvalidCiphertextException"));

    let dk = json(&kmsctl(&dir, &["data-key", "--key", "alias/orders"], None));
    assert_eq!(
        dk["Plaintext"].as_str().unwrap().len(),
        44,
        "32 bytes in base64"
    );

    // Rotation names the key itself, as every command that manages a key.
    json(&kmsctl(&dir, &["key", "rotate", &key_id], None));
    let by_alias = kmsctl(&dir, &["key", "rotate", "alias/orders"], None);
    assert_eq!(by_alias.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&by_alias.stderr).contains("ValidationException"));
    let rotated = kmsctl(&dir, &decrypt_args, None);
    assert_eq!(rotated.stdout, b"card 4111", "decrypts after rotation");

    let short = kmsctl(
        &dir,
        &["key", "schedule-deletion", &key_id, "--days", "6", "--yes"],
        None,
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("ValidationException"));
    let scheduled = json(&kmsctl(
        &dir,
        &["key", "schedule-deletion", &key_id, "--days", "7", "--yes"],
        None,
    ));
    assert_eq!(scheduled["PendingWindowInDays"], 7);
    let described = json(&kmsctl(&dir, &["key", "describe", &key_id], None));
    assert_eq!(described["KeyMetadata"]["KeyState"], "PendingDeletion");
    json(&kmsctl(&dir, &["key", "cancel-deletion", &key_id], None));
    let described = json(&kmsctl(&dir, &["key", "describe", "alias/orders"], None));
    assert_eq!(described["KeyMetadata"]["KeyState"], "Disabled");
    assert!(
        kmsctl(&dir, &["key", "enable", &key_id], None)
            .status
            .success()
    );
    let described = json(&kmsctl(&dir, &["key", "describe", &key_id], None));
    assert_eq!(described["KeyMetadata"]["KeyState"], "Enabled");

    let usage = kmsctl(&dir, &["key", "frobnicate"], None);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
    let bad = Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .args(["--credentials"])
        .arg(dir.join("credentials"))
        .args(["--profile", "operator", "key", "create"])
        .output()
        .unwrap();
    assert!(
        bad.status.success(),
        "the operator may create keys in its own account"
    );
    std::fs::write(
        dir.join("bad"),
        format!(
            "[default]\nendpoint = {}\naccess_key_id = AKIAAAAAAAAAAAAAAAAA\nsecret_access_key = nope\n",
            profile(&dir, "default").endpoint
        ),
    )
    .unwrap();
    let denied = Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .arg("--credentials")
        .arg(dir.join("bad"))
        .arg("whoami")
        .output()
        .unwrap();
    assert_eq!(
        denied.status.code(),
        Some(3),
        "authentication failures exit 3"
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("UnrecognizedClientException"));
}

/// The README's worked example: an administrator who manages a key but may
/// not use it, and a user who uses it but may not manage it.
#[tokio::test]
async fn kmsctl_key_administrator_and_key_user() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    for user in ["alice", "bob"] {
        json(&kmsctl(&dir, &["iam", "create-user", user], None));
        let k = json(&kmsctl(
            &dir,
            &[
                "iam",
                "create-access-key",
                "--user",
                user,
                "--save-profile",
                user,
            ],
            None,
        ));
        assert_eq!(k["AccessKey"]["SavedAsProfile"], user);
    }
    let account = json(&kmsctl(&dir, &["whoami"], None))["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let arn = |u: &str| format!("arn:aws:iam::{account}:user/{u}");
    let (admin, alice, bob) = (arn("admin"), arn("alice"), arn("bob"));

    // Naming only others would lock the creator out of the policy.
    let locked = kmsctl(
        &dir,
        &["key", "create", "--admin", &alice, "--user", &bob],
        None,
    );
    assert_eq!(locked.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&locked.stderr).contains("MalformedPolicyDocumentException"));
    let created = json(&kmsctl(
        &dir,
        &[
            "key", "create", "--admin", &admin, "--admin", &alice, "--user", &bob,
        ],
        None,
    ));
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();

    let as_user = |who: &str, args: &[&str], stdin: Option<&[u8]>| {
        let mut all = vec!["--profile", who];
        all.extend_from_slice(args);
        kmsctl(&dir, &all, stdin)
    };
    let denied = as_user("alice", &["encrypt-blob", "--key", &key], Some(b"x"));
    assert_eq!(
        denied.status.code(),
        Some(3),
        "the administrator may not use the key"
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("AccessDeniedException"));
    let blob = as_user("bob", &["encrypt-blob", "--key", &key], Some(b"payroll"));
    assert!(blob.status.success(), "the user may");
    let denied = as_user("bob", &["key", "disable", &key], None);
    assert_eq!(
        denied.status.code(),
        Some(3),
        "the user may not manage the key"
    );
    assert!(
        as_user("alice", &["key", "disable", &key], None)
            .status
            .success(),
        "the administrator may"
    );
    assert!(
        as_user("alice", &["key", "enable", &key], None)
            .status
            .success()
    );
    let policy = json(&as_user("alice", &["policy", "get", &key], None));
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 2);
}

/// The README's cross-account grant walk-through, through kmsctl.
#[tokio::test]
async fn kmsctl_cross_account_grant() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let run = |args: &[&str], stdin: Option<&[u8]>| kmsctl(&dir, args, stdin);
    let key = json(&run(&["key", "create"], None))["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = json(&run(
        &[
            "--profile",
            "operator",
            "iam",
            "create-account",
            "tenant-b",
            "--save-profile",
            "b-root",
        ],
        None,
    ))["AccountId"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&run(
        &["--profile", "b-root", "iam", "create-user", "svc"],
        None,
    ));
    json(&run(
        &[
            "--profile",
            "b-root",
            "iam",
            "create-access-key",
            "--user",
            "svc",
            "--save-profile",
            "b-svc",
        ],
        None,
    ));
    let trust = dir.join("trust.json");
    std::fs::write(
        &trust,
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{b}:user/svc"}},"Action":"sts:AssumeRole"}}]}}"#
        ),
    )
    .unwrap();
    json(&run(
        &[
            "--profile",
            "b-root",
            "iam",
            "create-role",
            "consumer",
            "--trust-policy",
            trust.to_str().unwrap(),
        ],
        None,
    ));
    let session = json(&run(
        &[
            "--profile",
            "b-svc",
            "iam",
            "assume-role",
            "consumer",
            "--session-name",
            "job1",
            "--save-profile",
            "b-app",
        ],
        None,
    ));
    assert_eq!(
        session["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{b}:assumed-role/consumer/job1")
    );

    let encrypt = |ctx: &str, token: Option<&str>| {
        let mut args = vec![
            "--profile",
            "b-app",
            "encrypt-blob",
            "--key",
            &key,
            "--context",
            ctx,
        ];
        if let Some(t) = token {
            args.extend(["--grant-token", t]);
        }
        run(&args, Some(b"tenant b data"))
    };
    let before = encrypt("tenant=b", None);
    assert_eq!(before.status.code(), Some(3), "no access before the grant");
    assert!(String::from_utf8_lossy(&before.stderr).contains("AccessDeniedException"));
    assert!(before.stdout.is_empty());
    let grantee = format!("arn:aws:iam::{b}:role/consumer");
    let g = json(&run(
        &[
            "grant",
            "create",
            &key,
            "--grantee",
            &grantee,
            "--operation",
            "Encrypt",
            "--operation",
            "Decrypt",
            "--context-subset",
            "tenant=b",
        ],
        None,
    ));
    let (token, grant_id) = (
        g["GrantToken"].as_str().unwrap(),
        g["GrantId"].as_str().unwrap(),
    );
    let blob = encrypt("tenant=b", Some(token));
    assert!(
        blob.status.success(),
        "{}",
        String::from_utf8_lossy(&blob.stderr)
    );
    let blob_file = dir.join("b.bin");
    std::fs::write(&blob_file, &blob.stdout).unwrap();
    let decrypt = || {
        run(
            &[
                "--profile",
                "b-app",
                "decrypt-blob",
                "--in",
                blob_file.to_str().unwrap(),
                "--context",
                "tenant=b",
            ],
            None,
        )
    };
    assert_eq!(
        decrypt().stdout,
        b"tenant b data",
        "no token needed once stored"
    );
    let outside = encrypt("tenant=a", None);
    assert_eq!(outside.status.code(), Some(3), "outside the constraint");
    assert!(String::from_utf8_lossy(&outside.stderr).contains("AccessDeniedException"));
    assert!(outside.stdout.is_empty());
    let listed = json(&run(&["grant", "list", &key], None));
    assert_eq!(listed["Grants"][0]["GranteePrincipal"], grantee.as_str());
    assert!(
        run(&["grant", "revoke", &key, grant_id], None)
            .status
            .success()
    );
    let revoked = decrypt();
    assert_eq!(revoked.status.code(), Some(3), "revoked at once");
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("AccessDeniedException"));
}

/// `kmsctl bench` smoke test: a few hundred requests against a real daemon,
/// a report with every field, zero errors, the baseline beside it, and the
/// key it made for the run scheduled for deletion. No speed is asserted.
#[tokio::test]
async fn kmsctl_bench_reports_every_field() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let out = json(&kmsctl(
        &dir,
        &[
            "bench",
            "--op",
            "encrypt=2,decrypt=1,generate-data-key=1,describe-key=1",
            "--requests",
            "300",
            "-c",
            "8",
            "--connections",
            "2",
            "--output",
            "json",
        ],
        None,
    ));
    let reports = out["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "baseline and kmsd");
    assert_eq!(reports[0]["target"], "baseline echo");
    for r in reports {
        assert_eq!(r["requests"], 300, "{r}");
        assert!(r["requests_per_second"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["successes_per_second"], r["requests_per_second"],
            "every request succeeded: {r}"
        );
        for p in ["p50", "p90", "p99", "p99_9", "max"] {
            assert!(r["latency_us"][p].as_u64().unwrap() > 0, "{p} in {r}");
        }
        assert_eq!(r["errors"], serde_json::json!({}), "no errors: {r}");
    }
    assert!(out["ratio_to_baseline"].as_f64().unwrap() > 0.0);
    // The ratio is kmsd's successes per second over the baseline's (the
    // printed figures are rounded: rates to 0.1, the ratio to 0.001).
    let sps = |r: &serde_json::Value| r["successes_per_second"].as_f64().unwrap();
    let expected = sps(&reports[1]) / sps(&reports[0]);
    let ratio = out["ratio_to_baseline"].as_f64().unwrap();
    assert!(
        (ratio - expected).abs() <= (expected * 0.01).max(0.001),
        "ratio {ratio}, successes give {expected}"
    );
    let keys = json(&kmsctl(&dir, &["key", "list"], None));
    let key = keys["Keys"][0]["KeyId"].as_str().unwrap().to_owned();
    let described = json(&kmsctl(&dir, &["key", "describe", &key], None));
    assert_eq!(
        described["KeyMetadata"]["KeyState"], "PendingDeletion",
        "the run's key is cleaned up"
    );
    let table = kmsctl(
        &dir,
        &["bench", "--requests", "50", "-c", "2", "--connections", "1"],
        None,
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("baseline echo") && text.contains("kmsd / baseline"),
        "{text}"
    );
    // Rounds alternate the two phases; the ratio is the median of theirs.
    let rounds = json(&kmsctl(
        &dir,
        &[
            "bench",
            "--requests",
            "40",
            "-c",
            "2",
            "--rounds",
            "3",
            "-o",
            "json",
        ],
        None,
    ));
    let targets: Vec<&str> = rounds["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "baseline echo",
            "kmsd encrypt=1",
            "baseline echo",
            "kmsd encrypt=1",
            "baseline echo",
            "kmsd encrypt=1"
        ]
    );
    let mut ratios: Vec<f64> = rounds["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(ratios.len(), 3);
    ratios.sort_by(f64::total_cmp);
    assert_eq!(rounds["ratio_to_baseline"].as_f64(), Some(ratios[1]));
}

/// `kmsctl encrypt`/`decrypt` for files: a round trip, the context check,
/// and a tampered envelope that leaves no output file behind.
#[tokio::test]
async fn kmsctl_encrypts_files_of_any_size() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let key = json(&kmsctl(&dir, &["key", "create"], None))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = dir.join("report.pdf");
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&plain, &data).unwrap();
    let (enc, out) = (dir.join("report.pdf.kmse"), dir.join("copy.pdf"));
    let p = |x: &PathBuf| x.to_str().unwrap().to_owned();
    let r = kmsctl(
        &dir,
        &[
            "encrypt",
            "--key",
            &key,
            "--context",
            "file=report",
            &p(&plain),
            &p(&enc),
        ],
        None,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::metadata(&enc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let r = kmsctl(
        &dir,
        &["decrypt", "--context", "file=report", &p(&enc), &p(&out)],
        None,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), data);

    let wrong = kmsctl(
        &dir,
        &[
            "decrypt",
            "--context",
            "file=other",
            &p(&enc),
            &p(&dir.join("x")),
        ],
        None,
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(!dir.join("x").exists());

    let mut bad = std::fs::read(&enc).unwrap();
    let at = bad.len() - 1000;
    bad[at] ^= 1;
    let tampered = dir.join("bad.kmse");
    std::fs::write(&tampered, &bad).unwrap();
    let r = kmsctl(
        &dir,
        &["decrypt", &p(&tampered), &p(&dir.join("bad.out"))],
        None,
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("altered"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        !dir.join("bad.out").exists(),
        "no partial plaintext is left behind"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".kmsctl-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files are removed");
}

/// Credentials from the environment (as the AWS CLI takes them) and shell
/// completions, which need no daemon.
#[tokio::test]
async fn kmsctl_takes_credentials_from_the_environment() {
    let (_t, dir) = data_dir();
    let _d = Kmsd::start(&dir);
    let admin = profile(&dir, "default");
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |with_endpoint: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmsctl"));
        cmd.current_dir(elsewhere.path())
            .env("HOME", elsewhere.path())
            .env_remove("KMS_PROFILE")
            .env_remove("KMS_CREDENTIALS_FILE")
            .env("KMS_ACCESS_KEY_ID", &admin.access_key_id)
            .env("KMS_SECRET_ACCESS_KEY", admin.secret_access_key.as_str())
            .arg("whoami");
        if with_endpoint {
            cmd.env("KMS_ENDPOINT", &admin.endpoint);
        } else {
            cmd.env_remove("KMS_ENDPOINT");
        }
        cmd.output().unwrap()
    };
    let ok = run(true);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(who["Arn"].as_str().unwrap().ends_with(":user/admin"));
    let no_endpoint = run(false);
    assert!(!no_endpoint.status.success());
    assert!(String::from_utf8_lossy(&no_endpoint.stderr).contains("KMS_ENDPOINT"));
    let help = Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .env("KMS_SECRET_ACCESS_KEY", "do-not-print-me")
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains("do-not-print-me"),
        "help never shows the secret"
    );
    let bash = Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_kmsctl()"));
}

/// `kmsd dev`'s settings: the grant limit takes effect, and a retention of
/// zero days is refused as a usage error.
#[tokio::test]
async fn dev_settings_take_effect() {
    let (_t, dir) = data_dir();
    let refused = Command::new(env!("CARGO_BIN_EXE_kmsd"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--audit-retention-days",
            "0",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let _d = Kmsd::start_with(
        &dir,
        &["--max-grants-per-key", "1", "--audit-retention-days", "30"],
    );
    let key = json(&kmsctl(&dir, &["key", "create"], None))["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let account = json(&kmsctl(&dir, &["whoami"], None))["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let grantee = format!("arn:aws:iam::{account}:user/admin");
    let grant = |n: &str| {
        kmsctl(
            &dir,
            &[
                "grant",
                "create",
                &key,
                "--grantee",
                &grantee,
                "--operation",
                "Encrypt",
                "--name",
                n,
            ],
            None,
        )
    };
    assert!(grant("one").status.success());
    let second = grant("two");
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("LimitExceededException"));
}
