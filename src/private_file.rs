//! Files that hold secrets (credentials, TLS private keys): written whole,
//! mode 0600 from the moment they exist, and swapped in by rename so that a
//! reader or a crash never sees half of one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of `path` (its low nine bits) when it gives group or others any
/// access (read, write or execute), which a file holding a secret must not;
/// `None` when it is private.
pub fn too_open(path: &Path) -> std::io::Result<Option<u32>> {
    Ok(open_mode(&fs::metadata(path)?))
}

/// [`too_open`] of metadata already read (`symlink_metadata`, say).
pub fn open_mode(meta: &fs::Metadata) -> Option<u32> {
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Narrows `path` to `mode` when it is open to group or others, unless it
/// is a symbolic link (what a link points at may be shared, and is not
/// ours to change): the mode it had, when it was changed.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<Option<u32>> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(None);
    }
    let Some(old) = open_mode(&meta) else {
        return Ok(None);
    };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(Some(old))
}

/// [`tighten`], saying in the log what it did or could not do; a path that
/// does not exist is passed over quietly. `what` names it ("the TLS
/// directory").
pub fn tighten_and_warn(path: &Path, mode: u32, what: &str) {
    match tighten(path, mode) {
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(Some(old)) => tracing::warn!(
            path = %path.display(),
            "tightened {what} from mode {old:o} to {mode:o}"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "could not make {what} mode {mode:o}"
        ),
    }
}

/// A fresh name for a temporary file beside `path`: hidden, and unique to
/// this process and call, so that it never clobbers another file (nor
/// another writer's temporary file) and is made with `create_new`.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Replaces `path` with `bytes`: written to a new 0600 temporary file
/// beside it, synced, renamed over it, and the directory synced. A path
/// that is not a regular file (`/dev/stdout`, a pipe) is written in place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(bytes);
    }
    let tmp = temp_path(path);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
        return written;
    }
    sync_parent(path)
}

/// Makes a rename in `path`'s directory durable.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => fs::File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;

    /// What is not a regular file (a pipe, `/dev/stdout`) is written in
    /// place, not replaced by a file of the same name.
    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo");
        // Linux opens a FIFO for reading and writing at once without
        // waiting for a peer; this end reads what write_atomic writes.
        let mut end = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        write_atomic(&fifo, b"through the pipe").unwrap();
        // Checked before reading: from a replaced FIFO nothing would come.
        let kind = fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(
            kind.is_fifo(),
            "still the FIFO, not a file put in its place"
        );
        // Read on a thread and waited for with a bound: a write_atomic
        // that wrote nothing would otherwise leave the read blocked.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut got = [0u8; 16];
            let _ = tx.send(end.read_exact(&mut got).map(|()| got));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the bytes came through the FIFO")
            .unwrap();
        assert_eq!(&got, b"through the pipe");
    }

    #[test]
    fn replaces_without_touching_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plain.txt");
        // A file that the old scheme (`with_extension("tmp")`) deleted.
        let neighbour = dir.path().join("plain.tmp");
        fs::write(&neighbour, b"keep me").unwrap();
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(too_open(&target).unwrap(), None, "0600 after the swap");
        assert_eq!(fs::read(&neighbour).unwrap(), b"keep me");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
        // A target whose own name ends in .tmp is replaced, not lost.
        let t = dir.path().join("x.tmp");
        fs::write(&t, b"before").unwrap();
        write_atomic(&t, b"after").unwrap();
        assert_eq!(fs::read(&t).unwrap(), b"after");
        assert_ne!(temp_path(&t), temp_path(&t), "each call its own name");
    }
}
