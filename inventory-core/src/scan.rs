//! The audit port: reading back every change a store applied and every
//! balance it holds, so that an audit can prove nothing was duplicated or
//! lost.

use std::collections::BTreeMap;

use async_trait::async_trait;
use protocol::{ChangeEvent, ItemId, OwnerId, ValidChange, Version};

use crate::Error;

/// One applied change as the store recorded it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JournalEntry {
    /// The change, as applied.
    pub change: ValidChange,
    /// The version it produced for each owner it touched, in ascending owner
    /// order.
    pub versions: Vec<(OwnerId, Version)>,
}

impl JournalEntry {
    /// The event the change produced: what was published, and what a retry
    /// or a lookup answers.
    #[must_use]
    pub fn event(&self) -> ChangeEvent {
        ChangeEvent::from_applied(&self.change, &self.versions)
    }
}

/// One owner's stored state, raw: balances are signed and unvalidated, so
/// that a record corrupted behind the store's back (a negative balance, say)
/// reaches the audit instead of failing the scan.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OwnerRecord {
    /// The inventory.
    pub owner: OwnerId,
    /// Its version.
    pub version: Version,
    /// Every stored stack with a non-zero balance.
    pub items: BTreeMap<ItemId, i64>,
}

/// Reads back everything a store applied, for the audit.
///
/// # Contract
///
/// Every implementation passes the [`conformance`](crate::conformance) cases
/// run by `scan_conformance_tests!`.
///
/// - **The journal holds every applied change exactly once.**
///   [`scan_journal`](Self::scan_journal) visits one [`JournalEntry`] per
///   change the store applied, with the versions it produced; a retry answered
///   "already applied" adds nothing, and a refused or failed change leaves no
///   entry. The order is unspecified. A change is journaled before it is
///   acknowledged: in the same atomic step as the change (SQLite, memory,
///   every change on a MongoDB replica set), or right after it (MongoDB
///   without transactions marks the change's claim applied after its owners'
///   updates; see that store for the crash window this leaves).
/// - **Every touched owner once.** [`scan_owners`](Self::scan_owners) visits
///   every owner with a version above 0 exactly once, with its version and
///   its stored non-zero stacks, signed and unvalidated. An owner id that does
///   not parse is reported as [`Error::Backend`]; it cannot be visited.
/// - **Not a snapshot.** Both scans read in pages; changes applied during a
///   scan may or may not be seen. Audit a quiet store.
/// - **Errors.** [`Error::Unavailable`]: retry the scan. [`Error::Backend`]:
///   a record that cannot be read at all (a malformed journal entry).
#[async_trait]
pub trait StoreScan: Send + Sync + 'static {
    /// Calls `visit` once per journaled change.
    async fn scan_journal(&self, visit: &mut (dyn FnMut(JournalEntry) + Send))
    -> Result<(), Error>;

    /// Calls `visit` once per owner with a version above 0.
    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error>;
}

#[async_trait]
impl<S: StoreScan + ?Sized> StoreScan for std::sync::Arc<S> {
    async fn scan_journal(
        &self,
        visit: &mut (dyn FnMut(JournalEntry) + Send),
    ) -> Result<(), Error> {
        (**self).scan_journal(visit).await
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        (**self).scan_owners(visit).await
    }
}
