//! The embedded store: one SQLite file in WAL mode.
//!
//! One table, `descriptors(id TEXT PRIMARY KEY, body TEXT)`, where `body` is
//! the descriptor's compact JSON and `NULL` marks a tombstone. A batch read is
//! one statement over `json_each(?1)`, whatever the number of ids. Reads and
//! writes use separate connections so that WAL lets reads proceed during a
//! write; each connection sits behind a std `Mutex` and is only used from
//! `spawn_blocking`, never across an `.await`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use protocol::{BurnOutcome, Descriptor, ItemId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    DescriptorStore, Record, WriteOutcome, classify_failed_create, classify_failed_revise,
};
use crate::Error;

/// Descriptors in a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    reader: Arc<Mutex<Connection>>,
    writer: Arc<Mutex<Connection>>,
}

fn open_connection(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn decode(id: String, body: Option<String>) -> Result<Record, Error> {
    let id = ItemId::parse(id)?;
    match body {
        None => Ok(Record::Burned(id)),
        Some(json) => serde_json::from_str(&json)
            .map(Record::Live)
            .map_err(|e| Error::Internal(format!("corrupt descriptor {id}: {e}"))),
    }
}

fn read_one(conn: &Connection, id: &ItemId) -> Result<Option<Record>, Error> {
    conn.query_row(
        "SELECT id, body FROM descriptors WHERE id = ?1",
        [id.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()?
    .map(|(id, body)| decode(id, body))
    .transpose()
}

fn encode(descriptor: &Descriptor) -> Result<String, Error> {
    serde_json::to_string(descriptor).map_err(|e| Error::Internal(e.to_string()))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let writer = open_connection(path)?;
        writer.execute_batch(
            "CREATE TABLE IF NOT EXISTS descriptors (
                 id TEXT PRIMARY KEY NOT NULL,
                 body TEXT
             ) WITHOUT ROWID;",
        )?;
        let reader = open_connection(path)?;
        Ok(Self {
            reader: Arc::new(Mutex::new(reader)),
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// Inserts many new descriptors in one transaction, skipping ids already
    /// stored (bulk loading for tools and benchmarks).
    pub async fn load<I>(&self, descriptors: I) -> Result<usize, Error>
    where
        I: IntoIterator<Item = Descriptor> + Send + 'static,
        I::IntoIter: Send,
    {
        self.with_writer(move |conn| {
            let tx = conn.transaction()?;
            let mut inserted = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO descriptors (id, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )?;
                for descriptor in descriptors {
                    inserted +=
                        insert.execute(params![descriptor.id.as_str(), encode(&descriptor)?])?;
                }
            }
            tx.commit()?;
            Ok(inserted)
        })
        .await
    }

    async fn with_writer<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| Error::Internal("sqlite writer poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    async fn with_reader<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .map_err(|_| Error::Internal("sqlite reader poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }
}

#[async_trait]
impl DescriptorStore for SqliteStore {
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?;
        self.with_reader(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT d.id, d.body FROM descriptors d \
                 WHERE d.id IN (SELECT value FROM json_each(?1))",
            )?;
            let rows = select.query_map([ids], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let mut records = Vec::new();
            for row in rows {
                let (id, body) = row?;
                records.push(decode(id, body)?);
            }
            Ok(records)
        })
        .await
    }

    async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        let descriptor = descriptor.clone();
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT INTO descriptors (id, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![descriptor.id.as_str(), encode(&descriptor)?],
            )?;
            let outcome = if inserted == 1 {
                WriteOutcome::Applied
            } else {
                classify_failed_create(read_one(&tx, &descriptor.id)?.as_ref(), &descriptor)?
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        let descriptor = descriptor.clone();
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored = read_one(&tx, &descriptor.id)?;
            let outcome = match &stored {
                Some(Record::Live(current))
                    if current.kind == protocol::DescriptorKind::Catalog
                        && current.revision.checked_add(1) == Some(descriptor.revision) =>
                {
                    tx.execute(
                        "UPDATE descriptors SET body = ?2 WHERE id = ?1",
                        params![descriptor.id.as_str(), encode(&descriptor)?],
                    )?;
                    WriteOutcome::Applied
                }
                other => classify_failed_revise(other.as_ref(), &descriptor)?,
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        let id = id.clone();
        self.with_writer(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let before: Option<Option<String>> = tx
                .query_row(
                    "SELECT body FROM descriptors WHERE id = ?1",
                    [id.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            let outcome = match before {
                None => return Err(Error::NotFound(id)),
                Some(None) => BurnOutcome::AlreadyBurned,
                Some(Some(_)) => {
                    tx.execute(
                        "UPDATE descriptors SET body = NULL WHERE id = ?1",
                        [id.as_str()],
                    )?;
                    BurnOutcome::Burned
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.with_reader(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
