//! The service's shared state and its builder.

use std::sync::Arc;

use crate::invalidation::{InvalidationBus, NoInvalidation};
use crate::store::DescriptorStore;
use crate::{AuthConfig, CacheConfig, DescriptorCache, Metrics};

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
    pub async fn build_with_redis(
        self,
        url: &str,
        channel: &str,
    ) -> Result<AppState, crate::Error> {
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
