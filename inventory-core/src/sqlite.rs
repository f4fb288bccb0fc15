//! The embedded store: SQLite in WAL mode, one writer thread with group
//! commit, and a small pool of read-only connections.
//!
//! Writes go through a channel to one thread that owns the only write
//! connection (see [`writer`] for the group commit). Reads run on read-only
//! connections on tokio's blocking pool; WAL lets them proceed while the
//! writer commits. The schema is described in [`schema`].

mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use protocol::{ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, Semaphore, oneshot};

use crate::{
    ApplyOutcome, Error, InventoryStore, JournalEntry, Outbox, OutboxEntry, OutboxPosition,
    OwnerRecord, StoreScan,
};

use writer::{Batching, Request};

/// SQLite's `synchronous` setting: how hard a commit pushes data to disk.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// No fsync at all: an OS crash or power loss may corrupt the database.
    /// For throwaway data only.
    Off,
    /// In WAL mode, commits survive a crash of the process (SIGKILL included)
    /// but the last ones may be lost on power loss or an OS crash.
    Normal,
    /// Every commit fsyncs the WAL: an acknowledged change survives power loss.
    /// The default: group commit pays one fsync per batch, not per change.
    #[default]
    Full,
    /// `Full`, plus an fsync of the directory after the WAL is reset.
    Extra,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    path: PathBuf,
    batch_limit: usize,
    linger: Duration,
    readers: usize,
    synchronous: Synchronous,
    busy_timeout: Duration,
}

impl SqliteConfig {
    /// The database file at `path` (created if absent), with defaults: up to
    /// 256 changes per commit, a 500 µs linger, 4 readers, `synchronous = FULL`, a 5 s busy
    /// timeout.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            batch_limit: 256,
            linger: Duration::from_micros(500),
            readers: 4,
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// The most changes committed in one transaction (at least 1).
    #[must_use]
    pub fn with_batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = limit.max(1);
        self
    }

    /// How long the writer may wait for the callers its last commit answered
    /// to send their next change, so that they share the next commit (and its
    /// fsync). Zero commits whatever is queued at once.
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How many loads may run at once, each on its own read-only connection
    /// (at least 1).
    #[must_use]
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// The durability of a commit; see [`Synchronous`].
    #[must_use]
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a connection waits for a lock held by another process
    /// before giving up with [`Error::Unavailable`].
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Counters of the writer's work since the store was opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Write transactions run, one commit (and one fsync) each.
    pub batches: u64,
    /// Changes the writer answered (applied, already applied or refused).
    pub requests: u64,
    /// The most changes one transaction carried.
    pub largest_batch: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    largest_batch: AtomicU64,
}

/// An [`InventoryStore`] in one SQLite file. Cloning shares the same writer
/// and readers; dropping the last clone lets the writer finish what is queued
/// and waits for its thread to end.
///
/// A change whose `apply` future is dropped after it was queued is still
/// applied: the caller learns the outcome by retrying with the same id.
///
/// ```
/// use inventory_core::{InventoryStore, SqliteConfig, SqliteStore};
/// use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(SqliteConfig::new(dir.path().join("inventory.db")))?;
/// let alice = OwnerId::account(UserId::parse("alice")?);
/// let change = Change::new(ChangeId::random())
///     .grant(alice.clone(), ItemId::parse("wood")?, Quantity::new(5)?)
///     .validate()?;
/// store.apply(&change).await?;
/// assert_eq!(store.load(&alice).await?.version.get(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Both are `Some` until the store is dropped; dropping the sender is what
    // tells the writer to stop.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    counters: Arc<Counters>,
    /// Notified after each applied change (the outbox's wake-up).
    signal: Arc<Notify>,
    /// The connection that moves the outbox mark, opened on first use: a
    /// write outside the writer thread, a few times a second at most.
    marker: Arc<Mutex<Option<Connection>>>,
    path: PathBuf,
    busy_timeout: Duration,
    synchronous: Synchronous,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database, migrates its schema and
    /// starts the writer thread.
    pub fn open(config: SqliteConfig) -> Result<Self, Error> {
        let mut conn = Connection::open(&config.path).map_err(sql_error)?;
        conn.busy_timeout(config.busy_timeout).map_err(sql_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend(format!(
                "{} cannot use WAL mode (got {mode})",
                config.path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", config.synchronous.pragma())
            .map_err(sql_error)?;
        conn.set_prepared_statement_cache_capacity(32);
        schema::migrate(&mut conn)?;

        let counters = Arc::new(Counters::default());
        let (requests, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("inventory-sqlite-writer".to_owned())
            .spawn({
                let counters = Arc::clone(&counters);
                let batching = Batching {
                    limit: config.batch_limit,
                    linger: config.linger,
                };
                move || writer::run(conn, &queue, batching, &counters)
            })
            .map_err(|e| Error::Backend(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(ReaderPool {
            path: config.path.clone(),
            busy_timeout: config.busy_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(config.readers)),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                requests: Some(requests),
                writer: Some(writer),
                readers,
                counters,
                signal: Arc::new(Notify::new()),
                marker: Arc::new(Mutex::new(None)),
                path: config.path,
                busy_timeout: config.busy_timeout,
                synchronous: config.synchronous,
            }),
        })
    }

    /// What the writer has done so far: with many concurrent callers,
    /// `batches` grows much more slowly than `requests`.
    #[must_use]
    pub fn stats(&self) -> SqliteStats {
        let c = &self.inner.counters;
        SqliteStats {
            batches: c.batches.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let writer_gone = || Error::Unavailable("the SQLite writer thread has stopped".to_owned());
        let (reply, outcome) = oneshot::channel();
        self.inner
            .requests
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(Request {
                change: change.clone(),
                reply,
            })
            .map_err(|_| writer_gone())?;
        let outcome = outcome.await.map_err(|_| writer_gone())?;
        if let Ok(ApplyOutcome::Applied(_)) = &outcome {
            self.inner.signal.notify_waiters();
        }
        outcome
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        let owner = owner.clone();
        self.inner
            .readers
            .run(move |conn| read::load(conn, &owner))
            .await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        let user = user.clone();
        self.inner
            .readers
            .run(move |conn| read::load_user(conn, &user))
            .await
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        let entry = self
            .inner
            .readers
            .run(move |conn| read::recorded(conn, id))
            .await?;
        Ok(entry.map(|entry| entry.event()))
    }

    fn outbox(&self) -> Option<&dyn Outbox> {
        Some(self)
    }
}

/// The journal is the outbox: it is written in the same transaction as each
/// change, so every applied change is in it, in commit order; positions are
/// journal sequence numbers; the mark is the `outbox_mark` row.
#[async_trait]
impl Outbox for SqliteStore {
    async fn read_after(
        &self,
        after: Option<&OutboxPosition>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error> {
        let after = match after {
            Some(position) => Some(seq_of(position)?),
            None => None,
        };
        let page = self
            .inner
            .readers
            .run(move |conn| {
                let after = match after {
                    Some(seq) => seq,
                    None => read::outbox_mark(conn)?,
                };
                read::journal_page(conn, after, limit)
            })
            .await?;
        Ok(page
            .into_iter()
            .map(|(seq, entry)| OutboxEntry {
                // Sequence numbers start at 1.
                position: OutboxPosition::from_seq(seq as u64),
                event: entry.event(),
            })
            .collect())
    }

    async fn mark_published(&self, position: &OutboxPosition) -> Result<(), Error> {
        let seq = seq_of(position)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut marker = inner.marker.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = match marker.take() {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open(&inner.path).map_err(sql_error)?;
                    conn.busy_timeout(inner.busy_timeout).map_err(sql_error)?;
                    conn.pragma_update(None, "synchronous", inner.synchronous.pragma())
                        .map_err(sql_error)?;
                    conn
                }
            };
            // Never backwards: a slow mark must not undo a later one.
            let moved = conn
                .execute(
                    "UPDATE outbox_mark SET seq = ?1 WHERE id = 1 AND seq < ?1",
                    [seq],
                )
                .map(drop)
                .map_err(sql_error);
            *marker = Some(conn);
            moved
        })
        .await
        .map_err(|e| Error::Unavailable(format!("the outbox mark task failed: {e}")))?
    }

    fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.signal)
    }
}

fn seq_of(position: &OutboxPosition) -> Result<i64, Error> {
    position
        .seq()
        .and_then(|seq| i64::try_from(seq).ok())
        .ok_or_else(|| Error::Backend("not a SQLite outbox position".to_owned()))
}

/// How many journal entries or owners one read of a scan returns.
const SCAN_PAGE: usize = 4096;

#[async_trait]
impl StoreScan for SqliteStore {
    async fn scan_journal(
        &self,
        visit: &mut (dyn FnMut(JournalEntry) + Send),
    ) -> Result<(), Error> {
        let mut after = 0;
        loop {
            let entries = self
                .inner
                .readers
                .run(move |conn| read::journal_page(conn, after, SCAN_PAGE))
                .await?;
            let Some((last, _)) = entries.last() else {
                return Ok(());
            };
            after = *last;
            entries.into_iter().for_each(|(_, entry)| visit(entry));
        }
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        let mut after = String::new();
        loop {
            let from = after.clone();
            let records = self
                .inner
                .readers
                .run(move |conn| read::owners_page(conn, &from, SCAN_PAGE))
                .await?;
            let Some(last) = records.last() else {
                return Ok(());
            };
            after = last.owner.to_string();
            records.into_iter().for_each(&mut *visit);
        }
    }
}

/// Read-only connections, opened on first need and reused. A semaphore
/// bounds how many loads run at once, so a burst of loads waits here rather
/// than tying up blocking threads. (Pool crates for rusqlite pin their own
/// rusqlite version; this is the little we need.)
#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    /// Runs `read` on an idle connection on tokio's blocking pool.
    async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle().pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => pool.open_reader()?,
            };
            let result = read(&mut conn);
            pool.idle().push(conn);
            result
        })
        .await
        .map_err(|e| Error::Unavailable(format!("a read task failed: {e}")))?
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A Vec of connections has no invariant a panic could break.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_reader(&self) -> Result<Connection, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(sql_error)?;
        conn.busy_timeout(self.busy_timeout).map_err(sql_error)?;
        Ok(conn)
    }
}

/// Maps a SQLite failure: lock contention and I/O trouble are
/// [`Error::Unavailable`] (retry), anything else is [`Error::Backend`].
fn sql_error(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::DiskFull
            | C::CannotOpen
            | C::OutOfMemory
            | C::FileLockingProtocolFailed,
        ) => Error::Unavailable(e.to_string()),
        _ => Error::Backend(e.to_string()),
    }
}

/// Like [`sql_error`], but a value that does not decode, or a write refused
/// by a `CHECK` or type constraint, means `owner`'s stored rows are corrupt.
fn corrupt_or_sql(e: rusqlite::Error, owner: &OwnerId) -> Error {
    let corrupt = matches!(
        e,
        rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
    ) || e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation);
    if corrupt {
        Error::Corrupt {
            owner: owner.clone(),
            detail: e.to_string(),
        }
    } else {
        sql_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_durable_and_limits_stay_positive() {
        let config = SqliteConfig::new("x.db");
        assert_eq!(config.synchronous, Synchronous::Full);
        assert_eq!(config.path(), Path::new("x.db"));
        let config = config.with_batch_limit(0).with_readers(0);
        assert_eq!((config.batch_limit, config.readers), (1, 1));
    }

    #[test]
    fn lock_and_io_failures_are_unavailable_others_are_backend() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let owner = OwnerId::parse("a:alice").expect("owner");
        for (code, expected) in [
            (rusqlite::ffi::SQLITE_BUSY, protocol::ErrorCode::Unavailable),
            (
                rusqlite::ffi::SQLITE_IOERR,
                protocol::ErrorCode::Unavailable,
            ),
            (rusqlite::ffi::SQLITE_FULL, protocol::ErrorCode::Unavailable),
            (rusqlite::ffi::SQLITE_MISUSE, protocol::ErrorCode::Internal),
        ] {
            assert_eq!(sql_error(failure(code)).code(), expected, "{code}");
        }
        assert!(matches!(
            corrupt_or_sql(failure(rusqlite::ffi::SQLITE_CONSTRAINT), &owner),
            Error::Corrupt { .. }
        ));
        assert!(matches!(
            corrupt_or_sql(failure(rusqlite::ffi::SQLITE_BUSY), &owner),
            Error::Unavailable(_)
        ));
    }
}
