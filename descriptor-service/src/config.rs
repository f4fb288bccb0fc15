//! The server's configuration from the command line and the environment
//! (clap), and wiring it into [`Descriptors`] and the token rules
//! (feature `http`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::store::DescriptorStore;
use crate::{AuthConfig, CacheConfig, Descriptors, Error};

/// Which store holds the descriptors.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum StoreKind {
    /// An embedded SQLite file.
    Sqlite,
    /// A MongoDB deployment.
    Mongodb,
}

/// The service's configuration.
#[derive(Clone, Debug, Parser)]
#[command(name = "descriptor-service", about = "Item descriptor service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "DESCRIPTORS_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Which store to use.
    #[arg(long, env = "DESCRIPTORS_STORE", value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// The SQLite file (embedded store).
    #[arg(
        long,
        env = "DESCRIPTORS_SQLITE_PATH",
        default_value = "descriptors.db"
    )]
    pub sqlite_path: PathBuf,
    /// The MongoDB connection string (MongoDB store).
    #[arg(long, env = "MONGODB_URI")]
    pub mongodb_uri: Option<String>,
    /// The MongoDB database holding the `descriptors` collection.
    #[arg(
        long,
        env = "DESCRIPTORS_MONGODB_DATABASE",
        default_value = "inventory"
    )]
    pub mongodb_database: String,
    /// Redis URL for cross-replica invalidation; none for a single replica.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// The Redis pub/sub channel of invalidations.
    #[arg(
        long,
        env = "DESCRIPTORS_INVALIDATION_CHANNEL",
        default_value = "descriptors:invalidations"
    )]
    pub invalidation_channel: String,
    /// Memory bound of the descriptor cache, in MiB.
    #[arg(long, env = "DESCRIPTORS_CACHE_MIB", default_value_t = 256)]
    pub cache_mib: u64,
    /// Entries of the negative (missing or burned) cache.
    #[arg(long, env = "DESCRIPTORS_NEGATIVE_CAPACITY", default_value_t = 100_000)]
    pub negative_capacity: u64,
    /// Seconds an id stays in the negative cache.
    #[arg(long, env = "DESCRIPTORS_NEGATIVE_TTL_SECS", default_value_t = 30)]
    pub negative_ttl_secs: u64,
    /// Comma-separated tokens allowed to write (and read).
    #[arg(long, env = "DESCRIPTORS_WRITE_TOKENS", value_delimiter = ',')]
    pub write_tokens: Vec<String>,
    /// Comma-separated read-only tokens.
    #[arg(long, env = "DESCRIPTORS_READ_TOKENS", value_delimiter = ',')]
    pub read_tokens: Vec<String>,
    /// Whether reads need no token.
    #[arg(long, env = "DESCRIPTORS_OPEN_READS", action = ArgAction::Set, default_value_t = true)]
    pub open_reads: bool,
}

impl Config {
    /// The cache bounds.
    #[must_use]
    pub fn cache(&self) -> CacheConfig {
        CacheConfig {
            max_bytes: self.cache_mib * 1024 * 1024,
            negative_capacity: self.negative_capacity,
            negative_ttl: Duration::from_secs(self.negative_ttl_secs),
        }
    }

    /// The token rules.
    #[must_use]
    pub fn auth(&self) -> AuthConfig {
        AuthConfig {
            write_tokens: self.write_tokens.iter().cloned().collect(),
            read_tokens: self.read_tokens.iter().cloned().collect(),
            open_reads: self.open_reads,
        }
    }

    /// Opens the configured store.
    pub async fn open_store(&self) -> Result<Arc<dyn DescriptorStore>, Error> {
        match self.store {
            #[cfg(feature = "sqlite")]
            StoreKind::Sqlite => Ok(Arc::new(crate::SqliteStore::open(&self.sqlite_path)?)),
            #[cfg(feature = "mongodb")]
            StoreKind::Mongodb => {
                let uri = self.mongodb_uri.as_deref().ok_or_else(|| {
                    Error::Unavailable("the MongoDB store needs --mongodb-uri".into())
                })?;
                Ok(Arc::new(
                    crate::MongoStore::connect(uri, &self.mongodb_database).await?,
                ))
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::Unavailable(format!(
                "store {other:?} is not compiled in"
            ))),
        }
    }

    /// Opens the store and builds the descriptors, with Redis invalidation
    /// when a Redis URL is configured.
    pub async fn open_descriptors(&self) -> Result<Descriptors, Error> {
        let builder = Descriptors::builder(self.open_store().await?).with_cache(self.cache());
        match &self.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => {
                builder
                    .build_with_redis(url, &self.invalidation_channel)
                    .await
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(Error::Unavailable(
                "redis support is not compiled in".into(),
            )),
            None => Ok(builder.build()),
        }
    }
}
