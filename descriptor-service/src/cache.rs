//! The read-through descriptor cache: moka in front of a [`DescriptorStore`].
//!
//! Two moka caches: `found` holds live descriptors as ready-to-send JSON,
//! weighted by size and bounded in bytes; `absent` is a bounded negative
//! cache of ids known missing or burned, with a time to live.
//!
//! A batch answers hits from the caches and fetches **all misses in one
//! store query**: one shared future runs `get_many` over every missed id, and
//! each missed id is loaded through moka's `try_get_with`, so concurrent
//! batches missing the same id wait for one load instead of starting their
//! own (single flight).
//!
//! A load that raced an invalidation (a burn, a revision, a create) must not
//! leave the old answer behind: every invalidation takes a number from an
//! epoch counter and remembers it per id for a while; after a load, ids
//! invalidated since the load began are dropped from the cache again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::future::Cache;
use protocol::{Descriptor, DescriptorKind, ItemId};
use serde_json::value::RawValue;

use crate::store::{DescriptorStore, Record};
use crate::{Error, Metrics};

const ENTRY_OVERHEAD: usize = 256;

/// Bounds of the caches.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// The most bytes of descriptor JSON (plus key overhead) kept.
    pub max_bytes: u64,
    /// The most ids kept in the negative cache.
    pub negative_capacity: u64,
    /// How long an id stays known-missing or known-burned.
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            negative_capacity: 100_000,
            negative_ttl: Duration::from_secs(30),
        }
    }
}

/// A live descriptor as the cache keeps it: its JSON, ready to send.
#[derive(Debug)]
pub struct CachedDescriptor {
    revision: u32,
    kind: DescriptorKind,
    json: Box<RawValue>,
}

impl CachedDescriptor {
    /// Serializes a descriptor once, for every later read.
    pub fn new(descriptor: &Descriptor) -> Result<Self, Error> {
        let json = serde_json::value::to_raw_value(descriptor)
            .map_err(|e| Error::Internal(format!("serializing {}: {e}", descriptor.id)))?;
        Ok(Self {
            revision: descriptor.revision,
            kind: descriptor.kind,
            json,
        })
    }

    /// The revision.
    #[must_use]
    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// Catalog or crafted.
    #[must_use]
    pub fn kind(&self) -> DescriptorKind {
        self.kind
    }

    /// The descriptor's compact JSON.
    #[must_use]
    pub fn json(&self) -> &RawValue {
        &self.json
    }

    fn weight(&self, id: &ItemId) -> u32 {
        // The fixed part approximates moka's per-entry bookkeeping, the Arc,
        // the boxes and allocator slack, so that the byte bound holds for
        // resident memory, not only for the JSON (measured by the benchmark).
        u32::try_from(self.json.get().len() + id.as_str().len() + ENTRY_OVERHEAD)
            .unwrap_or(u32::MAX)
    }
}

/// Why an id has no descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Absence {
    /// It never existed.
    Missing,
    /// It was burned.
    Burned,
}

/// The answer for one id.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// A live descriptor.
    Found(Arc<CachedDescriptor>),
    /// No descriptor, and why.
    Absent(Absence),
}

enum Miss {
    Absent(Absence),
    Store(Error),
}

type Loaded = Result<Arc<HashMap<ItemId, Record>>, Error>;

/// The descriptor cache; cheap to clone (clones share the caches).
#[derive(Clone, Debug)]
pub struct DescriptorCache {
    found: Cache<ItemId, Arc<CachedDescriptor>>,
    absent: Cache<ItemId, Absence>,
    invalidated: Cache<ItemId, u64>,
    epoch: Arc<AtomicU64>,
    flushed_at: Arc<AtomicU64>,
    store: Arc<dyn DescriptorStore>,
    metrics: Metrics,
}

impl DescriptorCache {
    /// A cache over `store`, bounded by `config`, counting into `metrics`.
    #[must_use]
    pub fn new(store: Arc<dyn DescriptorStore>, config: &CacheConfig, metrics: Metrics) -> Self {
        Self {
            found: Cache::builder()
                .max_capacity(config.max_bytes)
                .weigher(|id: &ItemId, value: &Arc<CachedDescriptor>| value.weight(id))
                .build(),
            absent: Cache::builder()
                .max_capacity(config.negative_capacity)
                .time_to_live(config.negative_ttl)
                .build(),
            // Long enough to outlive any load in flight.
            invalidated: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            epoch: Arc::new(AtomicU64::new(0)),
            flushed_at: Arc::new(AtomicU64::new(0)),
            store,
            metrics,
        }
    }

    /// Looks up distinct `ids`, answering in the same order. Misses of both
    /// caches are fetched in one store query.
    pub async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Lookup>, Error> {
        let mut answers = Vec::with_capacity(ids.len());
        let mut misses = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            if let Some(hit) = self.found.get(id).await {
                answers.push(Some(Lookup::Found(hit)));
            } else if let Some(absence) = self.absent.get(id).await {
                answers.push(Some(Lookup::Absent(absence)));
            } else {
                answers.push(None);
                misses.push(index);
            }
        }
        let hits = ids.len() - misses.len();
        let negative = answers
            .iter()
            .filter(|a| matches!(a, Some(Lookup::Absent(_))))
            .count();
        self.metrics.cache_hits.inc_by((hits - negative) as u64);
        self.metrics.negative_hits.inc_by(negative as u64);
        if misses.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }
        self.metrics.cache_misses.inc_by(misses.len() as u64);
        let start = self.epoch.load(Ordering::SeqCst);
        let load = self.load(misses.iter().map(|&i| ids[i].clone()).collect());
        let loaded = futures::future::join_all(misses.iter().map(|&i| {
            let load = load.clone();
            let id = &ids[i];
            self.found.try_get_with_by_ref(id, async move {
                let records = load.await.map_err(Miss::Store)?;
                match records.get(id) {
                    Some(Record::Live(descriptor)) => CachedDescriptor::new(descriptor)
                        .map(Arc::new)
                        .map_err(Miss::Store),
                    Some(Record::Burned(_)) => Err(Miss::Absent(Absence::Burned)),
                    None => Err(Miss::Absent(Absence::Missing)),
                }
            })
        }))
        .await;
        let raced = self.epoch.load(Ordering::SeqCst) != start;
        for (&index, result) in misses.iter().zip(loaded) {
            let id = &ids[index];
            let stale = raced && self.invalidated_since(id, start).await;
            let lookup = match result {
                Ok(found) => {
                    if stale {
                        self.found.invalidate(id).await;
                    }
                    Lookup::Found(found)
                }
                Err(miss) => match &*miss {
                    Miss::Absent(absence) => {
                        if !stale {
                            self.absent.insert(id.clone(), *absence).await;
                        }
                        Lookup::Absent(*absence)
                    }
                    Miss::Store(e) => return Err(e.clone()),
                },
            };
            answers[index] = Some(lookup);
        }
        Ok(answers.into_iter().flatten().collect())
    }

    fn load(&self, ids: Vec<ItemId>) -> Shared<BoxFuture<'static, Loaded>> {
        let store = Arc::clone(&self.store);
        let metrics = self.metrics.clone();
        async move {
            metrics.store_queries.with_label_values(&["get_many"]).inc();
            let records = store.get_many(&ids).await?;
            Ok(Arc::new(
                records
                    .into_iter()
                    .map(|record| (record.id().clone(), record))
                    .collect(),
            ))
        }
        .boxed()
        .shared()
    }

    async fn invalidated_since(&self, id: &ItemId, start: u64) -> bool {
        self.flushed_at.load(Ordering::SeqCst) > start
            || self.invalidated.get(id).await.is_some_and(|at| at > start)
    }

    async fn mark_invalidated(&self, id: &ItemId) {
        let at = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.invalidated.insert(id.clone(), at).await;
    }

    /// A descriptor was created (here or on another replica): forget that
    /// the id was missing, and keep the descriptor if it is at hand.
    pub async fn created(&self, id: &ItemId, descriptor: Option<&Descriptor>) {
        self.mark_invalidated(id).await;
        self.absent.invalidate(id).await;
        match descriptor.map(CachedDescriptor::new) {
            Some(Ok(cached)) => self.found.insert(id.clone(), Arc::new(cached)).await,
            _ => self.found.invalidate(id).await,
        }
    }

    /// A descriptor changed or was burned (here or on another replica):
    /// drop whatever the cache holds for it.
    pub async fn invalidate(&self, id: &ItemId) {
        self.mark_invalidated(id).await;
        self.found.invalidate(id).await;
        self.absent.invalidate(id).await;
    }

    /// A descriptor was burned here: evict it and remember the tombstone.
    pub async fn burned(&self, id: &ItemId) {
        self.mark_invalidated(id).await;
        self.found.invalidate(id).await;
        self.absent.insert(id.clone(), Absence::Burned).await;
    }

    /// Forgets everything (after invalidation messages may have been lost).
    pub fn invalidate_all(&self) {
        let at = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.flushed_at.fetch_max(at, Ordering::SeqCst);
        self.found.invalidate_all();
        self.absent.invalidate_all();
    }

    /// Runs moka's pending maintenance so that sizes and evictions are
    /// current (for tests and memory reports).
    pub async fn run_pending_tasks(&self) {
        self.found.run_pending_tasks().await;
        self.absent.run_pending_tasks().await;
    }

    /// The weighted size of the live-descriptor cache, in bytes.
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.found.weighted_size()
    }
}
