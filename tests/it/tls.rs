//! TLS: the daemon serving rustls, clients that trust its certificate and
//! refuse others, and `kmsd dev --tls` with kmsctl finding the CA through
//! the credentials file.

use kmsd::client::{BearerAuth, Client, ClientError};
use kmsd::tls::ServerTls;

use crate::binary::{Kmsd, data_dir, json, kmsctl};
use crate::common::TestDaemon;

async fn tls_daemon() -> (TestDaemon, ServerTls, String) {
    let tls = ServerTls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let served = tls.clone();
    let d = TestDaemon::start_with(move |o| o.tls = Some(served)).await;
    let endpoint = format!("https://{}", d.addr);
    (d, tls, endpoint)
}

#[tokio::test]
async fn clients_trusting_the_certificate_connect_and_others_do_not() {
    let (d, tls, endpoint) = tls_daemon().await;
    let auth = BearerAuth::new(&d.admin.access_key_id, &d.admin.secret, None).unwrap();

    let channel = kmsd::client::connect_with(&endpoint, Some(tls.cert_pem()))
        .await
        .unwrap();
    let c = Client::over(channel, auth.clone());
    let key = c.create_key("over tls").await.unwrap();
    let blob = c
        .encrypt(&key.key_id, b"secret", &Default::default())
        .await
        .unwrap();
    let got = c.decrypt(&blob, &Default::default()).await.unwrap();
    assert_eq!(got.plaintext.expose_secret(), b"secret");

    // The typed client's own constructors take the CA too.
    let eager = Client::connect_with(&endpoint, Some(tls.cert_pem()), auth.clone())
        .await
        .unwrap();
    assert_eq!(
        eager.describe_key(&key.key_id).await.unwrap().key_id,
        key.key_id
    );
    let lazy = Client::connect_lazy_with(&endpoint, Some(tls.cert_pem()), auth.clone()).unwrap();
    assert_eq!(
        lazy.describe_key(&key.key_id).await.unwrap().key_id,
        key.key_id
    );

    // An https endpoint without a CA is a configuration error, said so.
    let r = kmsd::client::connect_with(&endpoint, None).await;
    assert!(matches!(r, Err(ClientError::NoCa(_))));
    let r = Client::connect_lazy(&endpoint, auth.clone());
    assert!(matches!(r, Err(ClientError::NoCa(_))), "lazily too");

    // A client trusting another certificate refuses the daemon's.
    let other = ServerTls::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let r = kmsd::client::connect_with(&endpoint, Some(other.cert_pem())).await;
    assert!(matches!(r, Err(ClientError::Connect { .. })), "{r:?}");

    // A plaintext client gets nowhere either.
    let plain = Client::connect_lazy(&format!("http://{}", d.addr), auth)
        .unwrap()
        .with_retry(kmsd::client::RetryPolicy::none());
    assert!(plain.describe_key(&key.key_id).await.is_err());
}

// kmsctl runs as a blocking child process while this runtime serves the
// daemon: a second worker thread keeps the daemon answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_takes_the_ca_from_flag_or_environment() {
    let (d, tls, endpoint) = tls_daemon().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, tls.cert_pem()).unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kmsctl"));
        cmd.arg("whoami")
            .env_clear()
            .env("KMS_ENDPOINT", &endpoint)
            .env("KMS_ACCESS_KEY_ID", &d.admin.access_key_id)
            .env("KMS_SECRET_ACCESS_KEY", &d.admin.secret)
            .env("KMS_CREDENTIALS_FILE", dir.path().join("none"));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let ok = run(&[("KMS_CA_FILE", ca.to_str().unwrap())]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let who: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(who["Account"], d.admin.account_id.as_str());

    // The flag, with no environment variable.
    let flag = std::process::Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .args(["--ca-file", ca.to_str().unwrap(), "whoami"])
        .env_clear()
        .env("KMS_ENDPOINT", &endpoint)
        .env("KMS_ACCESS_KEY_ID", &d.admin.access_key_id)
        .env("KMS_SECRET_ACCESS_KEY", &d.admin.secret)
        .env("KMS_CREDENTIALS_FILE", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(
        flag.status.success(),
        "{}",
        String::from_utf8_lossy(&flag.stderr)
    );

    let no_ca = run(&[]);
    assert_eq!(no_ca.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("CA certificate"));
}

#[test]
fn kmsd_dev_tls_writes_a_ca_that_kmsctl_uses() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let (_t, dir) = data_dir();
    // As an earlier kmsd left it: the directory open to all.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .unwrap();
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir.join("tls"))
        .unwrap();
    std::fs::set_permissions(dir.join("tls"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _kmsd = Kmsd::start_with(&dir, &["--tls"]);
    let tls_dir_mode = std::fs::metadata(dir.join("tls"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tls_dir_mode & 0o777, 0o700, "tightened");
    let creds = std::fs::read_to_string(dir.join("credentials")).unwrap();
    assert!(creds.contains("endpoint = https://127.0.0.1:"), "{creds}");
    assert!(creds.contains("ca_file = "), "{creds}");
    let key = json(&kmsctl(
        &dir,
        &["key", "create", "--description", "tls"],
        None,
    ));
    let id = key["KeyMetadata"]["KeyId"].as_str().unwrap();
    let described = json(&kmsctl(&dir, &["key", "describe", id], None));
    assert_eq!(described["KeyMetadata"]["Description"], "tls");
    // The key file is private; a second start reuses the same certificate.
    let mode = std::fs::metadata(dir.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The dev certificate names `::1` too: kmsctl verifies it over IPv6 loopback.
#[test]
fn kmsd_dev_tls_serves_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    }
    let (_t, dir) = data_dir();
    let _kmsd = Kmsd::start_on(&dir, "[::1]:0", &["--tls"]);
    let creds = std::fs::read_to_string(dir.join("credentials")).unwrap();
    assert!(creds.contains("endpoint = https://[::1]:"), "{creds}");
    let key = json(&kmsctl(
        &dir,
        &["key", "create", "--description", "over ::1"],
        None,
    ));
    assert!(key["KeyMetadata"]["KeyId"].is_string(), "{key}");
}

/// Your own pair is yours to manage, so a key file others may read is
/// served (a group such as ssl-cert may need it), but kmsd says so.
#[test]
fn kmsd_warns_of_a_tls_key_others_may_read() {
    use std::os::unix::fs::PermissionsExt;

    let (t, dir) = data_dir();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Start returns once kmsd listens: the warning, if any, is logged by then.
    let kmsd = Kmsd::start_with(
        &dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let log = kmsd.log();
    assert!(
        log.contains("the TLS private key is mode 644"),
        "no warning: {log}"
    );
}
