//! The inventory domain: the store port with its written contract and shared
//! conformance suite, the pure ledger rules every store must honour, and the
//! [`Inventory`] facade that validates a change, applies it and returns the
//! event to propagate.
//!
//! Propagation: the [`EventBus`] port (per-player channels) with the in-process
//! [`LocalBus`] and, behind the `redis` feature, a Redis pub/sub adapter; the
//! [`PlayerHub`] that keeps one server process's player caches, subscribed by
//! reference-counted interest (game zones and client feeds holding a player)
//! and updated only by versioned events.
//!
//! Crafting and burning unique items, whose stack lives in a store and whose
//! descriptor lives in the descriptor service: [`crafting`], the protocol
//! across both behind the [`crafting::DescriptorRegistry`] port.
//!
//! ```
//! use std::sync::Arc;
//! use inventory_core::{CacheUpdate, Inventory, LocalBus, MemoryStore, PlayerHub, PlayerHubConfig};
//! use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId, ZoneId};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let bus = LocalBus::new();
//! let (connection, receiver) = bus.connect();
//! let hub = PlayerHub::start(store.clone(), connection.clone(), receiver, PlayerHubConfig::new());
//! let inventory = Inventory::from_arc(store).with_bus(connection);
//!
//! let alice = UserId::parse("alice")?;
//! hub.join(ZoneId::parse("forest")?, &alice).await?; // subscribes, then hydrates
//! let mut follower = hub.follow(&alice).expect("alice is here");
//! assert_eq!(follower.recv().await, Some(CacheUpdate::Resync(vec![])));
//!
//! let wood = ItemId::parse("wood")?;
//! let change = Change::new(ChangeId::random()).grant(OwnerId::account(alice.clone()), wood, Quantity::new(5)?);
//! inventory.apply(change).await?; // applied, then published on alice's channel
//! assert!(matches!(follower.recv().await, Some(CacheUpdate::Delta { owner, .. }) if owner.version.get() == 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Adapters live behind features: `sqlite` (the embedded default, on by
//! default), `mongodb` (`MongoStore`, the production source of truth) and
//! `redis` (the Redis pub/sub bus). `test-util` exposes the [`conformance`]
//! suite that every [`InventoryStore`] must pass, and fault-injecting wrappers.
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
pub mod crafting;
mod error;
mod hub;
mod interest;
mod inventory;
mod ledger;
mod memory;
mod metrics;
#[cfg(feature = "mongodb")]
mod mongo;
mod outbox;
mod scan;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod support;

#[cfg(feature = "test-util")]
pub mod conformance;

#[cfg(feature = "test-util")]
pub use bus::conformance as bus_conformance;
pub use bus::{
    BusMessage, BusReceiver, DEFAULT_CHANNEL_PREFIX, EventBus, LocalBus, LocalConnection,
};
#[cfg(feature = "test-util")]
pub use bus::{FaultPlan, FaultyBus};
#[cfg(feature = "redis")]
pub use bus::{RedisBus, RedisBusConfig};
pub use cache::{EventOutcome, HydrationOutcome, PlayerCache, SEEN_WINDOW};
pub use error::Error;
pub use hub::{CacheUpdate, Follower, PlayerHub, PlayerHubConfig};
pub use interest::{Holder, InterestChange, ZoneInterest};
pub use inventory::{AppliedChange, Inventory};
pub use memory::MemoryStore;
pub use metrics::{MetricsSnapshot, PropagationMetrics};
#[cfg(all(feature = "mongodb", feature = "test-util"))]
pub use mongo::{FaultInjector, FaultKind};
#[cfg(feature = "mongodb")]
pub use mongo::{MongoConfig, MongoStats, MongoStore};
pub use outbox::{Outbox, OutboxEntry, OutboxPosition, OutboxRelay, RelayConfig};
pub use scan::{JournalEntry, OwnerRecord, StoreScan};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConfig, SqliteStats, SqliteStore, Synchronous};
pub use store::{ApplyOutcome, IDEMPOTENCY_WINDOW, InventoryStore, now_millis};
pub use support::{
    JournalRecord, RevertMode, RevertPlan, Support, SupportStore, custody, history_entry,
    plan_revert,
};
