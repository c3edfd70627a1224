//! The SQLite back end: WAL, `foreign_keys`, `secure_delete`,
//! `synchronous = FULL`, and versioned migrations applied at open.
//!
//! One writer connection is owned by a dedicated thread that drains a queue
//! of jobs: every job waiting is run in one `BEGIN IMMEDIATE` transaction,
//! each inside its own savepoint (so one job's failure does not undo the
//! others), and the batch is committed with a single fsync before any job's
//! caller is answered. The writes of an API call served inside
//! [`super::one_transaction`] share one savepoint of a batch with the call's
//! audit event, which the writer holds open until the event arrives (see
//! [`run_call`]). A few read connections serve queries from
//! `spawn_blocking`; no lock is held across an `.await`.

use std::any::Any;
use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    AuditFilter, Error, KeyChange, Result, Store, VersionMaker, call_transaction, end_call,
    in_call, mark_call_ended, set_call_transaction,
};
use crate::audit::{AuditRecord, ChainRow, GENESIS, chain_hash};
use crate::clock::{Clock, Timestamp};
use crate::error::KmsError;
use crate::model::{
    AccessKeyRecord, AccessKeyStatus, Account, Alias, Grant, GrantConstraints, GrantOperation,
    Group, KeyRecord, KeyState, KeyVersion, MfaDevice, PrincipalType, Role, RotationType,
    SessionRecord, Tag, User,
};

/// Schema migrations, applied in order; `user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_iam.sql"),
    include_str!("migrations/0003_grants.sql"),
    include_str!("migrations/0004_audit.sql"),
    include_str!("migrations/0005_drop_audit_by_account.sql"),
];

/// Most cached reads kept; the cache is cleared when it is full.
const CACHE_LIMIT: usize = 65_536;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long a writer under load waits for more jobs before committing.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(500);
/// The size of the previous batch from which the writer counts as under load.
const COMMIT_SIBLINGS: usize = 8;

/// A cached read: the cache generation it was read at, and the value.
type CacheEntry = (u64, Arc<dyn Any + Send + Sync>);

type Reply = Box<dyn FnOnce(Option<Arc<rusqlite::Error>>) + Send>;
type Job = Box<dyn FnOnce(&mut Writer) -> Reply + Send>;

/// The writer thread's connection and what it remembers between jobs.
struct Writer {
    conn: Connection,
    /// The newest event of the audit chain (its sequence and hash) as of
    /// the open transaction, so that appending an event does not read it
    /// back; `None` until read, and forgotten whenever a batch fails.
    chain_head: Option<(i64, [u8; 32])>,
    /// A job found the batch unsafe to commit (see [`abort_batch`]).
    aborted: bool,
}

impl Writer {
    /// The sequence and hash an appended event follows: the newest event,
    /// else where retention last cut the chain, else the genesis.
    fn chain_head(&mut self) -> rusqlite::Result<(i64, [u8; 32])> {
        if let Some(head) = self.chain_head {
            return Ok(head);
        }
        let c = &self.conn;
        let row: Option<(i64, Vec<u8>)> = c
            .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let row = match row {
            Some(r) => Some(r),
            None => c
                .prepare_cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        let head = match row {
            None => (0, GENESIS),
            Some((seq, hash)) => (
                seq,
                hash.try_into()
                    .map_err(|_| corrupt("audit chain hash", "not 32 bytes"))?,
            ),
        };
        self.chain_head = Some(head);
        Ok(head)
    }
}

/// A SQLite database with one writer thread and a pool of readers.
pub struct SqliteStore {
    jobs: Option<mpsc::Sender<Job>>,
    /// Moves on with every committed write that may change cached rows.
    generation: Arc<AtomicU64>,
    /// Hot rows (credentials, keys, key versions, policies, grants) by
    /// query, with the generation they were read at.
    cache: Mutex<HashMap<String, CacheEntry>>,
    clock: Arc<dyn Clock>,
    /// Checkpoints the writer is asked to run between batches.
    checkpoints: Arc<CheckpointRequests>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    /// Tells the checkpoint thread to stop.
    closing: Arc<AtomicBool>,
    checkpoint_thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// How long the writer holds a call's writes open ([`CALL_TIMEOUT`]).
    call_timeout: std::time::Duration,
    /// An exclusive lock on `<database>.lock`, held while the store is open
    /// (dropped after the writer has stopped). A second store on the same
    /// database, in this process or another, would be a second writer: the
    /// audit chain head this one caches would go stale and the chain fork.
    _lock: DatabaseLock,
}

/// An exclusive lock on `<database>.lock`: while it is held, no other
/// store (in this process or another) opens the database. Taken with
/// [`DatabaseLock::acquire`] before anything else of a data directory is
/// read, then handed to [`SqliteStore::open_locked`].
#[derive(Debug)]
pub struct DatabaseLock {
    /// The database it locks.
    db: PathBuf,
    /// Holds the lock until dropped (the kernel drops it with the process).
    _file: File,
}

impl DatabaseLock {
    /// Locks `<db>.lock` (mode 0600), or says which database is already in use.
    pub fn acquire(db: &Path) -> Result<Self> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(source) => return Err(Error::Lock { path, source }),
        };
        match file.try_lock() {
            Ok(()) => Ok(Self {
                db: db.to_owned(),
                _file: file,
            }),
            Err(TryLockError::WouldBlock) => Err(Error::InUse(path)),
            Err(TryLockError::Error(source)) => Err(Error::Lock { path, source }),
        }
    }
}

/// How long a connection waits for a lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > supported {
        return Err(Error::TooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    /// `clock` dates the key configuration versions the store records.
    pub fn open(path: &Path, readers: usize, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::open_with(path, readers, clock, WAL_RESTART_PAGES)
    }

    /// [`Self::open`], restarting the WAL once it passes `wal_restart_pages`.
    pub fn open_with(
        path: &Path,
        readers: usize,
        clock: Arc<dyn Clock>,
        wal_restart_pages: u32,
    ) -> Result<Self> {
        let lock = DatabaseLock::acquire(path)?;
        Self::open_locked(lock, readers, clock, wal_restart_pages)
    }

    /// [`Self::open_with`] on the database `lock` holds.
    pub fn open_locked(
        lock: DatabaseLock,
        readers: usize,
        clock: Arc<dyn Clock>,
        wal_restart_pages: u32,
    ) -> Result<Self> {
        let path = lock.db.as_path();
        let restart_pages = i64::from(wal_restart_pages.max(1));
        let mut writer = Connection::open(path)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Corrupt(format!(
                "could not enable WAL (journal_mode is {mode})"
            )));
        }
        configure(&writer)?;
        migrate(&mut writer)?;
        // Checkpoints run on their own thread (below), so that copying the
        // WAL into the database never stalls a batch of the writer; only
        // the short RESTART that starts the log over runs on the writer.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let page_size: i64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
        // Twice the restart threshold: a log restarted a little past it
        // is reused as it is, not cut back (a truncation stalls the writer)
        // on every restart.
        writer.pragma_update(None, "journal_size_limit", 2 * page_size * restart_pages)?;
        let checkpointer = Connection::open(path)?;
        configure(&checkpointer)?;

        let mut pool = Vec::new();
        for _ in 0..readers.max(1) {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )?;
            configure(&r)?;
            pool.push(Mutex::new(r));
        }

        let (tx, rx) = mpsc::channel::<Job>(4096);
        let checkpoints = Arc::new(CheckpointRequests::default());
        let requests = Arc::clone(&checkpoints);
        let handle = thread::Builder::new()
            .name("kmsd-sqlite-writer".into())
            .spawn(move || {
                // A panic in a job would otherwise end the only writer and
                // leave a daemon that is up but can record nothing (every
                // call fails on its audit event). Nothing of the open batch
                // was acknowledged, so stopping the process loses no
                // acknowledged write; the supervisor restarts it.
                let state = Writer {
                    conn: writer,
                    chain_head: None,
                    aborted: false,
                };
                let run = std::panic::AssertUnwindSafe(|| drop(writer_loop(state, rx, &requests)));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("the sqlite writer panicked; stopping the daemon");
                    std::process::abort();
                }
            })?;
        // Started last: if it cannot be, returning drops the queue's
        // sender, and the writer thread ends.
        let closing = Arc::new(AtomicBool::new(false));
        let (stop, requests) = (Arc::clone(&closing), Arc::clone(&checkpoints));
        let checkpoint_thread = thread::Builder::new()
            .name("kmsd-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &stop, &requests, restart_pages))?;
        Ok(Self {
            jobs: Some(tx),
            generation: Arc::new(AtomicU64::new(0)),
            cache: Mutex::new(HashMap::new()),
            clock,
            checkpoints,
            readers: Arc::new(pool),
            next_reader: AtomicUsize::new(0),
            writer: Mutex::new(Some(handle)),
            closing,
            checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
            call_timeout: CALL_TIMEOUT,
            _lock: lock,
        })
    }

    /// Runs `f` in the writer's next batch; answers after the batch commits.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_job(f, true, true).await
    }

    /// Runs `f` in the writer's next batch; answers after the batch commits.
    /// A job that may change what the read cache holds (`invalidates`)
    /// moves the cache generation on before its caller is answered.
    /// `savepoint`: run the job in its own savepoint, so that its failure
    /// undoes its partial work without touching the rest of the batch; a
    /// job of one insert does not need one (SQLite undoes a failed statement).
    async fn write_job<T, F>(&self, f: F, invalidates: bool, savepoint: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer_job(
            move |w: &mut Writer| {
                if savepoint {
                    in_savepoint(&w.conn, f)
                } else {
                    f(&w.conn)
                }
            },
            invalidates,
        )
        .await
    }

    /// Runs `f` on the writer's own state in its next batch; answers after
    /// the batch commits. See [`Self::write_job`].
    async fn writer_job<T, F>(&self, f: F, invalidates: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        if invalidates && in_call() {
            // A call's transaction on another store leaves this one's
            // writes to commit on their own.
            let open = call_transaction::<CallLink>();
            if open.as_ref().is_none_or(|l| l.store == self.id()) {
                return self.call_write(open, f).await;
            }
        }
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let generation = Arc::clone(&self.generation);
        let job: Job = Box::new(move |w: &mut Writer| {
            let outcome = f(w);
            Box::new(move |commit_error: Option<Arc<rusqlite::Error>>| {
                if invalidates {
                    generation.fetch_add(1, Ordering::AcqRel);
                }
                let result = match commit_error {
                    Some(e) => Err(Error::Commit(e)),
                    None => outcome,
                };
                // The caller may have gone away; its write is committed regardless.
                let _ = tx.send(result);
            })
        });
        let jobs = self.jobs.as_ref().ok_or(Error::Closed)?;
        jobs.send(job).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// A write of the call being served (see [`super::one_transaction`]):
    /// applied in the call's `open` transaction, or in one this first
    /// write opens in the writer's next batch. Answers at once, before the
    /// commit.
    async fn call_write<T, F>(&self, open: Option<CallLink>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let write = CallMsg::Write(Box::new(move |w: &mut Writer| {
            let _ = tx.send(f(w));
        }));
        match open {
            Some(link) => link.messages.send(write).map_err(|_| Error::Closed)?,
            None => {
                let (messages, inbox) = std::sync::mpsc::channel();
                messages.send(write).map_err(|_| Error::Closed)?;
                set_call_transaction(CallLink {
                    store: self.id(),
                    messages,
                });
                let generation = Arc::clone(&self.generation);
                let timeout = self.call_timeout;
                let job: Job =
                    Box::new(move |w: &mut Writer| run_call(w, &inbox, &generation, timeout));
                let jobs = self.jobs.as_ref().ok_or(Error::Closed)?;
                jobs.send(job).await.map_err(|_| Error::Closed)?;
            }
        }
        rx.await.map_err(|_| Error::Closed)?
    }

    /// This store's identity, which a call's open transaction names.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.generation) as usize
    }

    /// The open transaction of the call being served, if it is on this store.
    fn call_link(&self) -> Option<CallLink> {
        call_transaction::<CallLink>().filter(|link| link.store == self.id())
    }

    /// A read served from the cache when nothing was written since it was
    /// cached. Entries are tagged with the generation read *before* the
    /// query, so a write that commits during the query makes them stale.
    async fn cached<T, F>(&self, key: String, f: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let generation = self.generation.load(Ordering::Acquire);
        {
            // Never held across an await: released at the end of this block.
            let map = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((g, v)) = map.get(&key)
                && *g == generation
                && let Some(v) = v.downcast_ref::<T>()
            {
                return Ok(v.clone());
            }
        }
        let value = self.read(f).await?;
        let mut map = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(key, (generation, Arc::new(value.clone())));
        Ok(value)
    }

    /// Runs a query on a read connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            // Prefer an idle connection; otherwise wait for ours. The guard
            // lives only inside this blocking closure.
            let guard = (0..n)
                .find_map(|i| readers.get((start + i) % n).and_then(|m| m.try_lock().ok()))
                .map_or_else(
                    || {
                        readers
                            .get(start % n)
                            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
                    },
                    Some,
                );
            match guard {
                Some(conn) => f(&conn),
                None => Err(Error::Closed),
            }
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}

impl Drop for SqliteStore {
    /// Closes the queue and waits for the writer to commit every job already
    /// in it, so that no acknowledged write is lost on shutdown.
    fn drop(&mut self) {
        self.jobs.take();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.closing.store(true, Ordering::SeqCst);
        let checkpointer = self
            .checkpoint_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = checkpointer {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    let r = f(conn);
    match &r {
        Ok(_) => conn.execute_batch("RELEASE job")?,
        Err(_) => conn.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    r
}

/// WAL pages (frames) past which the checkpointer restarts the log, by
/// default: 64 MiB (with 4 KiB pages). At 1000 pages the restarts,
/// four a second under load, put p99 at 64 in flight 2-3 ms higher.
pub const WAL_RESTART_PAGES: u32 = 16384;

/// Checkpoints that need the writer's connection, asked for by other threads
/// and run by the writer between batches.
#[derive(Debug, Default)]
struct CheckpointRequests {
    /// Fold the whole WAL in and truncate it (after a key's destruction, so
    /// that the pages it freed do not linger in the log).
    truncate: AtomicBool,
    /// Have the next batch start the log over from its beginning.
    restart: AtomicBool,
}

/// Folds the WAL into the database every quarter second, until the store
/// closes. The copying is PASSIVE (it blocks neither readers nor the
/// writer). But the log only starts over from its beginning when a writer
/// finds it wholly copied, which never happens under steady load (the
/// writer commits every millisecond or so, so frames are always newer than
/// the last checkpoint): it grew past 700 MB in 18 s of Encrypts, and
/// cutting it back to `journal_size_limit` stalled the writer for 64 ms. So
/// once the log passes `restart_pages` and PASSIVE has caught up with all
/// but the newest frames, this thread copies once more and asks the writer
/// for a RESTART checkpoint, which it runs between batches: it copies the
/// few frames left and has the next batch start the log over.
fn checkpoint_loop(
    conn: &Connection,
    closing: &AtomicBool,
    requests: &CheckpointRequests,
    restart_pages: i64,
) {
    loop {
        thread::park_timeout(std::time::Duration::from_millis(250));
        if closing.load(Ordering::SeqCst) {
            return;
        }
        let (log, copied) = match checkpoint(conn, "PASSIVE") {
            Ok((_, log, copied)) => (log, copied),
            Err(e) => {
                tracing::debug!(error = %e, "passive WAL checkpoint did not run");
                continue;
            }
        };
        if log > restart_pages && log - copied < restart_pages {
            // Once more, so that the writer has only the last few frames to copy.
            let _ = checkpoint(conn, "PASSIVE");
            requests.restart.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs a TRUNCATE or RESTART checkpoint on the writer's connection between
/// batches. It waits at most 10 ms for readers still on the log (so that a
/// long one, an audit export, cannot hold the writer up); true if it ran to
/// the end, false if it should be tried again later.
fn writer_checkpoint(conn: &Connection, mode: &str) -> bool {
    let outcome = conn
        .busy_timeout(std::time::Duration::from_millis(10))
        .and_then(|()| checkpoint(conn, mode));
    if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
        tracing::warn!(error = %e, "could not restore the writer's busy timeout");
    }
    match outcome {
        Ok((0, _, _)) => true,
        Ok(_) => {
            tracing::debug!(
                mode,
                "WAL checkpoint deferred: another checkpoint or a reader is busy"
            );
            false
        }
        Err(e) => {
            tracing::warn!(mode, error = %e, "WAL checkpoint failed");
            false
        }
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`: (busy, frames in the log, frames
/// copied into the database).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// Runs batches until the queue closes; gives the writer's state back then.
fn writer_loop(
    mut w: Writer,
    mut rx: mpsc::Receiver<Job>,
    checkpoints: &CheckpointRequests,
) -> Writer {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut last_batch = 0usize;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        let drain = |batch: &mut Vec<Job>, rx: &mut mpsc::Receiver<Job>| {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
        };
        drain(&mut batch, &mut rx);
        // Under load (the last batch held several writers), wait a moment
        // for the callers about to write, as PostgreSQL's commit_delay does:
        // one commit, one fsync and fewer WAL pages then serve more writes.
        // Measured: kmsd's CPU per Encrypt fell from about 60 to 54 µs at 64
        // callers (BENCHMARKS.md). A lightly loaded daemon never waits.
        if last_batch >= COMMIT_SIBLINGS && batch.len() < MAX_BATCH {
            thread::sleep(COMMIT_DELAY);
            drain(&mut batch, &mut rx);
        }
        last_batch = batch.len();
        let begun = w.conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begun {
            let e = Arc::new(e);
            tracing::error!(error = %e, "sqlite writer could not begin a transaction; the batch fails");
            // Dropping a job drops its reply channel: its caller gets `Closed`.
            batch.clear();
            continue;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut failure: Option<Arc<rusqlite::Error>> = None;
        for job in batch.drain(..) {
            if failure.is_some() {
                // Not run: dropping it tells its caller the write failed.
                continue;
            }
            replies.push(job(&mut w));
            // SQLite rolls the whole transaction back on some errors (a
            // full disk, an I/O error). The jobs after it would then each
            // commit on their own while their callers were told the batch
            // failed, and those before it are already undone: fail the batch.
            if w.conn.is_autocommit() || std::mem::take(&mut w.aborted) {
                failure = Some(Arc::new(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the transaction was rolled back in the middle of a batch".into()),
                )));
            }
        }
        let commit_error = match failure {
            Some(e) => Some(e),
            None => w.conn.execute_batch("COMMIT").err().map(Arc::new),
        };
        if let Some(e) = &commit_error {
            tracing::error!(error = %e, "sqlite commit failed; every write of the batch fails");
            if !w.conn.is_autocommit() {
                let _ = w.conn.execute_batch("ROLLBACK");
            }
            // The events the batch appended were undone with it.
            w.chain_head = None;
        }
        if commit_error.is_none()
            && checkpoints.truncate.swap(false, Ordering::SeqCst)
            && !writer_checkpoint(&w.conn, "TRUNCATE")
        {
            // Fold the WAL into the database file and truncate it, so that
            // pages freed by a destruction do not linger in the log; if the
            // checkpoint thread was busy, again after the next batch.
            checkpoints.truncate.store(true, Ordering::SeqCst);
        }
        for reply in replies {
            reply(commit_error.clone());
        }
        // After the replies: only the next batch waits for it. Not retried
        // until the checkpoint thread asks again.
        if commit_error.is_none() && checkpoints.restart.swap(false, Ordering::SeqCst) {
            writer_checkpoint(&w.conn, "RESTART");
        }
    }
    w
}

/// Seals `r` into the chain after the head and inserts it; its sequence.
/// `prebuilt`: its canonical body, when it does not need the writer.
fn append_event(w: &mut Writer, r: &AuditRecord, prebuilt: Option<String>) -> Result<u64> {
    let attempt: u64 = match &r.pending_deletion_key {
        Some(k) => w
            .conn
            .prepare_cached(
                "INSERT INTO pending_use_counts (key_arn, count) VALUES (?1, 1) \
                 ON CONFLICT(key_arn) DO UPDATE SET count = count + 1 RETURNING count",
            )?
            .query_row([k], |row| row.get(0))?,
        None => 0,
    };
    let (last_seq, prev) = w.chain_head()?;
    // Forgotten while the insert runs: if it fails, the next append
    // reads the head back instead of retrying a sequence in use.
    w.chain_head = None;
    let seq = last_seq + 1;
    let body = prebuilt.unwrap_or_else(|| r.canonical_json(attempt));
    let hash = chain_hash(&prev, &body);
    w.conn.prepare_cached(
        "INSERT INTO audit_events (seq, time_ms, account_id, principal_arn, operation, outcome, key_arns, body, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        seq,
        r.time.0,
        r.account_id,
        r.principal_arn,
        r.operation,
        r.outcome.as_str(),
        r.key_arns.join(" "),
        body,
        prev.as_slice(),
        hash.as_slice(),
    ])?;
    // Only a row that is in the open transaction becomes the head.
    w.chain_head = Some((seq, hash));
    Ok(u64::try_from(seq).unwrap_or(0))
}

/// The handle a call keeps on its open transaction.
#[derive(Clone)]
struct CallLink {
    /// The store whose writer holds it ([`SqliteStore::id`]).
    store: usize,
    messages: std::sync::mpsc::Sender<CallMsg>,
}

/// What a call sends the writer while its transaction is open.
enum CallMsg {
    /// Another write: applied at once, its result sent back before the commit.
    Write(Box<dyn FnOnce(&mut Writer) + Send>),
    /// The call's audit event, which ends the call; `reply` is answered
    /// after the commit.
    Event {
        record: Box<AuditRecord>,
        prebuilt: Option<String>,
        reply: oneshot::Sender<Result<u64>>,
    },
}

/// How long the writer holds a call's writes open for the call to record
/// its event (it serves nothing else meanwhile). A call takes microseconds
/// to milliseconds from its first write to its event; past this its writes
/// are undone and the call fails.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one call's transaction, a savepoint in the writer's batch: its
/// writes as they come, then its event. Its writes stand only if the event
/// is written with them; a call that goes away, or has not recorded its
/// event `timeout` ([`CALL_TIMEOUT`]) after its first write, is undone. A
/// call that failed after a write keeps it, recorded by its failure event:
/// only AssumeRole can (its session's insert can fail after its TOTP step
/// was used, which must stay used). The reply bumps the cache generation and answers the event
/// after the batch commits. If the savepoint cannot be undone or released,
/// the whole batch is rolled back (and fails), so that no write of the call
/// can commit without its event.
fn run_call(
    w: &mut Writer,
    inbox: &std::sync::mpsc::Receiver<CallMsg>,
    generation: &Arc<AtomicU64>,
    timeout: std::time::Duration,
) -> Reply {
    let undone: Reply = Box::new(|_| {});
    if let Err(e) = w.conn.execute_batch("SAVEPOINT call") {
        // Dropping the messages tells the call its writes failed.
        tracing::error!(error = %e, "could not open a call's transaction");
        return undone;
    }
    let changes_before = w.conn.total_changes();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(CallMsg::Write(write)) => {
                write(w);
                if w.conn.is_autocommit() {
                    // SQLite rolled the whole batch back (an I/O error);
                    // the batch fails, and the call with it.
                    return undone;
                }
            }
            Ok(CallMsg::Event {
                record,
                prebuilt,
                reply,
            }) => {
                let mut result = append_event(w, &record, prebuilt);
                if result.is_err() && !w.conn.is_autocommit() {
                    // No change may stand without its event.
                    if let Err(e) = undo_call(&w.conn) {
                        abort_batch(w, "undo a call whose event failed", &e);
                    }
                }
                if !w.conn.is_autocommit()
                    && let Err(e) = w.conn.execute_batch("RELEASE call")
                {
                    abort_batch(w, "end a call's transaction", &e.into());
                    result = Err(Error::Closed);
                }
                let generation = Arc::clone(generation);
                return Box::new(move |commit_error: Option<Arc<rusqlite::Error>>| {
                    generation.fetch_add(1, Ordering::AcqRel);
                    let _ = reply.send(match commit_error {
                        Some(e) => Err(Error::Commit(e)),
                        None => result,
                    });
                });
            }
            Err(e) => {
                if w.conn.total_changes() == changes_before {
                    // A write that found nothing to do (a key no longer
                    // due for destruction, say): nothing to undo.
                    tracing::debug!(error = %e, "a call that changed nothing left without an event");
                } else {
                    tracing::warn!(error = %e, "a call left without recording its event; its writes are undone");
                }
                if let Err(e) =
                    undo_call(&w.conn).and_then(|()| Ok(w.conn.execute_batch("RELEASE call")?))
                {
                    abort_batch(w, "undo an abandoned call", &e);
                }
                return undone;
            }
        }
    }
}

/// Undoes a call's writes, keeping its savepoint open.
fn undo_call(conn: &Connection) -> Result<()> {
    Ok(conn.execute_batch("ROLLBACK TO call")?)
}

/// Rolls the whole batch back when a call's savepoint could not be undone
/// or released: better every write of the batch fails than one commits
/// without its event. The writer loop sees the transaction gone and fails
/// the batch.
fn abort_batch(w: &mut Writer, what: &str, e: &Error) {
    tracing::error!(error = %e, "could not {what}; the batch fails");
    w.aborted = true;
    if let Err(e) = w.conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "could not roll the batch back");
    }
}

fn ts(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn parse_uuid(s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

const KEY_COLUMNS: &str = "id, account_id, description, state, created_ms, deletion_ms, pending_window_days, \
     rotation_enabled, rotation_period_days, next_rotation_ms, current_version, policy";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let state: String = r.get(3)?;
    Ok(KeyRecord {
        id: parse_uuid(&r.get::<_, String>(0)?)?,
        account_id: r.get(1)?,
        description: r.get(2)?,
        state: KeyState::parse(&state).ok_or_else(|| corrupt("key state", &state))?,
        created: ts(r.get(4)?),
        deletion_date: r.get::<_, Option<i64>>(5)?.map(ts),
        pending_window_days: r.get(6)?,
        rotation_enabled: r.get(7)?,
        rotation_period_days: r.get(8)?,
        next_rotation: r.get::<_, Option<i64>>(9)?.map(ts),
        current_version: r.get(10)?,
        policy: r.get(11)?,
    })
}

fn load_key(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<KeyRecord>> {
    conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"))?
        .query_row([id.to_string()], key_from_row)
        .optional()
}

fn save_key(conn: &Connection, k: &KeyRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE keys SET description = ?2, state = ?3, deletion_ms = ?4, pending_window_days = ?5, \
         rotation_enabled = ?6, rotation_period_days = ?7, next_rotation_ms = ?8, current_version = ?9, \
         policy = ?10 WHERE id = ?1",
    )?
    .execute(params![
        k.id.to_string(),
        k.description,
        k.state.as_str(),
        k.deletion_date.map(|t| t.0),
        k.pending_window_days,
        k.rotation_enabled,
        k.rotation_period_days,
        k.next_rotation.map(|t| t.0),
        k.current_version,
        k.policy,
    ])?;
    Ok(())
}

fn insert_version(conn: &Connection, v: &KeyVersion) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO key_versions (key_id, version, wrapped_material, created_ms, rotation_type) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        v.key_id.to_string(),
        v.version,
        v.wrapped_material,
        v.created.0,
        v.rotation_type.map(RotationType::as_str),
    ])?;
    Ok(())
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<KeyVersion> {
    let rt: Option<String> = r.get(4)?;
    Ok(KeyVersion {
        key_id: parse_uuid(&r.get::<_, String>(0)?)?,
        version: r.get(1)?,
        wrapped_material: r.get(2)?,
        created: ts(r.get(3)?),
        rotation_type: match rt {
            None => None,
            Some(s) => Some(RotationType::parse(&s).ok_or_else(|| corrupt("rotation type", &s))?),
        },
    })
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        account_id: r.get(0)?,
        name: r.get(1)?,
        user_id: r.get(2)?,
        path: r.get(3)?,
        created: ts(r.get(4)?),
    })
}

fn access_key_from_row(r: &Row<'_>) -> rusqlite::Result<AccessKeyRecord> {
    let status: String = r.get(4)?;
    Ok(AccessKeyRecord {
        access_key_id: r.get(0)?,
        account_id: r.get(1)?,
        user_name: r.get(2)?,
        wrapped_secret: r.get(3)?,
        status: AccessKeyStatus::parse(&status)
            .ok_or_else(|| corrupt("access key status", &status))?,
        created: ts(r.get(5)?),
    })
}

const GRANT_COLUMNS: &str = "grant_id, key_id, name, grantee, retiring_principal, issuing_account, operations, constraints, created_ms";

fn encode_operations(ops: &[GrantOperation]) -> String {
    ops.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(",")
}

fn encode_constraints(c: &GrantConstraints) -> String {
    let v = match c {
        GrantConstraints::Subset(m) => serde_json::json!({ "subset": m }),
        GrantConstraints::Equals(m) => serde_json::json!({ "equals": m }),
    };
    v.to_string()
}

fn decode_constraints(s: &str) -> rusqlite::Result<GrantConstraints> {
    let bad = || corrupt("grant constraints", s);
    let v: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> =
        serde_json::from_str(s).map_err(|_| bad())?;
    match v.into_iter().next() {
        Some((k, m)) if k == "subset" => Ok(GrantConstraints::Subset(m)),
        Some((k, m)) if k == "equals" => Ok(GrantConstraints::Equals(m)),
        _ => Err(bad()),
    }
}

fn grant_from_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    let ops: String = r.get(6)?;
    let operations = ops
        .split(',')
        .filter(|o| !o.is_empty())
        .map(|o| GrantOperation::parse(o).ok_or_else(|| corrupt("grant operation", o)))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let constraints: Option<String> = r.get(7)?;
    Ok(Grant {
        grant_id: r.get(0)?,
        key_id: parse_uuid(&r.get::<_, String>(1)?)?,
        name: r.get(2)?,
        grantee: r.get(3)?,
        retiring_principal: r.get(4)?,
        issuing_account: r.get(5)?,
        operations,
        constraints: constraints.as_deref().map(decode_constraints).transpose()?,
        created: ts(r.get(8)?),
    })
}

fn alias_key(c: &Connection, account_id: &str, name: &str) -> rusqlite::Result<Option<Uuid>> {
    let k: Option<String> = c
        .prepare_cached("SELECT key_id FROM aliases WHERE account_id = ?1 AND name = ?2")?
        .query_row([account_id, name], |r| r.get(0))
        .optional()?;
    k.as_deref().map(parse_uuid).transpose()
}

/// Records the key's configuration (policy, state, description, rotation
/// settings, aliases, tags, grants) as a new version, if it differs from the
/// last one recorded. Runs inside the transaction that changed it.
fn snapshot_config(c: &Connection, id: Uuid, now: Timestamp) -> Result<()> {
    let idt = id.to_string();
    let (account_id, config) = match load_key(c, id)? {
        None => {
            let account: Option<String> = c
                .prepare_cached("SELECT account_id FROM key_config_history WHERE key_id = ?1 ORDER BY version DESC LIMIT 1")?
                .query_row([&idt], |r| r.get(0))
                .optional()?;
            let Some(account) = account else {
                return Ok(());
            };
            (
                account,
                serde_json::json!({"keyId": idt, "state": "Destroyed"}),
            )
        }
        Some(k) => {
            let aliases: Vec<String> = collect(
                c.prepare_cached("SELECT name FROM aliases WHERE key_id = ?1 ORDER BY name")?
                    .query_map([&idt], |r| r.get(0))?,
            )?;
            let tags: Vec<(String, String)> = collect(
                c.prepare_cached(
                    "SELECT tag_key, tag_value FROM tags WHERE key_id = ?1 ORDER BY tag_key",
                )?
                .query_map([&idt], |r| Ok((r.get(0)?, r.get(1)?)))?,
            )?;
            let mut st = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 ORDER BY grant_id"
            ))?;
            let grants: Vec<serde_json::Value> = collect(st.query_map([&idt], grant_from_row)?)?
                .into_iter()
                .map(|g| {
                    serde_json::json!({
                        "grantId": g.grant_id,
                        "name": g.name,
                        "granteePrincipal": g.grantee,
                        "retiringPrincipal": g.retiring_principal,
                        "operations": g.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                        "constraints": g.constraints.as_ref().map(encode_constraints),
                    })
                })
                .collect();
            let config = serde_json::json!({
                "keyId": idt,
                "state": k.state.as_str(),
                "description": k.description,
                "policy": k.policy,
                "deletionDate": k.deletion_date.map(Timestamp::to_rfc3339),
                "pendingWindowInDays": k.pending_window_days,
                "keyRotationEnabled": k.rotation_enabled,
                "rotationPeriodInDays": k.rotation_period_days,
                "nextRotationDate": k.next_rotation.map(Timestamp::to_rfc3339),
                "aliases": aliases,
                "tags": tags.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "grants": grants,
            });
            (k.account_id, config)
        }
    };
    let config = config.to_string();
    let last: Option<(i64, String)> = c
        .prepare_cached("SELECT version, config FROM key_config_history WHERE key_id = ?1 ORDER BY version DESC LIMIT 1")?
        .query_row([&idt], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if last.as_ref().is_some_and(|(_, prev)| *prev == config) {
        return Ok(());
    }
    let version = last.map_or(1, |(v, _)| v + 1);
    c.prepare_cached(
        "INSERT INTO key_config_history (key_id, version, account_id, changed_ms, config) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![idt, version, account_id, now.0, config])?;
    Ok(())
}

fn group_from_row(r: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        account_id: r.get(0)?,
        name: r.get(1)?,
        group_id: r.get(2)?,
        path: r.get(3)?,
        created: ts(r.get(4)?),
    })
}

fn alias_from_row(r: &Row<'_>) -> rusqlite::Result<Alias> {
    Ok(Alias {
        account_id: r.get(0)?,
        name: r.get(1)?,
        key_id: parse_uuid(&r.get::<_, String>(2)?)?,
        created: ts(r.get(3)?),
        updated: ts(r.get(4)?),
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>> {
    rows.collect::<rusqlite::Result<Vec<T>>>()
        .map_err(Error::from)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_meta(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |c| {
            c.prepare_cached("INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = ?2")?
                .execute([name, value])?;
            Ok(())
        })
        .await
    }

    async fn create_account(&self, a: Account, root_key: AccessKeyRecord) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO accounts (id, name, created_ms) VALUES (?1, ?2, ?3)")?
                .execute(params![a.id, a.name, a.created.0])
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::Conflict(format!("account {}", a.id))
                    } else {
                        e.into()
                    }
                })?;
            insert_access_key(c, &root_key)
        })
        .await
    }

    async fn get_account(&self, id: &str) -> Result<Option<Account>> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT id, name, created_ms FROM accounts WHERE id = ?1")?
                    .query_row([id], |r| {
                        Ok(Account {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            created: ts(r.get(2)?),
                        })
                    })
                    .optional()?,
            )
        })
        .await
    }

    async fn create_user(&self, u: User) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO users (account_id, name, user_id, path, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![u.account_id, u.name, u.user_id, u.path, u.created.0])
                .map_err(|e| if is_unique_violation(&e) { Error::Conflict(format!("user {}", u.name)) } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, account_id: &str, name: &str) -> Result<Option<User>> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.cached(format!("user:{account_id}:{}", name.to_lowercase()), move |c| {
            Ok(c.prepare_cached("SELECT account_id, name, user_id, path, created_ms FROM users WHERE account_id = ?1 AND name = ?2")?
                .query_row([a, n], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn delete_user(&self, account_id: &str, name: &str) -> Result<bool> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.write(move |c| {
            // Its inline policies go with it: a later user of the same name
            // must not inherit them.
            c.prepare_cached(
                "DELETE FROM identity_policies WHERE account_id = ?1 AND principal_type = 'user' AND principal_name = ?2",
            )?
            .execute([&a, &n])?;
            Ok(
                c.prepare_cached("DELETE FROM users WHERE account_id = ?1 AND name = ?2")?
                    .execute([a, n])?
                    > 0,
            )
        })
        .await
    }

    async fn list_users(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>> {
        let (a, after) = (account_id.to_owned(), after.unwrap_or("").to_owned());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT account_id, name, user_id, path, created_ms FROM users \
                 WHERE account_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?;
            collect(st.query_map(params![a, after, limit_i64(limit)], user_from_row)?)
        })
        .await
    }

    async fn create_access_key(&self, key: AccessKeyRecord, max_per_owner: usize) -> Result<()> {
        self.write(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM access_keys WHERE account_id = ?1 AND user_name IS ?2",
                )?
                .query_row(params![key.account_id, key.user_name], |r| r.get(0))?;
            if n >= limit_i64(max_per_owner) {
                return Err(Error::Rejected(KmsError::LimitExceededException(format!(
                    "cannot exceed quota for AccessKeysPerUser: {max_per_owner}"
                ))));
            }
            insert_access_key(c, &key)
        })
        .await
    }

    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        let id = id.to_owned();
        self.cached(format!("ak:{id}"), move |c| {
            Ok(c.prepare_cached(
                "SELECT id, account_id, user_name, wrapped_secret, status, created_ms FROM access_keys WHERE id = ?1",
            )?
            .query_row([id], access_key_from_row)
            .optional()?)
        })
        .await
    }

    async fn list_access_keys(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<AccessKeyRecord>> {
        let (a, u) = (account_id.to_owned(), user_name.map(str::to_owned));
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, account_id, user_name, wrapped_secret, status, created_ms FROM access_keys \
                 WHERE account_id = ?1 AND user_name IS ?2 ORDER BY created_ms, id",
            )?;
            collect(st.query_map(params![a, u], access_key_from_row)?)
        })
        .await
    }

    async fn delete_access_key(&self, account_id: &str, id: &str) -> Result<bool> {
        let (a, id) = (account_id.to_owned(), id.to_owned());
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM access_keys WHERE account_id = ?1 AND id = ?2")?
                    .execute([a, id])?
                    > 0,
            )
        })
        .await
    }

    async fn create_key(&self, k: KeyRecord, first: KeyVersion, tags: Vec<Tag>) -> Result<()> {
        let now = self.clock.now();
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                k.id.to_string(),
                k.account_id,
                k.description,
                k.state.as_str(),
                k.created.0,
                k.deletion_date.map(|t| t.0),
                k.pending_window_days,
                k.rotation_enabled,
                k.rotation_period_days,
                k.next_rotation.map(|t| t.0),
                k.current_version,
                k.policy,
            ])?;
            insert_version(c, &first)?;
            for t in &tags {
                upsert_tag(c, k.id, t)?;
            }
            snapshot_config(c, k.id, now)
        })
        .await
    }

    async fn get_key(&self, id: Uuid) -> Result<Option<KeyRecord>> {
        self.cached(format!("key:{id}"), move |c| Ok(load_key(c, id)?))
            .await
    }

    async fn list_keys(
        &self,
        account_id: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>> {
        let (a, after) = (
            account_id.to_owned(),
            after.map(|u| u.to_string()).unwrap_or_default(),
        );
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM keys WHERE account_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            ))?;
            collect(st.query_map(params![a, after, limit_i64(limit)], key_from_row)?)
        })
        .await
    }

    async fn update_key(&self, id: Uuid, change: KeyChange) -> Result<KeyRecord> {
        let now = self.clock.now();
        self.write(move |c| {
            let mut k = load_key(c, id)?.ok_or_else(|| Error::Rejected(not_found(id)))?;
            change(&mut k).map_err(Error::Rejected)?;
            save_key(c, &k)?;
            snapshot_config(c, id, now)?;
            Ok(k)
        })
        .await
    }

    async fn rotate_key(
        &self,
        id: Uuid,
        change: KeyChange,
        make_version: VersionMaker,
        on_demand_limit: Option<u32>,
    ) -> Result<KeyRecord> {
        self.write(move |c| {
            let mut k = load_key(c, id)?.ok_or_else(|| Error::Rejected(not_found(id)))?;
            if let Some(limit) = on_demand_limit {
                // Counted in the rotation's own transaction, so concurrent
                // rotations cannot both pass it.
                let done: u32 = c
                    .prepare_cached(
                        "SELECT COUNT(*) FROM key_versions WHERE key_id = ?1 AND rotation_type = ?2",
                    )?
                    .query_row(
                        params![id.to_string(), RotationType::OnDemand.as_str()],
                        |r| r.get(0),
                    )?;
                if done >= limit {
                    return Err(Error::Rejected(KmsError::LimitExceededException(format!(
                        "a key can be rotated on demand at most {limit} times; this one has been {done} times"
                    ))));
                }
            }
            let before = k.current_version;
            change(&mut k).map_err(Error::Rejected)?;
            if k.current_version != before + 1 {
                return Err(Error::Corrupt(format!(
                    "rotation of {id} did not advance the version by one"
                )));
            }
            let v = make_version(&k).map_err(Error::Rejected)?;
            insert_version(c, &v)?;
            save_key(c, &k)?;
            snapshot_config(c, id, v.created)?;
            Ok(k)
        })
        .await
    }

    async fn get_key_version(&self, id: Uuid, version: u32) -> Result<Option<KeyVersion>> {
        self.cached(format!("ver:{id}:{version}"), move |c| {
            Ok(c.prepare_cached(
                "SELECT key_id, version, wrapped_material, created_ms, rotation_type FROM key_versions \
                 WHERE key_id = ?1 AND version = ?2",
            )?
            .query_row(params![id.to_string(), version], version_from_row)
            .optional()?)
        })
        .await
    }

    async fn list_key_versions(
        &self,
        id: Uuid,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<KeyVersion>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT key_id, version, wrapped_material, created_ms, rotation_type FROM key_versions \
                 WHERE key_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
            )?;
            collect(st.query_map(params![id.to_string(), after.unwrap_or(0), limit_i64(limit)], version_from_row)?)
        })
        .await
    }

    async fn destroy_key_if_due(&self, id: Uuid, now: Timestamp) -> Result<Option<String>> {
        let checkpoints = Arc::clone(&self.checkpoints);
        let destroyed = self
            .write(move |c| {
                let Some(k) = load_key(c, id)? else {
                    return Ok(None);
                };
                let due = k.state == KeyState::PendingDeletion
                    && k.deletion_date.is_some_and(|d| d <= now);
                if !due {
                    return Ok(None);
                }
                // With secure_delete on, the freed pages are overwritten with zeros.
                let idt = id.to_string();
                c.prepare_cached("DELETE FROM key_versions WHERE key_id = ?1")?
                    .execute([&idt])?;
                c.prepare_cached("DELETE FROM aliases WHERE key_id = ?1")?
                    .execute([&idt])?;
                c.prepare_cached("DELETE FROM tags WHERE key_id = ?1")?
                    .execute([&idt])?;
                c.prepare_cached("DELETE FROM keys WHERE id = ?1")?
                    .execute([&idt])?;
                snapshot_config(c, id, now)?;
                checkpoints.truncate.store(true, Ordering::SeqCst);
                Ok(Some(k.account_id))
            })
            .await?;
        Ok(destroyed)
    }

    async fn keys_due_for_deletion(&self, now: Timestamp) -> Result<Vec<Uuid>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id FROM keys WHERE state = 'PendingDeletion' AND deletion_ms <= ?1 ORDER BY deletion_ms",
            )?;
            collect(st.query_map([now.0], |r| parse_uuid(&r.get::<_, String>(0)?))?)
        })
        .await
    }

    async fn keys_due_for_rotation(&self, now: Timestamp) -> Result<Vec<Uuid>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id FROM keys WHERE rotation_enabled = 1 AND state = 'Enabled' AND next_rotation_ms <= ?1 \
                 ORDER BY next_rotation_ms",
            )?;
            collect(st.query_map([now.0], |r| parse_uuid(&r.get::<_, String>(0)?))?)
        })
        .await
    }

    async fn create_alias(&self, a: Alias) -> Result<()> {
        let now = self.clock.now();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO aliases (account_id, name, key_id, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![a.account_id, a.name, a.key_id.to_string(), a.created.0, a.updated.0])
            .map_err(|e| if is_unique_violation(&e) { Error::Conflict(format!("alias {}", a.name)) } else { e.into() })?;
            snapshot_config(c, a.key_id, now)
        })
        .await
    }

    async fn update_alias(
        &self,
        account_id: &str,
        name: &str,
        key_id: Uuid,
        now: Timestamp,
    ) -> Result<bool> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.write(move |c| {
            let old = alias_key(c, &a, &n)?;
            let updated = c
                .prepare_cached("UPDATE aliases SET key_id = ?3, updated_ms = ?4 WHERE account_id = ?1 AND name = ?2")?
                .execute(params![a, n, key_id.to_string(), now.0])?
                > 0;
            if let Some(old) = old {
                snapshot_config(c, old, now)?;
                snapshot_config(c, key_id, now)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn delete_alias(&self, account_id: &str, name: &str) -> Result<bool> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        let now = self.clock.now();
        self.write(move |c| {
            let old = alias_key(c, &a, &n)?;
            let deleted = c
                .prepare_cached("DELETE FROM aliases WHERE account_id = ?1 AND name = ?2")?
                .execute([a, n])?
                > 0;
            if let Some(old) = old {
                snapshot_config(c, old, now)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn get_alias(&self, account_id: &str, name: &str) -> Result<Option<Alias>> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.cached(format!("alias:{account_id}:{name}"), move |c| {
            Ok(c.prepare_cached(
                "SELECT account_id, name, key_id, created_ms, updated_ms FROM aliases WHERE account_id = ?1 AND name = ?2",
            )?
            .query_row([a, n], alias_from_row)
            .optional()?)
        })
        .await
    }

    async fn list_aliases(
        &self,
        account_id: &str,
        key_id: Option<Uuid>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Alias>> {
        let (a, k, after) = (
            account_id.to_owned(),
            key_id.map(|u| u.to_string()),
            after.unwrap_or("").to_owned(),
        );
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT account_id, name, key_id, created_ms, updated_ms FROM aliases \
                 WHERE account_id = ?1 AND (?2 IS NULL OR key_id = ?2) AND name > ?3 ORDER BY name LIMIT ?4",
            )?;
            collect(st.query_map(params![a, k, after, limit_i64(limit)], alias_from_row)?)
        })
        .await
    }

    async fn put_tags(&self, key_id: Uuid, tags: Vec<Tag>, max: usize) -> Result<()> {
        let now = self.clock.now();
        self.write(move |c| {
            for t in &tags {
                upsert_tag(c, key_id, t)?;
            }
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM tags WHERE key_id = ?1")?
                .query_row([key_id.to_string()], |r| r.get(0))?;
            if n > limit_i64(max) {
                // The savepoint rolls the upserts back.
                return Err(Error::Rejected(KmsError::LimitExceededException(format!(
                    "a key can have at most {max} tags"
                ))));
            }
            snapshot_config(c, key_id, now)
        })
        .await
    }

    async fn remove_tags(&self, key_id: Uuid, keys: Vec<String>) -> Result<()> {
        let now = self.clock.now();
        self.write(move |c| {
            let mut st = c.prepare_cached("DELETE FROM tags WHERE key_id = ?1 AND tag_key = ?2")?;
            for k in &keys {
                st.execute(params![key_id.to_string(), k])?;
            }
            snapshot_config(c, key_id, now)
        })
        .await
    }

    async fn list_tags(&self, key_id: Uuid, after: Option<&str>, limit: usize) -> Result<Vec<Tag>> {
        let after = after.unwrap_or("").to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT tag_key, tag_value FROM tags WHERE key_id = ?1 AND tag_key > ?2 ORDER BY tag_key LIMIT ?3",
            )?;
            collect(st.query_map(params![key_id.to_string(), after, limit_i64(limit)], |r| {
                Ok(Tag { key: r.get(0)?, value: r.get(1)? })
            })?)
        })
        .await
    }

    async fn create_group(&self, g: Group) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached("INSERT INTO groups (account_id, name, group_id, path, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![g.account_id, g.name, g.group_id, g.path, g.created.0])
                .map_err(|e| if is_unique_violation(&e) { Error::Conflict(format!("group {}", g.name)) } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn get_group(&self, account_id: &str, name: &str) -> Result<Option<Group>> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT account_id, name, group_id, path, created_ms FROM groups WHERE account_id = ?1 AND name = ?2")?
                .query_row([a, n], group_from_row)
                .optional()?)
        })
        .await
    }

    async fn delete_group(&self, account_id: &str, name: &str) -> Result<bool> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM identity_policies WHERE account_id = ?1 AND principal_type = 'group' AND principal_name = ?2",
            )?
            .execute([&a, &n])?;
            Ok(c.prepare_cached("DELETE FROM groups WHERE account_id = ?1 AND name = ?2")?.execute([a, n])? > 0)
        })
        .await
    }

    async fn add_user_to_group(&self, account_id: &str, group: &str, user: &str) -> Result<()> {
        let (a, g, u) = (account_id.to_owned(), group.to_owned(), user.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO group_members (account_id, group_name, user_name) \
                 SELECT ?1, g.name, u.name FROM groups g, users u \
                 WHERE g.account_id = ?1 AND g.name = ?2 AND u.account_id = ?1 AND u.name = ?3 \
                 ON CONFLICT DO NOTHING",
            )?
            .execute([a, g, u])?;
            Ok(())
        })
        .await
    }

    async fn remove_user_from_group(
        &self,
        account_id: &str,
        group: &str,
        user: &str,
    ) -> Result<bool> {
        let (a, g, u) = (account_id.to_owned(), group.to_owned(), user.to_owned());
        self.write(move |c| {
            Ok(c.prepare_cached("DELETE FROM group_members WHERE account_id = ?1 AND group_name = ?2 AND user_name = ?3")?
                .execute([a, g, u])?
                > 0)
        })
        .await
    }

    async fn list_groups_for_user(&self, account_id: &str, user: &str) -> Result<Vec<Group>> {
        let (a, u) = (account_id.to_owned(), user.to_owned());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT g.account_id, g.name, g.group_id, g.path, g.created_ms FROM groups g \
                 JOIN group_members m ON m.account_id = g.account_id AND m.group_name = g.name \
                 WHERE m.account_id = ?1 AND m.user_name = ?2 ORDER BY g.name",
            )?;
            collect(st.query_map([a, u], group_from_row)?)
        })
        .await
    }

    async fn create_role(&self, r: Role) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO roles (account_id, name, role_id, path, trust_policy, max_session_secs, description, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![r.account_id, r.name, r.role_id, r.path, r.trust_policy, r.max_session_secs, r.description, r.created.0])
            .map_err(|e| if is_unique_violation(&e) { Error::Conflict(format!("role {}", r.name)) } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn get_role(&self, account_id: &str, name: &str) -> Result<Option<Role>> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.cached(format!("role:{account_id}:{}", name.to_lowercase()), move |c| {
            Ok(c.prepare_cached(
                "SELECT account_id, name, role_id, path, trust_policy, max_session_secs, description, created_ms \
                 FROM roles WHERE account_id = ?1 AND name = ?2",
            )?
            .query_row([a, n], |r| {
                Ok(Role {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    role_id: r.get(2)?,
                    path: r.get(3)?,
                    trust_policy: r.get(4)?,
                    max_session_secs: r.get(5)?,
                    description: r.get(6)?,
                    created: ts(r.get(7)?),
                })
            })
            .optional()?)
        })
        .await
    }

    async fn delete_role(&self, account_id: &str, name: &str) -> Result<bool> {
        let (a, n) = (account_id.to_owned(), name.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM identity_policies WHERE account_id = ?1 AND principal_type = 'role' AND principal_name = ?2",
            )?
            .execute([&a, &n])?;
            Ok(c.prepare_cached("DELETE FROM roles WHERE account_id = ?1 AND name = ?2")?.execute([a, n])? > 0)
        })
        .await
    }

    async fn put_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()> {
        let (a, p, n, d) = (
            account_id.to_owned(),
            principal.to_owned(),
            name.to_owned(),
            document.to_owned(),
        );
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO identity_policies (account_id, principal_type, principal_name, policy_name, document) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(account_id, principal_type, principal_name, policy_name) DO UPDATE SET document = ?5",
            )?
            .execute(params![a, kind.as_str(), p, n, d])?;
            Ok(())
        })
        .await
    }

    async fn get_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
    ) -> Result<Option<String>> {
        let (a, p, n) = (account_id.to_owned(), principal.to_owned(), name.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT document FROM identity_policies \
                 WHERE account_id = ?1 AND principal_type = ?2 AND principal_name = ?3 AND policy_name = ?4",
            )?
            .query_row(params![a, kind.as_str(), p, n], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn delete_identity_policy(
        &self,
        account_id: &str,
        kind: PrincipalType,
        principal: &str,
        name: &str,
    ) -> Result<bool> {
        let (a, p, n) = (account_id.to_owned(), principal.to_owned(), name.to_owned());
        self.write(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM identity_policies \
                 WHERE account_id = ?1 AND principal_type = ?2 AND principal_name = ?3 AND policy_name = ?4",
            )?
            .execute(params![a, kind.as_str(), p, n])?
                > 0)
        })
        .await
    }

    async fn user_policies(&self, account_id: &str, user: &str) -> Result<Vec<String>> {
        let (a, u) = (account_id.to_owned(), user.to_owned());
        self.cached(format!("upol:{account_id}:{}", user.to_lowercase()), move |c| {
            let mut st = c.prepare_cached(
                "SELECT document FROM identity_policies \
                 WHERE account_id = ?1 AND principal_type = 'user' AND principal_name = ?2 \
                 UNION ALL \
                 SELECT p.document FROM identity_policies p \
                 JOIN group_members m ON m.account_id = p.account_id AND m.group_name = p.principal_name \
                 WHERE p.account_id = ?1 AND p.principal_type = 'group' AND m.user_name = ?2",
            )?;
            collect(st.query_map([a, u], |r| r.get(0))?)
        })
        .await
    }

    async fn role_policies(&self, account_id: &str, role: &str) -> Result<Vec<String>> {
        let (a, r) = (account_id.to_owned(), role.to_owned());
        self.cached(format!("rpol:{account_id}:{}", role.to_lowercase()), move |c| {
            let mut st = c.prepare_cached(
                "SELECT document FROM identity_policies WHERE account_id = ?1 AND principal_type = 'role' AND principal_name = ?2",
            )?;
            collect(st.query_map([a, r], |r| r.get(0))?)
        })
        .await
    }

    async fn create_session(&self, s: SessionRecord) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO sessions (access_key_id, account_id, role_name, session_name, wrapped_secret, token_hash, mfa, \
                 source_arn, expires_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                s.access_key_id,
                s.account_id,
                s.role_name,
                s.session_name,
                s.wrapped_secret,
                s.token_hash,
                s.mfa,
                s.source_arn,
                s.expires.0,
                s.created.0
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, access_key_id: &str) -> Result<Option<SessionRecord>> {
        let id = access_key_id.to_owned();
        self.cached(format!("sess:{access_key_id}"), move |c| {
            Ok(c.prepare_cached(
                "SELECT access_key_id, account_id, role_name, session_name, wrapped_secret, token_hash, mfa, source_arn, \
                 expires_ms, created_ms FROM sessions WHERE access_key_id = ?1",
            )?
            .query_row([id], |r| {
                Ok(SessionRecord {
                    access_key_id: r.get(0)?,
                    account_id: r.get(1)?,
                    role_name: r.get(2)?,
                    session_name: r.get(3)?,
                    wrapped_secret: r.get(4)?,
                    token_hash: r.get(5)?,
                    mfa: r.get(6)?,
                    source_arn: r.get(7)?,
                    expires: ts(r.get(8)?),
                    created: ts(r.get(9)?),
                })
            })
            .optional()?)
        })
        .await
    }

    async fn delete_expired_sessions(&self, before: Timestamp) -> Result<usize> {
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM sessions WHERE expires_ms < ?1")?
                    .execute([before.0])?,
            )
        })
        .await
    }

    async fn create_mfa_device(&self, d: MfaDevice) -> Result<()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO mfa_devices (account_id, user_name, serial, wrapped_secret, last_step, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![d.account_id, d.user_name, d.serial, d.wrapped_secret, d.last_step, d.created.0])
            .map_err(|e| if is_unique_violation(&e) { Error::Conflict(format!("an MFA device for {}", d.user_name)) } else { e.into() })?;
            Ok(())
        })
        .await
    }

    async fn get_mfa_device(&self, account_id: &str, user: &str) -> Result<Option<MfaDevice>> {
        let (a, u) = (account_id.to_owned(), user.to_owned());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT account_id, user_name, serial, wrapped_secret, last_step, created_ms FROM mfa_devices \
                 WHERE account_id = ?1 AND user_name = ?2",
            )?
            .query_row([a, u], |r| {
                Ok(MfaDevice {
                    account_id: r.get(0)?,
                    user_name: r.get(1)?,
                    serial: r.get(2)?,
                    wrapped_secret: r.get(3)?,
                    last_step: r.get(4)?,
                    created: ts(r.get(5)?),
                })
            })
            .optional()?)
        })
        .await
    }

    async fn use_mfa_step(&self, account_id: &str, user: &str, step: i64) -> Result<bool> {
        let (a, u) = (account_id.to_owned(), user.to_owned());
        self.write(move |c| {
            Ok(c.prepare_cached(
                "UPDATE mfa_devices SET last_step = ?3 WHERE account_id = ?1 AND user_name = ?2 AND last_step < ?3",
            )?
            .execute(params![a, u, step])?
                > 0)
        })
        .await
    }

    async fn create_grant(&self, g: Grant, max_per_key: usize) -> Result<Grant> {
        let now = self.clock.now();
        self.write(move |c| {
            let key = g.key_id.to_string();
            if !g.name.is_empty() {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 AND name = ?2"
                ))?;
                let same: Vec<Grant> = collect(st.query_map([&key, &g.name], grant_from_row)?)?;
                if let Some(existing) = same.into_iter().find(|e| {
                    e.grantee == g.grantee
                        && e.retiring_principal == g.retiring_principal
                        && e.operations == g.operations
                        && e.constraints == g.constraints
                }) {
                    return Ok(existing);
                }
            }
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM grants WHERE key_id = ?1")?
                .query_row([&key], |r| r.get(0))?;
            if n >= limit_i64(max_per_key) {
                return Err(Error::Rejected(KmsError::LimitExceededException(format!(
                    "the key already has the most grants allowed ({max_per_key})"
                ))));
            }
            c.prepare_cached(&format!(
                "INSERT INTO grants ({GRANT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                g.grant_id,
                key,
                g.name,
                g.grantee,
                g.retiring_principal,
                g.issuing_account,
                encode_operations(&g.operations),
                g.constraints.as_ref().map(encode_constraints),
                g.created.0,
            ])?;
            snapshot_config(c, g.key_id, now)?;
            Ok(g)
        })
        .await
    }

    async fn get_grant(&self, grant_id: &str) -> Result<Option<Grant>> {
        let id = grant_id.to_owned();
        self.read(move |c| {
            Ok(c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = ?1"
            ))?
            .query_row([id], grant_from_row)
            .optional()?)
        })
        .await
    }

    async fn list_grants(
        &self,
        key_id: Uuid,
        grant_id: Option<&str>,
        grantee: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Grant>> {
        let (id, gid, gr, after) = (
            key_id.to_string(),
            grant_id.map(str::to_owned),
            grantee.map(str::to_owned),
            after.unwrap_or("").to_owned(),
        );
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 AND (?2 IS NULL OR grant_id = ?2) \
                 AND (?3 IS NULL OR grantee = ?3) AND grant_id > ?4 ORDER BY grant_id LIMIT ?5"
            ))?;
            collect(st.query_map(params![id, gid, gr, after, limit_i64(limit)], grant_from_row)?)
        })
        .await
    }

    async fn list_retirable_grants(
        &self,
        retiring_principal: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Grant>> {
        let (rp, after) = (
            retiring_principal.to_owned(),
            after.unwrap_or("").to_owned(),
        );
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {GRANT_COLUMNS} FROM grants WHERE retiring_principal = ?1 AND grant_id > ?2 \
                 ORDER BY grant_id LIMIT ?3"
            ))?;
            collect(st.query_map(params![rp, after, limit_i64(limit)], grant_from_row)?)
        })
        .await
    }

    async fn grants_for(&self, key_id: Uuid, grantees: Vec<String>) -> Result<Vec<Grant>> {
        let id = key_id.to_string();
        self.cached(
            format!("grants:{key_id}:{}", grantees.join(" ")),
            move |c| {
                let mut st = c.prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE key_id = ?1 AND grantee = ?2"
                ))?;
                let mut out = Vec::new();
                for g in &grantees {
                    out.extend(collect(st.query_map([&id, g], grant_from_row)?)?);
                }
                Ok(out)
            },
        )
        .await
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<bool> {
        let id = grant_id.to_owned();
        let now = self.clock.now();
        self.write(move |c| {
            let key: Option<String> = c
                .prepare_cached("SELECT key_id FROM grants WHERE grant_id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let deleted = c
                .prepare_cached("DELETE FROM grants WHERE grant_id = ?1")?
                .execute([&id])?
                > 0;
            if let Some(k) = key {
                snapshot_config(c, parse_uuid(&k)?, now)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn append_audit(&self, r: AuditRecord) -> Result<u64> {
        // Serialise outside the writer thread unless the body needs the
        // pending-deletion counter, which only the writer can read.
        let prebuilt = r
            .pending_deletion_key
            .is_none()
            .then(|| r.canonical_json(0));
        if self.call_link().is_some()
            && let Some((link, after_commit)) = end_call::<CallLink>()
        {
            let (reply, answer) = oneshot::channel();
            link.messages
                .send(CallMsg::Event {
                    record: Box::new(r),
                    prebuilt,
                    reply,
                })
                .map_err(|_| Error::Closed)?;
            let seq = answer.await.map_err(|_| Error::Closed)??;
            for f in after_commit {
                f();
            }
            return Ok(seq);
        }
        // A call that never wrote: its event commits on its own, and so
        // must anything it writes after it (not be held for an event that
        // never comes, then undone).
        mark_call_ended();
        self.writer_job(move |w| append_event(w, &r, prebuilt), false)
            .await
    }

    async fn lookup_audit(
        &self,
        f: AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT seq, body FROM audit_events WHERE seq < ?1 \
                 AND (?2 IS NULL OR account_id = ?2 OR key_arns LIKE ('%:' || ?2 || ':key/%')) AND (?3 IS NULL OR time_ms >= ?3) AND (?4 IS NULL OR time_ms <= ?4) \
                 AND (?5 IS NULL OR (' ' || key_arns || ' ') LIKE ('% ' || ?5 || ' %') ESCAPE '\\') \
                 AND (?6 IS NULL OR principal_arn = ?6) AND (?7 IS NULL OR operation = ?7) AND (?8 IS NULL OR outcome = ?8) \
                 ORDER BY seq DESC LIMIT ?9",
            )?;
            let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
            let key = f.key_arn.map(|k| k.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            collect(st.query_map(
                params![
                    before,
                    f.account_id,
                    f.start.map(|t| t.0),
                    f.end.map(|t| t.0),
                    key,
                    f.principal_arn,
                    f.operation,
                    f.outcome,
                    limit_i64(limit)
                ],
                |row| Ok((row.get::<_, i64>(0).map(|s| u64::try_from(s).unwrap_or(0))?, row.get(1)?)),
            )?)
        })
        .await
    }

    async fn audit_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainRow>> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT seq, account_id, principal_arn, operation, outcome, key_arns, body, prev_hash, hash \
                 FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            collect(st.query_map(params![i64::try_from(after).unwrap_or(i64::MAX), limit_i64(limit)], |r| {
                Ok(ChainRow {
                    seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    account_id: r.get(1)?,
                    principal_arn: r.get(2)?,
                    operation: r.get(3)?,
                    outcome: r.get(4)?,
                    key_arns: r.get(5)?,
                    body: r.get(6)?,
                    prev_hash: r.get(7)?,
                    hash: r.get(8)?,
                })
            })?)
        })
        .await
    }

    async fn audit_anchor(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")?
                    .query_row([], |r| {
                        Ok((u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0), r.get(1)?))
                    })
                    .optional()?,
            )
        })
        .await
    }

    async fn prune_audit(&self, before: Timestamp) -> Result<usize> {
        let now = self.clock.now();
        self.write(move |c| {
            let cut: Option<(i64, Vec<u8>)> = c
                .prepare_cached("SELECT seq, hash FROM audit_events WHERE time_ms < ?1 ORDER BY seq DESC LIMIT 1")?
                .query_row([before.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((seq, hash)) = cut else { return Ok(0) };
            c.prepare_cached(
                "INSERT INTO audit_anchor (id, seq, hash, pruned_ms) VALUES (1, ?1, ?2, ?3) \
                 ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2, pruned_ms = ?3",
            )?
            .execute(params![seq, hash, now.0])?;
            Ok(c.prepare_cached("DELETE FROM audit_events WHERE seq <= ?1")?.execute([seq])?)
        })
        .await
    }

    async fn key_config_history(
        &self,
        key_id: Uuid,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, Timestamp, String)>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT version, account_id, changed_ms, config FROM key_config_history \
                 WHERE key_id = ?1 AND version > ?2 ORDER BY version LIMIT ?3",
            )?;
            collect(st.query_map(params![key_id.to_string(), after, limit], config_row)?)
        })
        .await
    }

    async fn key_config_at(
        &self,
        key_id: Uuid,
        at: Timestamp,
    ) -> Result<Option<(u64, String, Timestamp, String)>> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT version, account_id, changed_ms, config FROM key_config_history \
                 WHERE key_id = ?1 AND changed_ms <= ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![key_id.to_string(), at.0], config_row)
            .optional()?)
        })
        .await
    }
}

/// One row of `key_config_history`: (version, account, time, JSON).
fn config_row(r: &Row<'_>) -> rusqlite::Result<(u64, String, Timestamp, String)> {
    Ok((
        u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        r.get(1)?,
        ts(r.get(2)?),
        r.get(3)?,
    ))
}

fn not_found(id: Uuid) -> KmsError {
    KmsError::NotFoundException(format!("key '{id}' does not exist"))
}

fn insert_access_key(c: &Connection, k: &AccessKeyRecord) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO access_keys (id, account_id, user_name, wrapped_secret, status, created_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        k.access_key_id,
        k.account_id,
        k.user_name,
        k.wrapped_secret,
        k.status.as_str(),
        k.created.0
    ])?;
    Ok(())
}

fn upsert_tag(c: &Connection, key_id: Uuid, t: &Tag) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO tags (key_id, tag_key, tag_value) VALUES (?1, ?2, ?3) \
         ON CONFLICT(key_id, tag_key) DO UPDATE SET tag_value = ?3",
    )?
    .execute(params![key_id.to_string(), t.key, t.value])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that runs `sql` and reports (its own result, the commit error).
    fn job(sql: &'static str, out: std::sync::mpsc::Sender<(bool, bool)>) -> Job {
        Box::new(move |w: &mut Writer| {
            let ran = w.conn.execute_batch(sql).is_ok();
            Box::new(move |commit_error| {
                let _ = out.send((ran, commit_error.is_some()));
            })
        })
    }

    #[test]
    fn a_batch_rolled_back_midway_fails_whole_and_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let (tx, rx) = mpsc::channel::<Job>(16);
        let (out, results) = std::sync::mpsc::channel();
        // All queued before the writer starts, so they form one batch.
        tx.try_send(job("INSERT INTO t VALUES (1)", out.clone()))
            .unwrap();
        // What SQLite does on a full disk or an I/O error.
        tx.try_send(job("ROLLBACK", out.clone())).unwrap();
        tx.try_send(job("INSERT INTO t VALUES (3)", out.clone()))
            .unwrap();
        drop((tx, out));
        let state = Writer {
            conn,
            chain_head: Some((7, [7; 32])),
            aborted: false,
        };
        let check = Connection::open(dir.path().join("t.db")).unwrap();
        let state = writer_loop(state, rx, &CheckpointRequests::default());
        assert_eq!(
            state.chain_head, None,
            "the cached chain head was undone with the batch"
        );
        let got: Vec<(bool, bool)> = results.iter().collect();
        // The first two ran but are told the batch failed; the third never
        // ran (its reply channel was dropped, which its caller sees as a
        // failure too).
        assert_eq!(got, vec![(true, true), (true, true)]);
        let rows: i64 = check
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "no write of the failed batch was committed");
    }

    /// A database made by an older build is brought up to date at open:
    /// version 5 drops the per-account audit index no query used.
    #[test]
    fn an_older_database_is_migrated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsd.db");
        let index = "SELECT count(*) FROM sqlite_master WHERE name = 'audit_by_account'";
        {
            let c = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..4] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", 4).unwrap();
            let n: i64 = c.query_row(index, [], |r| r.get(0)).unwrap();
            assert_eq!(n, 1, "version 4 had the index");
        }
        drop(store(&dir));
        let c = Connection::open(&path).unwrap();
        let version: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        let n: i64 = c.query_row(index, [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "the index is gone");
    }

    /// A database from a newer build is refused, not half understood.
    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsd.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        match open_store(&dir) {
            Err(Error::TooNew { found: 99, .. }) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer schema was opened"),
        }
    }

    /// The store at `<dir>/kmsd.db`, opened (created, migrated) now.
    fn open_store(dir: &tempfile::TempDir) -> Result<SqliteStore> {
        let clock = Arc::new(crate::clock::SystemClock) as Arc<dyn Clock>;
        SqliteStore::open(&dir.path().join("kmsd.db"), 2, clock)
    }

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        open_store(dir).unwrap()
    }

    async fn events(s: &SqliteStore) -> usize {
        s.audit_chain(0, 100).await.unwrap().len()
    }

    /// A call's writes are applied at once (the call sees their results)
    /// but nobody reads them until the call's event commits with them.
    #[tokio::test]
    async fn a_calls_writes_commit_with_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        super::super::one_transaction(async {
            s.set_meta("first", "1").await.unwrap();
            s.set_meta("second", "2").await.unwrap();
            assert_eq!(
                s.get_meta("first").await.unwrap(),
                None,
                "not before the event"
            );
            assert_eq!(events(&s).await, 0);
            s.append_audit(AuditRecord::sample()).await.unwrap();
        })
        .await;
        assert_eq!(s.get_meta("first").await.unwrap().as_deref(), Some("1"));
        assert_eq!(s.get_meta("second").await.unwrap().as_deref(), Some("2"));
        assert_eq!(events(&s).await, 1);
    }

    /// A write after the event of a call that wrote nothing before it
    /// commits on its own, like one after the event of a call that did.
    #[tokio::test]
    async fn a_write_after_a_read_only_calls_event_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        // Long enough that a write held for an event would still be open.
        s.call_timeout = std::time::Duration::from_secs(60);
        super::super::one_transaction(async {
            s.append_audit(AuditRecord::sample()).await.unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(10), s.set_meta("after", "1"))
                .await
                .expect("answered")
                .unwrap();
            assert_eq!(
                s.get_meta("after").await.unwrap().as_deref(),
                Some("1"),
                "committed before the call ends"
            );
        })
        .await;
        assert_eq!(s.get_meta("after").await.unwrap().as_deref(), Some("1"));
        assert_eq!(events(&s).await, 1);
    }

    /// A call that goes away after writing, without its event, leaves
    /// nothing behind, and the writer goes on serving others.
    #[tokio::test]
    async fn an_abandoned_calls_writes_are_undone() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        // Long enough that only the call's going away can end its transaction.
        s.call_timeout = std::time::Duration::from_secs(60);
        super::super::one_transaction(async {
            s.set_meta("abandoned", "1").await.unwrap();
        })
        .await;
        tokio::time::timeout(std::time::Duration::from_secs(10), s.set_meta("later", "2"))
            .await
            .expect("the writer let go of the call when it went away")
            .unwrap();
        assert_eq!(s.get_meta("abandoned").await.unwrap(), None);
        assert_eq!(s.get_meta("later").await.unwrap().as_deref(), Some("2"));
        assert_eq!(events(&s).await, 0);
    }

    /// Rows cached while a call's write was open are not served after it
    /// commits: the commit moves the cache generation on.
    #[tokio::test]
    async fn a_calls_commit_refreshes_the_read_cache() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        Connection::open(dir.path().join("kmsd.db"))
            .unwrap()
            .execute_batch(
                "INSERT INTO accounts (id, name, created_ms) VALUES ('111122223333', 'a', 0)",
            )
            .unwrap();
        let acct = "111122223333";
        assert!(s.user_policies(acct, "u").await.unwrap().is_empty());
        super::super::one_transaction(async {
            s.put_identity_policy(acct, PrincipalType::User, "u", "p", "{}")
                .await
                .unwrap();
            assert!(
                s.user_policies(acct, "u").await.unwrap().is_empty(),
                "cached before the commit"
            );
            s.append_audit(AuditRecord::sample()).await.unwrap();
        })
        .await;
        assert_eq!(
            s.user_policies(acct, "u").await.unwrap(),
            vec!["{}".to_owned()]
        );
    }

    /// `after_commit` inside a call waits for the call's commit, and is
    /// dropped with writes that are undone.
    #[tokio::test]
    async fn after_commit_waits_for_the_calls_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let ran = Arc::new(AtomicUsize::new(0));
        // Counts a run, and only if the call's write is already committed
        // (read from a connection of its own).
        let db = dir.path().join("kmsd.db");
        let hook = |ran: &Arc<AtomicUsize>| {
            let (ran, db) = (Arc::clone(ran), db.clone());
            move || {
                let committed: Option<String> = Connection::open(&db)
                    .unwrap()
                    .query_row("SELECT value FROM meta WHERE name = 'x'", [], |r| r.get(0))
                    .optional()
                    .unwrap();
                if committed.is_some() {
                    ran.fetch_add(1, Ordering::SeqCst);
                }
            }
        };
        super::super::one_transaction(async {
            s.set_meta("x", "1").await.unwrap();
            super::super::after_commit(hook(&ran));
            assert_eq!(ran.load(Ordering::SeqCst), 0);
            s.append_audit(AuditRecord::sample()).await.unwrap();
            assert_eq!(ran.load(Ordering::SeqCst), 1);
        })
        .await;
        super::super::one_transaction(async {
            s.set_meta("y", "1").await.unwrap();
            super::super::after_commit(hook(&ran));
        })
        .await;
        assert_eq!(ran.load(Ordering::SeqCst), 1, "undone, so not run");
        // Nor when the call's event cannot be written.
        Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let refused = super::super::one_transaction(async {
            s.set_meta("z", "1").await.unwrap();
            super::super::after_commit(hook(&ran));
            s.append_audit(AuditRecord::sample()).await
        })
        .await;
        assert!(refused.is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 1, "event refused, so not run");
        super::super::after_commit(hook(&ran));
        assert_eq!(ran.load(Ordering::SeqCst), 2, "outside a call: at once");
    }

    /// A call that has not recorded its event by its deadline is undone and
    /// told so; the writer, held meanwhile, goes on with the next job.
    #[tokio::test]
    async fn a_call_past_its_deadline_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.call_timeout = std::time::Duration::from_millis(50);
        let s = Arc::new(s);
        // Bounded: without its deadline the writer would hold the call
        // for ever, and the test must fail rather than hang.
        let late = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            super::super::one_transaction(async {
                s.set_meta("late", "1").await.unwrap();
                // A write from another task (outside the call) queues behind
                // the call's transaction: it is served only once the writer
                // has given up on the call, so no timing is guessed here.
                let other = Arc::clone(&s);
                tokio::spawn(async move { other.set_meta("other", "1").await })
                    .await
                    .unwrap()
                    .unwrap();
                s.append_audit(AuditRecord::sample()).await
            }),
        )
        .await
        .expect("the writer gave up on the call at its deadline");
        assert!(matches!(late, Err(Error::Closed)), "{late:?}");
        assert_eq!(s.get_meta("late").await.unwrap(), None);
        assert_eq!(s.get_meta("other").await.unwrap().as_deref(), Some("1"));
        assert_eq!(events(&s).await, 0);
    }

    /// A call whose event cannot be written changes nothing; the events and
    /// writes of other calls in the same batch are untouched.
    #[tokio::test]
    async fn a_call_whose_event_fails_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let db = Connection::open(dir.path().join("kmsd.db")).unwrap();
        db.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events \
             WHEN NEW.operation = 'Refused' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        let refused = AuditRecord {
            operation: "Refused".into(),
            ..AuditRecord::sample()
        };
        // The writer is held in a job of its own (already running, so in
        // a batch of its own) while both calls queue their first writes,
        // and let go only once both are queued: the two calls share the
        // next batch.
        let (entered, inside) = oneshot::channel::<()>();
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let jobs = s.jobs.clone().unwrap();
        let (held, (failed, ok, ())) = tokio::join!(
            s.writer_job(
                move |_| {
                    let _ = entered.send(());
                    let _ = gate.recv();
                    Ok(())
                },
                false,
            ),
            async {
                inside.await.unwrap();
                tokio::join!(
                    super::super::one_transaction(async {
                        s.set_meta("refused", "1").await.unwrap();
                        s.append_audit(refused).await
                    }),
                    super::super::one_transaction(async {
                        s.set_meta("kept", "1").await.unwrap();
                        s.append_audit(AuditRecord::sample()).await
                    }),
                    async {
                        while jobs.max_capacity() - jobs.capacity() < 2 {
                            tokio::task::yield_now().await;
                        }
                        open.send(()).unwrap();
                    },
                )
            },
        );
        held.unwrap();
        assert!(failed.is_err());
        assert_eq!(
            ok.unwrap(),
            1,
            "the chain head was read back after the failed insert"
        );
        assert_eq!(s.get_meta("refused").await.unwrap(), None);
        assert_eq!(s.get_meta("kept").await.unwrap().as_deref(), Some("1"));
        assert_eq!(events(&s).await, 1);
    }
}
