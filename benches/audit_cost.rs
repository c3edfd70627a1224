//! What the durable audit trail costs: Encrypt (64 B) at 64 in flight over
//! 4 connections, against two in-process daemons that differ only in
//! whether each call's event is committed before it is answered, with the
//! bare tonic baseline of the same run beside them.
//!
//! `cargo bench --bench audit_cost [-- SECONDS]`

use std::sync::Arc;
use std::time::Duration;

use kmsd::bench::{LoadShape, Report, run_baseline, run_kms, start_baseline};
use kmsd::client::BearerAuth;
use kmsd::clock::SystemClock;
use kmsd::daemon::{Daemon, Options};
use kmsd::pb;

async fn kmsd_run(audit: bool, shape: &LoadShape) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut options = Options::new(dir.path().join("data"));
    options.audit = audit;
    let daemon = Daemon::open(options, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let creds = daemon.bootstrap_dev(&endpoint).await?;
    let admin = creds.admin.ok_or_else(|| anyhow::anyhow!("no admin"))?;
    let secret = String::from_utf8(admin.secret_access_key.expose_secret().to_vec())?;
    let auth = BearerAuth::new(&admin.access_key_id, &secret, None)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(daemon.serve(listener, async {
        let _ = stopped.await;
    }));
    let (mut kms, _) = kmsd::client::clients(kmsd::client::connect(&endpoint).await?, auth.clone());
    let key = kms
        .create_key(pb::CreateKeyRequest::default())
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default();
    let mut report = run_kms(
        &endpoint,
        auth,
        &key.key_id,
        Default::default(),
        &[(kmsd::bench::BenchOp::Encrypt, 1)],
        shape,
    )
    .await?;
    report.target = format!("kmsd encrypt, audit {}", if audit { "on" } else { "off" });
    let _ = stop.send(());
    let _ = server.await;
    Ok(report)
}

fn line(r: &Report) {
    println!(
        "{:<28} {:>10.0} req/s   p50 {:>6} us   p99 {:>6} us   p99.9 {:>6} us   errors {}",
        r.target,
        r.rps,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.errors.values().sum::<u64>()
    );
}

fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(5.0);
    let shape = LoadShape {
        concurrency: 64,
        connections: 4,
        duration: Some(Duration::from_secs_f64(secs)),
        requests: None,
        payload_size: 64,
        ca_pem: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (endpoint, stop) = start_baseline(None).await?;
        let baseline = run_baseline(&endpoint, &shape).await?;
        let _ = stop.send(());
        let off = kmsd_run(false, &shape).await?;
        let on = kmsd_run(true, &shape).await?;
        line(&baseline);
        line(&off);
        line(&on);
        println!(
            "audit on / audit off: {:.1}%",
            100.0 * on.rps / off.rps.max(1e-9)
        );
        println!(
            "audit on / baseline:  {:.1}%",
            100.0 * on.rps / baseline.rps.max(1e-9)
        );
        Ok(())
    })
}
