//! The load generator behind `kmsctl bench`, and its baseline: a bare tonic
//! service with one unary method that takes and returns bytes, loaded with
//! exactly the same client machinery, so that kmsd's figures can be read
//! against what the transport alone does on the same machine in the same run.
//!
//! Each in-flight slot is one task looping on its own clone of a client over
//! one of `connections` HTTP/2 channels; latencies go to a per-task
//! histogram, merged at the end. A request costs the protobuf message and
//! nothing else of ours.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::client::{BearerAuth, KmsClient};
use crate::pb::bench_baseline_client::BenchBaselineClient;
use crate::pb::bench_baseline_server::{BenchBaseline, BenchBaselineServer};
use crate::pb::{self, key_management_service_client::KeyManagementServiceClient};
use crate::server::grpc::status::error_name;

/// An operation the bench can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOp {
    /// Encrypt `payload_size` bytes.
    Encrypt,
    /// Decrypt a blob of `payload_size` bytes.
    Decrypt,
    /// GenerateDataKey (AES_256).
    GenerateDataKey,
    /// GenerateDataKeyWithoutPlaintext (AES_256).
    GenerateDataKeyWithoutPlaintext,
    /// ReEncrypt a blob to the same key.
    ReEncrypt,
    /// DescribeKey.
    DescribeKey,
}

impl BenchOp {
    /// Parses the command-line name (`encrypt`, `generate-data-key`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "encrypt" => Self::Encrypt,
            "decrypt" => Self::Decrypt,
            "generate-data-key" => Self::GenerateDataKey,
            "generate-data-key-without-plaintext" => Self::GenerateDataKeyWithoutPlaintext,
            "re-encrypt" => Self::ReEncrypt,
            "describe-key" => Self::DescribeKey,
            _ => return None,
        })
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::GenerateDataKey => "generate-data-key",
            Self::GenerateDataKeyWithoutPlaintext => "generate-data-key-without-plaintext",
            Self::ReEncrypt => "re-encrypt",
            Self::DescribeKey => "describe-key",
        }
    }
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadShape {
    /// Calls in flight.
    pub concurrency: usize,
    /// HTTP/2 connections they share.
    pub connections: usize,
    /// Stop after this long...
    pub duration: Option<Duration>,
    /// ...or after this many requests.
    pub requests: Option<u64>,
    /// Plaintext / echo payload size.
    pub payload_size: usize,
    /// The CA certificate (PEM) to trust, for an `https://` endpoint.
    pub ca_pem: Option<Vec<u8>>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was loaded (`kmsd encrypt`, `baseline echo`).
    pub target: String,
    /// Requests completed (including errors).
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Errors by AWS error name (or gRPC code).
    pub errors: BTreeMap<String, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Report {
    /// Successful requests per second (what the ratio to the baseline uses).
    pub fn ok_rps(&self) -> f64 {
        let failed: u64 = self.errors.values().sum();
        self.requests.saturating_sub(failed) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// This report's successes per second over `baseline`'s: successes
    /// only, so that a kmsd refusing every call quickly does not look fast.
    /// `None` when the baseline had none.
    pub fn ratio_to(&self, baseline: &Report) -> Option<f64> {
        let b = baseline.ok_rps();
        (b > 0.0).then(|| self.ok_rps() / b)
    }
}

struct Tally {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

fn new_hist() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits; the bounds are constants.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Drives `concurrency` workers, each calling `call(worker, i)` in a loop,
/// until the duration passes or the request budget is spent.
async fn drive<C, F, Fut>(target: String, shape: &LoadShape, make: C) -> Report
where
    C: Fn(usize) -> F,
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let issued = Arc::new(AtomicU64::new(0));
    let budget = shape.requests;
    let deadline = shape.duration.map(|d| Instant::now() + d);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(shape.concurrency);
    for w in 0..shape.concurrency.max(1) {
        let mut call = make(w);
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally {
                hist: new_hist(),
                errors: BTreeMap::new(),
            };
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if budget.is_some_and(|b| i >= b) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let t0 = Instant::now();
                let r = call(i).await;
                let us = u64::try_from(t0.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = t.hist.record(us.min(60_000_000));
                if let Err(name) = r {
                    *t.errors.entry(name).or_default() += 1;
                }
            }
            t
        }));
    }
    let mut hist = new_hist();
    let mut errors = BTreeMap::new();
    for task in tasks {
        if let Ok(t) = task.await {
            let _ = hist.add(&t.hist);
            for (k, v) in t.errors {
                *errors.entry(k).or_default() += v;
            }
        }
    }
    let elapsed = started.elapsed();
    let requests = hist.len();
    Report {
        target,
        requests,
        rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
        errors,
        elapsed,
    }
}

fn status_name(s: &Status) -> String {
    error_name(s).unwrap_or_else(|| format!("{:?}", s.code()))
}

/// Opens `n` channels to `endpoint` (TLS trusting `ca_pem` for https).
pub async fn channels(
    endpoint: &str,
    n: usize,
    ca_pem: Option<&[u8]>,
) -> Result<Vec<Channel>, crate::client::ClientError> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(crate::client::connect_with(endpoint, ca_pem).await?);
    }
    Ok(out)
}

/// The baseline's service: echoes the payload.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

#[tonic::async_trait]
impl BenchBaseline for Echo {
    async fn echo(
        &self,
        req: Request<pb::EchoMessage>,
    ) -> Result<Response<pb::EchoMessage>, Status> {
        Ok(Response::new(req.into_inner()))
    }
}

/// Starts the baseline server on a loopback port inside this process,
/// serving TLS with `tls` if given; returns its endpoint.
pub async fn start_baseline(
    tls: Option<&crate::tls::ServerTls>,
) -> Result<(String, tokio::sync::oneshot::Sender<()>), anyhow::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.server_config())?;
    }
    let endpoint = match tls {
        Some(_) => format!("https://{addr}"),
        None => format!("http://{addr}"),
    };
    tokio::spawn(async move {
        let _ = builder
            .add_service(BenchBaselineServer::new(Echo))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
    });
    Ok((endpoint, tx))
}

/// Loads the baseline at `endpoint`.
pub async fn run_baseline(
    endpoint: &str,
    shape: &LoadShape,
) -> Result<Report, crate::client::ClientError> {
    let chans = channels(endpoint, shape.connections, shape.ca_pem.as_deref()).await?;
    let payload = vec![0x5a_u8; shape.payload_size];
    Ok(drive("baseline echo".into(), shape, |w| {
        let client = BenchBaselineClient::new(chans[w % chans.len()].clone());
        let payload = payload.clone();
        move |_i| {
            let req = pb::EchoMessage {
                payload: payload.clone(),
            };
            let mut c = client.clone();
            async move { c.echo(req).await.map(drop).map_err(|s| status_name(&s)) }
        }
    })
    .await)
}

/// Loads kmsd at `endpoint` with a weighted mix of operations on `key_id`.
pub async fn run_kms(
    endpoint: &str,
    auth: BearerAuth,
    key_id: &str,
    context: HashMap<String, String>,
    mix: &[(BenchOp, u32)],
    shape: &LoadShape,
) -> Result<Report, anyhow::Error> {
    let chans = channels(endpoint, shape.connections, shape.ca_pem.as_deref()).await?;
    let plaintext = vec![0x5a_u8; shape.payload_size.clamp(1, 4096)];
    // One blob for Decrypt and ReEncrypt, made before the clock starts.
    let mut setup: KmsClient =
        KeyManagementServiceClient::with_interceptor(chans[0].clone(), auth.clone());
    let blob = setup
        .encrypt(pb::EncryptRequest {
            key_id: key_id.to_owned(),
            plaintext: plaintext.clone(),
            encryption_context: context.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .ciphertext_blob;
    // The mix as a cycle of operations.
    let cycle: Arc<Vec<BenchOp>> = Arc::new(
        mix.iter()
            .flat_map(|(op, w)| std::iter::repeat_n(*op, usize::try_from(*w).unwrap_or(1)))
            .collect(),
    );
    let names: Vec<String> = mix
        .iter()
        .map(|(op, w)| format!("{}={w}", op.name()))
        .collect();
    let target = format!("kmsd {}", names.join(","));
    let key_id = key_id.to_owned();
    Ok(drive(target, shape, |w| {
        let client: KmsClient = KeyManagementServiceClient::with_interceptor(
            chans[w % chans.len()].clone(),
            auth.clone(),
        );
        let (cycle, key_id, context, plaintext, blob) = (
            Arc::clone(&cycle),
            key_id.clone(),
            context.clone(),
            plaintext.clone(),
            blob.clone(),
        );
        move |i| {
            let op = cycle
                .get(usize::try_from(i).unwrap_or(0) % cycle.len().max(1))
                .copied()
                .unwrap_or(BenchOp::Encrypt);
            let mut c = client.clone();
            let (key_id, context, plaintext, blob) = (
                key_id.clone(),
                context.clone(),
                plaintext.clone(),
                blob.clone(),
            );
            async move {
                let r = match op {
                    BenchOp::Encrypt => c
                        .encrypt(pb::EncryptRequest {
                            key_id,
                            plaintext,
                            encryption_context: context,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    BenchOp::Decrypt => c
                        .decrypt(pb::DecryptRequest {
                            ciphertext_blob: blob,
                            encryption_context: context,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    BenchOp::GenerateDataKey => c
                        .generate_data_key(pb::GenerateDataKeyRequest {
                            key_id,
                            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                            encryption_context: context,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    BenchOp::GenerateDataKeyWithoutPlaintext => c
                        .generate_data_key_without_plaintext(
                            pb::GenerateDataKeyWithoutPlaintextRequest {
                                key_id,
                                key_spec: Some(pb::DataKeySpec::Aes256 as i32),
                                encryption_context: context,
                                ..Default::default()
                            },
                        )
                        .await
                        .map(drop),
                    BenchOp::ReEncrypt => c
                        .re_encrypt(pb::ReEncryptRequest {
                            ciphertext_blob: blob,
                            source_encryption_context: context.clone(),
                            destination_key_id: key_id,
                            destination_encryption_context: context,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    BenchOp::DescribeKey => c
                        .describe_key(pb::DescribeKeyRequest {
                            key_id,
                            grant_tokens: vec![],
                        })
                        .await
                        .map(drop),
                };
                r.map_err(|s| status_name(&s))
            }
        }
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_counts_successes_only() {
        let report = Report {
            target: "kmsd encrypt=1".into(),
            requests: 1000,
            rps: 500.0,
            p50_us: 1,
            p90_us: 1,
            p99_us: 1,
            p999_us: 1,
            max_us: 1,
            errors: BTreeMap::from([
                ("AccessDeniedException".to_owned(), 300),
                ("ThrottlingException".to_owned(), 100),
            ]),
            elapsed: Duration::from_secs(2),
        };
        assert!((report.ok_rps() - 300.0).abs() < 1e-9);
        let all_failed = Report {
            errors: BTreeMap::from([("NotFoundException".to_owned(), 1000)]),
            ..report.clone()
        };
        assert!(all_failed.ok_rps().abs() < 1e-9);
        let baseline = Report {
            errors: BTreeMap::from([("Unavailable".to_owned(), 400)]),
            ..report.clone()
        };
        // 300 successes/s against the baseline's 300.
        assert_eq!(report.ratio_to(&baseline), Some(1.0));
        assert_eq!(all_failed.ratio_to(&baseline), Some(0.0));
        assert_eq!(report.ratio_to(&all_failed), None);
        // Same requests per second, half the successes: the ratio follows
        // the successes (a ratio of `rps` would say 1.0).
        let half_failed_baseline = Report {
            errors: BTreeMap::from([("Unavailable".to_owned(), 700)]),
            ..report.clone()
        };
        assert_eq!(report.ratio_to(&half_failed_baseline), Some(2.0));
    }
}
