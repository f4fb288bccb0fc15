//! The crate's one error type.

use protocol::{ChangeId, ErrorCode, ItemId, OwnerId};

/// Why a change or a load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The change is malformed; nothing was written.
    #[error(transparent)]
    Invalid(#[from] protocol::Error),
    /// A guarded consume asked for more than the owner holds; nothing was written.
    #[error("{owner} holds {held} {item}, fewer than the {requested} asked for")]
    Insufficient {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// The quantity the consume asked for.
        requested: u64,
        /// The balance the store saw when it refused.
        held: u64,
    },
    /// A grant would take a balance above [`protocol::MAX_BALANCE`]; nothing was written.
    #[error("granting {requested} {item} to {owner} would exceed the maximum balance")]
    BalanceOverflow {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// The quantity the grant asked for.
        requested: u64,
    },
    /// The change id was already applied with other content (another kind,
    /// other operations or other owners); nothing was written.
    #[error("change {id} was already applied with other content; a change id names one change")]
    ChangeConflict {
        /// The reused id.
        id: ChangeId,
    },
    /// The backend could not be reached or gave up. Whether the change was
    /// applied is unknown: retry it with the same change id.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record is malformed.
    #[error("corrupt record for {owner}: {detail}")]
    Corrupt {
        /// The owner whose record is bad.
        owner: OwnerId,
        /// What is wrong with it.
        detail: String,
    },
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(String),
    /// The event bus could not deliver or subscribe.
    #[error("event bus error: {0}")]
    Bus(String),
    /// No applied change has this id (never applied, refused, or no longer
    /// journaled).
    #[error("no applied change has id {0}")]
    UnknownChange(ChangeId),
    /// The change cannot be reverted; nothing was written.
    #[error("change {id} cannot be reverted: {why}")]
    NotRevertible {
        /// The change.
        id: ChangeId,
        /// Why not.
        why: String,
    },
    /// A revert would take back items their owners no longer hold; nothing
    /// was written.
    #[error("the revert is blocked: {}", blocked_list(.0))]
    RevertBlocked(Vec<protocol::Blocked>),
    /// The descriptor registry refused or failed a craft's or burn's
    /// descriptor write (see [`crate::crafting`]); its code says which.
    #[error(transparent)]
    Registry(#[from] crate::crafting::RegistryError),
}

impl Error {
    /// The stable code a client sees for this error.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Insufficient { .. } => ErrorCode::InsufficientBalance,
            Self::BalanceOverflow { .. } => ErrorCode::BalanceOverflow,
            Self::ChangeConflict { .. } => ErrorCode::ChangeConflict,
            Self::Unavailable(_) | Self::Bus(_) => ErrorCode::Unavailable,
            Self::Corrupt { .. } | Self::Backend(_) => ErrorCode::Internal,
            Self::Registry(e) => e.code(),
            Self::UnknownChange(_) => ErrorCode::UnknownChange,
            Self::NotRevertible { .. } => ErrorCode::NotRevertible,
            Self::RevertBlocked(_) => ErrorCode::RevertBlocked,
        }
    }
}

/// `c:alice:hero is 2 sword short, a:bob is 5 gold short`.
fn blocked_list(blocked: &[protocol::Blocked]) -> String {
    blocked
        .iter()
        .map(|b| format!("{} is {} {} short", b.owner, b.short, b.item))
        .collect::<Vec<_>>()
        .join(", ")
}
