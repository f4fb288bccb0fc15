//! The audit: reads back every change a store journaled, every balance it
//! holds and the descriptors of every held item, and proves that nothing was
//! duplicated or lost. It works over any [`StoreScan`] (SQLite, MongoDB,
//! memory) and any [`DescriptorStore`].
//!
//! Checks, each reported as an exact [`Violation`]:
//!
//! - every acknowledged change is journaled exactly once, with the versions
//!   its caller was told (when the caller's acknowledgements are given);
//! - each owner's journaled versions are exactly `1..=v` for its stored
//!   version `v` (nothing applied without a journal entry, nothing twice);
//! - every trade sums to zero per item;
//! - for every item, the stored supply equals granted + crafted − consumed −
//!   burned, summed from the journal by [`ChangeKind`];
//! - each owner's stored balances equal the replay of its journaled deltas;
//! - no balance is negative;
//! - every held item has a live descriptor, no burned descriptor is held, and
//!   no unique item is held more than once in all;
//! - every client's final view equals the store (when views are given).
//!
//! Reported, not a violation: orphan descriptors, live crafted descriptors
//! nobody holds (a craft or burn whose unknown outcome was never retried to
//! an answer leaves one; see `inventory_core::crafting`). The candidates
//! are the items every journaled craft granted plus the crafts callers say
//! they ordered ([`Evidence::crafted`]); a craft that never applied and is
//! not in the evidence is not seen.
//!
//! Run it on a quiet store: the scans are not one snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use descriptor_service::{DescriptorStore, Record};
use inventory_core::{OwnerRecord, StoreScan};
use protocol::{
    ChangeId, ChangeKind, ItemId, MAX_BATCH_IDS, Operation, OwnerId, OwnerSnapshot, Stacking,
    Version,
};
use serde::Serialize;

/// What the audit is given besides the stores.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Every change a caller saw acknowledged, with the versions it was told.
    pub acknowledged: Option<HashMap<ChangeId, Vec<(OwnerId, Version)>>>,
    /// Each client's final view, per owner.
    pub client_views: Option<Vec<OwnerSnapshot>>,
    /// The descriptor of every craft ordered, applied or not.
    pub crafted: Option<Vec<ItemId>>,
}

/// One thing that is wrong.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum Violation {
    /// A caller was told the change was applied; the journal does not have it.
    AcknowledgedNotJournaled { change: String },
    /// The journal holds the change more than once.
    JournaledTwice { change: String, times: u64 },
    /// The journal's versions for a change differ from those acknowledged.
    AcknowledgedVersionsDiffer {
        change: String,
        acknowledged: String,
        journaled: String,
    },
    /// An owner's journaled versions are not exactly `1..=version`.
    VersionsNotJournaled {
        owner: String,
        version: u64,
        journaled: u64,
        highest: u64,
    },
    /// A trade whose items do not sum to zero.
    TradeUnbalanced {
        change: String,
        item: String,
        net: i64,
    },
    /// An item's stored supply differs from what the journal adds up to.
    SupplyMismatch {
        item: String,
        stored: i64,
        granted: i64,
        crafted: i64,
        consumed: i64,
        burned: i64,
        expected: i64,
    },
    /// An owner's stored balance differs from the replay of its journal.
    BalanceMismatch {
        owner: String,
        item: String,
        stored: i64,
        journaled: i64,
    },
    /// A negative balance.
    NegativeBalance {
        owner: String,
        item: String,
        qty: i64,
    },
    /// A held item with no descriptor at all.
    NoDescriptor { owner: String, item: String },
    /// A held item whose descriptor was burned.
    BurnedDescriptorHeld { owner: String, item: String },
    /// A unique item held more than once in all.
    UniqueHeldMoreThanOnce { item: String, held: i64 },
    /// A change retried with its id did not answer "already applied" with
    /// the same event.
    RetryDiffered { detail: String },
    /// A client's final view differs from the store.
    ClientViewDiffers {
        owner: String,
        client: String,
        store: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AcknowledgedNotJournaled { change } => {
                write!(f, "change {change} was acknowledged but is not journaled")
            }
            Self::JournaledTwice { change, times } => {
                write!(f, "change {change} is journaled {times} times")
            }
            Self::AcknowledgedVersionsDiffer {
                change,
                acknowledged,
                journaled,
            } => write!(
                f,
                "change {change} was acknowledged with versions {acknowledged}, journaled with {journaled}"
            ),
            Self::VersionsNotJournaled {
                owner,
                version,
                journaled,
                highest,
            } => write!(
                f,
                "{owner} is at version {version} but the journal holds {journaled} of its changes (highest version {highest})"
            ),
            Self::TradeUnbalanced { change, item, net } => {
                write!(f, "trade {change} moves {net} of {item} in all (must be 0)")
            }
            Self::SupplyMismatch {
                item,
                stored,
                granted,
                crafted,
                consumed,
                burned,
                expected,
            } => write!(
                f,
                "supply of {item} is {stored}, but granted {granted} + crafted {crafted} - consumed {consumed} - burned {burned} = {expected}"
            ),
            Self::BalanceMismatch {
                owner,
                item,
                stored,
                journaled,
            } => write!(
                f,
                "{owner} holds {stored} of {item}, its journal adds up to {journaled}"
            ),
            Self::NegativeBalance { owner, item, qty } => {
                write!(f, "{owner} holds a negative balance of {item}: {qty}")
            }
            Self::NoDescriptor { owner, item } => {
                write!(f, "{owner} holds {item}, which has no descriptor")
            }
            Self::BurnedDescriptorHeld { owner, item } => {
                write!(f, "{owner} holds {item}, whose descriptor was burned")
            }
            Self::UniqueHeldMoreThanOnce { item, held } => {
                write!(f, "unique item {item} is held {held} times")
            }
            Self::RetryDiffered { detail } => write!(f, "a retry differed: {detail}"),
            Self::ClientViewDiffers {
                owner,
                client,
                store,
            } => write!(
                f,
                "client view of {owner} is {client}, the store has {store}"
            ),
        }
    }
}

/// What the audit saw and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    /// Journaled changes.
    pub changes: u64,
    /// Journaled changes per kind (`adjust`, `trade`, `craft`, `burn`).
    pub changes_by_kind: BTreeMap<String, u64>,
    /// Owners with a version above 0.
    pub owners: u64,
    /// Distinct items held.
    pub items_held: u64,
    /// Unique (crafted) items held now.
    pub unique_items_held: u64,
    /// Crafted descriptors looked at for orphans (journaled crafts and
    /// ordered ones).
    pub crafted_descriptors_checked: u64,
    /// Live crafted descriptors that nobody holds (not a violation).
    pub orphan_descriptors: u64,
    /// Acknowledged changes checked against the journal.
    pub acknowledged_checked: u64,
    /// Client views (owners) compared with the store.
    pub client_views_checked: u64,
    /// Everything wrong; empty means PASS.
    pub violations: Vec<Violation>,
}

impl AuditReport {
    /// True if nothing is wrong.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// At most this many violations are printed by `Display`; the JSON form
/// holds them all.
const PRINTED_VIOLATIONS: usize = 50;

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit: {} changes {:?}, {} owners, {} items held ({} unique), {} acknowledged changes and {} client views checked",
            self.changes,
            self.changes_by_kind,
            self.owners,
            self.items_held,
            self.unique_items_held,
            self.acknowledged_checked,
            self.client_views_checked
        )?;
        writeln!(
            f,
            "audit: {} crafted descriptors checked, {} orphans (live, held by nobody)",
            self.crafted_descriptors_checked, self.orphan_descriptors
        )?;
        if self.passed() {
            return write!(f, "audit: PASS");
        }
        for violation in self.violations.iter().take(PRINTED_VIOLATIONS) {
            writeln!(f, "  violation: {violation}")?;
        }
        if self.violations.len() > PRINTED_VIOLATIONS {
            writeln!(
                f,
                "  ... and {} more",
                self.violations.len() - PRINTED_VIOLATIONS
            )?;
        }
        write!(f, "audit: FAIL ({} violations)", self.violations.len())
    }
}

/// Per item, what the journal says happened to it.
#[derive(Clone, Copy, Debug, Default)]
struct Flow {
    granted: i64,
    crafted: i64,
    consumed: i64,
    burned: i64,
    traded: i64,
}

impl Flow {
    fn expected(&self) -> i64 {
        self.granted + self.crafted - self.consumed - self.burned + self.traded
    }
}

/// Per owner, the versions the journal holds.
#[derive(Clone, Copy, Debug, Default)]
struct Versions {
    count: u64,
    highest: u64,
    sum: u128,
}

/// Audits the SQLite files of an embedded deployment (or of a world run with
/// `--data-dir`).
pub async fn audit_sqlite(inventory: &Path, descriptors: &Path) -> anyhow::Result<AuditReport> {
    anyhow::ensure!(inventory.exists(), "{} does not exist", inventory.display());
    anyhow::ensure!(
        descriptors.exists(),
        "{} does not exist",
        descriptors.display()
    );
    let store = inventory_core::SqliteStore::open(inventory_core::SqliteConfig::new(inventory))?;
    let descriptors = descriptor_service::SqliteStore::open(descriptors)?;
    audit(&store, &descriptors, Evidence::default()).await
}

/// Audits a MongoDB deployment: inventories in `database`, descriptors in
/// `descriptor_database`.
pub async fn audit_mongodb(
    uri: &str,
    database: &str,
    descriptor_database: &str,
) -> anyhow::Result<AuditReport> {
    let store = inventory_core::MongoStore::connect(
        inventory_core::MongoConfig::new(uri).with_database(database),
    )
    .await?;
    let descriptors = descriptor_service::MongoStore::connect(uri, descriptor_database).await?;
    audit(&store, &descriptors, Evidence::default()).await
}

/// Runs every check.
pub async fn audit(
    store: &dyn StoreScan,
    descriptors: &dyn DescriptorStore,
    evidence: Evidence,
) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let mut seen: HashMap<ChangeId, (u64, Vec<(OwnerId, Version)>)> = HashMap::new();
    let mut flows: BTreeMap<ItemId, Flow> = BTreeMap::new();
    let mut replay: HashMap<(OwnerId, ItemId), i64> = HashMap::new();
    let mut versions: HashMap<OwnerId, Versions> = HashMap::new();
    let mut unbalanced = Vec::new();
    let mut crafted: HashSet<ItemId> = evidence.crafted.iter().flatten().cloned().collect();
    store
        .scan_journal(&mut |entry| {
            report.changes += 1;
            let kind = entry.change.kind();
            *report
                .changes_by_kind
                .entry(kind_name(kind).to_owned())
                .or_default() += 1;
            let mut trade_net: BTreeMap<&ItemId, i64> = BTreeMap::new();
            for op in entry.change.ops() {
                let delta = op.delta();
                let flow = flows.entry(op.item().clone()).or_default();
                match (kind, op) {
                    (ChangeKind::Trade, _) => {
                        flow.traded += delta;
                        *trade_net.entry(op.item()).or_default() += delta;
                    }
                    (ChangeKind::Craft, Operation::Grant { .. }) => {
                        flow.crafted += delta;
                        crafted.insert(op.item().clone());
                    }
                    (ChangeKind::Burn, Operation::Consume { .. }) => flow.burned -= delta,
                    (_, Operation::Grant { .. }) => flow.granted += delta,
                    (_, Operation::Consume { .. }) => flow.consumed -= delta,
                }
                let key = (op.owner().clone(), op.item().clone());
                let balance = replay.entry(key.clone()).or_default();
                *balance += delta;
                if *balance == 0 {
                    replay.remove(&key);
                }
            }
            for (item, net) in trade_net {
                if net != 0 {
                    unbalanced.push(Violation::TradeUnbalanced {
                        change: entry.change.id().to_string(),
                        item: item.to_string(),
                        net,
                    });
                }
            }
            for (owner, version) in &entry.versions {
                let v = versions.entry(owner.clone()).or_default();
                v.count += 1;
                v.highest = v.highest.max(version.get());
                v.sum += u128::from(version.get());
            }
            let slot = seen
                .entry(entry.change.id())
                .or_insert_with(|| (0, entry.versions.clone()));
            slot.0 += 1;
        })
        .await?;
    report.violations.extend(unbalanced);
    for (id, (times, _)) in &seen {
        if *times > 1 {
            report.violations.push(Violation::JournaledTwice {
                change: id.to_string(),
                times: *times,
            });
        }
    }
    if let Some(acknowledged) = &evidence.acknowledged {
        for (id, told) in acknowledged {
            report.acknowledged_checked += 1;
            match seen.get(id) {
                None => report.violations.push(Violation::AcknowledgedNotJournaled {
                    change: id.to_string(),
                }),
                Some((_, journaled)) if journaled != told => {
                    report
                        .violations
                        .push(Violation::AcknowledgedVersionsDiffer {
                            change: id.to_string(),
                            acknowledged: format_versions(told),
                            journaled: format_versions(journaled),
                        });
                }
                Some(_) => {}
            }
        }
    }
    drop(seen);

    let mut records: HashMap<OwnerId, OwnerRecord> = HashMap::new();
    let mut supply: BTreeMap<ItemId, i64> = BTreeMap::new();
    store
        .scan_owners(&mut |record| {
            for (item, qty) in &record.items {
                *supply.entry(item.clone()).or_default() += qty;
            }
            records.insert(record.owner.clone(), record);
        })
        .await?;
    report.owners = records.len() as u64;
    report.items_held = supply.values().filter(|q| **q != 0).count() as u64;

    let mut owners: Vec<&OwnerRecord> = records.values().collect();
    owners.sort_by(|a, b| a.owner.cmp(&b.owner));
    for record in &owners {
        let journaled = versions.remove(&record.owner).unwrap_or_default();
        let v = record.version.get();
        let contiguous = u128::from(v) * u128::from(v + 1) / 2;
        if journaled.count != v || journaled.highest != v || journaled.sum != contiguous {
            report.violations.push(Violation::VersionsNotJournaled {
                owner: record.owner.to_string(),
                version: v,
                journaled: journaled.count,
                highest: journaled.highest,
            });
        }
        for (item, qty) in &record.items {
            if *qty < 0 {
                report.violations.push(Violation::NegativeBalance {
                    owner: record.owner.to_string(),
                    item: item.to_string(),
                    qty: *qty,
                });
            }
            let replayed = replay
                .remove(&(record.owner.clone(), item.clone()))
                .unwrap_or(0);
            if replayed != *qty {
                report.violations.push(Violation::BalanceMismatch {
                    owner: record.owner.to_string(),
                    item: item.to_string(),
                    stored: *qty,
                    journaled: replayed,
                });
            }
        }
    }
    let mut leftovers: Vec<_> = replay.into_iter().collect();
    leftovers.sort();
    for ((owner, item), journaled) in leftovers {
        report.violations.push(Violation::BalanceMismatch {
            owner: owner.to_string(),
            item: item.to_string(),
            stored: 0,
            journaled,
        });
    }
    let mut orphans: Vec<_> = versions.into_iter().collect();
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for (owner, journaled) in orphans {
        report.violations.push(Violation::VersionsNotJournaled {
            owner: owner.to_string(),
            version: 0,
            journaled: journaled.count,
            highest: journaled.highest,
        });
    }
    for (item, flow) in &flows {
        let stored = supply.get(item).copied().unwrap_or(0);
        if stored != flow.expected() {
            report.violations.push(Violation::SupplyMismatch {
                item: item.to_string(),
                stored,
                granted: flow.granted,
                crafted: flow.crafted,
                consumed: flow.consumed,
                burned: flow.burned,
                expected: flow.expected(),
            });
        }
    }
    for (item, stored) in &supply {
        if !flows.contains_key(item) && *stored != 0 {
            report.violations.push(Violation::SupplyMismatch {
                item: item.to_string(),
                stored: *stored,
                granted: 0,
                crafted: 0,
                consumed: 0,
                burned: 0,
                expected: 0,
            });
        }
    }

    check_descriptors(descriptors, &owners, &supply, &mut report).await?;
    count_orphans(descriptors, crafted, &supply, &mut report).await?;
    if let Some(views) = &evidence.client_views {
        for view in views {
            report.client_views_checked += 1;
            let stored = records.get(&view.owner);
            let client: BTreeMap<ItemId, i64> = view
                .items
                .iter()
                .map(|(item, qty)| (item.clone(), i64::try_from(*qty).unwrap_or(i64::MAX)))
                .collect();
            let (version, items) = stored.map_or((Version::ZERO, BTreeMap::new()), |r| {
                (r.version, r.items.clone())
            });
            if version != view.version || items != client {
                report.violations.push(Violation::ClientViewDiffers {
                    owner: view.owner.to_string(),
                    client: format!("v{} {:?}", view.version.get(), client),
                    store: format!("v{} {:?}", version.get(), items),
                });
            }
        }
    }
    Ok(report)
}

/// Every held item must have a live descriptor; a unique one is held once.
async fn check_descriptors(
    descriptors: &dyn DescriptorStore,
    owners: &[&OwnerRecord],
    supply: &BTreeMap<ItemId, i64>,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let held: Vec<ItemId> = supply
        .iter()
        .filter(|(_, q)| **q != 0)
        .map(|(item, _)| item.clone())
        .collect();
    let mut records: HashMap<ItemId, Record> = HashMap::with_capacity(held.len());
    for chunk in held.chunks(MAX_BATCH_IDS) {
        for record in descriptors.get_many(chunk).await? {
            records.insert(record.id().clone(), record);
        }
    }
    let mut unique = HashSet::new();
    for record in owners {
        for (item, qty) in &record.items {
            if *qty <= 0 {
                continue;
            }
            let owner = record.owner.to_string();
            match records.get(item) {
                None => report.violations.push(Violation::NoDescriptor {
                    owner,
                    item: item.to_string(),
                }),
                Some(Record::Burned(_)) => {
                    report.violations.push(Violation::BurnedDescriptorHeld {
                        owner,
                        item: item.to_string(),
                    })
                }
                Some(Record::Live(descriptor)) if descriptor.stacking == Stacking::Unique => {
                    unique.insert(item.clone());
                }
                Some(Record::Live(_)) => {}
            }
        }
    }
    report.unique_items_held = unique.len() as u64;
    for item in unique {
        let held = supply.get(&item).copied().unwrap_or(0);
        if held > 1 {
            report.violations.push(Violation::UniqueHeldMoreThanOnce {
                item: item.to_string(),
                held,
            });
        }
    }
    Ok(())
}

/// Counts the live descriptors among `crafted` that nobody holds.
async fn count_orphans(
    descriptors: &dyn DescriptorStore,
    crafted: HashSet<ItemId>,
    supply: &BTreeMap<ItemId, i64>,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    report.crafted_descriptors_checked = crafted.len() as u64;
    let unheld: Vec<ItemId> = crafted
        .into_iter()
        .filter(|item| supply.get(item).copied().unwrap_or(0) == 0)
        .collect();
    for chunk in unheld.chunks(MAX_BATCH_IDS) {
        report.orphan_descriptors += descriptors
            .get_many(chunk)
            .await?
            .iter()
            .filter(|record| matches!(record, Record::Live(_)))
            .count() as u64;
    }
    Ok(())
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Adjust => "adjust",
        ChangeKind::Trade => "trade",
        ChangeKind::Craft => "craft",
        ChangeKind::Burn => "burn",
    }
}

fn format_versions(versions: &[(OwnerId, Version)]) -> String {
    versions
        .iter()
        .map(|(owner, version)| format!("{owner}@{}", version.get()))
        .collect::<Vec<_>>()
        .join(",")
}
