//! The MongoDB store: one document per owner, field-level atomic updates with
//! the guards in the filter, and a journal collection that is the store-wide
//! record of every change id. On a replica set every change is one
//! transaction; on a standalone server a change claims its id in the journal
//! first, then updates its owners (with compensation), then marks the claim
//! applied.
//!
//! # Document model
//!
//! ```text
//! { _id: "c:alice:hero",           // the owner id
//!   u: "alice",                    // its user (indexed; in every write's filter)
//!   v: Int64(42),                  // the owner's version
//!   items: { wood: Int64(7), ... },// one field per item; absent = 0
//!   recent: [Binary(4, <uuid>), ...] } // the last 64 change ids, oldest first
//! ```
//!
//! An owner past `stacks_per_document` stacks (64 by default) is split: its
//! stacks move to item buckets (`{_id: "<owner>#<k>", u, o: <owner>, items}`)
//! and the document keeps `v`, `recent` and the bucket count `b`; a change
//! then updates the head and the buckets its items fall in, in its
//! transaction. See `buckets.rs`. A standalone server never splits.
//!
//! `recent` holds exactly one entry per version, so an entry's version is its
//! position: the last entry produced `v`, the one before it `v - 1`. A change
//! undone by compensation keeps its slot, re-typed as a retraction (binary
//! subtype 0x80), so positions never shift. The window is the per-owner
//! guard (an attempt never applies an owner's part twice), not the record of
//! the change id: that is the journal. It is small and fixed (64 entries,
//! about 1.7 KB), so its cost does not grow with anything.
//!
//! Every write's filter carries the user (`u`) beside the `_id`, so a
//! collection sharded on `u` routes each write to one shard: a player's
//! account and characters live together, a trade touches at most two shards.
//!
//! # Journal: the record of a change id
//!
//! `<collection>_journal` holds one entry per change id (`_id` = the id, so
//! a second insert fails with E11000): `{_id, c: <change JSON>, p: <versions
//! JSON>}` for an applied change, `{_id, c, s: "pending"}` for a claim not yet
//! finished (standalone path only). A retry whose content is the recorded
//! one ([`ValidChange::same_content`]) answers `AlreadyApplied` with the
//! recorded event; the same id with other content fails with
//! `ChangeConflict` and writes nothing, whatever owners it names.
//! [`lookup`](InventoryStore::lookup) reads the entry; scans skip claims.
//!
//! # Replica set: one transaction per change
//!
//! Every change, single-owner too, is one transaction: for each owner in
//! ascending order one `findAndModify` (filter `{_id, u, b: {$exists: false}, recent: {$ne: <id>},
//! items.<c>: {$gte: n} per consume, items.<g>: {$not: {$gt: MAX_BALANCE -
//! n}} per grant}`, update `{$inc: {items.<x>: ±n, v: 1}, $push: {recent:
//! {$each: [<id>], $slice: -64}}}`, post-image projected to `v` and the
//! consumed balances), then the journal insert, then `commitTransaction`: the
//! updates and the record commit together, one durable commit per change, and
//! an applied change is never left unjournaled (no crash window).
//! - An update that matches nothing, or a journal insert failing with
//!   E11000, aborts; then the journal decides first (applied: the recorded
//!   event or a conflict), then a read of the owner: a guard fails ⇒ that
//!   refusal; no document yet ⇒ `insertOne` of an empty one (E11000 ignored)
//!   and again; neither (a concurrent change moved the balances) ⇒ again.
//! - Write conflicts with concurrent transactions (`TransientTransactionError`,
//!   code 112) are retried with jittered exponential backoff (1 ms to 100 ms);
//!   a commit whose reply was lost or whose result is unknown is sent again
//!   (up to 3 times; the commit is idempotent).
//! - **Crash behaviour**: before the commit nothing is visible; after it the
//!   change and its entry are durable together. A commit whose replies are
//!   all lost answers `Unavailable`; the retry finds the entry and answers
//!   `AlreadyApplied`.
//! - On a split owner the owner's update is the head's (`{_id, u, b: <count>,
//!   recent: {$ne: <id>}}`, `$inc v`, `$push recent`) plus one guarded
//!   `findAndModify` per bucket the part touches; a count that changed since
//!   this store last saw the owner misses on `b`, and the read that
//!   diagnoses the miss teaches it the new count.
//! - **Cost on a real `mongod`**: one transaction = the owners' updates and one
//!   insert in WiredTiger's snapshot, made durable by the commit's single
//!   journal flush (`j: true` / majority). Against the old single-owner path
//!   (update, then a separate journal insert: two flushes), it saves a flush
//!   and costs one more round trip (the `commitTransaction`).
//!
//! # Publishing: the journal's change stream
//!
//! On a replica set the store is its own [`Outbox`](crate::Outbox): the
//! inserts into the journal collection, read through a change stream, are the
//! applied changes in commit order, and nothing more is written per change.
//! The durable mark and a publishing lease (one store instance in the
//! deployment publishes every node's changes; another takes over after it
//! dies) live in `<collection>_outbox`; see `outbox.rs`. A standalone server
//! has no change streams: there the store has no outbox, and the facade
//! publishes inline after each change.
//!
//! # Standalone server: claim, apply, mark
//!
//! 1. **Claim**: insert `{_id, c, s: "pending"}`. On E11000 read the entry:
//!    other content ⇒ `ChangeConflict`; applied ⇒ `AlreadyApplied` with its
//!    event; pending ⇒ a concurrent or crashed attempt of the same change:
//!    continue it (the owners' windows keep any part from applying twice).
//! 2. **Apply**: a single-owner change is the guarded `findAndModify` above
//!    (no transaction). A multi-owner change: a read of every owner refuses a
//!    change whose guard already fails, then the update per owner in
//!    ascending order; if part `k` fails, parts `0..=k` are undone, last
//!    first (part `k` too: a lost reply may hide an applied write): read the
//!    owner, and if the change's id is in its window, `updateOne({_id, u, v:
//!    <read>}, {$inc: {items.<x>: ∓n, v: 1}, $set: {recent: <window with the
//!    id retracted, plus a retraction entry>}})`, re-read and retry if `v`
//!    moved. The undo is keyed on the id being applied, so it is idempotent.
//! 3. **Mark**: `updateOne({_id, s: "pending"}, {$set: {p}, $unset: {s}})` (or
//!    insert the applied entry if the claim was released meanwhile).
//!
//! A refused change, or one whose parts were all undone, deletes its claim:
//! it leaves no trace and its id can be retried. A call answers `Applied`
//! when it applied the first part itself, so of concurrent attempts of one
//! change exactly one answers `Applied`.
//!
//! **Crash behaviour**: after the claim, nothing applied: the claim stays
//! pending; a retry continues it; `lookup` answers `None`; another content
//! with that id is a conflict. Between parts of a multi-owner change: half
//! applied until a retry with the same id completes it. After the parts,
//! before the mark: applied, entry pending; `lookup` answers the event from
//! the owners' windows, the audit's scans do not see it until a retry marks
//! it. **Limits**: a pending claim is continued safely only while its
//! applied parts are among their owners' last 64 changes (retries come within
//! seconds); two attempts of one change racing a third change that flips a
//! guard between them can leave it half applied until it is retried.
//! Transactions have neither window; use a replica set in production.
//!
//! # Zero stacks
//!
//! When a post-image shows a consumed stack at 0, `updateOne({_id, u,
//! items.<x>: 0}, {$unset: {items.<x>: ""}})`: it only matches while the stack
//! is still 0, so it never erases a concurrent grant, and it leaves `v` alone.
//! Loads hide zero stacks in any case.
//!
//! # Never wedged, and few conflicts
//!
//! A call first locks its owners in the node (striped async locks, taken in
//! ascending order, so never in a cycle): the changes of one owner run one
//! at a time in a node instead of aborting each other as write conflicts in
//! the database, so a hot owner costs queueing, not wasted transactions.
//! Changes from other nodes still conflict, and are retried.
//!
//! A transaction in flight needs a pooled connection for each of its next
//! operations, while its locks hold up the others: if every connection is
//! held by operations waiting on such transactions, nothing moves. So the
//! store runs at most `max_pool_size - 2` calls at once (a semaphore, taken
//! after the owners' locks), and every wait is bounded: the owners' locks
//! and a permit each within `busy_timeout` (default 5 s),
//! every database operation, connection checkout included, within
//! `operation_timeout` (default 10 s), both answered as
//! [`Error::Unavailable`]. The pool holds 64 connections unless the URI's
//! `maxPoolSize` or [`MongoConfig::with_max_pool_size`] says otherwise.
//!
//! Proven under load by `tests/store/mongo_load.rs` (64 and 256 callers on
//! the store) and by the service's `tests/node/mongo_load.rs` (the same mix
//! through one node process over HTTP), both topologies: every call answers
//! applied, refused with its code, or `unavailable` within 20 s (5.9 s at
//! worst in practice), and the owners are the journal's replay afterwards.

mod buckets;
mod database;
mod document;
mod locks;
mod outbox;
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, ClientSession, IndexModel};
use protocol::{
    ChangeEvent, ChangeId, ItemId, Operation, OperatorAction, OwnerId, OwnerSnapshot, UserId,
    ValidChange, Version,
};
use tokio::sync::{Semaphore, SemaphorePermit};

use self::buckets::{BUCKETS, MAX_BUCKETS};
use self::buckets::{
    DEFAULT_STACKS_PER_DOCUMENT, Layout, bucketed_updates, buckets_filter, buckets_holding,
    layout_of, merge_items, split, stacks_in,
};
use self::database::{Database, Driver};
#[cfg(feature = "test-util")]
pub use self::database::{FaultInjector, FaultKind};
use self::document::{
    Diagnosis, ID, ITEMS, RECENT, Recorded, USER, VERSION, applied_entry, applied_only,
    applied_version, diagnose, emptied_items, first_refusal, item_path, journal_entry,
    mark_applied, owner_record, owner_update, pending_claim, pending_filter, post_image_version,
    read_journal_entry, read_recorded, skeleton, snapshot, touched_projection, undo_update,
    zero_cleanup,
};
use self::locks::OwnerLocks;
use self::outbox::ChangeFeed;
use self::support::SupportCollections;
use crate::{
    ApplyOutcome, Error, InventoryStore, JournalEntry, JournalRecord, Outbox, OwnerRecord,
    StoreScan, SupportStore, now_millis,
};

/// How many times a change that lost a race to a concurrent change (an
/// update matched nothing, yet no guard fails and the change is not applied;
/// or a transaction hit a write conflict) is tried again before the store
/// gives up.
const MAX_RACES: usize = 64;

/// How many times a compensation waits for items it must take back.
const UNDO_ATTEMPTS: u32 = 50;

/// How many times a split that conflicted with a change is tried again.
const SPLIT_ATTEMPTS: usize = 3;

/// How many split owners a store remembers the layout of before it forgets
/// them all (and learns each again from one missed update).
const MAX_KNOWN_SPLITS: usize = 100_000;

/// How many times a commit whose result is unknown is sent again.
const COMMIT_ATTEMPTS: usize = 3;

/// The pool size when neither the URI nor the config sets one.
const DEFAULT_MAX_POOL_SIZE: u32 = 64;

/// Pooled connections the store's permits leave free, so that a zero-stack
/// clean-up or a checkout racing a check-in never waits on a transaction.
const POOL_HEADROOM: u32 = 2;

/// Where the store keeps its documents and how it talks to the deployment.
#[derive(Clone, Debug)]
#[must_use]
pub struct MongoConfig {
    uri: String,
    database: String,
    collection: String,
    transactions: Option<bool>,
    max_pool_size: u32,
    busy_timeout: Duration,
    operation_timeout: Duration,
    relay_lease: Duration,
    stacks_per_document: usize,
    command_events: Option<EventHandler<CommandEvent>>,
}

impl MongoConfig {
    /// The deployment at `uri` (a MongoDB connection string), database
    /// `inventory`, collection `inventories`, transactions if the deployment
    /// supports them, a pool of 64 connections (unless the URI sets
    /// `maxPoolSize`), 5 s for a free connection and 10 s per operation, a
    /// 3 s publishing lease.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: "inventory".to_owned(),
            collection: "inventories".to_owned(),
            transactions: None,
            max_pool_size: DEFAULT_MAX_POOL_SIZE,
            busy_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            relay_lease: Duration::from_secs(3),
            stacks_per_document: DEFAULT_STACKS_PER_DOCUMENT,
            command_events: None,
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

    /// The connection pool's size, sized for the node's concurrency; the
    /// URI's `maxPoolSize` wins over it. The store runs at most two fewer
    /// operations at once.
    pub fn with_max_pool_size(mut self, max_pool_size: u32) -> Self {
        self.max_pool_size = max_pool_size;
        self
    }

    /// How long a call waits for the store to have a connection free before
    /// it answers [`Error::Unavailable`].
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long one database operation (its connection checkout included)
    /// may take before the call answers [`Error::Unavailable`].
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long the store instance whose relays publish the deployment's
    /// changes (see the outbox in the module docs) holds that role without
    /// renewing it: when its node dies, publishing pauses this long at most
    /// before another node takes over (default 3 s).
    pub fn with_relay_lease(mut self, lease: Duration) -> Self {
        self.relay_lease = lease;
        self
    }

    /// How many stacks an owner's document holds before the owner is split
    /// into item buckets (default 64; see "Item buckets" in the module
    /// docs). At least 1.
    pub fn with_stacks_per_document(mut self, stacks: usize) -> Self {
        self.stacks_per_document = stacks.max(1);
        self
    }

    /// Sees every command the driver sends (the driver's command monitoring),
    /// for tracing and for tests.
    pub fn with_command_events(mut self, handler: EventHandler<CommandEvent>) -> Self {
        self.command_events = Some(handler);
        self
    }
}

/// What the store has done since it connected, for operators and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct MongoStats {
    /// Changes committed in a transaction.
    pub transactions: u64,
    /// Owner parts undone by compensation.
    pub compensations: u64,
    /// Transactions tried again after a write conflict.
    pub conflicts: u64,
    /// Owners split into item buckets (or re-split into more).
    pub splits: u64,
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
    /// The outbox, on a deployment with change streams (transactions).
    feed: Option<ChangeFeed>,
    permits: Semaphore,
    owners: OwnerLocks,
    busy_timeout: Duration,
    operation_timeout: Duration,
    committed: AtomicU64,
    compensated: AtomicU64,
    conflicts: AtomicU64,
    splits: AtomicU64,
    support: SupportCollections,
    per_document: usize,
    /// The bucket count of every split owner this store has seen (owners
    /// whose stacks are in their own document are not listed). A stale count
    /// only costs a missed update, read and sent again.
    split_owners: Mutex<HashMap<OwnerId, u32>>,
}

/// One owner's part of a change.
enum Part {
    Applied(Version),
    AlreadyApplied(Version),
}

/// How a transaction attempt ended, short of an error.
enum Attempt {
    /// Committed; the post-images in owner order, each with its stacks
    /// merged from the buckets it touched.
    Committed(Vec<Post>),
    /// This owner's update matched nothing; aborted.
    NoMatch(OwnerId),
    /// The journal holds the change id already; aborted.
    Duplicate,
}

/// An owner's post-image after its part of a change.
struct Post {
    doc: Document,
    /// A document it wrote now holds more stacks than the limit.
    oversized: bool,
}

/// Why a transaction attempt failed.
enum Abort {
    /// A write conflict with a concurrent transaction: try again.
    Transient(mongodb::error::Error),
    /// Anything else.
    Failed(Error),
}

impl From<mongodb::error::Error> for Abort {
    fn from(e: mongodb::error::Error) -> Self {
        if is_transient(&e) {
            Self::Transient(e)
        } else {
            Self::Failed(backend(e))
        }
    }
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

impl MongoStore {
    /// Connects, creates the indexes, and decides between transactions and
    /// compensation (a replica set or a sharded cluster supports transactions;
    /// a standalone server does not), unless the config forces it.
    pub async fn connect(config: MongoConfig) -> Result<Self, Error> {
        let (driver, transactions, permits) = Self::driver(&config).await?;
        let feed = Self::feed(&driver, transactions, &config).await?;
        let support = Self::support(&driver, &config).await?;
        Ok(Self::on(
            Box::new(driver),
            transactions,
            feed,
            permits,
            support,
            &config,
        ))
    }

    /// Like [`connect`](Self::connect), but every database operation goes
    /// through `faults`, which can fail chosen ones.
    #[cfg(feature = "test-util")]
    pub async fn connect_with_faults(
        config: MongoConfig,
        faults: FaultInjector,
    ) -> Result<Self, Error> {
        let (inner, transactions, permits) = Self::driver(&config).await?;
        let feed = Self::feed(&inner, transactions, &config).await?;
        let support = Self::support(&inner, &config).await?;
        let faulty = database::Faulty { inner, faults };
        Ok(Self::on(
            Box::new(faulty),
            transactions,
            feed,
            permits,
            support,
            &config,
        ))
    }

    /// The outbox over the journal's change stream, where the deployment has
    /// change streams (a replica set or a sharded cluster: the deployments
    /// with transactions).
    async fn feed(
        driver: &Driver,
        transactions: bool,
        config: &MongoConfig,
    ) -> Result<Option<ChangeFeed>, Error> {
        if !transactions {
            tracing::warn!(
                "a MongoDB server without transactions has no change streams: changes are published inline, and an event can be lost if the node dies between a commit and its publish; use a replica set"
            );
            return Ok(None);
        }
        ChangeFeed::open(
            driver.client(),
            &config.database,
            &config.collection,
            config.relay_lease,
        )
        .await
        .map(Some)
    }

    async fn driver(config: &MongoConfig) -> Result<(Driver, bool, usize), Error> {
        let mut options = ClientOptions::parse(&config.uri).await.map_err(backend)?;
        let pool = *options.max_pool_size.get_or_insert(config.max_pool_size);
        if let Some(handler) = &config.command_events {
            options.command_event_handler = Some(handler.clone());
        }
        // A pool of 0 is unbounded in the driver: no connection to wait for.
        let permits = match pool {
            0 => Semaphore::MAX_PERMITS,
            n => n.saturating_sub(POOL_HEADROOM).max(1) as usize,
        };
        let client = Client::with_options(options).map_err(backend)?;
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
            pool,
            "connected to MongoDB"
        );
        let journal = client
            .database(&config.database)
            .collection::<Document>(&format!("{}_journal", config.collection));
        let driver = Driver::new(client, collection, journal, config.operation_timeout);
        Ok((driver, transactions, permits))
    }

    /// The collections of the support reads, their indexes created.
    async fn support(driver: &Driver, config: &MongoConfig) -> Result<SupportCollections, Error> {
        let database = driver.client().database(&config.database);
        let support = SupportCollections {
            owners: database.collection(&config.collection),
            journal: database.collection(&format!("{}_journal", config.collection)),
            log: database.collection(&format!("{}_operator_log", config.collection)),
            timeout: config.operation_timeout,
        };
        support.create_indexes().await?;
        Ok(support)
    }

    fn on(
        db: Box<dyn Database>,
        transactions: bool,
        feed: Option<ChangeFeed>,
        permits: usize,
        support: SupportCollections,
        config: &MongoConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                transactions,
                feed,
                permits: Semaphore::new(permits),
                owners: OwnerLocks::new(),
                busy_timeout: config.busy_timeout,
                operation_timeout: config.operation_timeout,
                committed: AtomicU64::new(0),
                compensated: AtomicU64::new(0),
                conflicts: AtomicU64::new(0),
                splits: AtomicU64::new(0),
                support,
                per_document: config.stacks_per_document,
                split_owners: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether changes run in transactions (else: claim and compensation).
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
            conflicts: self.inner.conflicts.load(Ordering::Relaxed),
            splits: self.inner.splits.load(Ordering::Relaxed),
        }
    }

    fn db(&self) -> &dyn Database {
        &*self.inner.db
    }

    /// A slot among the operations the pool can always serve, or
    /// `Unavailable` once `busy_timeout` has passed.
    async fn permit(&self) -> Result<SemaphorePermit<'_>, Error> {
        tokio::time::timeout(self.inner.busy_timeout, self.inner.permits.acquire())
            .await
            .map_err(|_| self.busy())?
            .map_err(|_| self.busy())
    }

    fn busy(&self) -> Error {
        Error::Unavailable(format!(
            "the MongoDB store could not start the call within {:?}; retry",
            self.inner.busy_timeout
        ))
    }

    /// What the journal answers for `change` when its id is taken: the
    /// recorded event, a conflict, or, for a pending claim of the same
    /// change, the claim finished; `None` if nothing is recorded (any more).
    async fn answer_recorded(&self, change: &ValidChange) -> Result<Option<ApplyOutcome>, Error> {
        match self.recorded(change.id()).await? {
            Some(Recorded::Applied(entry)) => already_applied(&entry, change).map(Some),
            Some(Recorded::Pending(claimed)) => {
                conflict_unless_same(&claimed, change)?;
                self.finish_claim(&claimed).await.map(Some)
            }
            None => Ok(None),
        }
    }

    /// What the journal holds for `id`.
    async fn recorded(&self, id: ChangeId) -> Result<Option<Recorded>, Error> {
        let docs = self
            .db()
            .page(true, doc! { ID: applied_entry(id) }, 1)
            .await
            .map_err(backend)?;
        docs.first().map(read_recorded).transpose()
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
            let doc = self.read(owner, change).await?;
            if let Layout::Buckets(_) = self.layout(owner) {
                return Err(Error::Backend(format!(
                    "{owner} is split into item buckets, which only a deployment with \
                     transactions (a replica set) can update"
                )));
            }
            match diagnose(owner, change, doc.as_ref())? {
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

    /// Where `owner`'s stacks live, as far as this store has seen.
    fn layout(&self, owner: &OwnerId) -> Layout {
        self.split_owners()
            .get(owner)
            .map_or(Layout::Head, |n| Layout::Buckets(*n))
    }

    fn split_owners(&self) -> std::sync::MutexGuard<'_, HashMap<OwnerId, u32>> {
        self.inner
            .split_owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers the layout an owner's document showed.
    fn learn(&self, owner: &OwnerId, layout: Layout) {
        let mut known = self.split_owners();
        match layout {
            Layout::Head => {
                known.remove(owner);
            }
            Layout::Buckets(n) => {
                if known.len() >= MAX_KNOWN_SPLITS && !known.contains_key(owner) {
                    known.clear();
                }
                known.insert(owner.clone(), n);
            }
        }
    }

    /// Adds the stacks of a split owner's buckets to its document read
    /// whole, so it reads as one.
    async fn with_buckets(&self, owner: &OwnerId, head: &mut Document) -> Result<(), Error> {
        if let Layout::Buckets(_) = layout_of(owner, head)? {
            let buckets = self
                .db()
                .find(None, buckets_filter(owner), doc! { ITEMS: 1 })
                .await
                .map_err(backend)?;
            for bucket in &buckets {
                merge_items(head, bucket);
            }
        }
        Ok(())
    }

    /// Inserts the document of an owner never touched; a concurrent insert
    /// winning the race is just as good.
    async fn create(&self, owner: &OwnerId) -> Result<(), Error> {
        match self.db().insert_one(skeleton(owner)).await {
            Err(e) if !is_duplicate_key(&e) => Err(backend(e)),
            _ => Ok(()),
        }
    }

    /// The owner's version, window and touched balances (from its buckets
    /// if it is split); remembers its layout.
    async fn read(&self, owner: &OwnerId, change: &ValidChange) -> Result<Option<Document>, Error> {
        let projection = touched_projection(owner, change);
        let Some(mut head) = self
            .db()
            .find_one(None, doc! { ID: owner.to_string() }, projection.clone())
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let layout = layout_of(owner, &head)?;
        self.learn(owner, layout);
        if let Layout::Buckets(n) = layout {
            let items = change.ops_for(owner).map(Operation::item);
            let buckets = self
                .db()
                .find(None, buckets_holding(owner, items, n), projection)
                .await
                .map_err(backend)?;
            for bucket in &buckets {
                merge_items(&mut head, bucket);
            }
        }
        Ok(Some(head))
    }

    /// Removes stacks left at zero. A failure is only logged: the change is
    /// applied, loads hide zero stacks, and the next consume to zero retries.
    async fn clean_up<'a>(&self, owner: &OwnerId, items: impl Iterator<Item = &'a ItemId>) {
        let layout = self.layout(owner);
        for item in items {
            let (filter, update) = zero_cleanup(owner, item, layout);
            if let Err(e) = self.db().update_one(None, filter, update).await {
                tracing::warn!(%owner, %item, error = %e, "could not remove an empty stack");
            }
        }
    }

    async fn apply_in_transaction(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_millis(100))
            .with_max_times(MAX_RACES)
            .build();
        for _ in 0..MAX_RACES {
            let owner = match self.try_transaction(change).await {
                Ok(Attempt::Committed(posts)) => {
                    self.inner.committed.fetch_add(1, Ordering::Relaxed);
                    let mut versions = Vec::with_capacity(posts.len());
                    for (owner, post) in change.owners().zip(&posts) {
                        versions.push((owner.clone(), post_image_version(owner, &post.doc)?));
                        self.clean_up(owner, emptied_items(owner, change, &post.doc))
                            .await;
                        if post.oversized {
                            self.split_owner(owner).await;
                        }
                    }
                    return Ok(outcome(true, change, &versions));
                }
                Ok(Attempt::Duplicate) => None,
                Ok(Attempt::NoMatch(owner)) => Some(owner),
                Err(Abort::Transient(e)) => {
                    self.inner.conflicts.fetch_add(1, Ordering::Relaxed);
                    let delay = delays.next().unwrap_or(Duration::from_millis(100));
                    tracing::debug!(id = %change.id(), error = %e, ?delay, "write conflict, again");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(Abort::Failed(e)) => return Err(e),
            };
            // A pending claim here was left by the path without transactions
            // on this database.
            if let Some(answer) = self.answer_recorded(change).await? {
                return Ok(answer);
            }
            // A duplicate whose entry is gone again: a claim released meanwhile.
            let Some(owner) = owner else { continue };
            match diagnose(&owner, change, self.read(&owner, change).await?.as_ref())? {
                Diagnosis::AlreadyApplied(_) => {
                    // In a window, not in the journal: applied before the
                    // journal recorded every change. Record it now.
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

    /// One transaction: the owners' updates, the journal entry, the commit.
    /// Anything short of the commit aborts it.
    async fn try_transaction(&self, change: &ValidChange) -> Result<Attempt, Abort> {
        let mut session = self.db().client().start_session().await?;
        session.start_transaction().await?;
        let attempt = self.transaction(&mut session, change).await;
        if !matches!(attempt, Ok(Attempt::Committed(_))) {
            // Best effort, and bounded like every operation: the server
            // also aborts a transaction whose session ends.
            let _ = tokio::time::timeout(self.inner.operation_timeout, session.abort_transaction())
                .await;
        }
        attempt
    }

    async fn transaction(
        &self,
        session: &mut ClientSession,
        change: &ValidChange,
    ) -> Result<Attempt, Abort> {
        let mut posts = Vec::with_capacity(change.owners().len());
        let mut versions = Vec::with_capacity(change.owners().len());
        for owner in change.owners() {
            let Some(post) = self.update_owner(session, owner, change).await? else {
                return Ok(Attempt::NoMatch(owner.clone()));
            };
            versions.push((owner.clone(), post_image_version(owner, &post.doc)?));
            posts.push(post);
        }
        let entry = journal_entry(change, &versions, now_millis())?;
        match self.db().journal(Some(&mut *session), entry).await {
            Err(e) if is_duplicate_key(&e) => return Ok(Attempt::Duplicate),
            other => other?,
        }
        let mut attempts = 0;
        loop {
            match self.db().commit(session).await {
                Ok(()) => return Ok(Attempt::Committed(posts)),
                // The commit may have happened: committing again is safe
                // (the server answers a second commit of one transaction
                // with its first outcome).
                Err(e)
                    if (e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        || matches!(*e.kind, ErrorKind::Io(_)))
                        && attempts + 1 < COMMIT_ATTEMPTS =>
                {
                    attempts += 1;
                    tracing::debug!(id = %change.id(), error = %e, "commit result unknown, again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `owner`'s part of `change` inside the session's transaction, in the
    /// layout this store knows: its document, or its head and the buckets
    /// the part touches. `None` if an update matched nothing.
    async fn update_owner(
        &self,
        session: &mut ClientSession,
        owner: &OwnerId,
        change: &ValidChange,
    ) -> Result<Option<Post>, Abort> {
        let limit = self.inner.per_document;
        let Layout::Buckets(n) = self.layout(owner) else {
            let post = self
                .db()
                .find_one_and_update(Some(&mut *session), &owner_update(owner, change))
                .await?;
            return Ok(post.map(|doc| Post {
                oversized: stacks_in(&doc) > limit,
                doc,
            }));
        };
        let (head, parts) = bucketed_updates(owner, change, n);
        let Some(mut doc) = self
            .db()
            .find_one_and_update(Some(&mut *session), &head)
            .await?
        else {
            return Ok(None);
        };
        let mut oversized = false;
        for part in &parts {
            let Some(bucket) = self
                .db()
                .find_one_and_update(Some(&mut *session), part)
                .await?
            else {
                return Ok(None);
            };
            oversized |= stacks_in(&bucket) > limit;
            merge_items(&mut doc, &bucket);
        }
        Ok(Some(Post {
            doc,
            oversized: oversized && n < MAX_BUCKETS,
        }))
    }

    /// Splits `owner` into item buckets, or re-splits it into more, in one
    /// transaction. A failure is only logged: the owner stays as it is,
    /// correct, and the next change that grows it tries again.
    async fn split_owner(&self, owner: &OwnerId) {
        for _ in 0..SPLIT_ATTEMPTS {
            let mut session = match self.db().client().start_session().await {
                Ok(session) => session,
                Err(e) => {
                    tracing::warn!(%owner, error = %e, "could not split an owner");
                    return;
                }
            };
            let split = async {
                session.start_transaction().await?;
                self.split_in(&mut session, owner).await
            }
            .await;
            if !matches!(split, Ok(true)) {
                let _ =
                    tokio::time::timeout(self.inner.operation_timeout, session.abort_transaction())
                        .await;
            }
            match split {
                Ok(_) => return,
                Err(Abort::Transient(e)) => {
                    tracing::debug!(%owner, error = %e, "split conflicted, again");
                }
                Err(Abort::Failed(e)) => {
                    tracing::warn!(%owner, error = %e, "could not split an owner");
                    return;
                }
            }
        }
    }

    /// The split inside the session's transaction; whether it committed one.
    async fn split_in(&self, session: &mut ClientSession, owner: &OwnerId) -> Result<bool, Abort> {
        let Some(head) = self
            .db()
            .find_one(
                Some(&mut *session),
                doc! { ID: owner.to_string() },
                doc! { VERSION: 1, BUCKETS: 1, ITEMS: 1 },
            )
            .await?
        else {
            return Ok(false);
        };
        let old = layout_of(owner, &head)?;
        let buckets = match old {
            Layout::Head => Vec::new(),
            Layout::Buckets(_) => {
                self.db()
                    .find(
                        Some(&mut *session),
                        buckets_filter(owner),
                        doc! { ITEMS: 1 },
                    )
                    .await?
            }
        };
        let Some(plan) = split(owner, &head, &buckets, self.inner.per_document)? else {
            self.learn(owner, old);
            return Ok(false);
        };
        if self
            .db()
            .update_one(Some(&mut *session), plan.filter, plan.update)
            .await?
            == 0
        {
            return Ok(false);
        }
        if let Layout::Buckets(_) = old {
            self.db()
                .delete_many(&mut *session, buckets_filter(owner))
                .await?;
        }
        self.db().insert_many(&mut *session, plan.buckets).await?;
        self.db().commit(session).await?;
        self.inner.splits.fetch_add(1, Ordering::Relaxed);
        self.learn(owner, Layout::Buckets(plan.count));
        tracing::info!(%owner, buckets = plan.count, "owner split into item buckets");
        Ok(true)
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

    /// The path without transactions: claim the id in the journal, apply,
    /// mark the claim applied.
    async fn apply_with_claim(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        for _ in 0..MAX_RACES {
            match self.db().journal(None, pending_claim(change)?).await {
                Ok(()) => return self.finish_claim(change).await,
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(backend(e)),
            }
            // Nothing recorded: released by a refused attempt since, so claim
            // it again.
            if let Some(answer) = self.answer_recorded(change).await? {
                return Ok(answer);
            }
        }
        Err(lost_races(change))
    }

    /// Applies a claimed change (as recorded in its claim) to its owners and
    /// marks the claim applied; releases the claim when the change was
    /// refused or fully undone, and keeps it when the outcome is unknown.
    async fn finish_claim(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let mut owners = change.owners();
        let (applied, versions) = if let (Some(owner), None) = (owners.next(), owners.next()) {
            match self.apply_part(owner, change).await {
                Ok(Part::Applied(version)) => (true, vec![(owner.clone(), version)]),
                Ok(Part::AlreadyApplied(version)) => (false, vec![(owner.clone(), version)]),
                Err(refusal @ (Error::Insufficient { .. } | Error::BalanceOverflow { .. })) => {
                    self.release(change).await;
                    return Err(refusal);
                }
                Err(e) => return Err(e),
            }
        } else {
            self.apply_with_compensation(change).await?
        };
        self.mark(change, &versions).await?;
        Ok(outcome(applied, change, &versions))
    }

    /// Turns the claim into the entry of an applied change. If the claim is
    /// gone (released by a concurrent attempt that was refused), inserts the
    /// entry; one already there is as good.
    async fn mark(
        &self,
        change: &ValidChange,
        versions: &[(OwnerId, Version)],
    ) -> Result<(), Error> {
        let unjournaled = |e: mongodb::error::Error| {
            Error::Unavailable(format!(
                "change {} is applied but its journal entry is still pending ({e}); \
                 retry it with the same id",
                change.id()
            ))
        };
        let matched = self
            .db()
            .journal_update(
                pending_filter(change.id()),
                mark_applied(versions, now_millis())?,
            )
            .await
            .map_err(unjournaled)?;
        if matched == 0 {
            match self
                .db()
                .journal(None, journal_entry(change, versions, now_millis())?)
                .await
            {
                Err(e) if !is_duplicate_key(&e) => return Err(unjournaled(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes the pending claim of a change that was not applied, so that
    /// it leaves no trace. A failure is only logged: the claim stays pending
    /// and a retry with the same id continues it.
    async fn release(&self, change: &ValidChange) {
        if let Err(e) = self.db().journal_delete(pending_filter(change.id())).await {
            tracing::warn!(id = %change.id(), error = %e, "could not release a change's claim");
        }
    }

    /// The multi-owner part of the path without transactions: owner by owner,
    /// undoing the applied parts if one fails. Whether the first part was
    /// applied by this call, and the versions.
    async fn apply_with_compensation(
        &self,
        change: &ValidChange,
    ) -> Result<(bool, Vec<(OwnerId, Version)>), Error> {
        if let Err(refusal) = self.precheck(change).await {
            if matches!(
                refusal,
                Error::Insufficient { .. } | Error::BalanceOverflow { .. }
            ) {
                self.release(change).await;
            }
            return Err(refusal);
        }
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
                    self.release(change).await;
                    return Err(failure);
                }
            }
        }
        Ok((applied_first, versions))
    }

    /// Journals an applied change outside any transaction; an entry already
    /// there (a retry) is as good. If the insert fails the caller hears
    /// "unavailable" and retries with the same id.
    async fn record(
        &self,
        change: &ValidChange,
        versions: &[(OwnerId, Version)],
    ) -> Result<(), Error> {
        match self
            .db()
            .journal(None, journal_entry(change, versions, now_millis())?)
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
            .find(None, doc! { ID: { "$in": ids } }, projection)
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
            .update_one(None, undo.filter, undo.update)
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
        // The owners first, the permit second: a call queued on a hot owner
        // holds no connection slot.
        let _owners = tokio::time::timeout(
            self.inner.busy_timeout,
            self.inner.owners.lock(change.owners()),
        )
        .await
        .map_err(|_| self.busy())?;
        let _permit = self.permit().await?;
        if self.inner.transactions {
            let outcome = self.apply_in_transaction(change).await;
            if let (Ok(ApplyOutcome::Applied(_)), Some(feed)) = (&outcome, &self.inner.feed) {
                feed.notify();
            }
            outcome
        } else {
            self.apply_with_claim(change).await
        }
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        let _permit = self.permit().await?;
        let doc = self
            .db()
            .find_one(None, doc! { ID: owner.to_string() }, doc! { RECENT: 0 })
            .await
            .map_err(backend)?;
        match doc {
            Some(mut doc) => {
                self.with_buckets(owner, &mut doc).await?;
                snapshot(owner, &doc)
            }
            None => Ok(OwnerSnapshot::empty(owner.clone())),
        }
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        let _permit = self.permit().await?;
        let docs = self
            .db()
            .find(
                None,
                doc! { USER: user.as_str(), VERSION: { "$gt": 0_i64 } },
                doc! { RECENT: 0 },
            )
            .await
            .map_err(backend)?;
        let mut snapshots = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let owner = document::owner_of(user, &doc)?;
            self.with_buckets(&owner, &mut doc).await?;
            snapshots.push(snapshot(&owner, &doc)?);
        }
        snapshots.sort_by(|a, b| a.owner.cmp(&b.owner));
        Ok(snapshots)
    }

    /// A pending claim (the path without transactions, before its mark)
    /// answers from the owners' windows: the event if every owner holds the
    /// change, else `None`.
    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        let _permit = self.permit().await?;
        match self.recorded(id).await? {
            None => Ok(None),
            Some(Recorded::Applied(entry)) => Ok(Some(entry.event())),
            Some(Recorded::Pending(change)) => {
                let versions = self.recorded_versions(&change).await?;
                Ok((versions.len() == change.owners().len())
                    .then(|| ChangeEvent::from_applied(&change, &versions)))
            }
        }
    }

    /// The journal's change stream on a replica set; none on a standalone
    /// server.
    fn outbox(&self) -> Option<&dyn Outbox> {
        self.inner.feed.as_ref().map(|feed| feed as &dyn Outbox)
    }
}

/// The answer to a change whose id the journal records as applied.
fn already_applied(entry: &JournalEntry, change: &ValidChange) -> Result<ApplyOutcome, Error> {
    conflict_unless_same(&entry.change, change)?;
    Ok(ApplyOutcome::AlreadyApplied(entry.event()))
}

/// `ChangeConflict` unless `change` has the recorded change's content.
fn conflict_unless_same(recorded: &ValidChange, change: &ValidChange) -> Result<(), Error> {
    if recorded.same_content(change) {
        Ok(())
    } else {
        Err(Error::ChangeConflict { id: change.id() })
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
        let _permit = self.permit().await?;
        let mut filter = applied_only();
        loop {
            let docs = self
                .db()
                .page(true, filter, SCAN_PAGE)
                .await
                .map_err(backend)?;
            let Some(last) = docs.last() else {
                return Ok(());
            };
            filter = applied_only();
            filter.insert(
                ID,
                doc! { "$gt": last.get(ID).cloned().unwrap_or(Bson::Null) },
            );
            for doc in &docs {
                visit(read_journal_entry(doc)?);
            }
        }
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        let _permit = self.permit().await?;
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
            for mut doc in docs {
                if doc.contains_key(BUCKETS) {
                    let owner = document::owner_id(&doc)?;
                    self.with_buckets(&owner, &mut doc).await?;
                }
                visit(owner_record(&doc)?);
            }
        }
    }
}

/// Nothing was applied, but the store is too contended to say more now.
fn lost_races(change: &ValidChange) -> Error {
    Error::Unavailable(format!(
        "change {} lost {MAX_RACES} races to concurrent changes; retry it",
        change.id()
    ))
}

/// The server's error code, if the error carries one.
fn error_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

#[async_trait]
impl SupportStore for MongoStore {
    async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error> {
        self.inner.support.history(owner, before, limit).await
    }

    async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
        self.inner.support.change(id).await
    }

    async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error> {
        self.inner.support.item_changes(item).await
    }

    async fn record_action(&self, action: &OperatorAction) -> Result<(), Error> {
        self.inner.support.record_action(action).await
    }

    async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error> {
        self.inner.support.actions(before, limit).await
    }
}

/// E11000: the document exists already.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    error_code(e) == Some(11000)
}

/// A conflict with a concurrent transaction (`WriteConflict`, 112, or the
/// driver's `TransientTransactionError` label): the transaction was aborted
/// and can run again.
fn is_transient(e: &mongodb::error::Error) -> bool {
    e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) || error_code(e) == Some(112)
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
