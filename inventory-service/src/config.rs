//! The node's configuration, from the command line or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How to run a zone node. Every flag can also be set by its environment
/// variable.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "inventory-service", about = "The inventory zone node", version)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "INVENTORY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The embedded store's SQLite file (created if missing).
    #[arg(long, env = "INVENTORY_SQLITE_PATH", default_value = "inventory.db")]
    pub sqlite_path: PathBuf,

    /// The secret game servers present as `Authorization: Bearer <token>` (at
    /// least 16 bytes). If unset, a random one is generated and logged.
    #[arg(long, env = "INVENTORY_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
}
