//! The service's shared state and its builder.

use std::sync::Arc;

use protocol::{BurnOutcome, Descriptor, ItemId};

use crate::http::{count_write, publish};
use crate::invalidation::{InvalidationBus, InvalidationKind, NoInvalidation};
use crate::store::{DescriptorStore, WriteOutcome};
use crate::{AuthConfig, CacheConfig, DescriptorCache, Error, Metrics};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) store: Arc<dyn DescriptorStore>,
    pub(crate) cache: DescriptorCache,
    pub(crate) bus: Arc<dyn InvalidationBus>,
    pub(crate) auth: Arc<AuthConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) origin: String,
}

impl AppState {
    /// Starts building a state over `store`.
    pub fn builder(store: Arc<dyn DescriptorStore>) -> AppStateBuilder {
        AppStateBuilder {
            store,
            cache: CacheConfig::default(),
            auth: AuthConfig::default().with_open_reads(true),
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

    /// Stores a new descriptor (idempotent by id and content, see
    /// [`DescriptorStore::create`]), updates this replica's cache and tells the
    /// others: what `POST /v1/descriptors` does after checking the caller, for
    /// in-process writers such as a node's crafting.
    pub async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        count_write(self, "create");
        let outcome = self.store.create(descriptor).await?;
        self.cache.created(&descriptor.id, Some(descriptor)).await;
        publish(self, &descriptor.id, InvalidationKind::Created).await?;
        Ok(outcome)
    }

    /// Burns a descriptor (idempotent, see [`DescriptorStore::burn`]), updates
    /// this replica's cache and tells the others: what
    /// `DELETE /v1/descriptors/{id}` does after checking the caller.
    pub async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        count_write(self, "burn");
        let outcome = self.store.burn(id).await?;
        self.cache.burned(id).await;
        publish(self, id, InvalidationKind::Burned).await?;
        Ok(outcome)
    }
}

/// Builds an [`AppState`]: cache bounds, tokens, invalidation transport.
#[derive(Debug)]
#[must_use]
pub struct AppStateBuilder {
    store: Arc<dyn DescriptorStore>,
    cache: CacheConfig,
    auth: AuthConfig,
    metrics: Metrics,
    origin: String,
}

impl AppStateBuilder {
    /// Cache bounds (default: 256 MiB, 100,000 negative entries for 30 s).
    pub fn with_cache(mut self, cache: CacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Tokens (default: open reads, no writer).
    pub fn with_auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// The cache, ready for an invalidation transport to be attached to it.
    #[must_use]
    pub fn cache(&self) -> DescriptorCache {
        DescriptorCache::new(Arc::clone(&self.store), &self.cache, self.metrics.clone())
    }

    /// A single replica: no invalidation transport.
    #[must_use]
    pub fn build(self) -> AppState {
        let cache = self.cache();
        self.finish(cache, Arc::new(NoInvalidation))
    }

    /// Several replicas over Redis pub/sub `channel` at `url`.
    #[cfg(feature = "redis")]
    pub async fn build_with_redis(self, url: &str, channel: &str) -> Result<AppState, Error> {
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

    fn finish(self, cache: DescriptorCache, bus: Arc<dyn InvalidationBus>) -> AppState {
        AppState {
            store: self.store,
            cache,
            bus,
            auth: Arc::new(self.auth),
            metrics: self.metrics,
            origin: self.origin,
        }
    }
}
