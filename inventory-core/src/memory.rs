//! The in-memory store: the pure ledger behind a lock. For unit tests and
//! examples; it forgets everything when dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use protocol::{ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange};
use tokio::sync::Notify;

use crate::ledger::Ledger;
use crate::{
    ApplyOutcome, Error, InventoryStore, JournalEntry, Outbox, OutboxEntry, OutboxPosition,
    OwnerRecord, StoreScan,
};

/// An [`InventoryStore`] held in memory, with its journal as its [`Outbox`]
/// (positions are journal sequence numbers, from 1). Cloning shares the same
/// state.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    // A std Mutex: the critical sections are short and never await.
    ledger: Arc<Mutex<Ledger>>,
    published: Arc<AtomicU64>,
    signal: Arc<Notify>,
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
        let outcome = self.with(|ledger| ledger.apply(change));
        if let Ok(ApplyOutcome::Applied(_)) = &outcome {
            self.signal.notify_waiters();
        }
        outcome
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

    fn outbox(&self) -> Option<&dyn Outbox> {
        Some(self)
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn read_after(
        &self,
        after: Option<&OutboxPosition>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error> {
        let after = match after {
            Some(position) => position
                .seq()
                .ok_or_else(|| Error::Backend("not a memory outbox position".to_owned()))?,
            None => self.published.load(Ordering::Acquire),
        };
        Ok(self.with(|ledger| {
            let journal = ledger.journal();
            let from = usize::try_from(after)
                .unwrap_or(usize::MAX)
                .min(journal.len());
            journal[from..]
                .iter()
                .take(limit)
                .zip(after + 1..)
                .map(|(entry, seq)| OutboxEntry {
                    position: OutboxPosition::from_seq(seq),
                    event: entry.event(),
                })
                .collect()
        }))
    }

    async fn mark_published(&self, position: &OutboxPosition) -> Result<(), Error> {
        let seq = position
            .seq()
            .ok_or_else(|| Error::Backend("not a memory outbox position".to_owned()))?;
        self.published.fetch_max(seq, Ordering::AcqRel);
        Ok(())
    }

    fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
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
