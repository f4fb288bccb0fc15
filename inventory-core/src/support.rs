//! The support port: an owner's history and a crafted item's custody read
//! from the journal, the operator audit log, and the pure rules that turn
//! them into answers (a history page, a custody chain, a revert's plan).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use protocol::{
    Blocked, Change, ChangeEvent, ChangeId, ChangeKind, Custody, CustodyStep, HistoryEntry,
    HistoryPage, ItemId, OperatorAction, OwnerId, OwnerSnapshot, Quantity, RevertOutcome, Reverts,
    Undo, ValidChange, Version,
};

use crate::{Error, Inventory, JournalEntry};

/// One journaled change with the time the store applied it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JournalRecord {
    /// The change and the versions it produced.
    pub entry: JournalEntry,
    /// When it was applied, in milliseconds since the Unix epoch; `None` for
    /// entries journaled before the store recorded times.
    pub applied_at: Option<u64>,
}

/// Reads the journal for support staff and keeps the operator audit log.
///
/// # Contract
///
/// Every implementation passes the [`conformance`](crate::conformance)
/// cases run by `support_conformance_tests!`.
///
/// - **History.** [`history`](Self::history) returns the journaled changes
///   that touched `owner` with a version (for that owner) below `before`
///   (every version when `None`), newest first, at most `limit`. An owner's
///   versions are dense (each applied change adds exactly 1), so a page
///   covers versions `before - 1` down to `before - limit`; a store may miss
///   a version only where a change was undone by compensation (MongoDB
///   without transactions). Served from an index: the cost of a page does
///   not grow with the owner's history.
/// - **One change.** [`change`](Self::change) answers the record of an
///   applied change id, like [`InventoryStore::lookup`](crate::InventoryStore::lookup)
///   but with the change as applied and its time.
/// - **Custody.** [`item_changes`](Self::item_changes) returns every
///   journaled change that granted or consumed `item`, a crafted item
///   ([`protocol::is_crafted_item_id`]), in any order; for any other item,
///   nothing. Served from an index.
/// - **Operator log.** [`record_action`](Self::record_action) keeps an
///   action durably in the same store as the inventories;
///   [`actions`](Self::actions) pages them newest first by id, those with an
///   id below `before`.
/// - **Errors.** [`Error::Unavailable`]: retry. [`Error::Backend`]: a
///   malformed record.
#[async_trait]
pub trait SupportStore: Send + Sync + 'static {
    /// One page of `owner`'s journaled changes, newest first.
    async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error>;

    /// The journal record of change `id`, if it was applied.
    async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error>;

    /// Every journaled change that moved the crafted `item`, in any order.
    async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error>;

    /// Keeps one operator action.
    async fn record_action(&self, action: &OperatorAction) -> Result<(), Error>;

    /// The operator actions with an id below `before`, newest first, at most
    /// `limit`.
    async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error>;
}

/// The entry of `record` in `owner`'s history; `None` if the change did not
/// touch `owner`.
#[must_use]
pub fn history_entry(record: &JournalRecord, owner: &OwnerId) -> Option<HistoryEntry> {
    let event = record.entry.event();
    let mine = event.owners.iter().find(|o| &o.owner == owner)?;
    Some(HistoryEntry {
        change_id: event.change_id,
        kind: event.kind,
        applied_at: record.applied_at,
        version: mine.version,
        deltas: mine.deltas.clone(),
        others: event
            .owners
            .iter()
            .filter(|o| &o.owner != owner)
            .map(|o| o.owner.clone())
            .collect(),
        reverts: record.entry.change.reverts(),
    })
}

/// `item`'s custody from the changes that moved it, in any order.
///
/// The chain is rebuilt without clocks: each step takes the item from the
/// holder the previous step left it with, and among several changes taking
/// it from the same owner the one with that owner's lowest version comes
/// first (an owner's versions order its changes). Changes that fit no chain
/// (a journal written behind the store's back) follow, by time.
#[must_use]
pub fn custody(item: &ItemId, records: &[JournalRecord]) -> Custody {
    struct Move<'a> {
        record: &'a JournalRecord,
        from: Option<(OwnerId, Version)>,
        to: Option<OwnerId>,
    }
    let mut moves: Vec<Move<'_>> = records
        .iter()
        .map(|record| {
            let mut step = Move {
                record,
                from: None,
                to: None,
            };
            for op in record
                .entry
                .change
                .ops()
                .iter()
                .filter(|op| op.item() == item)
            {
                let version = version_of(&record.entry, op.owner());
                if op.delta() < 0 {
                    step.from = Some((op.owner().clone(), version));
                } else {
                    step.to = Some(op.owner().clone());
                }
            }
            step
        })
        .collect();
    moves.sort_by_key(|m| m.from.as_ref().map(|(_, v)| *v));
    // Per holder, the moves taking the item from it, in its version order.
    let mut from: HashMap<Option<OwnerId>, VecDeque<usize>> = HashMap::new();
    for (i, m) in moves.iter().enumerate() {
        from.entry(m.from.as_ref().map(|(o, _)| o.clone()))
            .or_default()
            .push_back(i);
    }
    let mut taken = vec![false; moves.len()];
    let mut chain = Vec::with_capacity(moves.len());
    let mut holder: Option<OwnerId> = None;
    while let Some(i) = from.get_mut(&holder).and_then(VecDeque::pop_front) {
        taken[i] = true;
        chain.push(i);
        holder.clone_from(&moves[i].to);
    }
    let mut rest: Vec<usize> = (0..moves.len()).filter(|i| !taken[*i]).collect();
    rest.sort_by_key(|i| moves[*i].record.applied_at);
    let ordered: Vec<&Move<'_>> = chain.iter().chain(&rest).map(|i| &moves[*i]).collect();
    let first_of = |kind: ChangeKind| {
        ordered
            .iter()
            .find(|m| m.record.entry.change.kind() == kind)
    };
    Custody {
        item: item.clone(),
        crafted_by: first_of(ChangeKind::Craft).and_then(|m| m.to.clone()),
        burned_by: first_of(ChangeKind::Burn).and_then(|m| m.from.clone().map(|(o, _)| o)),
        holder,
        steps: ordered
            .iter()
            .map(|m| CustodyStep {
                change_id: m.record.entry.change.id(),
                kind: m.record.entry.change.kind(),
                applied_at: m.record.applied_at,
                from: m.from.clone().map(|(o, _)| o),
                to: m.to.clone(),
            })
            .collect(),
    }
}

fn version_of(entry: &JournalEntry, owner: &OwnerId) -> Version {
    entry
        .versions
        .iter()
        .find(|(o, _)| o == owner)
        .map_or(Version::ZERO, |(_, v)| *v)
}

/// What support staff do, over an [`Inventory`] and its store's
/// [`SupportStore`]: read history and custody, and revert changes through
/// the inventory (so a revert is guarded, journaled and published like any
/// change).
#[derive(Clone)]
pub struct Support {
    inventory: Inventory,
    store: Arc<dyn SupportStore>,
}

impl std::fmt::Debug for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Support").finish_non_exhaustive()
    }
}

impl Support {
    /// Support over `inventory`, whose store is `store` too.
    #[must_use]
    pub fn new(inventory: Inventory, store: Arc<dyn SupportStore>) -> Self {
        Self { inventory, store }
    }

    /// The store's support port.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SupportStore> {
        &self.store
    }

    /// One page of `owner`'s history, newest first (`limit` at most
    /// [`protocol::MAX_PAGE`]).
    pub async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<HistoryPage, Error> {
        let limit = limit.clamp(1, protocol::MAX_PAGE);
        let records = self.store.history(owner, before, limit).await?;
        let entries: Vec<HistoryEntry> = records
            .iter()
            .filter_map(|record| history_entry(record, owner))
            .collect();
        let lowest = entries.last().map(|e| e.version.get());
        let next_before = match lowest {
            Some(v) if v > 1 && entries.len() == limit => Some(v),
            _ => None,
        };
        Ok(HistoryPage {
            owner: owner.clone(),
            entries,
            next_before,
        })
    }

    /// The custody of a crafted item; `None` if the journal never moved it.
    pub async fn custody(&self, item: &ItemId) -> Result<Option<Custody>, Error> {
        let records = self.store.item_changes(item).await?;
        Ok((!records.is_empty()).then(|| custody(item, &records)))
    }

    /// Reverts change `original` for request `request` (the caller's
    /// idempotency id), or only plans it (`apply` false: a preview).
    ///
    /// A retry of the same request answers what the first did; another
    /// request for a change reverted already is [`Error::NotRevertible`].
    pub async fn revert(
        &self,
        original: ChangeId,
        request: ChangeId,
        mode: RevertMode,
        apply: bool,
    ) -> Result<RevertOutcome, Error> {
        let reverts = Reverts { original, request };
        let change_id = Reverts::change_id(original);
        if let Some(done) = self.store.change(change_id).await? {
            return done_before(reverts, &done);
        }
        let event = self
            .inventory
            .lookup(original)
            .await?
            .ok_or(Error::UnknownChange(original))?;
        let mut holdings = Vec::with_capacity(event.owners.len());
        for owner in &event.owners {
            holdings.push(self.inventory.load(&owner.owner).await?);
        }
        let plan = plan_revert(&event, request, &holdings, mode)?;
        let mut outcome = RevertOutcome {
            reverts,
            change_id,
            undo: plan.undo,
            blocked: plan.blocked,
            applied: None,
        };
        let Some(change) = plan.change.filter(|_| apply) else {
            return Ok(outcome);
        };
        match self.inventory.apply_valid(&change).await {
            Ok(applied) => outcome.applied = Some(applied.event),
            // Balances moved between the plan and the write.
            Err(Error::Insufficient {
                owner,
                item,
                requested,
                held,
            }) => {
                return Err(Error::RevertBlocked(vec![Blocked {
                    owner,
                    item,
                    short: requested.saturating_sub(held),
                }]));
            }
            // Another request reverted it meanwhile.
            Err(Error::ChangeConflict { .. }) => {
                return match self.store.change(change_id).await? {
                    Some(done) => done_before(reverts, &done),
                    None => Err(Error::Unavailable(format!(
                        "the revert {change_id} conflicted but is not journaled"
                    ))),
                };
            }
            Err(e) => return Err(e),
        }
        Ok(outcome)
    }
}

/// The answer to a revert request when the original's revert is journaled:
/// the recorded revert for the same request, a refusal for another.
fn done_before(reverts: Reverts, done: &JournalRecord) -> Result<RevertOutcome, Error> {
    let recorded = done.entry.change.reverts();
    if recorded.map(|r| r.request) != Some(reverts.request) {
        return Err(Error::NotRevertible {
            id: reverts.original,
            why: format!(
                "it was reverted already, as change {}",
                done.entry.change.id()
            ),
        });
    }
    Ok(RevertOutcome {
        reverts,
        change_id: done.entry.change.id(),
        undo: done
            .entry
            .change
            .ops()
            .iter()
            .map(|op| Undo {
                owner: op.owner().clone(),
                item: op.item().clone(),
                change: op.delta(),
            })
            .collect(),
        blocked: Vec::new(),
        applied: Some(done.entry.event()),
    })
}

/// How a revert treats items it cannot take back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RevertMode {
    /// All or nothing: any shortfall refuses the revert.
    Whole,
    /// Take back what is held, give back only as much as was taken back
    /// (per item, so a partial revert never creates items), report the rest.
    Partial,
}

/// What a revert of one change will do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RevertPlan {
    /// The revert to apply; `None` when a partial revert can undo nothing.
    pub change: Option<ValidChange>,
    /// The stacks it moves.
    pub undo: Vec<Undo>,
    /// What it cannot take back.
    pub blocked: Vec<Blocked>,
}

/// Plans the revert of `original` (its recorded event), asked for by
/// `request`, given the current snapshots of the owners it touched.
///
/// Every grant of the original becomes a guarded consume of the same stack
/// (limited to what the owner holds now); every consume becomes a grant,
/// reduced per item by what could not be taken back. Reverts, crafts and
/// burns cannot be reverted (a craft's or burn's descriptor would disagree
/// with the items): [`Error::NotRevertible`]. In [`RevertMode::Whole`] a
/// shortfall is [`Error::RevertBlocked`].
pub fn plan_revert(
    original: &ChangeEvent,
    request: ChangeId,
    holdings: &[OwnerSnapshot],
    mode: RevertMode,
) -> Result<RevertPlan, Error> {
    if matches!(
        original.kind,
        ChangeKind::Revert | ChangeKind::Craft | ChangeKind::Burn
    ) {
        return Err(Error::NotRevertible {
            id: original.change_id,
            why: format!("a {} cannot be reverted", kind_name(original.kind)),
        });
    }
    let held = |owner: &OwnerId, item: &ItemId| -> u64 {
        holdings
            .iter()
            .find(|s| &s.owner == owner)
            .and_then(|s| s.items.get(item))
            .copied()
            .unwrap_or(0)
    };
    let mut undo = Vec::new();
    let mut blocked = Vec::new();
    // Per item: how much of what the original granted cannot be taken back.
    let mut shortfall: HashMap<&ItemId, u64> = HashMap::new();
    for owner in &original.owners {
        for delta in owner.deltas.iter().filter(|d| d.change > 0) {
            let granted = delta.change.unsigned_abs();
            let have = held(&owner.owner, &delta.item);
            let take = granted.min(have);
            if take < granted {
                blocked.push(Blocked {
                    owner: owner.owner.clone(),
                    item: delta.item.clone(),
                    short: granted - take,
                });
                *shortfall.entry(&delta.item).or_default() += granted - take;
            }
            if take > 0 {
                undo.push(Undo {
                    owner: owner.owner.clone(),
                    item: delta.item.clone(),
                    change: -i64::try_from(take).unwrap_or(i64::MAX),
                });
            }
        }
    }
    if mode == RevertMode::Whole && !blocked.is_empty() {
        return Err(Error::RevertBlocked(blocked));
    }
    for owner in &original.owners {
        for delta in owner.deltas.iter().filter(|d| d.change < 0) {
            let consumed = delta.change.unsigned_abs();
            let short = shortfall.entry(&delta.item).or_default();
            let withheld = consumed.min(*short);
            *short -= withheld;
            if consumed > withheld {
                undo.push(Undo {
                    owner: owner.owner.clone(),
                    item: delta.item.clone(),
                    change: i64::try_from(consumed - withheld).unwrap_or(i64::MAX),
                });
            }
        }
    }
    let change = if undo.is_empty() {
        None
    } else {
        let mut change = Change::revert_of(original.change_id, request);
        for step in &undo {
            let qty = Quantity::new(step.change.unsigned_abs())?;
            change = if step.change < 0 {
                change.consume(step.owner.clone(), step.item.clone(), qty)
            } else {
                change.grant(step.owner.clone(), step.item.clone(), qty)
            };
        }
        Some(change.validate()?)
    };
    Ok(RevertPlan {
        change,
        undo,
        blocked,
    })
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Adjust => "adjustment",
        ChangeKind::Trade => "trade",
        ChangeKind::Craft => "craft",
        ChangeKind::Burn => "burn",
        ChangeKind::Revert => "revert",
    }
}

/// The operator log of the in-memory store.
#[derive(Debug, Default)]
pub(crate) struct MemorySupport {
    actions: BTreeMap<String, OperatorAction>,
}

impl MemorySupport {
    pub(crate) fn record(&mut self, action: &OperatorAction) {
        self.actions.insert(action.id.clone(), action.clone());
    }

    pub(crate) fn page(&self, before: Option<&str>, limit: usize) -> Vec<OperatorAction> {
        self.actions
            .values()
            .rev()
            .filter(|a| before.is_none_or(|b| a.id.as_str() < b))
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests;
