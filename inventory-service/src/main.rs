//! The zone node binary: reads [`Config`], opens the store and the bus, serves
//! until Ctrl-C, then drains.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use inventory_core::{
    InventoryStore, LocalBus, PlayerHubConfig, RedisBusConfig, SqliteConfig, SqliteStore,
};
use inventory_service::{AppState, BusChoice, ClientTokens, Config, DemoConfig, ServiceToken};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    let token = match &config.service_token {
        Some(secret) => ServiceToken::new(secret.clone()).context("INVENTORY_SERVICE_TOKEN")?,
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
        Some(secret) => ClientTokens::hs256(secret.as_bytes()).context("INVENTORY_JWT_SECRET")?,
        None if config.demo_enabled() => {
            tracing::info!("no INVENTORY_JWT_SECRET set; only demo logins issue client tokens");
            ClientTokens::random()
        }
        None => {
            tracing::warn!("no INVENTORY_JWT_SECRET set; game clients cannot connect");
            ClientTokens::random()
        }
    }
    .with_leeway(std::time::Duration::from_secs(config.jwt_leeway_secs));
    let store = open_store(&config).await?;
    let bus = match &config.redis_url {
        Some(url) => BusChoice::Redis(RedisBusConfig::new(url.clone())),
        None => BusChoice::Local(LocalBus::new()),
    };
    let (inventory, hub) =
        inventory_service::start_node(Arc::new(store), bus, PlayerHubConfig::new())
            .await
            .context("connecting the bus")?;
    let descriptors = match &config.descriptor_url {
        Some(url) => {
            tracing::info!(%url, "descriptor service elsewhere");
            None
        }
        None => Some(embedded_descriptors(&config).await?),
    };
    // The embedded descriptor service's writes are guarded by the node's
    // service token; its reads are open (clients fetch descriptors).
    let descriptor_auth = descriptor_service::AuthConfig::default()
        .with_write_token(token.secret())
        .with_open_reads(true);
    let mut state = AppState::builder(inventory, hub, token, client_tokens)
        .with_zones(config.zones.clone())
        .with_edge_config(config.edge());
    if let Some(descriptors) = descriptors {
        state = state.with_fallback(descriptor_service::app(
            descriptors.clone(),
            descriptor_auth,
        ));
        if config.demo_enabled() {
            state = state.with_demo(demo_config(&config, descriptors.clone()));
        }
    }
    if !config.demo_enabled() && !config.no_demo {
        tracing::info!("demo mode off: it runs only in the embedded mode");
    }
    let state = state.build();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "inventory node listening");
    if config.demo_enabled() {
        tracing::info!("the live page: http://{address}/");
    }
    inventory_service::run(listener, state, stop_signal()).await?;
    Ok(())
}

/// MongoDB if a URI is configured (feature `mongodb`), else the embedded
/// SQLite file.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn InventoryStore>> {
    #[cfg(feature = "mongodb")]
    if let Some(uri) = &config.mongodb_uri {
        let store = inventory_core::MongoStore::connect(inventory_core::MongoConfig::new(uri))
            .await
            .context("connecting to MONGODB_URI")?;
        tracing::info!("store: MongoDB");
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open(SqliteConfig::new(&config.sqlite_path))
        .with_context(|| format!("opening {}", config.sqlite_path.display()))?;
    tracing::info!(path = %config.sqlite_path.display(), "store: SQLite");
    Ok(Arc::new(store))
}

/// The descriptor service over its own SQLite file; in the demo mode, with
/// the demo's catalog.
async fn embedded_descriptors(config: &Config) -> anyhow::Result<descriptor_service::Descriptors> {
    let path = &config.descriptor_sqlite_path;
    let store = descriptor_service::SqliteStore::open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if config.demo_enabled() {
        inventory_service::seed_demo_catalog(&store)
            .await
            .context("seeding the demo catalog")?;
    }
    let descriptors = descriptor_service::Descriptors::builder(Arc::new(store)).build();
    tracing::info!(path = %path.display(), "descriptor service embedded at /v1/descriptors");
    Ok(descriptors)
}

/// The demo mode over the embedded descriptor service.
fn demo_config(config: &Config, descriptors: descriptor_service::Descriptors) -> DemoConfig {
    let demo = DemoConfig::new(descriptors);
    let demo = match &config.web_dir {
        Some(dir) => demo.with_web_dir(dir),
        None => {
            tracing::warn!(
                "no --web-dir: the page at / explains how to build the browser SDK (or run `cargo xtask node`)"
            );
            demo
        }
    };
    tracing::warn!(
        "demo mode on: the live page at /, and anyone reaching this listener can act as any player (--no-demo turns it off)"
    );
    demo
}

/// Ctrl-C, or SIGTERM from a supervisor.
async fn stop_signal() {
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
