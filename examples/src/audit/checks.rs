//! The audit's checks, one function each, over what the journal adds up to
//! ([`Journal`](super::journal::Journal)) and what the store holds
//! ([`Holdings`]); each appends its violations to the report.

use std::collections::{BTreeMap, HashMap, HashSet};

use descriptor_service::{DescriptorStore, Record};
use inventory_core::{OwnerRecord, StoreScan};
use protocol::{ChangeId, ItemId, MAX_BATCH_IDS, OwnerId, OwnerSnapshot, Stacking, Version};

use super::journal::{Flow, Seen, Versions};
use super::{AuditReport, Violation};

/// What the store holds: every touched owner's record, and each item's
/// supply summed over all owners.
#[derive(Debug, Default)]
pub(super) struct Holdings {
    pub(super) records: HashMap<OwnerId, OwnerRecord>,
    pub(super) supply: BTreeMap<ItemId, i64>,
}

impl Holdings {
    /// Reads every owner once.
    pub(super) async fn read(store: &dyn StoreScan) -> anyhow::Result<Self> {
        let mut holdings = Self::default();
        store
            .scan_owners(&mut |record| {
                for (item, qty) in &record.items {
                    *holdings.supply.entry(item.clone()).or_default() += qty;
                }
                holdings.records.insert(record.owner.clone(), record);
            })
            .await?;
        Ok(holdings)
    }

    /// The owners' records in owner order, so that violations come out in a
    /// stable order.
    pub(super) fn sorted_owners(&self) -> Vec<&OwnerRecord> {
        let mut owners: Vec<&OwnerRecord> = self.records.values().collect();
        owners.sort_by(|a, b| a.owner.cmp(&b.owner));
        owners
    }
}

/// No change is journaled more than once.
pub(super) fn journaled_once(seen: &Seen, report: &mut AuditReport) {
    for (id, (times, _)) in seen {
        if *times > 1 {
            report.violations.push(Violation::JournaledTwice {
                change: id.to_string(),
                times: *times,
            });
        }
    }
}

/// Every acknowledged change is journaled, with the versions its caller was
/// told.
pub(super) fn acknowledged_journaled(
    acknowledged: &HashMap<ChangeId, Vec<(OwnerId, Version)>>,
    seen: &Seen,
    report: &mut AuditReport,
) {
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

/// Per stored owner: its journaled versions are exactly `1..=v`, no balance
/// is negative, and each balance equals its replayed journal. Takes the
/// owners' journaled versions and the replayed stacks out of `versions` and
/// `replay`, leaving what no stored owner accounts for.
pub(super) fn owners_match_the_journal(
    owners: &[&OwnerRecord],
    versions: &mut HashMap<OwnerId, Versions>,
    replay: &mut HashMap<(OwnerId, ItemId), i64>,
    report: &mut AuditReport,
) {
    for record in owners {
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
}

/// Journaled stacks no stored balance accounts for.
pub(super) fn no_unstored_balances(
    replay: HashMap<(OwnerId, ItemId), i64>,
    report: &mut AuditReport,
) {
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
}

/// Owners with journaled versions that the store does not hold.
pub(super) fn no_unstored_owners(versions: HashMap<OwnerId, Versions>, report: &mut AuditReport) {
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
}

/// Every item's stored supply equals granted + crafted − consumed − burned
/// from the journal; an item the journal never moved has no supply.
pub(super) fn supply_matches_the_flows(
    flows: &BTreeMap<ItemId, Flow>,
    supply: &BTreeMap<ItemId, i64>,
    report: &mut AuditReport,
) {
    for (item, flow) in flows {
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
    for (item, stored) in supply {
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
}

/// Every held item must have a live descriptor; a unique one is held once.
pub(super) async fn held_items_have_live_descriptors(
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
pub(super) async fn count_orphans(
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

/// Every client's final view of an owner equals what the store holds.
pub(super) fn client_views_match_the_store(
    views: &[OwnerSnapshot],
    records: &HashMap<OwnerId, OwnerRecord>,
    report: &mut AuditReport,
) {
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

fn format_versions(versions: &[(OwnerId, Version)]) -> String {
    versions
        .iter()
        .map(|(owner, version)| format!("{owner}@{}", version.get()))
        .collect::<Vec<_>>()
        .join(",")
}
