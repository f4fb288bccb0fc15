//! The embedded store on the shared SQLite foundation ([`backends::sqlite`]:
//! WAL mode, one writer thread with group commit, a pool of read-only
//! connections, `synchronous = FULL` unless lowered).
//!
//! What is this store's own: its schema ([`schema`]), how a batch of changes
//! is written in one transaction ([`writer`]) and its reads ([`read`]).

mod read;
mod schema;
mod writer;

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use backends::Database;
use protocol::{
    ChangeEvent, ChangeId, ItemId, OperatorAction, OwnerId, OwnerSnapshot, UserId, ValidChange,
    Version,
};
use rusqlite::Connection;
use tokio::sync::Notify;

use crate::{
    ApplyOutcome, Error, InventoryStore, JournalEntry, JournalRecord, Outbox, OutboxEntry,
    OutboxPosition, OwnerRecord, StoreScan, SupportStore,
};

pub use backends::{SqliteConfig, SqliteStats, Synchronous};

use writer::ChangeWriter;

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
    db: Database<ChangeWriter>,
    config: SqliteConfig,
    /// Notified after each applied change (the outbox's wake-up).
    signal: Arc<Notify>,
    /// The connection for the rare writes outside the writer thread (the
    /// outbox mark, a few times a second at most; the operator log), opened
    /// on first use.
    aside: Arc<Mutex<Option<Connection>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, migrates its schema and
    /// starts the writer thread.
    pub fn open(config: SqliteConfig) -> Result<Self, Error> {
        Ok(Self {
            db: Database::open(&config, schema::MIGRATIONS, ChangeWriter)?,
            config,
            signal: Arc::new(Notify::new()),
            aside: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs one statement on the aside connection, off the async runtime.
    async fn write_aside<P>(&self, sql: &'static str, params: P) -> Result<(), Error>
    where
        P: rusqlite::Params + Send + 'static,
    {
        let (config, aside) = (self.config.clone(), Arc::clone(&self.aside));
        tokio::task::spawn_blocking(move || {
            let mut aside = aside.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = match aside.take() {
                Some(conn) => conn,
                None => config.connect()?,
            };
            let written = conn.execute(sql, params).map(drop).map_err(sql_error);
            *aside = Some(conn);
            written
        })
        .await
        .map_err(|e| Error::Unavailable(format!("a write outside the writer failed: {e}")))?
    }

    /// What the writer has done so far: with many concurrent callers,
    /// `batches` grows much more slowly than `requests`.
    #[must_use]
    pub fn stats(&self) -> SqliteStats {
        self.db.stats()
    }
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let outcome = self.db.write(change.clone()).await?;
        if let Ok(ApplyOutcome::Applied(_)) = &outcome {
            self.signal.notify_waiters();
        }
        outcome
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        let owner = owner.clone();
        self.db.read(move |conn| read::load(conn, &owner)).await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        let user = user.clone();
        self.db.read(move |conn| read::load_user(conn, &user)).await
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        let entry = self.db.read(move |conn| read::recorded(conn, id)).await?;
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
        let after = after.map(seq_of).transpose()?;
        let page = self
            .db
            .read(move |conn| {
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
                position: OutboxPosition::from_seq(seq.unsigned_abs()),
                event: entry.event(),
            })
            .collect())
    }

    async fn mark_published(&self, position: &OutboxPosition) -> Result<(), Error> {
        let seq = seq_of(position)?;
        // Never backwards: a slow mark must not undo a later one.
        self.write_aside(
            "UPDATE outbox_mark SET seq = ?1 WHERE id = 1 AND seq < ?1",
            [seq],
        )
        .await
    }

    fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
    }
}

fn seq_of(position: &OutboxPosition) -> Result<i64, Error> {
    position
        .seq()
        .and_then(|seq| i64::try_from(seq).ok())
        .ok_or_else(|| Error::Backend("not a SQLite outbox position".to_owned()))
}

#[async_trait]
impl SupportStore for SqliteStore {
    async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error> {
        let owner = owner.clone();
        self.db
            .read(move |conn| read::history(conn, &owner, before, limit))
            .await
    }

    async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
        self.db.read(move |conn| read::change(conn, id)).await
    }

    async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error> {
        let item = item.clone();
        self.db
            .read(move |conn| read::item_changes(conn, &item))
            .await
    }

    async fn record_action(&self, action: &OperatorAction) -> Result<(), Error> {
        let body = serde_json::to_string(action).map_err(|e| Error::Backend(e.to_string()))?;
        self.write_aside(
            "INSERT INTO operator_log (id, body) VALUES (?1, ?2)",
            (action.id.clone(), body),
        )
        .await
    }

    async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error> {
        let before = before.map(str::to_owned);
        self.db
            .read(move |conn| read::actions(conn, before.as_deref(), limit))
            .await
    }
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
                .db
                .read(move |conn| read::journal_page(conn, after, SCAN_PAGE))
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
                .db
                .read(move |conn| read::owners_page(conn, &from, SCAN_PAGE))
                .await?;
            let Some(last) = records.last() else {
                return Ok(());
            };
            after = last.owner.to_string();
            records.into_iter().for_each(&mut *visit);
        }
    }
}

/// Maps a SQLite failure: what a retry may get past (lock contention, I/O
/// trouble; see [`backends::sqlite::is_transient`]) is
/// [`Error::Unavailable`], anything else is [`Error::Backend`].
fn sql_error(e: rusqlite::Error) -> Error {
    if backends::sqlite::is_transient(&e) {
        Error::Unavailable(e.to_string())
    } else {
        Error::Backend(e.to_string())
    }
}

/// The foundation's failures, mapped the same way: a stopped writer or a
/// failed read task is [`Error::Unavailable`]; a database this build cannot
/// use is [`Error::Backend`].
impl From<backends::Error> for Error {
    fn from(e: backends::Error) -> Self {
        match e {
            backends::Error::Sqlite(e) => sql_error(e),
            e if e.is_transient() => Self::Unavailable(e.to_string()),
            e => Self::Backend(e.to_string()),
        }
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
