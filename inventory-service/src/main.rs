//! The zone node binary: reads [`Config`], wires the node, serves until
//! Ctrl-C, then drains.

use anyhow::Context;
use clap::Parser;
use inventory_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    if config.jwt_secret.is_none() {
        tracing::warn!("no INVENTORY_JWT_SECRET set; game clients cannot connect");
    }
    let state = inventory_service::wire(&config).await?.node.build().await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "inventory node listening");
    let inventory = state.inventory().clone();
    inventory_service::run(listener, state, inventory_service::stop_signal()).await?;
    // The relay this process started publishes what is pending and moves its
    // mark; what it cannot, the next start publishes.
    inventory.close(inventory_service::DRAIN_TIMEOUT).await;
    Ok(())
}
