//! Files that hold secrets (credentials, TLS private keys): written whole,
//! mode 0600 from the moment they exist, and swapped in by rename so that a
//! reader or a crash never sees half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of `path` (its low nine bits) when it gives group or others any
/// access (read, write or execute), which a file holding a secret must not;
/// `None` when it is private.
pub fn too_open(path: &Path) -> std::io::Result<Option<u32>> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o777;
    Ok((mode & 0o077 != 0).then_some(mode))
}

/// Replaces `path` with `bytes`: written to a 0600 temporary file beside it,
/// synced, then renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
