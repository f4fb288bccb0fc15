//! The IO-free client state: a message pump that applies the node's snapshots
//! and deltas by version, merges descriptors in, and says what changed.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use protocol::{
    BatchGetResponse, ClientMessage, DeltaOutcome, ItemId, OwnerDelta, OwnerId, OwnerSnapshot,
    ServerMessage, UserId, Version,
};

use crate::{DescriptorCache, InventoryView, ItemView, OwnerView, ViewChange};

/// Where the state stands with respect to the node's version sequence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Resume {
    /// Every owner's deltas arrive in order.
    NotNeeded,
    /// A gap or an inconsistent delta was seen; a resume must be requested.
    Needed,
    /// A resume was requested and the node's `Welcome` is awaited.
    Requested,
}

/// The client's copy of its player's inventories and descriptors.
///
/// Feed it every [`ServerMessage`] with [`ClientState::handle`]; it applies
/// them by the version rule of [`OwnerSnapshot::apply`] (a duplicate is
/// ignored, a gap makes [`ClientState::take_resume_request`] return the
/// versions to resume from) and returns the [`ViewChange`]s they made. Feed it
/// descriptor answers with [`ClientState::apply_descriptors`]; ask it which
/// ids to fetch with [`ClientState::descriptors_to_fetch`].
///
/// It never does IO: transports own sockets and timers and call it.
#[derive(Debug)]
pub struct ClientState {
    user: Option<UserId>,
    owners: BTreeMap<OwnerId, OwnerSnapshot>,
    descriptors: DescriptorCache,
    resume: Resume,
    /// Whether items appeared (or answers changed) since the last
    /// `descriptors_to_fetch`, which then scans what is held.
    scan_descriptors: bool,
}

impl ClientState {
    /// The default descriptor cache capacity.
    pub const DEFAULT_DESCRIPTOR_CAPACITY: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

    /// An empty state with a descriptor cache of `descriptor_capacity` entries.
    #[must_use]
    pub fn new(descriptor_capacity: NonZeroUsize) -> Self {
        Self {
            user: None,
            owners: BTreeMap::new(),
            descriptors: DescriptorCache::new(descriptor_capacity),
            resume: Resume::NotNeeded,
            scan_descriptors: false,
        }
    }

    /// The player, once the node has welcomed the client.
    #[must_use]
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// One owner's inventory as held now.
    #[must_use]
    pub fn owner(&self, owner: &OwnerId) -> Option<&OwnerSnapshot> {
        self.owners.get(owner)
    }

    /// The descriptor cache.
    #[must_use]
    pub fn descriptors(&self) -> &DescriptorCache {
        &self.descriptors
    }

    /// The version held of each owner: what a resume starts from.
    #[must_use]
    pub fn resume_versions(&self) -> BTreeMap<OwnerId, Version> {
        self.owners
            .iter()
            .map(|(owner, snapshot)| (owner.clone(), snapshot.version))
            .collect()
    }

    /// The `Hello` that opens a session: with the held versions when there is
    /// anything to resume, so that the node sends only what is missing.
    #[must_use]
    pub fn hello(&self, token: impl Into<String>) -> ClientMessage {
        ClientMessage::Hello {
            token: token.into(),
            resume: (!self.owners.is_empty()).then(|| self.resume_versions()),
        }
    }

    /// Whether a gap was seen and the node has not yet answered a resume.
    #[must_use]
    pub fn needs_resume(&self) -> bool {
        self.resume != Resume::NotNeeded
    }

    /// The versions to resume from, once per gap: `Some` the first time after a
    /// gap, then `None` until the node's `Welcome` answers the resume. The
    /// transport sends them in a `Hello` (see [`ClientState::hello`]).
    pub fn take_resume_request(&mut self) -> Option<BTreeMap<OwnerId, Version>> {
        (self.resume == Resume::Needed).then(|| {
            self.resume = Resume::Requested;
            self.resume_versions()
        })
    }

    /// Applies one message from the node and returns what it changed.
    pub fn handle(&mut self, message: ServerMessage) -> Vec<ViewChange> {
        let mut changes = Vec::new();
        match message {
            ServerMessage::Welcome { user, owners } => self.welcome(user, &owners, &mut changes),
            ServerMessage::Snapshot { owners } => {
                for snapshot in owners {
                    self.replace(snapshot, &mut changes);
                }
            }
            ServerMessage::Delta { owner, .. } => self.apply_delta(&owner, &mut changes),
            ServerMessage::Resumed { .. } | ServerMessage::Pong { .. } => {}
            ServerMessage::Error(body) => {
                tracing::debug!(code = %body.code, message = %body.message, "node error");
            }
        }
        changes
    }

    /// The held item ids whose descriptors must be fetched now; each is
    /// returned once until [`ClientState::apply_descriptors`] or
    /// [`ClientState::descriptor_fetch_failed`] reports on it.
    pub fn descriptors_to_fetch(&mut self) -> Vec<ItemId> {
        if !std::mem::take(&mut self.scan_descriptors) {
            return Vec::new();
        }
        self.descriptors.to_fetch(sorted_ids(
            self.owners.values().flat_map(|s| s.items.keys()),
        ))
    }

    /// Stores a descriptor batch answer and returns a
    /// [`ViewChange::DescriptorArrived`] for every held stack it concerns.
    pub fn apply_descriptors(&mut self, response: &BatchGetResponse) -> Vec<ViewChange> {
        let mut changed = self.descriptors.insert_batch(response);
        changed.sort_unstable();
        // Held ids the answer did not mention (a misbehaving service) are
        // fetched again rather than left loading forever.
        self.scan_descriptors = true;
        let mut changes = Vec::new();
        for (owner, snapshot) in &self.owners {
            for item in snapshot
                .items
                .keys()
                .filter(|item| changed.binary_search(item).is_ok())
            {
                changes.push(ViewChange::DescriptorArrived {
                    owner: owner.clone(),
                    item: item.clone(),
                    descriptor: self.descriptors.peek(item),
                });
            }
        }
        changes
    }

    /// Reports that fetching `ids` failed; they are offered again by the next
    /// [`ClientState::descriptors_to_fetch`].
    pub fn descriptor_fetch_failed(&mut self, ids: &[ItemId]) {
        self.descriptors.fetch_failed(ids);
        self.scan_descriptors = true;
    }

    /// The merged view: every owner, every stack, with its descriptor.
    #[must_use]
    pub fn view(&self) -> InventoryView {
        InventoryView {
            owners: self.owners.values().map(|s| self.owner_view(s)).collect(),
        }
    }

    fn owner_view(&self, snapshot: &OwnerSnapshot) -> OwnerView {
        OwnerView {
            owner: snapshot.owner.clone(),
            version: snapshot.version,
            items: snapshot
                .items
                .iter()
                .map(|(item, &qty)| ItemView {
                    item: item.clone(),
                    qty,
                    descriptor: self.descriptors.peek(item),
                })
                .collect(),
        }
    }

    /// Whether `owner` belongs to the welcomed player; anything else is
    /// dropped, so that a misrouted message never shows another player's items.
    fn is_own(&self, owner: &OwnerId) -> bool {
        let own = self.user.as_ref() == Some(owner.user());
        if !own {
            tracing::warn!(%owner, "dropping a message about an owner of another player");
        }
        own
    }

    fn welcome(&mut self, user: UserId, owners: &[OwnerId], changes: &mut Vec<ViewChange>) {
        self.user = Some(user);
        let user = self.user.as_ref();
        let dropped: Vec<OwnerId> = self
            .owners
            .keys()
            .filter(|o| Some(o.user()) != user || !owners.contains(o))
            .cloned()
            .collect();
        for owner in dropped {
            if let Some(snapshot) = self.owners.remove(&owner) {
                for (item, qty) in snapshot.items {
                    changes.push(ViewChange::ItemRemoved {
                        owner: owner.clone(),
                        item,
                        qty,
                    });
                }
                changes.push(ViewChange::OwnerRemoved { owner });
            }
        }
        self.resume = Resume::NotNeeded;
    }

    fn replace(&mut self, snapshot: OwnerSnapshot, changes: &mut Vec<ViewChange>) {
        if !self.is_own(&snapshot.owner) {
            return;
        }
        let owner = snapshot.owner.clone();
        changes.push(ViewChange::Resynced {
            owner: owner.clone(),
            version: snapshot.version,
        });
        let old = self
            .owners
            .remove(&owner)
            .map(|s| s.items)
            .unwrap_or_default();
        for item in sorted_ids(old.keys().chain(snapshot.items.keys())) {
            let from = old.get(item).copied().unwrap_or(0);
            let to = snapshot.items.get(item).copied().unwrap_or(0);
            self.push_quantity_change(&owner, item, from, to, changes);
        }
        self.owners.insert(owner, snapshot);
    }

    fn apply_delta(&mut self, delta: &OwnerDelta, changes: &mut Vec<ViewChange>) {
        if !self.is_own(&delta.owner) {
            return;
        }
        let known = self.owners.contains_key(&delta.owner);
        let mut snapshot = self
            .owners
            .remove(&delta.owner)
            .unwrap_or_else(|| OwnerSnapshot::empty(delta.owner.clone()));
        let before: Vec<u64> = delta
            .deltas
            .iter()
            .map(|d| snapshot.items.get(&d.item).copied().unwrap_or(0))
            .collect();
        let outcome = snapshot.apply(delta);
        match outcome {
            DeltaOutcome::Applied => {
                for (d, from) in delta.deltas.iter().zip(before) {
                    let to = snapshot.items.get(&d.item).copied().unwrap_or(0);
                    self.push_quantity_change(&delta.owner, &d.item, from, to, changes);
                }
            }
            DeltaOutcome::Duplicate => {
                tracing::trace!(owner = %delta.owner, version = %delta.version, "duplicate delta");
            }
            DeltaOutcome::Gap | DeltaOutcome::Inconsistent => {
                tracing::debug!(owner = %delta.owner, held = %snapshot.version, got = %delta.version, ?outcome, "resume needed");
                if self.resume == Resume::NotNeeded {
                    self.resume = Resume::Needed;
                }
            }
        }
        // An owner first seen through a delta that did not apply stays unknown,
        // so that the resume asks the node for its snapshot.
        if known || outcome == DeltaOutcome::Applied {
            self.owners.insert(delta.owner.clone(), snapshot);
        }
    }

    fn push_quantity_change(
        &mut self,
        owner: &OwnerId,
        item: &ItemId,
        from: u64,
        to: u64,
        changes: &mut Vec<ViewChange>,
    ) {
        let (owner, item) = (owner.clone(), item.clone());
        changes.push(match (from, to) {
            _ if from == to => return,
            (0, qty) => {
                self.scan_descriptors = true;
                ViewChange::ItemAdded {
                    descriptor: self.descriptors.peek(&item),
                    owner,
                    item,
                    qty,
                }
            }
            (qty, 0) => ViewChange::ItemRemoved { owner, item, qty },
            (from, to) => ViewChange::QuantityChanged {
                owner,
                item,
                from,
                to,
            },
        });
    }
}

/// `ids` in ascending order, each once. (A sorted `Vec` rather than a
/// `BTreeSet`: one map type less to compile into the browser bundle.)
fn sorted_ids<'a>(ids: impl Iterator<Item = &'a ItemId>) -> Vec<&'a ItemId> {
    let mut ids: Vec<&ItemId> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Default for ClientState {
    fn default() -> Self {
        Self::new(Self::DEFAULT_DESCRIPTOR_CAPACITY)
    }
}

#[cfg(test)]
mod tests;
