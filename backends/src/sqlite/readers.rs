//! The reader pool: read-only connections, opened on first need and reused.
//!
//! A semaphore bounds how many reads run at once, so a burst of reads waits
//! here rather than tying up blocking threads. (Pool crates for rusqlite pin
//! their own rusqlite version; this is the little we need.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::Error;

#[derive(Debug)]
pub(super) struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(super) fn new(path: PathBuf, busy_timeout: Duration, readers: usize) -> Self {
        Self {
            path,
            busy_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(readers)),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on an idle connection on tokio's blocking pool.
    pub(super) async fn run<T, E, F>(self: &Arc<Self>, read: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::ReadTask(e.to_string()))?;
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
        .map_err(|e| Error::ReadTask(e.to_string()))?
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // A Vec of connections has no invariant a panic could break.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_reader(&self) -> Result<Connection, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        Ok(conn)
    }
}
