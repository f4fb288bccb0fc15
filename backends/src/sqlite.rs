//! One SQLite file in WAL mode: opening, pragmas and migrations, ONE writer
//! thread with group commit, and a small pool of read-only connections.
//!
//! A store built on a [`Database`] keeps only its schema (the migrations it
//! hands to [`Database::open`]) and its SQL (a [`BatchWriter`] for writes,
//! closures for reads). Writes go through a channel to one thread that owns
//! the only write connection (its `writer` module holds the group commit);
//! the store's `write_batch` runs the whole batch in one transaction, and each
//! caller is answered only after it returns, so after the commit (and, under
//! [`Synchronous::Full`], the fsync). Reads run on read-only connections on
//! tokio's blocking pool; WAL lets them proceed while the writer commits.
//!
//! Every store of the workspace shares this one durability setting, `FULL`
//! unless the operator lowers it: a crafted item held in one store must not
//! survive a power loss that its descriptor, in another, does not.

mod readers;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::Error;

use readers::ReaderPool;
use writer::{Batching, Counters, Request};

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
    /// Every commit fsyncs the WAL: an acknowledged write survives power loss.
    /// The default: group commit pays one fsync per batch, not per write.
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

/// How to open a [`Database`].
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
    /// The database file at `path` (created, with its directory, if absent),
    /// with defaults: up to 256 writes per commit, a 500 µs linger, 4 readers,
    /// `synchronous = FULL`, a 5 s busy timeout.
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

    /// The most writes committed in one transaction (at least 1).
    #[must_use]
    pub fn with_batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = limit.max(1);
        self
    }

    /// How long the writer may wait for the callers its last commit answered
    /// to send their next write, so that they share the next commit (and its
    /// fsync). Zero commits whatever is queued at once.
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// How many reads may run at once, each on its own read-only connection
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
    /// before giving up with `SQLITE_BUSY` (a transient error).
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

/// Counters of the writer's work since the database was opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Write transactions run, one commit (and one fsync) each.
    pub batches: u64,
    /// Writes the writer answered (applied or refused).
    pub requests: u64,
    /// The most writes one transaction carried.
    pub largest_batch: u64,
}

/// A store's write side: what the writer thread runs for each batch.
///
/// # Contract
///
/// [`write_batch`](Self::write_batch) runs on the writer thread, which owns
/// the only write connection. It writes the whole batch in ONE transaction
/// and returns once it committed (or gave up), with one outcome per request,
/// in order; the callers are answered with them afterwards. A request it
/// refuses must leave no trace in the commit. Being the only writer is what
/// lets a store check and write in one transaction with nobody in between.
pub trait BatchWriter: Send + 'static {
    /// One write a caller asks for.
    type Request: Send + 'static;
    /// What the caller is answered.
    type Outcome: Send + 'static;

    /// Writes `batch` in one transaction; one outcome per request, in order.
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Self::Request])
    -> Vec<Self::Outcome>;
}

/// One SQLite database: the writer thread running `W` and the reader pool.
/// Cloning shares both; dropping the last clone lets the writer finish what is
/// queued and waits for its thread to end.
///
/// A write whose future is dropped after it was queued is still written: the
/// caller learns the outcome by asking again (stores make writes idempotent).
///
/// ```
/// use backends::{BatchWriter, Database, SqliteConfig};
/// use rusqlite::Connection;
///
/// /// Appends lines, one transaction per batch.
/// #[derive(Debug)]
/// struct Lines;
///
/// impl BatchWriter for Lines {
///     type Request = String;
///     type Outcome = Result<(), String>;
///
///     fn write_batch(&mut self, conn: &mut Connection, batch: &[String]) -> Vec<Self::Outcome> {
///         let written = conn.transaction().and_then(|tx| {
///             for line in batch {
///                 tx.execute("INSERT INTO lines (line) VALUES (?1)", [line])?;
///             }
///             tx.commit()
///         });
///         let outcome = written.map_err(|e| e.to_string());
///         batch.iter().map(|_| outcome.clone()).collect()
///     }
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let config = SqliteConfig::new(dir.path().join("data/lines.db"));
/// let schema = ["CREATE TABLE lines (line TEXT NOT NULL) STRICT;"];
/// let db = Database::open(&config, &schema, Lines)?;
/// db.write("hello".to_owned()).await??;
/// let count: i64 = db
///     .read(|conn| {
///         let count = conn.query_row("SELECT count(*) FROM lines", [], |r| r.get(0))?;
///         Ok::<_, backends::Error>(count)
///     })
///     .await?;
/// assert_eq!(count, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Database<W: BatchWriter> {
    inner: Arc<Inner<W>>,
}

impl<W: BatchWriter> Clone for Database<W> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<W: BatchWriter> std::fmt::Debug for Database<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.readers.path())
            .finish_non_exhaustive()
    }
}

struct Inner<W: BatchWriter> {
    // Both are `Some` until the database is dropped; dropping the sender is
    // what tells the writer to stop.
    requests: Option<mpsc::Sender<Request<W>>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    counters: Arc<Counters>,
}

impl<W: BatchWriter> Drop for Inner<W> {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

impl SqliteConfig {
    /// A read-write connection outside the writer thread, with the configured
    /// busy timeout and durability: for a store's rare, small writes that
    /// must not queue behind its changes (an outbox mark, a few times a
    /// second). Each such write contends with the writer thread for SQLite's
    /// one write lock, waiting at most the busy timeout.
    pub fn connect(&self) -> Result<Connection, Error> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "synchronous", self.synchronous.pragma())?;
        Ok(conn)
    }
}

impl<W: BatchWriter> Database<W> {
    /// Opens (creating it and its directory if needed) the database, puts it
    /// in WAL mode with the configured durability, brings its schema up to
    /// date with `migrations` and starts the writer thread running `writer`.
    ///
    /// Migration `n` (0-based) takes a database from `user_version` n to
    /// n + 1; a database with a higher version, written by a newer build, is
    /// refused rather than guessed at.
    pub fn open(config: &SqliteConfig, migrations: &[&str], writer: W) -> Result<Self, Error> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut conn = Connection::open(&config.path)?;
        conn.busy_timeout(config.busy_timeout)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal {
                path: config.path.display().to_string(),
                mode,
            });
        }
        conn.pragma_update(None, "synchronous", config.synchronous.pragma())?;
        conn.set_prepared_statement_cache_capacity(32);
        migrate(&mut conn, migrations)?;

        let counters = Arc::new(Counters::default());
        let (requests, queue) = mpsc::channel();
        let batching = Batching {
            limit: config.batch_limit,
            linger: config.linger,
        };
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn({
                let counters = Arc::clone(&counters);
                move || writer::run(conn, writer, &queue, batching, &counters)
            })
            .map_err(Error::WriterThread)?;
        let readers = Arc::new(ReaderPool::new(
            config.path.clone(),
            config.busy_timeout,
            config.readers,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                requests: Some(requests),
                writer: Some(thread),
                readers,
                counters,
            }),
        })
    }

    /// Queues `request` for the writer and waits for its outcome, which comes
    /// after the commit of the batch that carried it.
    pub async fn write(&self, request: W::Request) -> Result<W::Outcome, Error> {
        let (reply, outcome) = oneshot::channel();
        self.inner
            .requests
            .as_ref()
            .ok_or(Error::WriterStopped)?
            .send(Request { request, reply })
            .map_err(|_| Error::WriterStopped)?;
        outcome.await.map_err(|_| Error::WriterStopped)
    }

    /// Runs `read` on an idle read-only connection on tokio's blocking pool,
    /// once one of the configured readers is free.
    pub async fn read<T, E, F>(&self, read: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        self.inner.readers.run(read).await
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

/// Brings the schema up to date in one transaction.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<(), Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > migrations.len() {
        return Err(Error::NewerSchema {
            found: current,
            known: migrations.len(),
        });
    }
    for migration in &migrations[current..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", migrations.len() as i64)?;
    tx.commit()?;
    Ok(())
}

/// Whether a SQLite failure may pass on a retry: lock contention and I/O
/// trouble. Anything else (a constraint, a misuse, a corrupt file) will fail
/// again.
#[must_use]
pub fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::DiskFull
                | C::CannotOpen
                | C::OutOfMemory
                | C::FileLockingProtocolFailed,
        )
    )
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
    fn lock_and_io_failures_are_transient_others_are_not() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        for (code, transient) in [
            (rusqlite::ffi::SQLITE_BUSY, true),
            (rusqlite::ffi::SQLITE_LOCKED, true),
            (rusqlite::ffi::SQLITE_IOERR, true),
            (rusqlite::ffi::SQLITE_FULL, true),
            (rusqlite::ffi::SQLITE_MISUSE, false),
            (rusqlite::ffi::SQLITE_CONSTRAINT, false),
        ] {
            assert_eq!(is_transient(&failure(code)), transient, "{code}");
            assert_eq!(Error::Sqlite(failure(code)).is_transient(), transient);
        }
    }
}
