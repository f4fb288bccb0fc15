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

    /// MongoDB connection string (`mongodb://` or `mongodb+srv://`): the
    /// store is then MongoDB (database `--mongodb-database`) instead of SQLite. A
    /// build without the `mongodb` feature (on by default) refuses to start
    /// with it rather than ignore it.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<String>,

    /// The MongoDB database of the store (with `--mongodb-uri`): nodes that
    /// share one are one deployment.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "inventory")]
    pub mongodb_database: String,

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

    /// A file of named credentials, one per line `<role> <name> <secret>`
    /// (roles `game_server`, `support`, `operator`; secrets of at least 16
    /// bytes; `#` comments). Calls made with a support or operator token are
    /// recorded in the operator audit log (`GET /v1/audit-log`).
    #[arg(long, env = "INVENTORY_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// The browser SDK's web package (the output of `cargo xtask wasm`,
    /// `target/npm/web`): the operator console at `/console` runs on it.
    /// Without it `/console` says how to build it.
    #[arg(long, env = "INVENTORY_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

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

    /// The embedded descriptor service's SQLite file (created if missing;
    /// default `descriptors.db`). Refused together with `--descriptor-url`.
    #[arg(long, env = "INVENTORY_DESCRIPTOR_SQLITE_PATH")]
    pub descriptor_sqlite_path: Option<PathBuf>,

    /// The write token this node presents to the descriptor service at
    /// `--descriptor-url` to create and burn crafted descriptors
    /// (`POST /v1/crafts`, `POST /v1/burns`). Without it, with
    /// `--descriptor-url`, the node does not craft. The embedded service
    /// needs none.
    #[arg(long, env = "INVENTORY_DESCRIPTOR_WRITE_TOKEN", hide_env_values = true)]
    pub descriptor_write_token: Option<String>,

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
        self.mongodb_uri.is_none() && self.redis_url.is_none() && self.descriptor_url.is_none()
    }

    /// The embedded descriptor service's SQLite file.
    #[must_use]
    pub fn descriptor_sqlite_path(&self) -> PathBuf {
        self.descriptor_sqlite_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("descriptors.db"))
    }

    /// Refuses, in one sentence, a configuration this build cannot honour:
    /// an unknown URI scheme, a backend left out of the build, or settings
    /// that contradict each other. A node must stop rather than silently run
    /// on something else than what it was told (a private SQLite file beside
    /// a shared Redis, say).
    pub fn check(&self) -> Result<(), String> {
        if let Some(uri) = &self.mongodb_uri {
            if !["mongodb://", "mongodb+srv://"]
                .iter()
                .any(|scheme| uri.starts_with(scheme))
            {
                return Err("MONGODB_URI must start with mongodb:// or mongodb+srv://".to_owned());
            }
            if !cfg!(feature = "mongodb") {
                return Err("MONGODB_URI is set but this build has no MongoDB store \
                     (built without the `mongodb` feature); unset it or use the default build"
                    .to_owned());
            }
        }
        if let Some(url) = &self.redis_url
            && !["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err(
                "REDIS_URL must start with redis://, rediss://, redis+unix:// or unix://"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.descriptor_url {
            if !["http://", "https://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return Err(
                    "INVENTORY_DESCRIPTOR_URL must start with http:// or https://".to_owned(),
                );
            }
            if self.descriptor_write_token.as_deref() == Some("") {
                return Err("INVENTORY_DESCRIPTOR_WRITE_TOKEN is empty".to_owned());
            }
            if self.descriptor_sqlite_path.is_some() {
                return Err(
                    "INVENTORY_DESCRIPTOR_URL and INVENTORY_DESCRIPTOR_SQLITE_PATH are both \
                     set: the descriptor service is either elsewhere or embedded, not both"
                        .to_owned(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    /// A configuration with the defaults, whatever the environment holds.
    fn embedded() -> Config {
        let mut config = Config::try_parse_from(["inventory-service"]).unwrap();
        config.mongodb_uri = None;
        config.redis_url = None;
        config.descriptor_url = None;
        config.descriptor_sqlite_path = None;
        config
    }

    #[test]
    fn a_configuration_this_build_cannot_honour_is_refused() {
        let check = |config: Config| {
            config
                .check()
                .map_err(|why| why.split(' ').next().map(str::to_owned))
        };
        assert_eq!(check(embedded()), Ok(()));
        let honoured = [
            Config {
                redis_url: Some("redis://127.0.0.1:6379".into()),
                mongodb_uri: Some("mongodb://127.0.0.1:27017/?replicaSet=rs".into()),
                descriptor_url: Some("https://descriptors.example".into()),
                ..embedded()
            },
            Config {
                descriptor_sqlite_path: Some("elsewhere.db".into()),
                ..embedded()
            },
        ];
        for config in honoured {
            assert_eq!(check(config.clone()), Ok(()), "{config:?}");
        }
        let refused = [
            (
                Config {
                    mongodb_uri: Some("postgres://127.0.0.1".into()),
                    ..embedded()
                },
                "MONGODB_URI",
            ),
            (
                Config {
                    redis_url: Some("127.0.0.1:6379".into()),
                    ..embedded()
                },
                "REDIS_URL",
            ),
            (
                Config {
                    descriptor_url: Some("descriptors:8090".into()),
                    ..embedded()
                },
                "INVENTORY_DESCRIPTOR_URL",
            ),
            (
                Config {
                    descriptor_url: Some("http://127.0.0.1:8090".into()),
                    descriptor_sqlite_path: Some("descriptors.db".into()),
                    ..embedded()
                },
                "INVENTORY_DESCRIPTOR_URL",
            ),
        ];
        for (config, setting) in refused {
            assert_eq!(
                check(config.clone()),
                Err(Some(setting.to_owned())),
                "{config:?}"
            );
        }
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
