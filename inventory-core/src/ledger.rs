//! The store contract as pure code over plain data: guards, versions, empty
//! stacks and the idempotency window. [`MemoryStore`](crate::MemoryStore) is
//! this ledger behind a lock.

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::{
    ChangeId, MAX_BALANCE, Operation, OwnerId, OwnerSnapshot, UserId, ValidChange, Version,
};

use crate::{ApplyOutcome, Error, IDEMPOTENCY_WINDOW, JournalEntry, OwnerRecord};

/// One owner: its snapshot and the ids of its recent changes.
#[derive(Clone, Debug)]
struct OwnerLedger {
    snapshot: OwnerSnapshot,
    recent_order: VecDeque<ChangeId>,
    recent: HashMap<ChangeId, Version>,
}

impl OwnerLedger {
    fn new(owner: OwnerId) -> Self {
        Self {
            snapshot: OwnerSnapshot::empty(owner),
            recent_order: VecDeque::new(),
            recent: HashMap::new(),
        }
    }

    fn remember(&mut self, id: ChangeId, version: Version) {
        self.recent.insert(id, version);
        self.recent_order.push_back(id);
        while self.recent_order.len() > IDEMPOTENCY_WINDOW {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }
}

/// Every owner's state, with the contract's rules applied in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    owners: BTreeMap<OwnerId, OwnerLedger>,
    journal: Vec<JournalEntry>,
}

impl Ledger {
    /// Applies `change` all or nothing, following the store contract.
    pub(crate) fn apply(&mut self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let recorded: Vec<(OwnerId, Version)> = change
            .owners()
            .filter_map(|owner| {
                let version = self.owners.get(owner)?.recent.get(&change.id())?;
                Some((owner.clone(), *version))
            })
            .collect();
        if !recorded.is_empty() {
            return Ok(ApplyOutcome::AlreadyApplied(recorded));
        }
        let mut balances = Vec::with_capacity(change.ops().len());
        for op in change.ops() {
            let held = self
                .owners
                .get(op.owner())
                .and_then(|o| o.snapshot.items.get(op.item()))
                .copied()
                .unwrap_or(0);
            balances.push(next_balance(op, held)?);
        }
        for (op, balance) in change.ops().iter().zip(balances) {
            let items = &mut self.owner_mut(op.owner()).snapshot.items;
            if balance == 0 {
                items.remove(op.item());
            } else {
                items.insert(op.item().clone(), balance);
            }
        }
        let versions = change
            .owners()
            .map(|owner| {
                let ledger = self.owner_mut(owner);
                ledger.snapshot.version = ledger.snapshot.version.next();
                let version = ledger.snapshot.version;
                ledger.remember(change.id(), version);
                (owner.clone(), version)
            })
            .collect::<Vec<_>>();
        self.journal.push(JournalEntry {
            change: change.clone(),
            versions: versions.clone(),
        });
        Ok(ApplyOutcome::Applied(versions))
    }

    /// One owner's snapshot (empty at version 0 if never touched).
    pub(crate) fn snapshot(&self, owner: &OwnerId) -> OwnerSnapshot {
        self.owners.get(owner).map_or_else(
            || OwnerSnapshot::empty(owner.clone()),
            |o| o.snapshot.clone(),
        )
    }

    /// Every touched owner of `user`, in ascending owner order.
    pub(crate) fn user_snapshots(&self, user: &UserId) -> Vec<OwnerSnapshot> {
        self.owners
            .values()
            .filter(|o| o.snapshot.owner.user() == user)
            .map(|o| o.snapshot.clone())
            .collect()
    }

    /// Every applied change, in application order.
    pub(crate) fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// Every touched owner's record, in ascending owner order.
    pub(crate) fn owner_records(&self) -> Vec<OwnerRecord> {
        self.owners
            .values()
            .filter(|o| o.snapshot.version > Version::ZERO)
            .map(|o| OwnerRecord {
                owner: o.snapshot.owner.clone(),
                version: o.snapshot.version,
                // Balances are at most MAX_BALANCE, far below i64::MAX.
                items: o
                    .snapshot
                    .items
                    .iter()
                    .map(|(item, qty)| (item.clone(), *qty as i64))
                    .collect(),
            })
            .collect()
    }

    fn owner_mut(&mut self, owner: &OwnerId) -> &mut OwnerLedger {
        self.owners
            .entry(owner.clone())
            .or_insert_with(|| OwnerLedger::new(owner.clone()))
    }
}

/// The balance after `op`, or the guard it breaks.
pub(crate) fn next_balance(op: &Operation, held: u64) -> Result<u64, Error> {
    let qty = op.qty().get();
    match op {
        Operation::Consume { owner, item, .. } => {
            held.checked_sub(qty).ok_or_else(|| Error::Insufficient {
                owner: owner.clone(),
                item: item.clone(),
                requested: qty,
                held,
            })
        }
        Operation::Grant { owner, item, .. } => held
            .checked_add(qty)
            .filter(|b| *b <= MAX_BALANCE)
            .ok_or_else(|| Error::BalanceOverflow {
                owner: owner.clone(),
                item: item.clone(),
                requested: qty,
            }),
    }
}

#[cfg(test)]
mod tests;
