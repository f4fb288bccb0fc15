//! The in-memory store: the pure ledger behind a lock. For unit tests and
//! examples; it forgets everything when dropped.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use protocol::{ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange};

use crate::ledger::Ledger;
use crate::{ApplyOutcome, Error, InventoryStore, JournalEntry, OwnerRecord, StoreScan};

/// An [`InventoryStore`] held in memory. Cloning shares the same state.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    // A std Mutex: the critical sections are short and never await.
    ledger: Arc<Mutex<Ledger>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        // The ledger is never left half-updated (it validates before it
        // writes), so a poisoned lock still holds a consistent state.
        f(&mut self.ledger.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl InventoryStore for MemoryStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        self.with(|ledger| ledger.apply(change))
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        Ok(self.with(|ledger| ledger.snapshot(owner)))
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        Ok(self.with(|ledger| ledger.user_snapshots(user)))
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        Ok(self.with(|ledger| ledger.lookup(id)))
    }
}

#[async_trait]
impl StoreScan for MemoryStore {
    async fn scan_journal(
        &self,
        visit: &mut (dyn FnMut(JournalEntry) + Send),
    ) -> Result<(), Error> {
        let journal = self.with(|ledger| ledger.journal().to_vec());
        journal.into_iter().for_each(visit);
        Ok(())
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        let records = self.with(|ledger| ledger.owner_records());
        records.into_iter().for_each(visit);
        Ok(())
    }
}
