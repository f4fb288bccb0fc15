//! The store port: the one contract every inventory store honours.

use async_trait::async_trait;
use protocol::{ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange, Version};

use crate::{Error, Outbox};

/// How many recent changes per owner a store remembers, at least, for
/// write-side idempotency. Every store remembers every change in its journal
/// (MongoDB's owner documents keep only a short per-owner guard window).
pub const IDEMPOTENCY_WINDOW: usize = 1024;

/// What a store did with a change: the event of the change as it was
/// applied, with the version it produced for each owner (in ascending owner
/// order) and the deltas on each.
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub enum ApplyOutcome {
    /// The change was applied now.
    Applied(ChangeEvent),
    /// The change had been applied before; nothing changed. The event is the
    /// one recorded when it was applied, not rebuilt from the retry.
    AlreadyApplied(ChangeEvent),
}

impl ApplyOutcome {
    /// The change's event.
    #[must_use]
    pub fn event(&self) -> &ChangeEvent {
        match self {
            Self::Applied(event) | Self::AlreadyApplied(event) => event,
        }
    }

    /// The change's event, by value.
    #[must_use]
    pub fn into_event(self) -> ChangeEvent {
        match self {
            Self::Applied(event) | Self::AlreadyApplied(event) => event,
        }
    }

    /// The versions the change produced, in ascending owner order.
    #[must_use]
    pub fn versions(&self) -> Vec<(OwnerId, Version)> {
        self.event().versions()
    }
}

/// Now, in milliseconds since the Unix epoch (0 before it): the time a
/// store journals a change at, and the clock of the operator log.
#[must_use]
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
/// - **A change id names one change, applied at most once.** The record of
///   an applied change id is global to the store, not kept per owner: no
///   second change with that id applies, whatever owners it names.
///   - A retry with the same content (the same kind and operations, in any
///     order: [`ValidChange::same_content`]) changes nothing and answers
///     [`ApplyOutcome::AlreadyApplied`] with the event recorded when the
///     change was applied (its versions and deltas), never one rebuilt from
///     the retry.
///   - The same id with other content fails with [`Error::ChangeConflict`]
///     and writes nothing.
///
///   How long the record lasts: as long as the store's journal keeps the
///   change (SQLite, MongoDB and the in-memory store: forever). Callers
///   retry within seconds, not days.
/// - **No empty stacks.** A stack that reaches zero is removed; snapshots list
///   positive balances only.
/// - **Consistent reads.** [`load`](Self::load) returns an owner's items and
///   version as of one point: the items are exactly the result of the changes
///   up to that version.
/// - **Lookup.** [`lookup`](Self::lookup) answers the recorded event of any
///   applied change id the store still remembers (see above), and `None` for
///   an id never applied or refused. It writes nothing.
/// - **Errors.** [`Error::Unavailable`] means the outcome is unknown (the write
///   may or may not have happened): retry with the same change id, or look
///   it up. [`Error::Corrupt`] names the owner whose record is malformed.
#[async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    /// Applies a change atomically, or reports why not.
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error>;

    /// One owner's items and version, as of one consistent point.
    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error>;

    /// Every owner of `user` that has ever been touched (the account scope and
    /// each character), each consistent on its own, in ascending owner order.
    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error>;

    /// The event an applied change produced, as recorded; `None` if no change
    /// with this id was applied (or the store no longer remembers it).
    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error>;

    /// The store's [`Outbox`], if it keeps its applied changes in order with
    /// each change's atomic step: an [`OutboxRelay`](crate::OutboxRelay) then
    /// publishes them, and [`Inventory`](crate::Inventory) does not. `None`
    /// (the default): `Inventory` publishes each change itself, after it is
    /// applied.
    fn outbox(&self) -> Option<&dyn Outbox> {
        None
    }
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

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        (**self).lookup(id).await
    }

    fn outbox(&self) -> Option<&dyn Outbox> {
        (**self).outbox()
    }
}
