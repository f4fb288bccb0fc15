//! The harness: a node's state over a SQLite store in a temp dir with the
//! tests' tokens, and waiting for a condition.

use std::sync::Arc;
use std::time::Duration;

use inventory_core::{InventoryStore, PlayerHubConfig, SqliteConfig, SqliteStore};
use inventory_service::{BusChoice, ClientTokens, Node, NodeBuilder, ServiceToken};
use protocol::{OwnerSnapshot, UserId};

pub const SERVICE_TOKEN: &str = "test-service-token-0123";
pub const JWT_SECRET: &[u8] = b"test-jwt-secret-0123456789";

pub fn tokens() -> ClientTokens {
    ClientTokens::hs256(JWT_SECRET).unwrap()
}

/// A zone node over `store` and `bus`, with the tests' service token and
/// client token secret, ready for the test's own settings.
pub fn state_builder(
    store: Arc<dyn InventoryStore>,
    bus: BusChoice,
    config: PlayerHubConfig,
) -> NodeBuilder {
    Node::builder()
        .store(store)
        .bus(bus)
        .hub_config(config)
        .tokens(ServiceToken::new(SERVICE_TOKEN).unwrap(), tokens())
}

/// A SQLite store in a temp dir that lives as long as the value.
pub struct SharedStore {
    pub store: Arc<dyn InventoryStore>,
    _dir: tempfile::TempDir,
}

impl SharedStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("inv.db"))).unwrap();
        Self {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    pub async fn truth(&self, user: &str) -> Vec<OwnerSnapshot> {
        self.store
            .load_user(&UserId::parse(user).unwrap())
            .await
            .unwrap()
    }
}

/// Waits until `condition` holds, failing after fifteen seconds.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
