//! The merged, UI-ready view: every owner's items with their quantity and
//! descriptor, and the notifications that say exactly what changed.

use protocol::{ItemId, OwnerId, Version};

use crate::DescriptorState;

/// Everything the client shows: the player's owners in ascending owner order
/// (the account first, then characters by id).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct InventoryView {
    /// One entry per owner.
    pub owners: Vec<OwnerView>,
}

/// One inventory, its items in ascending item-id order.
#[derive(Clone, PartialEq, Debug)]
pub struct OwnerView {
    /// The inventory.
    pub owner: OwnerId,
    /// The version the items are as of.
    pub version: Version,
    /// Every stack with a positive quantity.
    pub items: Vec<ItemView>,
}

/// One stack with its descriptor (or a placeholder until it arrives).
#[derive(Clone, PartialEq, Debug)]
pub struct ItemView {
    /// The item.
    pub item: ItemId,
    /// How many the owner holds (at least 1).
    pub qty: u64,
    /// The item's descriptor, or why there is none (yet).
    pub descriptor: DescriptorState,
}

impl InventoryView {
    /// One owner's inventory.
    #[must_use]
    pub fn owner(&self, owner: &OwnerId) -> Option<&OwnerView> {
        self.owners.iter().find(|o| &o.owner == owner)
    }

    /// One stack.
    #[must_use]
    pub fn item(&self, owner: &OwnerId, item: &ItemId) -> Option<&ItemView> {
        self.owner(owner)?.items.iter().find(|i| &i.item == item)
    }
}

/// Exactly one thing that changed in the view.
#[derive(Clone, PartialEq, Debug)]
#[non_exhaustive]
pub enum ViewChange {
    /// A stack appeared.
    ItemAdded {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// Its quantity.
        qty: u64,
        /// Its descriptor as known now (usually `Loading` for a new id).
        descriptor: DescriptorState,
    },
    /// A stack disappeared (its quantity reached zero).
    ItemRemoved {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// The quantity it had.
        qty: u64,
    },
    /// A stack's quantity moved.
    QuantityChanged {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// The quantity before.
        from: u64,
        /// The quantity after.
        to: u64,
    },
    /// The descriptor of a held item arrived (or turned out missing or burned).
    DescriptorArrived {
        /// The owner holding the item.
        owner: OwnerId,
        /// The item.
        item: ItemId,
        /// What is now known.
        descriptor: DescriptorState,
    },
    /// An owner's whole inventory was replaced by a snapshot; the item-level
    /// changes it made follow this notification.
    Resynced {
        /// The owner.
        owner: OwnerId,
        /// The snapshot's version.
        version: Version,
    },
    /// The session no longer covers an owner (a deleted character); its
    /// `ItemRemoved` notifications precede this one.
    OwnerRemoved {
        /// The owner.
        owner: OwnerId,
    },
}

impl ViewChange {
    /// The owner the change concerns.
    #[must_use]
    pub fn owner(&self) -> &OwnerId {
        match self {
            Self::ItemAdded { owner, .. }
            | Self::ItemRemoved { owner, .. }
            | Self::QuantityChanged { owner, .. }
            | Self::DescriptorArrived { owner, .. }
            | Self::Resynced { owner, .. }
            | Self::OwnerRemoved { owner } => owner,
        }
    }
}
