//! What propagates once a change is applied: versions, deltas, events and
//! snapshots, and the one rule every cache follows to apply them in order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ChangeId, ChangeKind, ItemId, OwnerId, ValidChange};

/// An owner's version: 0 before any change, +1 for every applied change that
/// touches the owner.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(u64);

impl Version {
    /// The version of an owner no change has touched.
    pub const ZERO: Self = Self(0);

    /// Wraps a raw version number.
    #[must_use]
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The version as a number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version after one more change.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A signed change to one stack.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ItemDelta {
    /// The item.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub item: ItemId,
    /// How the balance moved: positive for a grant, negative for a consume.
    pub change: i64,
}

/// What one change did to one owner, and the version it produced.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OwnerDelta {
    /// The inventory.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(a:[A-Za-z0-9_-]{1,64}|c:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64})$"))]
    pub owner: OwnerId,
    /// The owner's version after this change.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub version: Version,
    /// The stacks that moved.
    pub deltas: Vec<ItemDelta>,
}

/// The event published for one applied change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The change that was applied.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change_id: ChangeId,
    /// What the change meant.
    #[serde(default)]
    pub kind: ChangeKind,
    /// One entry per touched owner, in ascending owner order.
    pub owners: Vec<OwnerDelta>,
}

impl ChangeEvent {
    /// The event of `change`, given the version it produced for each owner.
    ///
    /// `versions` must name every owner the change touches (stores return them
    /// so); an owner not named there is left out of the event.
    #[must_use]
    pub fn from_applied(change: &ValidChange, versions: &[(OwnerId, Version)]) -> Self {
        let owners = versions
            .iter()
            .map(|(owner, version)| OwnerDelta {
                owner: owner.clone(),
                version: *version,
                deltas: change
                    .ops_for(owner)
                    .map(|op| ItemDelta {
                        item: op.item().clone(),
                        change: op.delta(),
                    })
                    .collect(),
            })
            .collect();
        Self {
            change_id: change.id(),
            kind: change.kind(),
            owners,
        }
    }

    /// The version the change produced for each owner, in ascending owner
    /// order.
    #[must_use]
    pub fn versions(&self) -> Vec<(OwnerId, Version)> {
        self.owners
            .iter()
            .map(|o| (o.owner.clone(), o.version))
            .collect()
    }
}

/// One owner's whole inventory as of one version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OwnerSnapshot {
    /// The inventory.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(a:[A-Za-z0-9_-]{1,64}|c:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64})$"))]
    pub owner: OwnerId,
    /// The version the items are as of.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub version: Version,
    /// Every stack with a positive balance; empty stacks are absent.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u64>))]
    pub items: BTreeMap<ItemId, u64>,
}

/// What [`OwnerSnapshot::apply`] did with a delta.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum DeltaOutcome {
    /// The delta was the next version and is now applied.
    Applied,
    /// The delta's version is not newer than the snapshot's: already seen.
    Duplicate,
    /// One or more versions are missing in between: re-hydrate from the store.
    Gap,
    /// The delta would drive a balance negative: the snapshot cannot be trusted,
    /// re-hydrate from the store.
    Inconsistent,
}

impl OwnerSnapshot {
    /// An owner no change has touched yet.
    #[must_use]
    pub fn empty(owner: OwnerId) -> Self {
        Self {
            owner,
            version: Version::ZERO,
            items: BTreeMap::new(),
        }
    }

    /// Applies `delta` if and only if it is the next version: `v + 1` applies,
    /// `<= v` is a duplicate, `> v + 1` is a gap. Nothing changes unless the
    /// outcome is [`DeltaOutcome::Applied`].
    pub fn apply(&mut self, delta: &OwnerDelta) -> DeltaOutcome {
        if delta.version <= self.version {
            return DeltaOutcome::Duplicate;
        }
        if delta.version != self.version.next() {
            return DeltaOutcome::Gap;
        }
        let mut updated = Vec::with_capacity(delta.deltas.len());
        for d in &delta.deltas {
            let held = self.items.get(&d.item).copied().unwrap_or(0);
            match held.checked_add_signed(d.change) {
                Some(balance) => updated.push((&d.item, balance)),
                None => return DeltaOutcome::Inconsistent,
            }
        }
        for (item, balance) in updated {
            if balance == 0 {
                self.items.remove(item);
            } else {
                self.items.insert(item.clone(), balance);
            }
        }
        self.version = delta.version;
        DeltaOutcome::Applied
    }
}

#[cfg(test)]
mod tests;
