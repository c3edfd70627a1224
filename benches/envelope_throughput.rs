//! Envelope encryption throughput against the machine's raw AES-256-GCM,
//! measured in the same run.
//!
//! `cargo bench --bench envelope_throughput [-- MIB [SEGMENT_KIB]]`
//! (default 1024 MiB in 64 KiB segments)
//!
//! 1. Raw: AES-256-GCM sealing (then opening) the same number of bytes in
//!    place, segment by segment, with nothing else: the ceiling.
//! 2. Envelope: the Rust client's `Envelope::encrypt_stream` from a reader
//!    to a writer, against an in-process kmsd (one GenerateDataKey call),
//!    then `decrypt_stream` of the result (one Decrypt call). This includes
//!    the copies in and out of the stream buffers, the per-segment nonce
//!    and AAD, and the KMS round trip.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use kmsd::client::Client;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[path = "support/mod.rs"]
mod support;
use support::InProcess;

/// A reader of `left` bytes of a repeating pattern (generating them costs
/// a memcpy, as reading a file from the page cache would).
struct Source {
    left: u64,
    pattern: Vec<u8>,
    at: usize,
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let n = (this.pattern.len() - this.at)
            .min(buf.remaining())
            .min(usize::try_from(this.left).unwrap_or(usize::MAX));
        buf.put_slice(&this.pattern[this.at..this.at + n]);
        this.at = (this.at + n) % this.pattern.len();
        this.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

/// A writer that keeps only a count.
struct Sink(u64);

impl AsyncWrite for Sink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0 += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

/// Raw AES-256-GCM over `total` bytes in `segment`-byte pieces: (seal, open) MiB/s.
fn raw(total: u64, segment: usize) -> anyhow::Result<(f64, f64)> {
    let cipher = Aes256Gcm::new(&[7u8; 32].into());
    let mut buf = vec![0x5au8; segment];
    let segments = total.div_ceil(segment as u64);
    let aad = [1u8; 33];
    // Seal and open each segment in turn, timing the two separately.
    let (mut seal, mut open) = (0.0, 0.0);
    for i in 0..segments {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf)
            .map_err(|_| anyhow::anyhow!("seal"))?;
        seal += t.elapsed().as_secs_f64();
        let t = Instant::now();
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut buf, &tag)
            .map_err(|_| anyhow::anyhow!("open"))?;
        open += t.elapsed().as_secs_f64();
    }
    Ok((mib_per_s(total, seal), mib_per_s(total, open)))
}

async fn envelope(total: u64, segment: u32) -> anyhow::Result<(f64, f64)> {
    let kmsd = InProcess::start(|_| {}).await?;
    let client = Client::connect(&kmsd.endpoint, kmsd.auth.clone()).await?;
    let key = client.create_key("envelope throughput").await?;
    let env = client.envelope().with_segment_size(segment);
    let context = std::collections::HashMap::from([("bench".to_owned(), "1".to_owned())]);

    let pattern: Vec<u8> = (0..1_048_583u32).map(|i| (i % 251) as u8).collect();
    let mut source = Source {
        left: total,
        pattern,
        at: 0,
    };
    // Timed into a counting sink, so the figure is not the kernel faulting
    // in a 1 GiB buffer; then again, untimed, into memory for decryption.
    let mut counted = Sink(0);
    let t = Instant::now();
    env.encrypt_stream(
        &key.key_id,
        context.clone(),
        &mut source,
        &mut counted,
        None,
    )
    .await?;
    let enc = t.elapsed().as_secs_f64();
    source.left = total;
    let mut sealed = Vec::with_capacity(usize::try_from(counted.0)?);
    env.encrypt_stream(&key.key_id, context.clone(), &mut source, &mut sealed, None)
        .await?;

    let mut sink = Sink(0);
    let t = Instant::now();
    let n = env
        .decrypt_stream(&context, &mut &sealed[..], &mut sink)
        .await?;
    let dec = t.elapsed().as_secs_f64();
    anyhow::ensure!(n == total && sink.0 == total, "decrypted {n} of {total}");
    kmsd.stop().await;
    Ok((mib_per_s(total, enc), mib_per_s(total, dec)))
}

fn main() -> anyhow::Result<()> {
    let nums: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let mib = nums.first().copied().unwrap_or(1024);
    let segment_kib = nums.get(1).copied().unwrap_or(64);
    let total = mib * 1024 * 1024;
    let segment = u32::try_from(segment_kib * 1024)?;
    let (raw_seal, raw_open) = raw(total, segment as usize)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (env_enc, env_dec) = rt.block_on(envelope(total, segment))?;
    println!("{mib} MiB in {segment_kib} KiB segments");
    println!("raw AES-256-GCM seal      {raw_seal:>8.0} MiB/s");
    println!("raw AES-256-GCM open      {raw_open:>8.0} MiB/s");
    println!(
        "envelope encrypt_stream   {env_enc:>8.0} MiB/s   {:.1}% of raw seal",
        100.0 * env_enc / raw_seal
    );
    println!(
        "envelope decrypt_stream   {env_dec:>8.0} MiB/s   {:.1}% of raw open",
        100.0 * env_dec / raw_open
    );
    Ok(())
}
