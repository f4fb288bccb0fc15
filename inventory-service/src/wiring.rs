//! What a node binary builds from its [`Config`]: the tokens, the store, the
//! bus, the zone node and, in the embedded mode, the descriptor service
//! served on the same listener.

use std::path::PathBuf;
use std::sync::Arc;

use inventory_core::{
    InventoryStore, LocalBus, RedisBusConfig, SqliteConfig, SqliteStore, SupportStore,
};

#[cfg(doc)]
use crate::ApiError;
use crate::registry::HttpRegistry;
use crate::{BusChoice, ClientTokens, Config, Credentials, Node, NodeBuilder, ServiceToken};

/// Why a node could not be built or wired from its configuration: the
/// crate's one error type (requests are answered with [`ApiError`], the
/// HTTP error body).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A secret is too short to be one.
    #[error("{0}")]
    WeakSecret(String),
    /// A [`NodeBuilder`](crate::NodeBuilder) was built without a part it
    /// needs.
    #[error("a node needs {0}")]
    Missing(&'static str),
    /// The configuration cannot be honoured by this build (see
    /// [`Config::check`]).
    #[error("{0}")]
    Refused(String),
    /// A setting is unusable (a secret too short, say).
    #[error("{setting}: {source}")]
    Setting {
        /// The environment variable of the setting.
        setting: &'static str,
        /// Why it is unusable.
        source: Box<Error>,
    },
    /// The inventory store could not be opened or reached.
    #[error("{what}: {source}")]
    Store {
        /// Which store.
        what: String,
        /// The store's error.
        source: inventory_core::Error,
    },
    /// The propagation bus could not be reached.
    #[error("connecting the bus: {0}")]
    Bus(inventory_core::Error),
    /// The embedded descriptor service's store could not be opened.
    #[error("opening {path}: {source}")]
    Descriptors {
        /// Its SQLite file.
        path: PathBuf,
        /// The descriptor service's error.
        source: descriptor_service::Error,
    },
}

/// A node wired from its [`Config`], ready for the binary's own routes.
#[derive(Debug)]
#[must_use]
pub struct Wired {
    /// The node, ready to build (which connects the bus): its store, bus,
    /// tokens, zones and edge limits, and in the embedded mode the
    /// descriptor API as the router's fallback and the crafting registry.
    pub node: NodeBuilder,
    /// The embedded descriptor service, if this node runs one (no
    /// `--descriptor-url`).
    pub descriptors: Option<descriptor_service::Descriptors>,
}

/// Wires a node from `config`: the service token (generated and logged if
/// unset), the client token secret (random if unset: then only tokens issued
/// in this process open sessions), the store (MongoDB with a URI and the
/// `mongodb` feature, else SQLite), the bus (Redis with a URL, else
/// in-process) and, without `--descriptor-url`, the embedded descriptor
/// service, its writes guarded by the service token and its reads open.
///
/// # Errors
/// A secret too short, or a store, bus or descriptor store that cannot be
/// opened.
pub async fn wire(config: &Config) -> Result<Wired, Error> {
    config.check().map_err(Error::Refused)?;
    let token = match &config.service_token {
        Some(secret) => ServiceToken::new(secret.clone()).map_err(|source| Error::Setting {
            setting: "INVENTORY_SERVICE_TOKEN",
            source: Box::new(source),
        })?,
        None => {
            let token = ServiceToken::random();
            tracing::warn!(
                token = token.secret(),
                "no INVENTORY_SERVICE_TOKEN set; generated one for this run"
            );
            token
        }
    };
    let client_tokens = match &config.jwt_secret {
        Some(secret) => {
            ClientTokens::hs256(secret.as_bytes()).map_err(|source| Error::Setting {
                setting: "INVENTORY_JWT_SECRET",
                source: Box::new(source),
            })?
        }
        None => ClientTokens::random(),
    }
    .with_leeway(std::time::Duration::from_secs(config.jwt_leeway_secs));
    let credentials = match &config.tokens_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Refused(format!(
                    "cannot read INVENTORY_TOKENS_FILE {}: {e}",
                    path.display()
                ))
            })?;
            Credentials::parse(&text).map_err(|source| Error::Setting {
                setting: "INVENTORY_TOKENS_FILE",
                source: Box::new(source),
            })?
        }
        None => Credentials::default(),
    };
    tracing::info!(credentials = ?credentials, "named credentials");
    let (store, support) = open_store(config).await?;
    let bus = match &config.redis_url {
        Some(url) => BusChoice::Redis(RedisBusConfig::new(url.clone())),
        None => BusChoice::Local(LocalBus::new()),
    };
    let descriptors = match &config.descriptor_url {
        Some(url) => {
            tracing::info!(%url, "descriptor service elsewhere");
            None
        }
        None => Some(embedded_descriptors(config)?),
    };
    // The embedded descriptor service's writes are guarded by the node's
    // service token; its reads are open (clients fetch descriptors).
    let descriptor_auth = descriptor_service::AuthConfig::default()
        .with_write_token(token.secret())
        .with_open_reads(true);
    let mut node = Node::builder()
        .store(store)
        .support(support)
        .credentials(credentials)
        .console(config.web_dir.clone())
        .bus(bus)
        .tokens(token, client_tokens)
        .zones(config.zones.clone())
        .edge(config.edge());
    if let Some(descriptors) = &descriptors {
        node = node.embedded_descriptors(descriptors.clone(), descriptor_auth);
    }
    if let (Some(url), Some(write_token)) = (&config.descriptor_url, &config.descriptor_write_token)
    {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| {
                Error::Refused(format!("no HTTP client for the descriptor service: {e}"))
            })?;
        node = node.registry(Arc::new(HttpRegistry::new(http, url, write_token.clone())));
    }
    Ok(Wired { node, descriptors })
}

/// MongoDB if a URI is configured (feature `mongodb`), else the embedded
/// SQLite file.
/// The store, twice: as the inventories' store and as its support port.
type Store = (Arc<dyn InventoryStore>, Arc<dyn SupportStore>);

async fn open_store(config: &Config) -> Result<Store, Error> {
    #[cfg(feature = "mongodb")]
    if let Some(uri) = &config.mongodb_uri {
        let store = inventory_core::MongoStore::connect(
            inventory_core::MongoConfig::new(uri).with_database(&config.mongodb_database),
        )
        .await
        .map_err(|source| Error::Store {
            what: "connecting to MONGODB_URI".to_owned(),
            source,
        })?;
        tracing::info!("store: MongoDB");
        let store = Arc::new(store);
        return Ok((store.clone(), store));
    }
    let store = SqliteStore::open(SqliteConfig::new(&config.sqlite_path)).map_err(|source| {
        Error::Store {
            what: format!("opening {}", config.sqlite_path.display()),
            source,
        }
    })?;
    tracing::info!(path = %config.sqlite_path.display(), "store: SQLite");
    let store = Arc::new(store);
    Ok((store.clone(), store))
}

/// The descriptor service over its own SQLite file.
fn embedded_descriptors(config: &Config) -> Result<descriptor_service::Descriptors, Error> {
    let path = &config.descriptor_sqlite_path();
    let store =
        descriptor_service::SqliteStore::open(path).map_err(|source| Error::Descriptors {
            path: path.clone(),
            source,
        })?;
    let descriptors = descriptor_service::Descriptors::builder(Arc::new(store)).build();
    tracing::info!(path = %path.display(), "descriptor service embedded at /v1/descriptors");
    Ok(descriptors)
}

/// Completes on Ctrl-C, or SIGTERM from a supervisor: a node binary's
/// shutdown signal for [`crate::run`].
///
/// # Panics
/// If the SIGTERM handler cannot be installed.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.ok();
}
