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
//!   burned (± traded and reverted, which a sound journal keeps at what they
//!   moved), summed from the journal by [`ChangeKind`];
//! - every revert undoes part of one journaled change that is not a revert,
//!   and no change is reverted twice;
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
//!
//! The journal is read once (`journal.rs`), the owners once (`Holdings` in
//! `checks.rs`); each check is then one function in `checks.rs`, run in the
//! order the violations are reported.

mod checks;
mod journal;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use descriptor_service::DescriptorStore;
use inventory_core::StoreScan;
use protocol::{ChangeId, ItemId, OwnerId, OwnerSnapshot, Version};
use serde::Serialize;

use checks::Holdings;
use journal::Journal;

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
    /// A revert that does not undo part of one journaled change, or undoes
    /// a change reverted before.
    BadRevert {
        change: String,
        reverts: String,
        why: String,
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
            Self::BadRevert {
                change,
                reverts,
                why,
            } => write!(f, "revert {change} of {reverts} is unsound: {why}"),
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
    let Journal {
        changes,
        changes_by_kind,
        seen,
        flows,
        mut replay,
        mut versions,
        unbalanced,
        bad_reverts,
        crafted,
    } = journal::read(store, evidence.crafted.into_iter().flatten().collect()).await?;
    report.changes = changes;
    report.changes_by_kind = changes_by_kind;
    report.violations.extend(unbalanced);
    report.violations.extend(bad_reverts);
    checks::journaled_once(&seen, &mut report);
    if let Some(acknowledged) = &evidence.acknowledged {
        checks::acknowledged_journaled(acknowledged, &seen, &mut report);
    }
    // The per-change map is the largest; the rest of the audit does without.
    drop(seen);

    let holdings = Holdings::read(store).await?;
    report.owners = holdings.records.len() as u64;
    report.items_held = holdings.supply.values().filter(|q| **q != 0).count() as u64;
    let owners = holdings.sorted_owners();
    checks::owners_match_the_journal(&owners, &mut versions, &mut replay, &mut report);
    checks::no_unstored_balances(replay, &mut report);
    checks::no_unstored_owners(versions, &mut report);
    checks::supply_matches_the_flows(&flows, &holdings.supply, &mut report);
    checks::held_items_have_live_descriptors(descriptors, &owners, &holdings.supply, &mut report)
        .await?;
    checks::count_orphans(descriptors, crafted, &holdings.supply, &mut report).await?;
    if let Some(views) = &evidence.client_views {
        checks::client_views_match_the_store(views, &holdings.records, &mut report);
    }
    Ok(report)
}
