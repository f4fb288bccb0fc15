//! Test and benchmark support: throwaway servers, unique names, and bench reporting.
//!
//! Tests that need Redis or MongoDB call [`redis_url`], [`mongodb_uri`] or
//! [`mongodb_standalone_uri`]. Under `cargo xtask test` these come from the
//! environment (`REDIS_URL`, `MONGODB_URI`, `MONGODB_STANDALONE_URI`, one set
//! of servers for the whole run); under a plain `cargo test` the first call
//! starts a server shared by the test binary, which dies with it. Tests that
//! kill and restart a server start their own [`RedisServer`] or [`MongoServer`].
//!
//! Servers are real processes (`redis-server`, `secantusd-rs`) on free loopback
//! ports, each with its own temp dir and a log file named in every panic.
//!
//! ```no_run
//! let mut redis = testkit::RedisServer::start();
//! let url = redis.url(); // redis://127.0.0.1:PORT
//! redis.kill();
//! redis.restart(); // same port, empty
//! # drop(url);
//! ```

pub mod bench;
mod metrics;
mod mongo;
mod name;
mod node;
mod process;
mod redis;

use std::sync::OnceLock;

pub use metrics::check_metric_names;
pub use mongo::{MongoServer, Topology};
pub use name::unique_name;
pub use node::NodeProcess;
pub use process::{cargo_bin_dir, find_binary};
pub use redis::RedisServer;

/// `$REDIS_URL` if set, else the URL of a server shared by this process,
/// started on first use.
pub fn redis_url() -> String {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    from_env("REDIS_URL").unwrap_or_else(|| SHARED.get_or_init(RedisServer::start).url())
}

/// `$MONGODB_URI` if set, else the URI of a [`Topology::ReplicaSet`] server
/// shared by this process, started on first use.
pub fn mongodb_uri() -> String {
    static SHARED: OnceLock<MongoServer> = OnceLock::new();
    from_env("MONGODB_URI").unwrap_or_else(|| {
        SHARED
            .get_or_init(|| MongoServer::start(Topology::ReplicaSet))
            .uri()
    })
}

/// `$MONGODB_STANDALONE_URI` if set, else the URI of a [`Topology::Standalone`]
/// server shared by this process, started on first use.
pub fn mongodb_standalone_uri() -> String {
    static SHARED: OnceLock<MongoServer> = OnceLock::new();
    from_env("MONGODB_STANDALONE_URI").unwrap_or_else(|| {
        SHARED
            .get_or_init(|| MongoServer::start(Topology::Standalone))
            .uri()
    })
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
