//! The demo binary: the zone node over the embedded stack (SQLite, the
//! in-process bus, the embedded descriptor service) with the live page, demo
//! logins and demo actions. Reads the node's [`Config`] plus the demo's own
//! flags, refuses anything but the embedded stack, wires, serves until
//! Ctrl-C, then drains.

use anyhow::Context;
use clap::Parser;
use inventory_demo::{Demo, DemoConfig};
use inventory_service::Config;

/// The zone node's flags, and the demo's.
#[derive(Debug, Parser)]
#[command(
    name = "inventory-demo",
    about = "The inventory zone node with its live page and demo actions (embedded mode only)",
    version
)]
struct Args {
    /// The node's settings; its `--web-dir` is the browser SDK's web package
    /// the page loads from `/pkg/` too.
    #[command(flatten)]
    node: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    // A demo login is a session token for any player without any credential:
    // only a node that runs everything in this process may offer it.
    anyhow::ensure!(
        args.node.is_embedded(),
        "the demo runs only the embedded stack (SQLite, the in-process bus, the embedded \
         descriptor service): drop MongoDB, Redis and --descriptor-url, or run \
         inventory-service, which has no demo"
    );
    if args.node.jwt_secret.is_none() {
        tracing::info!("no INVENTORY_JWT_SECRET set; only demo logins issue client tokens");
    }
    let wired = inventory_service::wire(&args.node).await?;
    let descriptors = wired
        .descriptors
        .context("the embedded mode runs the descriptor service")?;
    inventory_demo::seed_demo_catalog(&descriptors)
        .await
        .context("seeding the demo catalog")?;
    let state = wired.node.build().await?;
    let demo = DemoConfig::new(descriptors);
    let demo = match &args.node.web_dir {
        Some(dir) => demo.with_web_dir(dir),
        None => {
            tracing::warn!(
                "no --web-dir: the page at / explains how to build the browser SDK (or run `cargo xtask node`)"
            );
            demo
        }
    };
    tracing::warn!(
        "demo on: the live page at /, and anyone reaching this listener can act as any player"
    );
    let router = inventory_demo::app(state.clone(), Demo::new(demo, &state));
    let listener = tokio::net::TcpListener::bind(args.node.listen)
        .await
        .with_context(|| format!("binding {}", args.node.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "inventory node listening");
    tracing::info!("the live page: http://{address}/");
    let inventory = state.inventory().clone();
    inventory_service::serve(listener, router, state, inventory_service::stop_signal()).await?;
    inventory.close(inventory_service::DRAIN_TIMEOUT).await;
    Ok(())
}
