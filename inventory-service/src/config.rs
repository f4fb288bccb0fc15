//! The node's configuration, from the command line or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use protocol::ZoneId;

use crate::EdgeConfig;

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

    /// MongoDB connection string: the store is then MongoDB (database
    /// `inventory`) instead of SQLite. Needs the `mongodb` feature.
    #[cfg(feature = "mongodb")]
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<String>,

    /// Redis URL for the propagation bus; without it, an in-process bus (a
    /// single node).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// The zones this node hosts (comma-separated zone ids, 1 to 64 of
    /// `A-Z a-z 0-9 _ -`); empty: any zone name.
    #[arg(long, env = "INVENTORY_ZONES", value_delimiter = ',')]
    pub zones: Vec<ZoneId>,

    /// The secret game servers present as `Authorization: Bearer <token>` (at
    /// least 16 bytes). If unset, a random one is generated and logged.
    #[arg(long, env = "INVENTORY_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,

    /// The HS256 secret that signs game clients' session tokens (at least 16
    /// bytes). If unset, a random one is generated: no client can connect
    /// unless tokens are issued in-process.
    #[arg(long, env = "INVENTORY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Seconds of clock skew tolerated on a client token's `exp`.
    #[arg(long, env = "INVENTORY_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// The descriptor service clients use. Without it the node embeds one
    /// (SQLite at `--descriptor-sqlite-path`) and serves its API on the same
    /// listener, so the whole stack is one process.
    #[arg(long, env = "INVENTORY_DESCRIPTOR_URL")]
    pub descriptor_url: Option<String>,

    /// The embedded descriptor service's SQLite file (created if missing).
    #[arg(
        long,
        env = "INVENTORY_DESCRIPTOR_SQLITE_PATH",
        default_value = "descriptors.db"
    )]
    pub descriptor_sqlite_path: PathBuf,

    /// Client messages per second (sustained).
    #[arg(long, env = "INVENTORY_CLIENT_RATE", default_value_t = 10.0)]
    pub client_rate: f64,

    /// Client messages allowed in a burst above the rate.
    #[arg(long, env = "INVENTORY_CLIENT_BURST", default_value_t = 20)]
    pub client_burst: u32,

    /// Seconds a client connection may stay silent.
    #[arg(long, env = "INVENTORY_CLIENT_IDLE_SECS", default_value_t = 60)]
    pub client_idle_secs: u64,

    /// Messages queued per client before it is disconnected as slow.
    #[arg(long, env = "INVENTORY_CLIENT_QUEUE", default_value_t = 256)]
    pub client_queue: usize,
}

impl Config {
    /// The client WebSocket's limits.
    #[must_use]
    pub fn edge(&self) -> EdgeConfig {
        let defaults = EdgeConfig::default();
        EdgeConfig::new()
            .with_rate_limit(self.client_rate, self.client_burst)
            .with_idle_timeout(Duration::from_secs(self.client_idle_secs))
            .with_send_queue(self.client_queue, defaults.send_timeout)
    }

    /// Whether every part runs in this process: the SQLite store, the
    /// in-process bus and the embedded descriptor service.
    #[must_use]
    pub fn is_embedded(&self) -> bool {
        #[cfg(feature = "mongodb")]
        if self.mongodb_uri.is_some() {
            return false;
        }
        self.redis_url.is_none() && self.descriptor_url.is_none()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    /// A configuration with the defaults, whatever the environment holds.
    fn embedded() -> Config {
        let mut config = Config::try_parse_from(["inventory-service"]).unwrap();
        #[cfg(feature = "mongodb")]
        {
            config.mongodb_uri = None;
        }
        config.redis_url = None;
        config.descriptor_url = None;
        config
    }

    #[test]
    fn the_embedded_mode_is_every_part_in_this_process() {
        assert!(embedded().is_embedded());
        let off = [
            Config {
                redis_url: Some("redis://127.0.0.1:6379".into()),
                ..embedded()
            },
            Config {
                descriptor_url: Some("http://127.0.0.1:9".into()),
                ..embedded()
            },
            #[cfg(feature = "mongodb")]
            Config {
                mongodb_uri: Some("mongodb://127.0.0.1:27017".into()),
                ..embedded()
            },
        ];
        for config in off {
            assert!(!config.is_embedded(), "{config:?}");
        }
    }

    #[test]
    fn zones_parse_by_the_id_grammar_at_startup() {
        let config =
            Config::try_parse_from(["inventory-service", "--zones", "forest,town"]).unwrap();
        let zones: Vec<&str> = config.zones.iter().map(|z| z.as_str()).collect();
        assert_eq!(zones, ["forest", "town"]);
        for bad in ["forest,@clients#0", "town square", "a.b"] {
            let err = Config::try_parse_from(["inventory-service", "--zones", bad]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains("invalid zone id"), "{bad}: {err}");
        }
    }
}
