//! The store contract as pure code over plain data: guards, versions, empty
//! stacks and the record of applied change ids. [`MemoryStore`](crate::MemoryStore)
//! is this ledger behind a lock.

use std::collections::{BTreeMap, HashMap};

use protocol::{
    ChangeEvent, ChangeId, MAX_BALANCE, Operation, OwnerId, OwnerSnapshot, UserId, ValidChange,
    Version,
};

use crate::{ApplyOutcome, Error, JournalEntry, OwnerRecord};

/// Every owner's state, with the contract's rules applied in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    owners: BTreeMap<OwnerId, OwnerSnapshot>,
    journal: Vec<JournalEntry>,
    /// Every applied change id, global to the ledger (not per owner), with
    /// its journal position: a change id names one change.
    applied: HashMap<ChangeId, usize>,
}

impl Ledger {
    /// Applies `change` all or nothing, following the store contract.
    pub(crate) fn apply(&mut self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        if let Some(&position) = self.applied.get(&change.id()) {
            let recorded = &self.journal[position];
            if !recorded.change.same_content(change) {
                return Err(Error::ChangeConflict { id: change.id() });
            }
            return Ok(ApplyOutcome::AlreadyApplied(recorded.event()));
        }
        let mut balances = Vec::with_capacity(change.ops().len());
        for op in change.ops() {
            let held = self
                .owners
                .get(op.owner())
                .and_then(|o| o.items.get(op.item()))
                .copied()
                .unwrap_or(0);
            balances.push(next_balance(op, held)?);
        }
        for (op, balance) in change.ops().iter().zip(balances) {
            let items = &mut self.owner_mut(op.owner()).items;
            if balance == 0 {
                items.remove(op.item());
            } else {
                items.insert(op.item().clone(), balance);
            }
        }
        let versions = change
            .owners()
            .map(|owner| {
                let snapshot = self.owner_mut(owner);
                snapshot.version = snapshot.version.next();
                (owner.clone(), snapshot.version)
            })
            .collect::<Vec<_>>();
        let entry = JournalEntry {
            change: change.clone(),
            versions,
        };
        let event = entry.event();
        self.applied.insert(change.id(), self.journal.len());
        self.journal.push(entry);
        Ok(ApplyOutcome::Applied(event))
    }

    /// The recorded event of an applied change.
    pub(crate) fn lookup(&self, id: ChangeId) -> Option<ChangeEvent> {
        self.applied.get(&id).map(|&i| self.journal[i].event())
    }

    /// One owner's snapshot (empty at version 0 if never touched).
    pub(crate) fn snapshot(&self, owner: &OwnerId) -> OwnerSnapshot {
        self.owners
            .get(owner)
            .cloned()
            .unwrap_or_else(|| OwnerSnapshot::empty(owner.clone()))
    }

    /// Every touched owner of `user`, in ascending owner order.
    pub(crate) fn user_snapshots(&self, user: &UserId) -> Vec<OwnerSnapshot> {
        self.owners
            .values()
            .filter(|o| o.owner.user() == user)
            .cloned()
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
            .filter(|o| o.version > Version::ZERO)
            .map(|o| OwnerRecord {
                owner: o.owner.clone(),
                version: o.version,
                // Balances are at most MAX_BALANCE, far below i64::MAX.
                items: o
                    .items
                    .iter()
                    .map(|(item, qty)| (item.clone(), *qty as i64))
                    .collect(),
            })
            .collect()
    }

    fn owner_mut(&mut self, owner: &OwnerId) -> &mut OwnerSnapshot {
        self.owners
            .entry(owner.clone())
            .or_insert_with(|| OwnerSnapshot::empty(owner.clone()))
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
