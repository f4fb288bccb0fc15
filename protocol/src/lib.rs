//! The wire contract shared by inventory servers and SDKs.
//!
//! Everything that crosses a process boundary is defined here: identifiers with
//! their grammar ([`ItemId`], [`UserId`], [`OwnerId`], [`ZoneId`], [`ChangeId`]), the
//! [`Change`] a game server asks for, the [`ChangeEvent`] that propagates once
//! it is applied, owner snapshots, item [`Descriptor`]s with their batch-get types,
//! the client WebSocket's [`ClientMessage`] and [`ServerMessage`] with their
//! [`Encoding`]s, and the one table of stable [`ErrorCode`]s used by HTTP and
//! WebSocket alike.
//!
//! The crate is serde-only and does no IO, so it builds for
//! `wasm32-unknown-unknown` (CI checks it).
//!
//! ```
//! use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};
//!
//! let alice = OwnerId::account(UserId::parse("alice")?);
//! let change = Change::new(ChangeId::nil())
//!     .grant(alice.clone(), ItemId::parse("wood")?, Quantity::new(10)?)
//!     .consume(alice, ItemId::parse("stone")?, Quantity::new(2)?)
//!     .validate()?;
//! assert_eq!(change.owners().count(), 1);
//! # Ok::<(), protocol::Error>(())
//! ```

mod change;
mod crafting;
mod descriptor;
mod error;
mod event;
mod gameplay;
mod ids;
mod message;
#[cfg(feature = "openapi")]
pub mod openapi;
mod support;

pub use change::{
    Change, ChangeKind, MAX_BALANCE, MAX_OPERATIONS, MAX_OWNERS_PER_CHANGE, MAX_QUANTITY,
    Operation, Quantity, Reverts, ValidChange,
};
pub use crafting::{BurnOrder, CraftOrder, crafted_item_id, is_crafted_item_id};
pub use descriptor::{
    AttributeValue, BatchGetRequest, BatchGetResponse, BurnOutcome, BurnResponse, CraftInput,
    Descriptor, DescriptorKind, ListResponse, MAX_ATTRIBUTE_TEXT_LEN, MAX_ATTRIBUTES,
    MAX_BATCH_IDS, MAX_DESCRIPTOR_BYTES, MAX_INPUTS, MAX_LIST_LIMIT, MAX_NAME_LEN,
    MAX_TIMESTAMP_MS, Stacking,
};
pub use error::{Error, ErrorBody, ErrorCode};
pub use event::{ChangeEvent, DeltaOutcome, ItemDelta, OwnerDelta, OwnerSnapshot, Version};
pub use gameplay::{ChangeApplied, ChangeRecord, ChangeState, PlayerZones};
pub use ids::{ChangeId, CharacterId, ID_MAX_LEN, ItemId, OwnerId, UserId, ZoneId};
pub use message::{
    CLOSE_TOKEN_EXPIRED, ClientMessage, Encoding, MAX_CLIENT_FRAME_BYTES, MAX_SERVER_FRAME_BYTES,
    ServerMessage, decode_client, decode_server, encode_client, encode_server,
};
pub use support::{
    AuditLogPage, Blocked, Custody, CustodyStep, HistoryEntry, HistoryPage, MAX_PAGE,
    OperatorAction, RevertOutcome, Undo,
};
