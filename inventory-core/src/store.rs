//! The store port: the one contract every inventory store honours.

use async_trait::async_trait;
use protocol::{OwnerId, OwnerSnapshot, UserId, ValidChange, Version};

use crate::Error;

/// How many recent change ids per owner a store remembers, at least, for
/// write-side idempotency.
pub const IDEMPOTENCY_WINDOW: usize = 1024;

/// What a store did with a change.
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub enum ApplyOutcome {
    /// The change was applied now; each touched owner's new version, in
    /// ascending owner order.
    Applied(Vec<(OwnerId, Version)>),
    /// The change had been applied before; nothing changed. The versions are
    /// the ones it produced then, in ascending owner order.
    AlreadyApplied(Vec<(OwnerId, Version)>),
}

impl ApplyOutcome {
    /// The versions the change produced.
    #[must_use]
    pub fn versions(&self) -> &[(OwnerId, Version)] {
        match self {
            Self::Applied(v) | Self::AlreadyApplied(v) => v,
        }
    }
}

/// The source of truth for inventories.
///
/// # Contract
///
/// Every implementation passes the shared [`conformance`](crate::conformance)
/// suite, which checks each point below.
///
/// - **Atomic.** A change is applied to all the owners and stacks it touches, or
///   to none. A failed change leaves no trace, not even in the idempotency
///   record: the same change id may be retried and may then succeed.
/// - **Guarded in the same step.** A consume succeeds only if the owner holds at
///   least the quantity, and the store checks it in the same atomic step as the
///   write (a filter, a `WHERE`, a transaction), never by reading first and
///   writing later. Otherwise the whole change fails with
///   [`Error::Insufficient`]. A grant that would take a balance above
///   [`protocol::MAX_BALANCE`] fails with [`Error::BalanceOverflow`]. Balances
///   are therefore never negative.
/// - **Versioned.** Every applied change increments each touched owner's
///   version by exactly 1. An owner never touched has version 0 and no items.
/// - **Idempotent.** If the change id was already applied to these owners, the
///   store changes nothing and answers [`ApplyOutcome::AlreadyApplied`] with the
///   versions it produced then. The store remembers at least the last
///   [`IDEMPOTENCY_WINDOW`] change ids per owner; a retry older than that may be
///   applied again, so callers retry within seconds, not days. A change id
///   names one change: reusing it for different operations is a caller bug the
///   store does not detect.
/// - **No empty stacks.** A stack that reaches zero is removed; snapshots list
///   positive balances only.
/// - **Consistent reads.** [`load`](Self::load) returns an owner's items and
///   version as of one point: the items are exactly the result of the changes
///   up to that version.
/// - **Errors.** [`Error::Unavailable`] means the outcome is unknown (the write
///   may or may not have happened): retry with the same change id.
///   [`Error::Corrupt`] names the owner whose record is malformed.
#[async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    /// Applies a change atomically, or reports why not.
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error>;

    /// One owner's items and version, as of one consistent point.
    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error>;

    /// Every owner of `user` that has ever been touched (the account scope and
    /// each character), each consistent on its own, in ascending owner order.
    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error>;
}

#[async_trait]
impl<S: InventoryStore + ?Sized> InventoryStore for std::sync::Arc<S> {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        (**self).apply(change).await
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        (**self).load(owner).await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        (**self).load_user(user).await
    }
}
