//! The descriptor domain: [`Descriptors`] reads through the cache, writes to
//! the store, keeps this replica's cache current and tells the other replicas,
//! and its builder. It knows nothing of HTTP: the HTTP adapter and in-process
//! callers (a node's crafting, the world simulation) call it alike.

use std::sync::Arc;

use protocol::{BurnOutcome, Descriptor, DescriptorKind, ItemId};
use tokio::sync::OnceCell;

use crate::cache::{Absence, CachedDescriptor, Lookup};
use crate::invalidation::{Invalidation, InvalidationBus, InvalidationKind, NoInvalidation};
use crate::listing::{self, Page};
use crate::store::{DescriptorStore, ScanFilter, WriteOutcome};
use crate::{CacheConfig, DescriptorCache, Error, Metrics};

/// Item descriptors: batch reads through a moka cache, creates, revisions
/// and burns written to the store and announced to the other replicas.
///
/// Cheap to clone: clones share the store, the cache, the bus and the
/// metrics.
#[derive(Clone, Debug)]
pub struct Descriptors {
    store: Arc<dyn DescriptorStore>,
    cache: DescriptorCache,
    bus: Arc<dyn InvalidationBus>,
    metrics: Metrics,
    origin: String,
    /// The store's [`identity`](DescriptorStore::identity), asked once.
    store_identity: Arc<OnceCell<String>>,
}

impl Descriptors {
    /// Starts building descriptors over `store`.
    pub fn builder(store: Arc<dyn DescriptorStore>) -> DescriptorsBuilder {
        DescriptorsBuilder {
            store,
            cache: CacheConfig::default(),
            metrics: Metrics::new(),
            origin: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The read-through cache.
    #[must_use]
    pub fn cache(&self) -> &DescriptorCache {
        &self.cache
    }

    /// The metrics registry.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The live descriptor under `id`, as the cache keeps it; never stored is
    /// [`Error::NotFound`], burned is [`Error::Burned`].
    pub async fn get(&self, id: &ItemId) -> Result<Arc<CachedDescriptor>, Error> {
        let lookup = self
            .cache
            .get_many(std::slice::from_ref(id))
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("empty lookup".into()))?;
        match lookup {
            Lookup::Found(found) => Ok(found),
            Lookup::Absent(Absence::Missing) => Err(Error::NotFound(id.clone())),
            Lookup::Absent(Absence::Burned) => Err(Error::Burned(id.clone())),
        }
    }

    /// Looks up distinct `ids`, answering in the same order; the cache's
    /// misses are fetched in one store query.
    pub async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Lookup>, Error> {
        self.metrics.batch_size.observe(ids.len() as f64);
        self.cache.get_many(ids).await
    }

    /// Stores a new descriptor (idempotent by id and content, see
    /// [`DescriptorStore::create`]), updates this replica's cache and tells
    /// the others. The descriptor must follow the model's rules, fit the
    /// size limit and be at revision 1.
    pub async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        check(descriptor)?;
        if descriptor.revision != 1 {
            return Err(protocol::Error::InvalidDescriptor(
                "a new descriptor has revision 1; later revisions are revised".into(),
            )
            .into());
        }
        self.count_write("create");
        let outcome = self.store.create(descriptor).await?;
        self.cache.created(&descriptor.id, Some(descriptor)).await;
        self.publish(&descriptor.id, InvalidationKind::Created)
            .await?;
        Ok(outcome)
    }

    /// Replaces a catalog descriptor by its next revision (see
    /// [`DescriptorStore::revise`]; the same revision again is `Unchanged`),
    /// drops the old one from this replica's cache and tells the others.
    pub async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        check(descriptor)?;
        if descriptor.kind != DescriptorKind::Catalog || descriptor.revision < 2 {
            return Err(protocol::Error::InvalidDescriptor(
                "a revision is a catalog descriptor with revision 2 or more".into(),
            )
            .into());
        }
        self.count_write("revise");
        let outcome = self.store.revise(descriptor).await?;
        self.cache.invalidate(&descriptor.id).await;
        self.publish(&descriptor.id, InvalidationKind::Revised)
            .await?;
        Ok(outcome)
    }

    /// Burns a descriptor (idempotent, see [`DescriptorStore::burn`]),
    /// updates this replica's cache and tells the others.
    pub async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        self.count_write("burn");
        let outcome = self.store.burn(id).await?;
        self.cache.burned(id).await;
        self.publish(id, InvalidationKind::Burned).await?;
        Ok(outcome)
    }

    /// One page of at most `limit` (1..=[`MAX_SCAN_LIMIT`](crate::MAX_SCAN_LIMIT)) records that
    /// `filter` selects, in ascending id order, from the store (not the
    /// cache), starting after `cursor` (the previous page's
    /// [`Page::next_cursor`]; `None` for the first page). The paging
    /// contract is [`DescriptorStore::scan`]'s. Contradictory filters, a
    /// limit out of range, or a cursor issued for other filters or not by
    /// this service are [`Error::Unprocessable`].
    pub async fn list(
        &self,
        filter: &ScanFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, Error> {
        filter.validate()?;
        listing::check_limit(limit)?;
        let store = self
            .store_identity
            .get_or_try_init(|| self.store.identity())
            .await?;
        let after = cursor
            .map(|cursor| listing::decode_cursor(store, filter, cursor))
            .transpose()?;
        self.metrics
            .store_queries
            .with_label_values(&["scan"])
            .inc();
        let records = self.store.scan(filter, after.as_ref(), limit).await?;
        Ok(listing::page(store, filter, records, limit))
    }

    /// How many records `filter` selects now (the store's
    /// [`count`](DescriptorStore::count)): a listing's progress total.
    /// Contradictory filters are [`Error::Unprocessable`].
    pub async fn count(&self, filter: &ScanFilter) -> Result<u64, Error> {
        filter.validate()?;
        self.metrics
            .store_queries
            .with_label_values(&["count"])
            .inc();
        self.store.count(filter).await
    }

    /// Checks that the store answers (readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        self.store.ping().await
    }

    fn count_write(&self, op: &str) {
        self.metrics.store_queries.with_label_values(&[op]).inc();
    }

    async fn publish(&self, id: &ItemId, kind: InvalidationKind) -> Result<(), Error> {
        self.metrics
            .invalidations
            .with_label_values(&["local"])
            .inc();
        self.bus
            .publish(&Invalidation {
                origin: self.origin.clone(),
                id: id.clone(),
                kind,
            })
            .await
    }
}

/// The store takes only descriptors that follow the model's rules and fit
/// the size limit (its contract); in-process callers are held to them too.
fn check(descriptor: &Descriptor) -> Result<(), Error> {
    descriptor.validate()?;
    let size = serde_json::to_vec(descriptor)
        .map_err(|e| Error::Internal(e.to_string()))?
        .len();
    Descriptor::check_size(size)?;
    Ok(())
}

/// Builds [`Descriptors`]: cache bounds and the invalidation transport.
#[derive(Debug)]
#[must_use]
pub struct DescriptorsBuilder {
    store: Arc<dyn DescriptorStore>,
    cache: CacheConfig,
    metrics: Metrics,
    origin: String,
}

impl DescriptorsBuilder {
    /// Cache bounds (default: 256 MiB, 100,000 negative entries for 30 s).
    pub fn with_cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// A single replica: no invalidation transport.
    #[must_use]
    pub fn build(self) -> Descriptors {
        let cache = self.cache();
        self.finish(cache, Arc::new(NoInvalidation))
    }

    /// Several replicas over Redis pub/sub `channel` at `url`.
    #[cfg(feature = "redis")]
    pub async fn build_with_redis(self, url: &str, channel: &str) -> Result<Descriptors, Error> {
        let cache = self.cache();
        let bus = crate::RedisInvalidation::connect(
            url,
            channel,
            &self.origin,
            cache.clone(),
            self.metrics.clone(),
        )
        .await?;
        Ok(self.finish(cache, Arc::new(bus)))
    }

    fn cache(&self) -> DescriptorCache {
        DescriptorCache::new(Arc::clone(&self.store), &self.cache, self.metrics.clone())
    }

    fn finish(self, cache: DescriptorCache, bus: Arc<dyn InvalidationBus>) -> Descriptors {
        Descriptors {
            store: self.store,
            cache,
            bus,
            metrics: self.metrics,
            origin: self.origin,
            store_identity: Arc::new(OnceCell::new()),
        }
    }
}

// The tests run over the SQLite store and the conformance samples.
#[cfg(all(test, feature = "sqlite", feature = "test-util"))]
mod tests;
