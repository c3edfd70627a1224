//! What the durable audit trail costs: Encrypt (64 B) at 64 in flight over
//! 4 connections, against two in-process daemons that differ only in
//! whether each call's event is committed before it is answered, with the
//! bare tonic baseline of the same run beside them.
//!
//! `cargo bench --bench audit_cost [-- SECONDS]`

use std::time::Duration;

use kmsd::bench::{LoadShape, Report, run_baseline, run_kms, start_baseline};
use kmsd::pb;

#[path = "support/mod.rs"]
mod support;
use support::InProcess;

async fn kmsd_run(audit: bool, shape: &LoadShape) -> anyhow::Result<Report> {
    let kmsd = InProcess::start(|o| o.audit = audit).await?;
    let (endpoint, auth) = (kmsd.endpoint.clone(), kmsd.auth.clone());
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
    kmsd.stop().await;
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
