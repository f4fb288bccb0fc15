//! The inventory domain: the store port with its written contract and shared
//! conformance suite, the pure ledger rules every store must honour, and the
//! [`Inventory`] facade that validates a change, applies it and returns the
//! event to propagate.
//!
//! Propagation: the [`EventBus`] port (per-player channels) with the in-process
//! [`LocalBus`] and, behind the `redis` feature, a Redis pub/sub adapter; the
//! [`ZoneNode`] that keeps one server process's player caches, subscribed by
//! reference-counted zone interest and updated only by versioned events.
//!
//! Adapters live behind features: `sqlite` (the embedded default, on by
//! default), `redis`. `test-util` exposes the [`conformance`] suite that every
//! [`InventoryStore`] must pass, and a fault-injecting bus wrapper.
//!
//! ```
//! use inventory_core::{Inventory, MemoryStore};
//! use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};
//!
//! # tokio_test_block_on(async {
//! let inventory = Inventory::new(MemoryStore::new());
//! let alice = OwnerId::account(UserId::parse("alice")?);
//! let wood = ItemId::parse("wood")?;
//! let change = Change::new(ChangeId::random()).grant(alice.clone(), wood.clone(), Quantity::new(5)?);
//! let applied = inventory.apply(change).await?;
//! assert_eq!(applied.event.owners[0].version.get(), 1);
//! assert_eq!(inventory.load(&alice).await?.items[&wood], 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod bus;
mod cache;
mod error;
mod interest;
mod inventory;
mod ledger;
mod memory;
mod metrics;
mod node;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

#[cfg(feature = "test-util")]
pub mod conformance;

pub use bus::{
    BusMessage, BusReceiver, DEFAULT_CHANNEL_PREFIX, EventBus, LocalBus, LocalConnection,
};
#[cfg(feature = "test-util")]
pub use bus::{FaultPlan, FaultyBus};
#[cfg(feature = "redis")]
pub use bus::{RedisBus, RedisBusConfig};
pub use cache::{EventOutcome, HydrationOutcome, PlayerCache, SEEN_WINDOW};
pub use error::Error;
pub use interest::{InterestChange, ZoneId, ZoneInterest};
pub use inventory::{AppliedChange, Inventory};
pub use memory::MemoryStore;
pub use metrics::{MetricsSnapshot, PropagationMetrics};
pub use node::{CacheUpdate, Follower, ZoneNode, ZoneNodeConfig};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteStats, SqliteStore, Synchronous};
pub use store::{ApplyOutcome, IDEMPOTENCY_WINDOW, InventoryStore};
