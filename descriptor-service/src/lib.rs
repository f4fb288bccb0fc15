//! The descriptor service: item descriptors (name, kind, stats, provenance)
//! fetched in batches, created by crafting and removed by burning, with a
//! moka cache in front of a SQLite or MongoDB store.
//!
//! The domain is [`Descriptors`] (get, get many, create, revise, burn, with
//! the cache, the store and the invalidation bus inside); it knows nothing of
//! HTTP, and in-process callers (a node's crafting, the world simulation)
//! call it directly. The HTTP adapter (feature `http`, on by default) is
//! [`app`] (the axum router over `Descriptors` and an [`AuthConfig`]) and
//! [`run`] (serve it on a listener until a shutdown signal); the binary only
//! reads a [`Config`] and wires. Without the `http` feature the crate builds
//! without axum.
//!
//! ```
//! use std::sync::Arc;
//! use descriptor_service::{AuthConfig, Descriptors, SqliteStore, app};
//!
//! # fn main() -> Result<(), descriptor_service::Error> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let store = SqliteStore::open(dir.path().join("descriptors.db"))?;
//! let descriptors = Descriptors::builder(Arc::new(store)).build();
//! let auth = AuthConfig::default().with_open_reads(true).with_write_token("secret");
//! let router: axum::Router = app(descriptors, auth);
//! # drop(router);
//! # Ok(())
//! # }
//! ```

mod cache;
#[cfg(feature = "http")]
mod config;
#[cfg(feature = "test-util")]
pub mod conformance;
mod descriptors;
mod error;
#[cfg(feature = "http")]
mod http;
mod invalidation;
mod listing;
mod metrics;
mod store;

pub use cache::{Absence, CacheConfig, CachedDescriptor, DescriptorCache, Lookup};
#[cfg(feature = "http")]
pub use config::{Config, StoreKind};
pub use descriptors::{Descriptors, DescriptorsBuilder};
pub use error::Error;
#[cfg(feature = "http")]
pub use http::{
    AuthConfig, MAX_BATCH_BODY_BYTES, MAX_DESCRIPTOR_BODY_BYTES, app, decode_batch_request,
    decode_descriptor, openapi, openapi_json, run,
};
#[cfg(feature = "redis")]
pub use invalidation::RedisInvalidation;
pub use invalidation::{Invalidation, InvalidationBus, InvalidationKind, NoInvalidation};
pub use listing::Page;
pub use metrics::Metrics;
pub use protocol;
#[cfg(feature = "mongodb")]
pub use store::mongo::MongoStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use store::{DescriptorStore, MAX_SCAN_LIMIT, Record, ScanFilter, WriteOutcome};
