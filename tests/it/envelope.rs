//! The client-side envelope format against a real daemon: round trips at
//! segment boundaries and at 100 MiB in constant memory, and every kind of
//! tampering refused before any wrong plaintext is released.

use std::collections::HashMap;

use kmsd::client::{EnvelopeError, decrypt_stream, encrypt_stream};
use kmsd::envelope::Header;
use kmsd::pb;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::common::TestDaemon;
use crate::util::create_key;

const SEG: u32 = 1024;

fn ctx(v: &str) -> HashMap<String, String> {
    HashMap::from([("file".to_owned(), v.to_owned())])
}

/// A reader of `left` bytes (a 64 KiB pseudo-random pattern, shifted by
/// one byte per pass so no two segments are alike) that never holds them all.
struct Gen {
    left: u64,
    state: u64,
}

fn pattern() -> &'static [u8] {
    static P: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..65_537)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect()
    })
}

impl AsyncRead for Gen {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // The byte at stream position `pos` is p[(pos % L + pos / L) % L]: a
        // function of the position only, however the reads are sized.
        let p = pattern();
        let l = p.len() as u64;
        let pos = self.state;
        let (pass, off) = (pos / l, pos % l);
        let start = usize::try_from((off + pass) % l).unwrap();
        let room = usize::try_from(l - off).unwrap().min(p.len() - start);
        let n = usize::try_from(self.left.min(buf.remaining() as u64))
            .unwrap()
            .min(room);
        buf.put_slice(&p[start..start + n]);
        self.state += n as u64;
        self.left -= n as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

/// A writer that keeps only a running SHA-256 and a count.
#[derive(Default)]
struct Digest {
    hash: sha2::Sha256,
    len: u64,
}

impl AsyncWrite for Digest {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use sha2::Digest as _;
        self.hash.update(buf);
        self.len += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn round_trips_at_segment_boundaries() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    for len in [0usize, 1, SEG as usize, SEG as usize + 1, 3 * SEG as usize] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let mut env = Vec::new();
        encrypt_stream(&mut kms, &key.key_id, ctx("a"), &mut &pt[..], &mut env, SEG)
            .await
            .unwrap();
        let mut out = Vec::new();
        decrypt_stream(&mut kms, &ctx("a"), &mut &env[..], &mut out)
            .await
            .unwrap();
        assert_eq!(out, pt, "length {len}");
    }
}

#[tokio::test]
async fn a_100_mib_stream_round_trips_in_constant_memory() {
    use sha2::Digest as _;
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    const LEN: u64 = 100 * 1024 * 1024;
    // Encrypt from a generator into a file, decrypt from the file into a
    // digest: no step holds more than a couple of segments.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.enc");
    let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await.unwrap());
    let n = encrypt_stream(
        &mut kms,
        &key.key_id,
        ctx("big"),
        &mut Gen {
            left: LEN,
            state: 0,
        },
        &mut file,
        64 * 1024,
    )
    .await
    .unwrap();
    assert_eq!(n, LEN);
    drop(file);
    let mut expected = Digest::default();
    tokio::io::copy(
        &mut Gen {
            left: LEN,
            state: 0,
        },
        &mut expected,
    )
    .await
    .unwrap();
    let mut got = Digest::default();
    let mut input = tokio::io::BufReader::new(tokio::fs::File::open(&path).await.unwrap());
    decrypt_stream(&mut kms, &HashMap::new(), &mut input, &mut got)
        .await
        .unwrap();
    assert_eq!(got.len, LEN);
    assert_eq!(got.hash.finalize(), expected.hash.finalize());
}

#[tokio::test]
async fn tampering_and_wrong_keys_release_no_plaintext() {
    let d = TestDaemon::start().await;
    let mut kms = d.admin_kms().await;
    let key = create_key(&mut kms).await;
    let other = create_key(&mut kms).await;
    let pt = vec![42u8; 4 * SEG as usize + 5];
    let mut env = Vec::new();
    encrypt_stream(&mut kms, &key.key_id, ctx("a"), &mut &pt[..], &mut env, SEG)
        .await
        .unwrap();
    let (header, raw) = Header::read(&mut &env[..]).await.unwrap();
    let h = raw.len();
    let seg = SEG as usize + 16;

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated at a segment boundary",
            env[..h + 2 * seg].to_vec(),
        ),
        ("truncated mid-segment", env[..h + seg + 10].to_vec()),
        (
            "a dropped segment",
            [&env[..h + seg], &env[h + 2 * seg..]].concat(),
        ),
        (
            "two swapped segments",
            [
                &env[..h],
                &env[h + seg..h + 2 * seg],
                &env[h..h + seg],
                &env[h + 2 * seg..],
            ]
            .concat(),
        ),
        ("bytes appended", [&env[..], b"x"].concat()),
    ];
    for i in [6, h - 40, h - 1, h + 3, h + seg + 100, env.len() - 1] {
        let mut bad = env.clone();
        bad[i] ^= 0x01;
        cases.push(("a flipped bit", bad));
    }
    // The header's wrapped key replaced by a data key of another CMK, made
    // under the same context: KMS decrypts it, the key commitment refuses it.
    let foreign = kms
        .generate_data_key(pb::GenerateDataKeyRequest {
            key_id: other.key_id.clone(),
            key_spec: Some(pb::DataKeySpec::Aes256 as i32),
            encryption_context: ctx("a"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut swapped = Vec::new();
    swapped.extend_from_slice(&raw[..5]);
    swapped.extend_from_slice(&u16::try_from(foreign.key_id.len()).unwrap().to_be_bytes());
    swapped.extend_from_slice(foreign.key_id.as_bytes());
    swapped.extend_from_slice(
        &u16::try_from(foreign.ciphertext_blob.len())
            .unwrap()
            .to_be_bytes(),
    );
    swapped.extend_from_slice(&foreign.ciphertext_blob);
    let tail = 2 + header.key_arn.len() + 2 + header.wrapped_key.len();
    swapped.extend_from_slice(&raw[5 + tail..]);
    swapped.extend_from_slice(&env[h..]);
    let mut out = Vec::new();
    let r = decrypt_stream(&mut kms, &HashMap::new(), &mut &swapped[..], &mut out).await;
    assert!(
        matches!(
            r,
            Err(EnvelopeError::Format(kmsd::envelope::Error::KeyCommitment))
        ),
        "{r:?}"
    );
    assert!(
        out.is_empty(),
        "nothing released before the commitment check"
    );

    for (what, bad) in cases {
        let mut out = Vec::new();
        let r = decrypt_stream(&mut kms, &HashMap::new(), &mut &bad[..], &mut out).await;
        assert!(r.is_err(), "{what} was not detected");
        assert!(
            pt.starts_with(&out),
            "{what}: only authenticated plaintext may be written"
        );
    }
    // A required context entry the envelope lacks.
    let r = decrypt_stream(&mut kms, &ctx("b"), &mut &env[..], &mut Vec::new()).await;
    assert!(matches!(r, Err(EnvelopeError::ContextMismatch(_))));
}
