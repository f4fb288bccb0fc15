//! The embedded store on the shared SQLite foundation ([`backends::sqlite`]:
//! WAL mode, `synchronous = FULL` unless the operator lowers it, one writer
//! thread with group commit, a pool of read-only connections).
//!
//! One table, `descriptors(id TEXT PRIMARY KEY, body TEXT)`, where `body` is
//! the descriptor's compact JSON and `NULL` marks a tombstone. A scan walks
//! the primary key in id order, or the crafter index
//! `(json_extract(body, '$.crafted_by'), id)` when it filters by crafter. A batch read is
//! one statement over `json_each(?1)`, whatever the number of ids. Writes are
//! queued to the writer thread, which runs each batch in one transaction and
//! each write under its own savepoint, so that a write that fails halfway (a
//! bulk insert) leaves nothing of itself while the rest of its batch commits.

use std::path::Path;

use async_trait::async_trait;
use backends::{BatchWriter, Database};
use protocol::{BurnOutcome, Descriptor, ItemId};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub use backends::{SqliteConfig, Synchronous};

use super::{
    DescriptorStore, Record, ScanFilter, WriteOutcome, classify_failed_create,
    classify_failed_revise, kind_name,
};
use crate::Error;

/// Migration `n` (0-based) takes the file from `user_version` n to n + 1.
/// `IF NOT EXISTS`: files written before the schema had a version hold the
/// table at version 0.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE IF NOT EXISTS descriptors (
        id TEXT PRIMARY KEY NOT NULL,
        body TEXT
    ) WITHOUT ROWID;
",
    "
    CREATE INDEX IF NOT EXISTS descriptors_crafter
        ON descriptors (json_extract(body, '$.crafted_by'), id);
",
    "
    CREATE TABLE IF NOT EXISTS store_meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO store_meta (key, value)
        VALUES ('identity', lower(hex(randomblob(16))));
",
];

/// The scan's and the count's conditions after the id and crafter ones;
/// `?2` .. `?5` are include_burned, kind, since and until.
const SELECTED: &str = "AND (body IS NOT NULL OR ?2) \
     AND (?3 IS NULL OR json_extract(body, '$.kind') = ?3) \
     AND (?4 IS NULL OR json_extract(body, '$.created_at') >= ?4) \
     AND (?5 IS NULL OR json_extract(body, '$.created_at') < ?5)";

/// A scan's or count's statement: `what` of the rows after the id `?1`
/// that `filter` selects (by crafter `?7` when it names one), then `tail`.
fn selection_sql(filter: &ScanFilter, what: &str, tail: &str) -> String {
    let crafter = if filter.crafted_by.is_some() {
        "json_extract(body, '$.crafted_by') = ?7 AND"
    } else {
        ""
    };
    format!("SELECT {what} FROM descriptors WHERE {crafter} id > ?1 {SELECTED} {tail}")
}

/// The parameters of [`selection_sql`].
struct Selection {
    after: String,
    include_burned: bool,
    kind: Option<&'static str>,
    since: Option<i64>,
    until: Option<i64>,
    crafter: Option<String>,
    limit: i64,
}

impl Selection {
    fn of(filter: &ScanFilter, after: Option<&ItemId>, limit: usize) -> Self {
        let time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        Self {
            after: after.map_or_else(String::new, |id| id.as_str().to_owned()),
            include_burned: filter.include_burned,
            kind: filter.kind.map(kind_name),
            since: filter.since.map(time),
            until: filter.until.map(time),
            crafter: filter.crafted_by.as_ref().map(|u| u.as_str().to_owned()),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        }
    }

    /// The parameters `?1` .. `?7`, `?7` only when a crafter is named.
    fn params(&self) -> Vec<&dyn rusqlite::ToSql> {
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![
            &self.after,
            &self.include_burned,
            &self.kind,
            &self.since,
            &self.until,
            &self.limit,
        ];
        if let Some(crafter) = &self.crafter {
            bound.push(crafter);
        }
        bound
    }
}

/// Descriptors in a SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Database<DescriptorWriter>,
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

/// One write queued for the writer thread.
#[derive(Debug)]
enum Write {
    Create(Descriptor),
    Revise(Descriptor),
    Burn(ItemId),
    InsertMany(Vec<Descriptor>),
}

/// What the writer answers, by kind of write.
#[derive(Debug)]
enum Written {
    Write(WriteOutcome),
    Burn(BurnOutcome),
    Inserted(usize),
}

impl Write {
    /// The write's statements, inside the batch's transaction.
    fn apply(&self, conn: &Connection) -> Result<Written, Error> {
        match self {
            Self::Create(descriptor) => create(conn, descriptor).map(Written::Write),
            Self::Revise(descriptor) => revise(conn, descriptor).map(Written::Write),
            Self::Burn(id) => burn(conn, id).map(Written::Burn),
            Self::InsertMany(descriptors) => insert_many(conn, descriptors).map(Written::Inserted),
        }
    }
}

/// The store's side of the writer thread.
#[derive(Debug)]
struct DescriptorWriter;

impl BatchWriter for DescriptorWriter {
    type Request = Write;
    type Outcome = Result<Written, Error>;

    fn write_batch(&mut self, conn: &mut Connection, batch: &[Write]) -> Vec<Self::Outcome> {
        write_batch(conn, batch)
            .unwrap_or_else(|error| batch.iter().map(|_| Err(error.clone())).collect())
    }
}

/// The batch in one transaction, each write under its own savepoint (rolled
/// back alone when the write fails); `Err` when the transaction itself
/// failed, and with it every write.
fn write_batch(
    conn: &mut Connection,
    batch: &[Write],
) -> Result<Vec<Result<Written, Error>>, Error> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for write in batch {
        let savepoint = tx.savepoint()?;
        let outcome = write.apply(&savepoint);
        if outcome.is_ok() {
            savepoint.commit()?;
        }
        outcomes.push(outcome);
    }
    tx.commit()?;
    Ok(outcomes)
}

fn create(conn: &Connection, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
    let inserted = conn.execute(
        "INSERT INTO descriptors (id, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![descriptor.id.as_str(), encode(descriptor)?],
    )?;
    if inserted == 1 {
        Ok(WriteOutcome::Applied)
    } else {
        classify_failed_create(read_one(conn, &descriptor.id)?.as_ref(), descriptor)
    }
}

fn revise(conn: &Connection, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
    match read_one(conn, &descriptor.id)? {
        Some(Record::Live(current))
            if current.kind == protocol::DescriptorKind::Catalog
                && current.revision.checked_add(1) == Some(descriptor.revision) =>
        {
            conn.execute(
                "UPDATE descriptors SET body = ?2 WHERE id = ?1",
                params![descriptor.id.as_str(), encode(descriptor)?],
            )?;
            Ok(WriteOutcome::Applied)
        }
        other => classify_failed_revise(other.as_ref(), descriptor),
    }
}

fn burn(conn: &Connection, id: &ItemId) -> Result<BurnOutcome, Error> {
    let before: Option<Option<String>> = conn
        .query_row(
            "SELECT body FROM descriptors WHERE id = ?1",
            [id.as_str()],
            |row| row.get(0),
        )
        .optional()?;
    match before {
        None => Err(Error::NotFound(id.clone())),
        Some(None) => Ok(BurnOutcome::AlreadyBurned),
        Some(Some(_)) => {
            conn.execute(
                "UPDATE descriptors SET body = NULL WHERE id = ?1",
                [id.as_str()],
            )?;
            Ok(BurnOutcome::Burned)
        }
    }
}

fn insert_many(conn: &Connection, descriptors: &[Descriptor]) -> Result<usize, Error> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO descriptors (id, body) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    let mut inserted = 0;
    for descriptor in descriptors {
        inserted += insert.execute(params![descriptor.id.as_str(), encode(descriptor)?])?;
    }
    Ok(inserted)
}

/// A writer that answered a write with another write's outcome: a bug.
fn mismatched(written: &Written) -> Error {
    Error::Internal(format!("the SQLite writer answered {written:?}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path`, with the
    /// defaults of [`SqliteConfig::new`] (`synchronous = FULL`, 4 readers).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(SqliteConfig::new(path.as_ref()))
    }

    /// Opens (creating if needed) the store as `config` says.
    pub fn open_with(config: SqliteConfig) -> Result<Self, Error> {
        Ok(Self {
            db: Database::open(&config, MIGRATIONS, DescriptorWriter)?,
        })
    }

    /// Inserts many new descriptors in one transaction, skipping ids already
    /// stored, and answers how many it inserted (bulk loading for tools and
    /// benchmarks).
    pub async fn insert_many(
        &self,
        descriptors: impl IntoIterator<Item = Descriptor>,
    ) -> Result<usize, Error> {
        let descriptors = descriptors.into_iter().collect();
        match self.write(Write::InsertMany(descriptors)).await? {
            Written::Inserted(inserted) => Ok(inserted),
            other => Err(mismatched(&other)),
        }
    }

    async fn write(&self, write: Write) -> Result<Written, Error> {
        self.db.write(write).await?
    }

    async fn write_outcome(&self, write: Write) -> Result<WriteOutcome, Error> {
        match self.write(write).await? {
            Written::Write(outcome) => Ok(outcome),
            other => Err(mismatched(&other)),
        }
    }
}

#[async_trait]
impl DescriptorStore for SqliteStore {
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(ids).map_err(|e| Error::Internal(e.to_string()))?;
        self.db
            .read(move |conn| {
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
        self.write_outcome(Write::Create(descriptor.clone())).await
    }

    async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        self.write_outcome(Write::Revise(descriptor.clone())).await
    }

    async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        match self.write(Write::Burn(id.clone())).await? {
            Written::Burn(outcome) => Ok(outcome),
            other => Err(mismatched(&other)),
        }
    }

    async fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let selection = Selection::of(filter, after, limit);
        let sql = selection_sql(filter, "id, body", "ORDER BY id LIMIT ?6");
        self.db
            .read(move |conn| {
                let mut select = conn.prepare_cached(&sql)?;
                let bound = selection.params();
                let rows = select.query_map(&bound[..], |row| Ok((row.get(0)?, row.get(1)?)))?;
                let mut records = Vec::new();
                for row in rows {
                    let (id, body) = row?;
                    records.push(decode(id, body)?);
                }
                Ok(records)
            })
            .await
    }

    async fn count(&self, filter: &ScanFilter) -> Result<u64, Error> {
        let selection = Selection::of(filter, None, 0);
        // `?6` (the scan's limit) is bound but unused: the parameters stay
        // numbered alike.
        let sql = selection_sql(filter, "count(*)", "AND ?6 IS NOT NULL");
        self.db
            .read(move |conn| {
                let mut select = conn.prepare_cached(&sql)?;
                let count: i64 = select.query_row(&selection.params()[..], |row| row.get(0))?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.db
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn identity(&self) -> Result<String, Error> {
        self.db
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT value FROM store_meta WHERE key = 'identity'",
                    [],
                    |row| row.get(0),
                )?)
            })
            .await
    }
}
