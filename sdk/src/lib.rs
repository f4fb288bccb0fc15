//! The Rust client SDK for the inventory system.
//!
//! A game client connects to its zone node, receives its player's inventories
//! once, then every change; it merges item descriptors in and hands the UI a
//! ready-to-render view with precise change notifications. It can change
//! nothing: the server is authoritative.
//!
//! The crate has two layers:
//!
//! - **The IO-free core** (always built, and built for `wasm32-unknown-unknown`
//!   with `--no-default-features`): [`ClientState`] is a message pump that
//!   applies the node's [`ServerMessage`](protocol::ServerMessage)s by version
//!   (a duplicate is ignored, a gap asks for a resume), the bounded
//!   [`DescriptorCache`] that says which ids it still needs, and the merged
//!   [`InventoryView`] with its [`ViewChange`] notifications. Browser bindings
//!   (`sdk-wasm`) drive the same core with their own transports.
//! - **Native transports** (feature `native`, on by default):
//!   [`InventoryClient`] over `tokio-tungstenite` with automatic reconnect and
//!   resume, and [`DescriptorClient`] over `reqwest` with batching, request
//!   coalescing and retries, usable alone by tools. Feature `tls` adds `wss://`
//!   and `https://`.
//!
//! # Example: the core, without any IO
//!
//! ```
//! use protocol::{ChangeId, ChangeKind, ItemDelta, ItemId, OwnerDelta, OwnerId, OwnerSnapshot,
//!                ServerMessage, UserId, Version};
//! use sdk::{ClientState, DescriptorState, ViewChange};
//!
//! let alice = UserId::parse("alice")?;
//! let bank = OwnerId::account(alice.clone());
//! let wood = ItemId::parse("wood")?;
//!
//! let mut state = ClientState::default();
//! state.handle(ServerMessage::Welcome { user: alice, owners: vec![bank.clone()] });
//! state.handle(ServerMessage::Snapshot {
//!     owners: vec![OwnerSnapshot {
//!         owner: bank.clone(),
//!         version: Version::new(3),
//!         items: [(wood.clone(), 10)].into(),
//!     }],
//! });
//! let delta = ServerMessage::Delta {
//!     change_id: ChangeId::nil(),
//!     kind: ChangeKind::Adjust,
//!     owner: OwnerDelta {
//!         owner: bank.clone(),
//!         version: Version::new(4),
//!         deltas: vec![ItemDelta { item: wood.clone(), change: -4 }],
//!     },
//! };
//! let changes = state.handle(delta.clone());
//! assert_eq!(changes, [ViewChange::QuantityChanged {
//!     owner: bank.clone(), item: wood.clone(), from: 10, to: 6,
//! }]);
//! // At-least-once delivery: the same delta again changes nothing.
//! assert!(state.handle(delta).is_empty());
//!
//! // The view shows a placeholder until the descriptor arrives...
//! let view = state.view();
//! assert_eq!(view.item(&bank, &wood).unwrap().qty, 6);
//! assert_eq!(view.item(&bank, &wood).unwrap().descriptor, DescriptorState::Loading);
//! // ...and the state says which descriptors to fetch.
//! assert_eq!(state.descriptors_to_fetch(), [wood]);
//! # Ok::<(), protocol::Error>(())
//! ```
//!
//! With the `native` feature, the same state behind a socket:
//!
//! ```no_run
//! # async fn run() -> Result<(), sdk::Error> {
//! let client = sdk::InventoryClient::builder("ws://127.0.0.1:7000/v1/ws", "<jwt>")
//!     .with_descriptor_url("http://127.0.0.1:7100")
//!     .on_change(|change| tracing::info!(?change, "inventory changed"))
//!     .connect()
//!     .await?;
//! let view = client.view();
//! # drop(view);
//! # Ok(())
//! # }
//! ```

mod descriptor_cache;
mod error;
#[cfg(test)]
mod fixtures;
#[cfg(feature = "native")]
mod native;
mod session;
mod state;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod view;

pub use descriptor_cache::{DescriptorCache, DescriptorState};
pub use error::Error;
#[cfg(feature = "native")]
pub use native::{
    ClientHandle, DescriptorClient, DescriptorClientBuilder, InventoryClient,
    InventoryClientBuilder, ListFilter, RawListPage, TokenFuture,
};
#[cfg(feature = "game-server")]
pub use native::{GameServerClient, GameServerClientBuilder};
pub use protocol;
pub use session::{
    Action, ConnectionState, Millis, Session, SessionConfig, SessionEvent, SessionStats, SocketId,
};
pub use state::ClientState;
pub use view::{InventoryView, ItemView, OwnerView, ViewChange};
