//! The descriptor service: item descriptors (name, kind, stats, provenance)
//! fetched in batches, created by crafting and removed by burning, with a
//! moka cache in front of a SQLite or MongoDB store.
//!
//! The library exposes [`app`] (the axum router over an [`AppState`]) and
//! [`run`] (serve it on a listener until a shutdown signal); the binary only
//! reads a [`Config`] and wires.
//!
//! ```
//! use std::sync::Arc;
//! use descriptor_service::{AppState, AuthConfig, SqliteStore, app};
//!
//! # fn main() -> Result<(), descriptor_service::Error> {
//! let dir = tempfile::tempdir().expect("tempdir");
//! let store = SqliteStore::open(dir.path().join("descriptors.db"))?;
//! let state = AppState::builder(Arc::new(store))
//!     .with_auth(AuthConfig::default().with_open_reads(true).with_write_token("secret"))
//!     .build();
//! let router: axum::Router = app(state);
//! # drop(router);
//! # Ok(())
//! # }
//! ```

mod auth;
mod cache;
mod config;
#[cfg(feature = "test-util")]
pub mod conformance;
mod error;
mod http;
mod invalidation;
mod metrics;
mod openapi;
mod request;
mod server;
mod state;
mod store;

pub use auth::AuthConfig;
pub use cache::{Absence, CacheConfig, CachedDescriptor, DescriptorCache, Lookup};
pub use config::{Config, StoreKind};
pub use error::Error;
pub use http::{MAX_BATCH_BODY_BYTES, MAX_DESCRIPTOR_BODY_BYTES, app};
#[cfg(feature = "redis")]
pub use invalidation::RedisInvalidation;
pub use invalidation::{Invalidation, InvalidationBus, InvalidationKind, NoInvalidation};
pub use metrics::Metrics;
pub use openapi::openapi_json;
pub use protocol;
pub use request::{decode_batch_request, decode_descriptor};
pub use server::run;
pub use state::{AppState, AppStateBuilder};
#[cfg(feature = "mongodb")]
pub use store::mongo::MongoStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use store::{DescriptorStore, Record, WriteOutcome};
