//! Encrypts every file of a directory tree with the Rust client, and back.
//!
//! ```text
//! cargo run --example encrypt_dir -- encrypt [--bind-paths] KEY SRC_DIR DST_DIR
//! cargo run --example encrypt_dir -- decrypt [--bind-paths] SRC_DIR DST_DIR
//! ```
//!
//! Each file becomes `DST_DIR/<relative path>.kmse` in the envelope format
//! (the same as `kmsctl encrypt`). Files are streamed, so their size does
//! not matter.
//!
//! A [`DataKeyCache`] lets files with the same encryption context share a
//! data key (at most 1000 files, 1 GiB or 5 minutes per key), so a
//! directory of thousands of files costs a handful of GenerateDataKey
//! calls, not one per file; decryption caches the unwrapped keys the same
//! way. By default every file's context is `{"tree": "encrypt_dir"}`, which
//! lets them share. With `--bind-paths` the context is the file's relative
//! path instead, so a file moved or swapped for another is refused on
//! decryption, at the price of one KMS call per file: the cache never
//! shares a data key across contexts.
//!
//! Credentials come from `kmsd-data/credentials`, profile `default`
//! (override with KMS_CREDENTIALS_FILE and KMS_PROFILE).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use kmsd::client::{CacheLimits, Client, DataKeyCache, Envelope};

const SUFFIX: &str = "kmse";

/// Every regular file under `root`, as paths relative to it, sorted.
fn files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path().strip_prefix(root)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The encryption context of a file: its path relative to the tree, or
/// one context for the whole tree.
fn context(rel: &Path, bind_paths: bool) -> HashMap<String, String> {
    if bind_paths {
        HashMap::from([("path".to_owned(), rel.to_string_lossy().into_owned())])
    } else {
        HashMap::from([("tree".to_owned(), "encrypt_dir".to_owned())])
    }
}

async fn encrypt_tree(
    env: &Envelope,
    key: &str,
    src: &Path,
    dst: &Path,
    bind_paths: bool,
) -> anyhow::Result<usize> {
    let list = files(src)?;
    for rel in &list {
        let from = src.join(rel);
        let mut to = dst.join(rel).into_os_string();
        to.push(format!(".{SUFFIX}"));
        let to = PathBuf::from(to);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let size = tokio::fs::metadata(&from).await?.len();
        let mut input = tokio::io::BufReader::new(tokio::fs::File::open(&from).await?);
        let mut output = tokio::io::BufWriter::new(tokio::fs::File::create(&to).await?);
        env.encrypt_stream(
            key,
            context(rel, bind_paths),
            &mut input,
            &mut output,
            Some(size),
        )
        .await
        .with_context(|| format!("encrypting {}", from.display()))?;
    }
    Ok(list.len())
}

async fn decrypt_tree(
    env: &Envelope,
    src: &Path,
    dst: &Path,
    bind_paths: bool,
) -> anyhow::Result<usize> {
    let list: Vec<PathBuf> = files(src)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == SUFFIX))
        .collect();
    for rel_enc in &list {
        let rel = rel_enc.with_extension("");
        let to = dst.join(&rel);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Decrypt to a temporary name and rename only when every segment
        // was authenticated: a damaged file leaves no partial plaintext.
        let mut tmp = to.clone().into_os_string();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        let mut input = tokio::io::BufReader::new(tokio::fs::File::open(src.join(rel_enc)).await?);
        let mut output = tokio::io::BufWriter::new(tokio::fs::File::create(&tmp).await?);
        let r = env
            .decrypt_stream(&context(&rel, bind_paths), &mut input, &mut output)
            .await;
        drop(output);
        match r {
            Ok(_) => tokio::fs::rename(&tmp, &to).await?,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e).with_context(|| format!("decrypting {}", rel_enc.display()));
            }
        }
    }
    Ok(list.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let bind_paths = args.iter().any(|a| a == "--bind-paths");
    args.retain(|a| a != "--bind-paths");
    let file =
        std::env::var("KMS_CREDENTIALS_FILE").unwrap_or_else(|_| "kmsd-data/credentials".into());
    let profile = std::env::var("KMS_PROFILE").unwrap_or_else(|_| "default".into());
    let client = Client::from_profile(Path::new(&file), &profile).await?;
    let cache = Arc::new(DataKeyCache::new(CacheLimits::default())?);
    let env = client.envelope().with_cache(cache.clone());
    let started = std::time::Instant::now();
    let n = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["encrypt", key, src, dst] => {
            encrypt_tree(&env, key, Path::new(src), Path::new(dst), bind_paths).await?
        }
        ["decrypt", src, dst] => {
            decrypt_tree(&env, Path::new(src), Path::new(dst), bind_paths).await?
        }
        _ => bail!(
            "usage: encrypt_dir encrypt [--bind-paths] KEY SRC_DIR DST_DIR | decrypt [--bind-paths] SRC_DIR DST_DIR"
        ),
    };
    let (hits, misses) = cache.stats();
    println!(
        "{n} files in {:.2?}; KMS calls: {misses} (the cache served {hits})",
        started.elapsed()
    );
    Ok(())
}
