//! The crate's one error type.

/// What can go wrong in a foundation. Each store or bus maps it into its own
/// error; [`is_transient`](Self::is_transient) says which failures a retry may
/// get past.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A SQLite call failed.
    #[cfg(feature = "sqlite")]
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The database file cannot be switched to WAL mode.
    #[cfg(feature = "sqlite")]
    #[error("{path} cannot use WAL mode (got {mode})")]
    NoWal {
        /// The database file.
        path: String,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The database was migrated by a newer build; its meaning is unknown.
    #[error("the database has schema version {found}, newer than this build's {known}")]
    NewerSchema {
        /// The schema version stored in the file.
        found: usize,
        /// The newest schema version this build knows.
        known: usize,
    },
    /// The directory of the database file cannot be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    WriterThread(std::io::Error),
    /// The writer thread has stopped (it panicked, or the database is closing).
    #[error("the SQLite writer thread has stopped")]
    WriterStopped,
    /// A read on the blocking pool did not finish.
    #[error("a read task failed: {0}")]
    ReadTask(String),
    /// A Redis command failed.
    #[cfg(feature = "redis")]
    #[error("{context}: {source}")]
    Redis {
        /// What was being done.
        context: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A publish did not finish within its timeout.
    #[error("PUBLISH timed out")]
    PublishTimeout,
}

impl Error {
    /// Whether the same call may succeed later: lock contention, I/O trouble,
    /// a connection that is down. Anything else (a bug, a corrupt or foreign
    /// database) will fail again.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(e) => crate::sqlite::is_transient(e),
            #[cfg(feature = "redis")]
            Self::Redis { .. } => true,
            Self::WriterStopped | Self::ReadTask(_) | Self::PublishTimeout => true,
            #[cfg(feature = "sqlite")]
            Self::NoWal { .. } => false,
            Self::NewerSchema { .. } | Self::CreateDir { .. } | Self::WriterThread(_) => false,
        }
    }
}
