//! The zone node binary: reads [`Config`], opens the store, serves until Ctrl-C.

use anyhow::Context;
use clap::Parser;
use inventory_core::{Inventory, SqliteConfig, SqliteStore};
use inventory_service::{AppState, Config, ServiceToken};

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
    let store = SqliteStore::open(SqliteConfig::new(&config.sqlite_path))
        .with_context(|| format!("opening {}", config.sqlite_path.display()))?;
    let inventory = Inventory::new(store);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(address = %listener.local_addr()?, "inventory node listening");
    inventory_service::run(listener, AppState::new(inventory, token), async {
        tokio::signal::ctrl_c().await.ok();
    })
    .await?;
    Ok(())
}
