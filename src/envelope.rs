//! The client-side envelope format: a message of any size encrypted under
//! one data key from GenerateDataKey, in segments, with the STREAM
//! construction. Used by `kmsctl encrypt`/`decrypt` and the Rust client.
//!
//! ```text
//! header:
//!   4   magic "KMSE"
//!   1   version = 1
//!   2   length of the key ARN (u16 BE), then the ARN (UTF-8)
//!   2   length of the wrapped data key (u16 BE), then the v1 ciphertext blob
//!   4   length of the encryption context (u32 BE), then its canonical bytes
//!   4   segment size (u32 BE), 1 KiB to 16 MiB
//!   8   nonce prefix (random)
//!   32  key commitment = HKDF-SHA256(data key, salt = nonce prefix, info = "kmsd envelope commit v1")
//! segments, each `segment size` plaintext bytes except the last (which may be
//! shorter, or empty), as AES-256-GCM ciphertext || 16-byte tag, under
//!   key   = HKDF-SHA256(data key, salt = nonce prefix, info = "kmsd envelope key v1")
//!   nonce = nonce prefix || segment counter (u32 BE)
//!   AAD   = SHA-256(header) || last-segment flag (0x00 or 0x01)
//! ```
//!
//! The commitment is checked before any plaintext is released, so a header
//! whose wrapped key decrypts to some other key is refused. The counter in
//! the nonce catches reordered, dropped or swapped segments; the flag in the
//! AAD catches truncation at a segment boundary (the new last segment was
//! not sealed as last) and appended data.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::crypto::secret::{SecretBytes, ct_eq};
use crate::crypto::{EncryptionContext, Secret, rng};

/// The format's magic bytes.
pub const MAGIC: &[u8; 4] = b"KMSE";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Segment size when none is chosen.
pub const DEFAULT_SEGMENT: u32 = 64 * 1024;
/// The smallest segment size a header may carry (1 KiB).
pub const MIN_SEGMENT: u32 = 1024;
/// The largest segment size a header may carry (16 MiB).
pub const MAX_SEGMENT: u32 = 16 * 1024 * 1024;
const TAG_LEN: usize = 16;
const COMMIT_INFO: &[u8] = b"kmsd envelope commit v1";
const KEY_INFO: &[u8] = b"kmsd envelope key v1";

/// Why an envelope could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not an envelope of this version, or its header is damaged.
    #[error("not a kmsd envelope, or its header is damaged: {0}")]
    BadHeader(&'static str),
    /// The data key does not match the header's commitment.
    #[error("the data key does not match the envelope's key commitment")]
    KeyCommitment,
    /// A segment failed authentication: altered, reordered, swapped, or the
    /// message was truncated or extended.
    #[error("segment {0} is altered, out of order, truncated or extended")]
    Segment(u32),
    /// The message has more segments than the counter can number.
    #[error("the message is too long for the segment counter")]
    TooLong,
    /// The data key is not 32 bytes.
    #[error("the data key must be 32 bytes")]
    DataKey,
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The OS RNG failed.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::Error),
}

/// The public part of an envelope's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The CMK the data key was made under.
    pub key_arn: String,
    /// The data key as GenerateDataKey's ciphertext blob.
    pub wrapped_key: Vec<u8>,
    /// The encryption context (bound to the wrapped key by KMS).
    pub context: EncryptionContext,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    nonce_prefix: [u8; 8],
    commitment: [u8; 32],
}

fn hkdf(data_key: &[u8], salt: &[u8; 8], info: &[u8]) -> Secret<32> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), data_key);
    let mut out = Secret::<32>::zero();
    // 32 bytes is a valid HKDF-SHA256 output length.
    hk.expand(info, out.expose_secret_mut())
        .unwrap_or_else(|_| unreachable!());
    out
}

fn parse_context(bytes: &[u8]) -> Result<EncryptionContext, Error> {
    let bad = || Error::BadHeader("encryption context");
    let mut map = std::collections::BTreeMap::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut take = || -> Result<String, Error> {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| bad())?;
            let (s, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
            rest = tail;
            String::from_utf8(s.to_vec()).map_err(|_| bad())
        };
        let k = take()?;
        let v = take()?;
        map.insert(k, v);
    }
    let ctx = EncryptionContext::from(map);
    // Only the canonical encoding is accepted, so one context has one header.
    if ctx.canonical_bytes() != bytes {
        return Err(bad());
    }
    Ok(ctx)
}

impl Header {
    fn encode(&self) -> Result<Vec<u8>, Error> {
        let arn = self.key_arn.as_bytes();
        let ctx = self.context.canonical_bytes();
        let mut h = Vec::with_capacity(64 + arn.len() + self.wrapped_key.len() + ctx.len());
        h.extend_from_slice(MAGIC);
        h.push(VERSION);
        h.extend_from_slice(
            &u16::try_from(arn.len())
                .map_err(|_| Error::BadHeader("key ARN too long"))?
                .to_be_bytes(),
        );
        h.extend_from_slice(arn);
        h.extend_from_slice(
            &u16::try_from(self.wrapped_key.len())
                .map_err(|_| Error::BadHeader("wrapped key too long"))?
                .to_be_bytes(),
        );
        h.extend_from_slice(&self.wrapped_key);
        h.extend_from_slice(
            &u32::try_from(ctx.len())
                .map_err(|_| Error::BadHeader("context too long"))?
                .to_be_bytes(),
        );
        h.extend_from_slice(&ctx);
        h.extend_from_slice(&self.segment_size.to_be_bytes());
        h.extend_from_slice(&self.nonce_prefix);
        h.extend_from_slice(&self.commitment);
        Ok(h)
    }

    /// Reads a header; returns it and its exact bytes (which the segments
    /// authenticate).
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Self, Vec<u8>), Error> {
        let mut raw = Vec::new();
        let mut fixed = [0u8; 5];
        r.read_exact(&mut fixed)
            .await
            .map_err(|_| Error::BadHeader("too short"))?;
        if &fixed[..4] != MAGIC {
            return Err(Error::BadHeader("magic"));
        }
        if fixed[4] != VERSION {
            return Err(Error::BadHeader("unknown version"));
        }
        raw.extend_from_slice(&fixed);
        async fn field<R: AsyncRead + Unpin>(
            r: &mut R,
            raw: &mut Vec<u8>,
            len: usize,
            max: usize,
        ) -> Result<Vec<u8>, Error> {
            if len > max {
                return Err(Error::BadHeader("field too long"));
            }
            let mut v = vec![0u8; len];
            r.read_exact(&mut v)
                .await
                .map_err(|_| Error::BadHeader("too short"))?;
            raw.extend_from_slice(&v);
            Ok(v)
        }
        let mut n2 = [0u8; 2];
        r.read_exact(&mut n2)
            .await
            .map_err(|_| Error::BadHeader("too short"))?;
        raw.extend_from_slice(&n2);
        let arn = field(r, &mut raw, usize::from(u16::from_be_bytes(n2)), 2048).await?;
        r.read_exact(&mut n2)
            .await
            .map_err(|_| Error::BadHeader("too short"))?;
        raw.extend_from_slice(&n2);
        let wrapped = field(r, &mut raw, usize::from(u16::from_be_bytes(n2)), 6144).await?;
        let mut n4 = [0u8; 4];
        r.read_exact(&mut n4)
            .await
            .map_err(|_| Error::BadHeader("too short"))?;
        raw.extend_from_slice(&n4);
        let ctx_len =
            usize::try_from(u32::from_be_bytes(n4)).map_err(|_| Error::BadHeader("context"))?;
        let ctx = field(r, &mut raw, ctx_len, 64 * 1024).await?;
        let mut rest = [0u8; 4 + 8 + 32];
        r.read_exact(&mut rest)
            .await
            .map_err(|_| Error::BadHeader("too short"))?;
        raw.extend_from_slice(&rest);
        let segment_size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&segment_size) {
            return Err(Error::BadHeader("segment size"));
        }
        let mut nonce_prefix = [0u8; 8];
        nonce_prefix.copy_from_slice(&rest[4..12]);
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&rest[12..44]);
        let header = Header {
            key_arn: String::from_utf8(arn).map_err(|_| Error::BadHeader("key ARN"))?,
            wrapped_key: wrapped,
            context: parse_context(&ctx)?,
            segment_size,
            nonce_prefix,
            commitment,
        };
        Ok((header, raw))
    }
}

struct Segments {
    cipher: Aes256Gcm,
    prefix: [u8; 8],
    header_hash: [u8; 32],
    counter: u32,
}

impl Segments {
    fn new(data_key: &[u8], prefix: [u8; 8], header_bytes: &[u8]) -> Self {
        let k = hkdf(data_key, &prefix, KEY_INFO);
        Self {
            cipher: Aes256Gcm::new(k.expose_secret().into()),
            prefix,
            header_hash: Sha256::digest(header_bytes).into(),
            counter: 0,
        }
    }

    fn nonce_aad(&self, last: bool) -> ([u8; 12], [u8; 33]) {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.prefix);
        nonce[8..].copy_from_slice(&self.counter.to_be_bytes());
        let mut aad = [0u8; 33];
        aad[..32].copy_from_slice(&self.header_hash);
        aad[32] = u8::from(last);
        (nonce, aad)
    }

    fn seal(&mut self, buf: &mut [u8], last: bool) -> Result<[u8; TAG_LEN], Error> {
        let (nonce, aad) = self.nonce_aad(last);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, buf)
            .map_err(|_| Error::Segment(self.counter))?;
        self.counter = self.counter.checked_add(1).ok_or(Error::TooLong)?;
        Ok(tag.into())
    }

    fn open(&mut self, buf: &mut [u8], tag: &[u8], last: bool) -> Result<(), Error> {
        let (nonce, aad) = self.nonce_aad(last);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, buf, Tag::from_slice(tag))
            .map_err(|_| Error::Segment(self.counter))?;
        self.counter = self.counter.checked_add(1).ok_or(Error::TooLong)?;
        Ok(())
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let m = r.read(&mut buf[n..]).await?;
        if m == 0 {
            break;
        }
        n += m;
    }
    Ok(n)
}

/// Encrypts `input` to `output` under `data_key`, whose wrapped form
/// (`wrapped_key`, made under `key_arn` with `context`) goes in the header.
/// Memory use is two segments, whatever the input's size. Returns the
/// number of plaintext bytes.
pub async fn encrypt<R, W>(
    input: &mut R,
    output: &mut W,
    data_key: &SecretBytes,
    key_arn: &str,
    wrapped_key: Vec<u8>,
    context: EncryptionContext,
    segment_size: u32,
) -> Result<u64, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if data_key.len() != 32 {
        return Err(Error::DataKey);
    }
    if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&segment_size) {
        return Err(Error::BadHeader("segment size"));
    }
    let nonce_prefix = rng::array::<8>()?;
    let header = Header {
        key_arn: key_arn.to_owned(),
        wrapped_key,
        context,
        segment_size,
        nonce_prefix,
        commitment: *hkdf(data_key.expose_secret(), &nonce_prefix, COMMIT_INFO).expose_secret(),
    };
    let header_bytes = header.encode()?;
    output.write_all(&header_bytes).await?;
    let mut seg = Segments::new(data_key.expose_secret(), nonce_prefix, &header_bytes);
    let size = usize::try_from(segment_size).map_err(|_| Error::BadHeader("segment size"))?;
    // A segment and one byte of lookahead, to know whether it is the last.
    let mut buf = Zeroizing::new(vec![0u8; size + 1]);
    let mut have = fill(input, &mut buf[..]).await?;
    let mut total = 0u64;
    loop {
        let last = have <= size;
        let n = have.min(size);
        let tag = seg.seal(&mut buf[..n], last)?;
        output.write_all(&buf[..n]).await?;
        output.write_all(&tag).await?;
        total += n as u64;
        if last {
            break;
        }
        // Move the lookahead byte to the front and refill.
        buf[0] = buf[size];
        have = 1 + fill(input, &mut buf[1..]).await?;
    }
    output.flush().await?;
    Ok(total)
}

/// Decrypts an envelope. `unwrap` is given the header and returns the data
/// key (normally by calling KMS Decrypt); the key commitment is checked
/// before any plaintext is written, and every segment is authenticated
/// before it is written. On error, what was already written must be
/// discarded by the caller (`kmsctl decrypt` writes to a temporary file and
/// renames it only on success).
pub async fn decrypt<R, W, F, Fut, E>(input: &mut R, output: &mut W, unwrap: F) -> Result<u64, E>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: FnOnce(Header) -> Fut,
    Fut: std::future::Future<Output = Result<SecretBytes, E>>,
    E: From<Error>,
{
    let (header, header_bytes) = Header::read(input).await?;
    let prefix = header.nonce_prefix;
    let commitment = header.commitment;
    let size =
        usize::try_from(header.segment_size).map_err(|_| Error::BadHeader("segment size"))?;
    let data_key = unwrap(header).await?;
    if data_key.len() != 32 {
        return Err(Error::DataKey.into());
    }
    let expected = hkdf(data_key.expose_secret(), &prefix, COMMIT_INFO);
    if !ct_eq(expected.expose_secret(), &commitment) {
        return Err(Error::KeyCommitment.into());
    }
    let mut seg = Segments::new(data_key.expose_secret(), prefix, &header_bytes);
    drop(data_key);
    let chunk = size + TAG_LEN;
    let mut buf = Zeroizing::new(vec![0u8; chunk + 1]);
    let mut have = fill(input, &mut buf[..]).await.map_err(Error::from)?;
    let mut total = 0u64;
    loop {
        let last = have <= chunk;
        let n = have.min(chunk);
        let body = n.checked_sub(TAG_LEN).ok_or(Error::Segment(seg.counter))?;
        let (data, rest) = buf.split_at_mut(body);
        seg.open(data, &rest[..TAG_LEN], last)?;
        output.write_all(data).await.map_err(Error::from)?;
        total += body as u64;
        if last {
            break;
        }
        buf[0] = buf[chunk];
        have = 1 + fill(input, &mut buf[1..]).await.map_err(Error::from)?;
    }
    output.flush().await.map_err(Error::from)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u32 = 1024;

    async fn seal(plaintext: &[u8], key: &SecretBytes) -> Vec<u8> {
        let mut out = Vec::new();
        encrypt(
            &mut &plaintext[..],
            &mut out,
            key,
            "arn:aws:kms:us-east-1:111122223333:key/k",
            b"wrapped".to_vec(),
            EncryptionContext::from([("file", "a")]),
            SEG,
        )
        .await
        .unwrap();
        out
    }

    async fn open(envelope: &[u8], key: &SecretBytes) -> Result<Vec<u8>, Error> {
        let k = SecretBytes::new(key.expose_secret().to_vec());
        let mut out = Vec::new();
        decrypt(&mut &envelope[..], &mut out, |_h| async move {
            Ok::<_, Error>(k)
        })
        .await?;
        Ok(out)
    }

    fn key() -> SecretBytes {
        SecretBytes::random(32).unwrap()
    }

    #[tokio::test]
    async fn round_trips_at_segment_boundaries() {
        let k = key();
        for len in [0usize, 1, 1023, 1024, 1025, 2048, 5000] {
            let pt: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let env = seal(&pt, &k).await;
            assert_eq!(open(&env, &k).await.unwrap(), pt, "length {len}");
        }
    }

    #[tokio::test]
    async fn header_round_trips() {
        let env = seal(b"x", &key()).await;
        let (h, raw) = Header::read(&mut &env[..]).await.unwrap();
        assert_eq!(h.key_arn, "arn:aws:kms:us-east-1:111122223333:key/k");
        assert_eq!(h.wrapped_key, b"wrapped");
        assert_eq!(h.context, EncryptionContext::from([("file", "a")]));
        assert_eq!(h.segment_size, SEG);
        assert_eq!(raw, &env[..raw.len()]);
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let k = key();
        let pt = vec![7u8; 3 * 1024 + 10];
        let env = seal(&pt, &k).await;
        let (_, raw) = Header::read(&mut &env[..]).await.unwrap();
        let h = raw.len();
        let seg = 1024 + TAG_LEN;
        // Truncation at a segment boundary and mid-segment.
        for cut in [h + seg, h + 2 * seg, h + 3 * seg, env.len() - 1, h + 10] {
            assert!(open(&env[..cut], &k).await.is_err(), "truncated at {cut}");
        }
        // A dropped segment.
        let dropped = [&env[..h + seg], &env[h + 2 * seg..]].concat();
        assert!(open(&dropped, &k).await.is_err());
        // Two swapped segments.
        let swapped = [
            &env[..h],
            &env[h + seg..h + 2 * seg],
            &env[h..h + seg],
            &env[h + 2 * seg..],
        ]
        .concat();
        assert!(open(&swapped, &k).await.is_err());
        // Appended data.
        assert!(open(&[&env[..], b"more"].concat(), &k).await.is_err());
        // A flipped bit anywhere in the header or the body.
        for i in (0..env.len())
            .step_by(97)
            .chain([5, h - 1, h, env.len() - 1])
        {
            let mut bad = env.clone();
            bad[i] ^= 0x10;
            assert!(open(&bad, &k).await.is_err(), "bit flip at {i}");
        }
        // Another data key fails the commitment before any segment.
        assert!(matches!(
            open(&env, &key()).await,
            Err(Error::KeyCommitment)
        ));
    }

    #[tokio::test]
    async fn nothing_is_written_before_the_commitment_holds() {
        let env = seal(&[1u8; 4096], &key()).await;
        let mut out = Vec::new();
        let wrong = key();
        let r = decrypt(
            &mut &env[..],
            &mut out,
            |_| async move { Ok::<_, Error>(wrong) },
        )
        .await;
        assert!(r.is_err());
        assert!(out.is_empty());
    }
}
