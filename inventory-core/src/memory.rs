//! The in-memory store: the pure ledger behind a lock. For unit tests and
//! examples; it forgets everything when dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use protocol::{
    ChangeEvent, ChangeId, ItemId, OperatorAction, OwnerId, OwnerSnapshot, UserId, ValidChange,
    Version, is_crafted_item_id,
};
use tokio::sync::Notify;

use crate::ledger::Ledger;
use crate::support::MemorySupport;
use crate::{
    ApplyOutcome, Error, InventoryStore, JournalEntry, JournalRecord, Outbox, OutboxEntry,
    OutboxPosition, OwnerRecord, StoreScan, SupportStore,
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
    support: Arc<Mutex<MemorySupport>>,
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

/// History and custody scan the journal (a list): fine for tests and
/// examples, not for millions of changes. Times are not recorded.
#[async_trait]
impl SupportStore for MemoryStore {
    async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error> {
        let below = before.map_or(u64::MAX, Version::get);
        Ok(self.with(|ledger| {
            ledger
                .journal()
                .iter()
                .rev()
                .filter(|entry| {
                    entry
                        .versions
                        .iter()
                        .any(|(o, v)| o == owner && v.get() < below)
                })
                .take(limit)
                .map(|entry| JournalRecord {
                    entry: entry.clone(),
                    applied_at: None,
                })
                .collect()
        }))
    }

    async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
        Ok(self.with(|ledger| {
            ledger
                .journal()
                .iter()
                .find(|entry| entry.change.id() == id)
                .map(|entry| JournalRecord {
                    entry: entry.clone(),
                    applied_at: None,
                })
        }))
    }

    async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error> {
        if !is_crafted_item_id(item) {
            return Ok(Vec::new());
        }
        Ok(self.with(|ledger| {
            ledger
                .journal()
                .iter()
                .filter(|entry| entry.change.ops().iter().any(|op| op.item() == item))
                .map(|entry| JournalRecord {
                    entry: entry.clone(),
                    applied_at: None,
                })
                .collect()
        }))
    }

    async fn record_action(&self, action: &OperatorAction) -> Result<(), Error> {
        self.support
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(action);
        Ok(())
    }

    async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error> {
        Ok(self
            .support
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .page(before, limit))
    }
}
