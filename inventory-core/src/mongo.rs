//! The MongoDB store: one document per owner, field-level atomic updates with
//! the guards in the filter, write-side idempotency in the same update, and
//! multi-owner changes in a transaction (or, on a standalone server, owner by
//! owner with compensation).
//!
//! # Document model
//!
//! ```text
//! { _id: "c:alice:hero",           // the owner id
//!   u: "alice",                    // its user (indexed, for load_user)
//!   v: Int64(42),                  // the owner's version
//!   items: { wood: Int64(7), ... },// one field per item; absent = 0
//!   recent: [Binary(4, <uuid>), ...] } // the last 1,024 change ids, oldest first
//! ```
//!
//! `recent` holds exactly one entry per version, so an entry's version is its
//! position: the last entry produced `v`, the one before it `v - 1`. A change
//! undone by compensation keeps its slot, re-typed as a retraction (binary
//! subtype 0x80), so positions never shift.
//!
//! # What each operation sends
//!
//! - **Single-owner change**: one `findAndModify`, returning the post-image
//!   projected to `v` and the consumed balances:
//!   filter `{_id, recent: {$ne: <id>}, items.<c>: {$gte: n} per consume,
//!   items.<g>: {$not: {$gt: MAX_BALANCE - n}} per grant}`,
//!   update `{$inc: {items.<x>: ±n, v: 1}, $push: {recent: {$each: [<id>],
//!   $slice: -1024}}}`. No upsert: when it matches nothing, one read decides:
//!   the id is in `recent` ⇒ `AlreadyApplied` with the version its position
//!   implies; a guard fails on the balances read ⇒ that refusal; no document
//!   yet ⇒ `insertOne({_id, u, v: 0, items: {}, recent: []})` (E11000
//!   ignored) and again; neither (a concurrent change moved the balances in
//!   between) ⇒ send the update again, at most `MAX_RACES` (64) times.
//! - **Zero-stack cleanup**: when a post-image shows a consumed stack at 0,
//!   `updateOne({_id, items.<x>: 0}, {$unset: {items.<x>: ""}})`. It only
//!   matches while the stack is still 0, so it never erases a concurrent
//!   grant, and it leaves `v` alone (absent and 0 are the same balance). Loads
//!   hide zero stacks in any case.
//! - **Multi-owner change, transactions**: the single-owner update for each
//!   owner in ascending order, inside one transaction run by the driver's
//!   `start_transaction().and_run(..)`, which retries on
//!   `TransientTransactionError` and `UnknownTransactionCommitResult`. An
//!   update that matches nothing aborts the transaction and is diagnosed as above.
//! - **Multi-owner change, standalone** (compensation): first a read of every
//!   owner refuses a change whose guard already fails, writing nothing. Then the
//!   single-owner update per owner in ascending order. If part `k` fails, parts
//!   `0..=k` are undone, last first (part `k` too: a lost reply may hide an
//!   applied write): read the owner, and if the change's id is in its window,
//!   `updateOne({_id, v: <read>}, {$inc: {items.<x>: ∓n, v: 1}, $set: {recent:
//!   <window with the id retracted, plus a retraction entry>}})`, re-read and
//!   retry if `v` moved. The undo is keyed on the id being applied, so it is
//!   idempotent, and it frees the id so the change can be retried later.
//!   **What a concurrent reader can observe meanwhile**: for a few
//!   milliseconds, the applied parts (a load of an early owner shows the
//!   change's effect at its new version), then the undo at the next version.
//!   Versions are never reused, so a cache that hydrated in between sees a gap
//!   on the next event and re-hydrates. If the granted items were spent in that
//!   window, the undo waits (bounded) and then fails with a clear error; a
//!   retry of the change with the same id resumes: applied parts answer
//!   "already applied", the rest apply or are undone again.
//!   A call answers `Applied` when it applied the first part itself, so of
//!   concurrent retries of one change exactly one answers `Applied`; a retry
//!   that only completes the parts a crashed call left answers
//!   `AlreadyApplied` (no event was published for the change: caches catch
//!   up through the version gap).
//!   **Limit of this path**: two calls with the same id run concurrently
//!   share the work (each applies whatever part is missing). If a third,
//!   unrelated change flips a guard between them, one call can undo the early
//!   parts while the other completes the late ones, leaving the change half
//!   applied until it is retried. Transactions have no such window; use a
//!   replica set in production.

//!
//! # Journal (for the audit)
//!
//! Every applied change is also inserted into `<collection>_journal` as
//! `{_id: <change id>, c: <change JSON>, p: <versions JSON>}`; `_id` makes a
//! second insert of the same change fail with E11000, which counts as done.
//! A multi-owner change on a replica set inserts it inside its transaction,
//! so it commits with the change. A single-owner change (one atomic update,
//! no transaction, to keep the hot path one round trip) and a compensated
//! one insert it right after the update, before answering: one more round
//! trip per change. **Crash window:** if the process dies between the update
//! and the insert, the change is applied but not journaled until a retry with
//! the same id (which answers "already applied" and inserts the entry); the
//! caller was never answered, so it is not an acknowledged change, and the
//! audit reports the owner's version as not journaled. If the insert itself
//! fails, the call answers `Unavailable` so that the caller retries.

mod database;
mod document;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};
use protocol::{ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange, Version};

use self::database::{Database, Driver};
#[cfg(feature = "test-util")]
pub use self::database::{FaultInjector, FaultKind};
use self::document::{
    Diagnosis, ID, RECENT, USER, VERSION, applied_version, diagnose, emptied_items, first_refusal,
    item_path, journal_entry, owner_record, owner_update, post_image_version, read_journal_entry,
    skeleton, snapshot, touched_projection, undo_update, zero_cleanup,
};
use crate::{ApplyOutcome, Error, InventoryStore, JournalEntry, OwnerRecord, StoreScan};

/// How many times an update that lost a race to a concurrent change (it
/// matched nothing, yet no guard fails and the change is not applied) is sent
/// again before the store gives up.
const MAX_RACES: usize = 64;

/// How many times a compensation waits for items it must take back.
const UNDO_ATTEMPTS: u32 = 50;

/// Where the store keeps its documents and how it talks to the deployment.
#[derive(Clone, Debug)]
#[must_use]
pub struct MongoConfig {
    uri: String,
    database: String,
    collection: String,
    transactions: Option<bool>,
}

impl MongoConfig {
    /// The deployment at `uri` (a MongoDB connection string), database
    /// `inventory`, collection `inventories`, transactions if the deployment
    /// supports them.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: "inventory".to_owned(),
            collection: "inventories".to_owned(),
            transactions: None,
        }
    }

    /// From the environment: `MONGODB_URI` (required), and optionally
    /// `MONGODB_DATABASE` and `MONGODB_COLLECTION`.
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let uri = var("MONGODB_URI")
            .ok_or_else(|| Error::Backend("MONGODB_URI is not set".to_owned()))?;
        let mut config = Self::new(uri);
        if let Some(database) = var("MONGODB_DATABASE") {
            config = config.with_database(database);
        }
        if let Some(collection) = var("MONGODB_COLLECTION") {
            config = config.with_collection(collection);
        }
        Ok(config)
    }

    /// The database name.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// The collection name.
    pub fn with_collection(mut self, collection: impl Into<String>) -> Self {
        self.collection = collection.into();
        self
    }

    /// Forces multi-owner changes into transactions (`true`) or onto the
    /// compensation path (`false`) instead of asking the deployment.
    pub fn with_transactions(mut self, transactions: bool) -> Self {
        self.transactions = Some(transactions);
        self
    }
}

/// What the store has done since it connected, for operators and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct MongoStats {
    /// Multi-owner changes committed in a transaction.
    pub transactions: u64,
    /// Owner parts undone by compensation.
    pub compensations: u64,
}

/// The MongoDB [`InventoryStore`]. Cloning shares the connection pool.
#[derive(Clone, Debug)]
pub struct MongoStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Box<dyn Database>,
    transactions: bool,
    committed: AtomicU64,
    compensated: AtomicU64,
}

/// The part of a multi-owner change that matched nothing inside a transaction.
#[derive(Debug)]
struct NoMatch(OwnerId);

/// One owner's part of a change.
enum Part {
    Applied(Version),
    AlreadyApplied(Version),
}

impl MongoStore {
    /// Connects, creates the indexes, and decides between transactions and
    /// compensation (a replica set or a sharded cluster supports transactions;
    /// a standalone server does not), unless the config forces it.
    pub async fn connect(config: MongoConfig) -> Result<Self, Error> {
        let (driver, transactions) = Self::driver(&config).await?;
        Ok(Self::on(Box::new(driver), transactions))
    }

    /// Like [`connect`](Self::connect), but every database operation goes
    /// through `faults`, which can fail chosen ones.
    #[cfg(feature = "test-util")]
    pub async fn connect_with_faults(
        config: MongoConfig,
        faults: FaultInjector,
    ) -> Result<Self, Error> {
        let (inner, transactions) = Self::driver(&config).await?;
        let faulty = database::Faulty { inner, faults };
        Ok(Self::on(Box::new(faulty), transactions))
    }

    async fn driver(config: &MongoConfig) -> Result<(Driver, bool), Error> {
        let client = Client::with_uri_str(&config.uri).await.map_err(backend)?;
        let collection = client
            .database(&config.database)
            .collection::<Document>(&config.collection);
        let index = IndexModel::builder()
            .keys(doc! { USER: 1 })
            .options(
                IndexOptions::builder()
                    .name("owner_user".to_owned())
                    .build(),
            )
            .build();
        collection.create_index(index).await.map_err(backend)?;
        let transactions = match config.transactions {
            Some(forced) => forced,
            None => {
                let hello = client
                    .database("admin")
                    .run_command(doc! { "hello": 1 })
                    .await
                    .map_err(backend)?;
                hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid")
            }
        };
        tracing::info!(
            database = %config.database,
            collection = %config.collection,
            transactions,
            "connected to MongoDB"
        );
        let journal = client
            .database(&config.database)
            .collection::<Document>(&format!("{}_journal", config.collection));
        Ok((Driver::new(client, collection, journal), transactions))
    }

    fn on(db: Box<dyn Database>, transactions: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                transactions,
                committed: AtomicU64::new(0),
                compensated: AtomicU64::new(0),
            }),
        }
    }

    /// Whether multi-owner changes run in transactions (else: compensation).
    #[must_use]
    pub fn uses_transactions(&self) -> bool {
        self.inner.transactions
    }

    /// Counters since the store connected.
    #[must_use]
    pub fn stats(&self) -> MongoStats {
        MongoStats {
            transactions: self.inner.committed.load(Ordering::Relaxed),
            compensations: self.inner.compensated.load(Ordering::Relaxed),
        }
    }

    fn db(&self) -> &dyn Database {
        &*self.inner.db
    }

    /// Applies one owner's part of `change` as one atomic update, outside any
    /// transaction.
    async fn apply_part(&self, owner: &OwnerId, change: &ValidChange) -> Result<Part, Error> {
        let update = owner_update(owner, change);
        for _ in 0..MAX_RACES {
            match self.db().find_one_and_update(None, &update).await {
                Ok(Some(post)) => {
                    let version = post_image_version(owner, &post)?;
                    self.clean_up(owner, emptied_items(owner, change, &post))
                        .await;
                    return Ok(Part::Applied(version));
                }
                Ok(None) => {}
                Err(e) => return Err(backend(e)),
            }
            match diagnose(owner, change, self.read(owner, change).await?.as_ref())? {
                Diagnosis::AlreadyApplied(version) => return Ok(Part::AlreadyApplied(version)),
                Diagnosis::Refused(refusal) => return Err(refusal),
                Diagnosis::Missing => self.create(owner).await?,
                Diagnosis::Raced => {
                    tracing::debug!(%owner, id = %change.id(), "update raced, again")
                }
            }
        }
        Err(lost_races(change))
    }

    /// Inserts the document of an owner never touched; a concurrent insert
    /// winning the race is just as good.
    async fn create(&self, owner: &OwnerId) -> Result<(), Error> {
        match self.db().insert_one(skeleton(owner)).await {
            Err(e) if !is_duplicate_key(&e) => Err(backend(e)),
            _ => Ok(()),
        }
    }

    /// The owner's version, window and touched balances.
    async fn read(&self, owner: &OwnerId, change: &ValidChange) -> Result<Option<Document>, Error> {
        self.db()
            .find_one(
                None,
                doc! { ID: owner.to_string() },
                touched_projection(owner, change),
            )
            .await
            .map_err(backend)
    }

    /// Removes stacks left at zero. A failure is only logged: the change is
    /// applied, loads hide zero stacks, and the next consume to zero retries.
    async fn clean_up<'a>(
        &self,
        owner: &OwnerId,
        items: impl Iterator<Item = &'a protocol::ItemId>,
    ) {
        for item in items {
            let (filter, update) = zero_cleanup(owner, item);
            if let Err(e) = self.db().update_one(filter, update).await {
                tracing::warn!(%owner, %item, error = %e, "could not remove an empty stack");
            }
        }
    }

    async fn apply_in_transaction(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        for _ in 0..MAX_RACES {
            let mut session = self.db().client().start_session().await.map_err(backend)?;
            let result = session
                .start_transaction()
                .and_run((self.db(), change), |session, (db, change)| {
                    let (db, change) = (*db, *change);
                    async move {
                        let mut posts = Vec::with_capacity(change.owners().len());
                        let mut versions = Vec::with_capacity(change.owners().len());
                        for owner in change.owners() {
                            let update = owner_update(owner, change);
                            match db.find_one_and_update(Some(&mut *session), &update).await {
                                Ok(Some(post)) => {
                                    let version = post_image_version(owner, &post)
                                        .map_err(mongodb::error::Error::custom)?;
                                    versions.push((owner.clone(), version));
                                    posts.push(post);
                                }
                                Ok(None) => {
                                    return Err(mongodb::error::Error::custom(NoMatch(
                                        owner.clone(),
                                    )));
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        // The journal entry commits with the change.
                        let entry = journal_entry(change, &versions)
                            .map_err(mongodb::error::Error::custom)?;
                        db.journal(Some(&mut *session), entry).await?;
                        Ok(posts)
                    }
                    .boxed()
                })
                .await;
            let owner = match result {
                Ok(posts) => {
                    self.inner.committed.fetch_add(1, Ordering::Relaxed);
                    let mut versions = Vec::with_capacity(posts.len());
                    for (owner, post) in change.owners().zip(&posts) {
                        versions.push((owner.clone(), post_image_version(owner, post)?));
                        self.clean_up(owner, emptied_items(owner, change, post))
                            .await;
                    }
                    return Ok(outcome(true, change, &versions));
                }
                Err(e) => match e.get_custom::<NoMatch>() {
                    Some(NoMatch(owner)) => owner.clone(),
                    None => return Err(backend(e)),
                },
            };
            match diagnose(&owner, change, self.read(&owner, change).await?.as_ref())? {
                Diagnosis::AlreadyApplied(_) => {
                    let versions = self.recorded_versions(change).await?;
                    self.record(change, &versions).await?;
                    return Ok(outcome(false, change, &versions));
                }
                Diagnosis::Refused(refusal) => return Err(refusal),
                Diagnosis::Missing => self.create(&owner).await?,
                Diagnosis::Raced => {
                    tracing::debug!(%owner, id = %change.id(), "transaction raced, again")
                }
            }
        }
        Err(lost_races(change))
    }

    /// The versions `change` produced, for each owner whose window still holds it.
    async fn recorded_versions(
        &self,
        change: &ValidChange,
    ) -> Result<Vec<(OwnerId, Version)>, Error> {
        let mut versions = Vec::with_capacity(change.owners().len());
        for owner in change.owners() {
            if let Some(doc) = self.read(owner, change).await?
                && let Some(version) = applied_version(owner, &doc, change.id())?
            {
                versions.push((owner.clone(), version));
            }
        }
        Ok(versions)
    }

    async fn apply_with_compensation(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        self.precheck(change).await?;
        let mut versions = Vec::with_capacity(change.owners().len());
        let mut applied_first = false;
        for (k, owner) in change.owners().enumerate() {
            match self.apply_part(owner, change).await {
                Ok(Part::Applied(version)) => {
                    applied_first |= k == 0;
                    versions.push((owner.clone(), version));
                }
                Ok(Part::AlreadyApplied(version)) => versions.push((owner.clone(), version)),
                Err(failure) => {
                    tracing::info!(id = %change.id(), %owner, error = %failure, "part failed, compensating");
                    let undo: Vec<&OwnerId> = change.owners().take(k + 1).collect();
                    for owner in undo.into_iter().rev() {
                        self.undo_part(owner, change).await.inspect_err(|e| {
                            tracing::error!(id = %change.id(), %owner, error = %e, "compensation failed; retry the change");
                        })?;
                    }
                    return Err(failure);
                }
            }
        }
        self.record(change, &versions).await?;
        Ok(outcome(applied_first, change, &versions))
    }

    /// Journals an applied change outside any transaction; an entry already
    /// there (a retry) is as good. If the insert fails the change is applied
    /// but not journaled: the caller hears "unavailable" and retries with
    /// the same id, which answers "already applied" and journals it.
    async fn record(
        &self,
        change: &ValidChange,
        versions: &[(OwnerId, Version)],
    ) -> Result<(), Error> {
        match self
            .db()
            .journal(None, journal_entry(change, versions)?)
            .await
        {
            Err(e) if !is_duplicate_key(&e) => Err(Error::Unavailable(format!(
                "change {} is applied but not yet journaled ({e}); retry it with the same id",
                change.id()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses, without writing, a change whose guard already fails. Only an
    /// optimization of the compensation path (the guards are in every update's
    /// filter anyway): it keeps the common refusal from writing and undoing.
    /// A change already applied to some owner skips it: its retry must answer
    /// from the window, whatever the balances are now.
    async fn precheck(&self, change: &ValidChange) -> Result<(), Error> {
        let ids: Vec<String> = change.owners().map(ToString::to_string).collect();
        let mut projection = doc! { ID: 1, VERSION: 1, RECENT: 1 };
        for op in change.ops() {
            projection.insert(item_path(op.item()), 1);
        }
        let docs = self
            .db()
            .find(doc! { ID: { "$in": ids } }, projection)
            .await
            .map_err(backend)?;
        let doc_of = |owner: &OwnerId| {
            docs.iter()
                .find(|d| d.get_str(ID) == Ok(owner.to_string().as_str()))
        };
        for owner in change.owners() {
            if let Some(doc) = doc_of(owner)
                && applied_version(owner, doc, change.id())?.is_some()
            {
                return Ok(());
            }
        }
        for owner in change.owners() {
            if let Some(refusal) = first_refusal(owner, change, doc_of(owner))? {
                return Err(refusal);
            }
        }
        Ok(())
    }

    /// Undoes `owner`'s part of `change` if it is applied; a no-op otherwise.
    /// Waits and tries again (bounded) while the granted items are spent or the
    /// server is unreachable, so a blip does not leave the change half applied.
    async fn undo_part(&self, owner: &OwnerId, change: &ValidChange) -> Result<(), Error> {
        let mut last = None;
        for attempt in 1..=UNDO_ATTEMPTS {
            match self.try_undo_part(owner, change).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e @ (Error::Insufficient { .. } | Error::Unavailable(_))) => {
                    tracing::warn!(id = %change.id(), %owner, attempt, error = %e, "undo waits");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(match last {
            Some(Error::Unavailable(why)) => Error::Unavailable(why),
            _ => Error::Backend(format!(
                "could not undo change {} on {owner}: its granted items were spent meanwhile; \
                 retry the change with the same id",
                change.id()
            )),
        })
    }

    /// One compare-and-set attempt at undoing; `Ok(false)` if the document
    /// moved since it was read.
    async fn try_undo_part(&self, owner: &OwnerId, change: &ValidChange) -> Result<bool, Error> {
        let doc = self.read(owner, change).await?;
        let Some(undo) = undo_update(owner, change, doc.as_ref())? else {
            return Ok(true);
        };
        let matched = self
            .db()
            .update_one(undo.filter, undo.update)
            .await
            .map_err(backend)?;
        if matched == 0 {
            return Ok(false);
        }
        self.inner.compensated.fetch_add(1, Ordering::Relaxed);
        tracing::info!(id = %change.id(), %owner, "part undone");
        self.clean_up(owner, undo.emptied.iter()).await;
        Ok(true)
    }
}

#[async_trait]
impl InventoryStore for MongoStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let mut owners = change.owners();
        if let (Some(owner), None) = (owners.next(), owners.next()) {
            let (applied, version) = match self.apply_part(owner, change).await? {
                Part::Applied(version) => (true, version),
                Part::AlreadyApplied(version) => (false, version),
            };
            let versions = [(owner.clone(), version)];
            self.record(change, &versions).await?;
            return Ok(outcome(applied, change, &versions));
        }
        if self.inner.transactions {
            self.apply_in_transaction(change).await
        } else {
            self.apply_with_compensation(change).await
        }
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        let doc = self
            .db()
            .find_one(None, doc! { ID: owner.to_string() }, doc! { RECENT: 0 })
            .await
            .map_err(backend)?;
        match doc {
            Some(doc) => snapshot(owner, &doc),
            None => Ok(OwnerSnapshot::empty(owner.clone())),
        }
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        let docs = self
            .db()
            .find(
                doc! { USER: user.as_str(), VERSION: { "$gt": 0_i64 } },
                doc! { RECENT: 0 },
            )
            .await
            .map_err(backend)?;
        let mut snapshots = docs
            .iter()
            .map(|doc| snapshot(&document::owner_of(user, doc)?, doc))
            .collect::<Result<Vec<_>, Error>>()?;
        snapshots.sort_by(|a, b| a.owner.cmp(&b.owner));
        Ok(snapshots)
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        let docs = self
            .db()
            .page(true, doc! { ID: document::applied_entry(id) }, 1)
            .await
            .map_err(backend)?;
        docs.first()
            .map(|doc| read_journal_entry(doc).map(|entry| entry.event()))
            .transpose()
    }
}

fn outcome(applied: bool, change: &ValidChange, versions: &[(OwnerId, Version)]) -> ApplyOutcome {
    let event = ChangeEvent::from_applied(change, versions);
    if applied {
        ApplyOutcome::Applied(event)
    } else {
        ApplyOutcome::AlreadyApplied(event)
    }
}

/// How many documents one read of a scan returns.
const SCAN_PAGE: i64 = 4096;

#[async_trait]
impl StoreScan for MongoStore {
    async fn scan_journal(
        &self,
        visit: &mut (dyn FnMut(JournalEntry) + Send),
    ) -> Result<(), Error> {
        let mut filter = doc! {};
        loop {
            let docs = self
                .db()
                .page(true, filter, SCAN_PAGE)
                .await
                .map_err(backend)?;
            let Some(last) = docs.last() else {
                return Ok(());
            };
            filter = doc! { ID: { "$gt": last.get(ID).cloned().unwrap_or(Bson::Null) } };
            for doc in &docs {
                visit(read_journal_entry(doc)?);
            }
        }
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        let mut filter = doc! { VERSION: { "$gt": 0_i64 } };
        loop {
            let docs = self
                .db()
                .page(false, filter, SCAN_PAGE)
                .await
                .map_err(backend)?;
            let Some(last) = docs.last() else {
                return Ok(());
            };
            filter = doc! {
                ID: { "$gt": last.get(ID).cloned().unwrap_or(Bson::Null) },
                VERSION: { "$gt": 0_i64 },
            };
            for doc in &docs {
                visit(owner_record(doc)?);
            }
        }
    }
}

fn lost_races(change: &ValidChange) -> Error {
    Error::Backend(format!(
        "change {} lost {MAX_RACES} races to concurrent changes; retry it",
        change.id()
    ))
}

/// E11000: the document exists already.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        _ => false,
    }
}

/// Network trouble means the outcome is unknown (retry with the same id);
/// anything else is a backend failure.
fn backend(e: mongodb::error::Error) -> Error {
    let unknown = matches!(
        &*e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT);
    if unknown {
        Error::Unavailable(e.to_string())
    } else {
        Error::Backend(e.to_string())
    }
}
