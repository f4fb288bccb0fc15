//! One pass over a store's journal, tallied for the checks: each change's
//! journaled count and versions, each item's flow by change kind, each
//! stack's replayed balance, each owner's journaled versions, the trades
//! that do not sum to zero, and the reverts that do not undo (part of) one
//! journaled change once.

use std::collections::{BTreeMap, HashMap, HashSet};

use inventory_core::StoreScan;
use protocol::{ChangeId, ChangeKind, ItemId, Operation, OwnerId, ValidChange, Version};

use super::Violation;

/// Per item, what the journal says happened to it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Flow {
    pub(super) granted: i64,
    pub(super) crafted: i64,
    pub(super) consumed: i64,
    pub(super) burned: i64,
    traded: i64,
    reverted: i64,
}

impl Flow {
    pub(super) fn expected(&self) -> i64 {
        self.granted + self.crafted - self.consumed - self.burned + self.traded + self.reverted
    }
}

/// Per owner, the versions the journal holds.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Versions {
    pub(super) count: u64,
    pub(super) highest: u64,
    pub(super) sum: u128,
}

/// Per change id: how often it is journaled, and the versions of its first
/// entry.
pub(super) type Seen = HashMap<ChangeId, (u64, Vec<(OwnerId, Version)>)>;

/// What the journal adds up to.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// Journaled changes.
    pub(super) changes: u64,
    /// Journaled changes per kind name.
    pub(super) changes_by_kind: BTreeMap<String, u64>,
    /// Per change id: how often it is journaled, and the versions of its
    /// first entry.
    pub(super) seen: Seen,
    /// Per item, its flow by change kind.
    pub(super) flows: BTreeMap<ItemId, Flow>,
    /// Per stack, the sum of its journaled deltas (stacks summing to zero
    /// left out).
    pub(super) replay: HashMap<(OwnerId, ItemId), i64>,
    /// Per owner, its journaled versions.
    pub(super) versions: HashMap<OwnerId, Versions>,
    /// A violation for every item of a trade that does not sum to zero.
    pub(super) unbalanced: Vec<Violation>,
    /// A violation for every revert that does not undo part of one
    /// journaled change, or that undoes a change reverted before.
    pub(super) bad_reverts: Vec<Violation>,
    /// The items journaled crafts granted, plus the `crafted` the caller
    /// gave.
    pub(super) crafted: HashSet<ItemId>,
}

/// Reads the whole journal once; `crafted` are the crafts callers say they
/// ordered.
pub(super) async fn read(
    store: &dyn StoreScan,
    crafted: HashSet<ItemId>,
) -> anyhow::Result<Journal> {
    let mut journal = Journal {
        crafted,
        ..Journal::default()
    };
    let mut reverts = Vec::new();
    store
        .scan_journal(&mut |entry| {
            journal.changes += 1;
            let kind = entry.change.kind();
            *journal
                .changes_by_kind
                .entry(kind_name(kind).to_owned())
                .or_default() += 1;
            let mut trade_net: BTreeMap<&ItemId, i64> = BTreeMap::new();
            for op in entry.change.ops() {
                let delta = op.delta();
                let flow = journal.flows.entry(op.item().clone()).or_default();
                match (kind, op) {
                    (ChangeKind::Trade, _) => {
                        flow.traded += delta;
                        *trade_net.entry(op.item()).or_default() += delta;
                    }
                    (ChangeKind::Craft, Operation::Grant { .. }) => {
                        flow.crafted += delta;
                        journal.crafted.insert(op.item().clone());
                    }
                    (ChangeKind::Burn, Operation::Consume { .. }) => flow.burned -= delta,
                    (ChangeKind::Revert, _) => flow.reverted += delta,
                    (_, Operation::Grant { .. }) => flow.granted += delta,
                    (_, Operation::Consume { .. }) => flow.consumed -= delta,
                }
                let key = (op.owner().clone(), op.item().clone());
                let balance = journal.replay.entry(key.clone()).or_default();
                *balance += delta;
                if *balance == 0 {
                    journal.replay.remove(&key);
                }
            }
            for (item, net) in trade_net {
                if net != 0 {
                    journal.unbalanced.push(Violation::TradeUnbalanced {
                        change: entry.change.id().to_string(),
                        item: item.to_string(),
                        net,
                    });
                }
            }
            for (owner, version) in &entry.versions {
                let v = journal.versions.entry(owner.clone()).or_default();
                v.count += 1;
                v.highest = v.highest.max(version.get());
                v.sum += u128::from(version.get());
            }
            if let Some(reverts_of) = entry.change.reverts() {
                reverts.push((entry.change.clone(), reverts_of.original));
            }
            let slot = journal
                .seen
                .entry(entry.change.id())
                .or_insert_with(|| (0, entry.versions.clone()));
            slot.0 += 1;
        })
        .await?;
    journal.bad_reverts = check_reverts(store, &reverts).await?;
    Ok(journal)
}

/// Each revert must name a journaled change that is not a revert, no other
/// revert may name the same one, and each of its operations must undo (all
/// or, for a partial revert, part of) one of the original's on the same
/// stack. A second pass
/// over the journal reads the originals (there are few reverts).
async fn check_reverts(
    store: &dyn StoreScan,
    reverts: &[(ValidChange, ChangeId)],
) -> anyhow::Result<Vec<Violation>> {
    if reverts.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: HashSet<ChangeId> = reverts.iter().map(|(_, original)| *original).collect();
    let mut originals: HashMap<ChangeId, ValidChange> = HashMap::new();
    store
        .scan_journal(&mut |entry| {
            if wanted.contains(&entry.change.id()) {
                originals.insert(entry.change.id(), entry.change);
            }
        })
        .await?;
    let mut violations = Vec::new();
    let mut undone: HashSet<ChangeId> = HashSet::new();
    for (revert, original_id) in reverts {
        let bad = |why: &str| Violation::BadRevert {
            change: revert.id().to_string(),
            reverts: original_id.to_string(),
            why: why.to_owned(),
        };
        let Some(original) = originals.get(original_id) else {
            violations.push(bad("the reverted change is not journaled"));
            continue;
        };
        if original.kind() == ChangeKind::Revert {
            violations.push(bad("it reverts a revert"));
        }
        if !undone.insert(*original_id) {
            violations.push(bad("the change was reverted before"));
        }
        let undoes = |op: &Operation| {
            original.ops().iter().any(|o| {
                o.owner() == op.owner()
                    && o.item() == op.item()
                    && o.delta().signum() == -op.delta().signum()
                    && op.delta().abs() <= o.delta().abs()
            })
        };
        if !revert.ops().iter().all(undoes) {
            violations.push(bad("an operation does not undo one of the original's"));
        }
    }
    Ok(violations)
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Adjust => "adjust",
        ChangeKind::Trade => "trade",
        ChangeKind::Craft => "craft",
        ChangeKind::Burn => "burn",
        ChangeKind::Revert => "revert",
    }
}
