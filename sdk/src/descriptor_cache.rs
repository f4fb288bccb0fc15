//! The client's bounded descriptor cache: what it knows about each item id,
//! including negative answers, and which ids it still has to fetch.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use protocol::{BatchGetResponse, Descriptor, ItemId};

/// What the client knows about one item's descriptor.
#[derive(Clone, PartialEq, Debug, Default)]
pub enum DescriptorState {
    /// Not known yet: fetched or about to be. UIs show a placeholder.
    #[default]
    Loading,
    /// The descriptor.
    Ready(Arc<Descriptor>),
    /// The descriptor service has never heard of the id.
    NotFound,
    /// The descriptor existed and was burned.
    Burned,
}

impl DescriptorState {
    /// The descriptor, when it has arrived.
    #[must_use]
    pub fn descriptor(&self) -> Option<&Descriptor> {
        match self {
            Self::Ready(descriptor) => Some(descriptor),
            _ => None,
        }
    }

    /// Whether the answer is still awaited.
    #[must_use]
    pub fn is_loading(&self) -> bool {
        matches!(self, Self::Loading)
    }
}

/// A bounded least-recently-used cache of descriptor answers, positive and
/// negative, that also tracks which ids are being fetched.
///
/// Contract:
/// - [`DescriptorCache::to_fetch`] returns each id at most once until its
///   answer is stored ([`DescriptorCache::insert_batch`]) or its fetch is
///   reported failed ([`DescriptorCache::fetch_failed`]).
/// - Negative answers (not found, burned) are cached like descriptors: an id is
///   not fetched again until it is evicted or [`DescriptorCache::forget`]ten.
///   Crafting creates a descriptor before granting the item, so an id a client
///   sees in an inventory does not turn from "not found" into a descriptor.
/// - Eviction is least-recently used; looking an id up through `to_fetch` or
///   [`DescriptorCache::get`] makes it recent. Give the cache more room than the
///   number of distinct items a player holds.
#[derive(Debug)]
pub struct DescriptorCache {
    /// Answers and ids being fetched, in one ordered map (the browser
    /// bundle then carries no hash map).
    entries: BTreeMap<ItemId, Slot>,
    /// How many entries are answers.
    answers: usize,
    capacity: NonZeroUsize,
    /// Counts uses, so that the least recently used answer is the one with
    /// the smallest stamp.
    clock: u64,
}

/// One id's entry.
#[derive(Debug)]
enum Slot {
    /// An answer, last used at `used`.
    Known { state: DescriptorState, used: u64 },
    /// Being fetched.
    Fetching,
}

impl DescriptorCache {
    /// An empty cache holding at most `capacity` answers.
    #[must_use]
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: BTreeMap::new(),
            answers: 0,
            capacity,
            clock: 0,
        }
    }

    /// The most answers the cache holds.
    #[must_use]
    pub fn capacity(&self) -> NonZeroUsize {
        self.capacity
    }

    /// How many answers the cache holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.answers
    }

    /// Whether the cache holds no answer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.answers == 0
    }

    /// What is known about `id`, without making it recent.
    #[must_use]
    pub fn peek(&self, id: &ItemId) -> DescriptorState {
        match self.entries.get(id) {
            Some(Slot::Known { state, .. }) => state.clone(),
            _ => DescriptorState::Loading,
        }
    }

    /// What is known about `id`, making it recent.
    pub fn get(&mut self, id: &ItemId) -> DescriptorState {
        self.clock += 1;
        match self.entries.get_mut(id) {
            Some(Slot::Known { state, used }) => {
                *used = self.clock;
                state.clone()
            }
            _ => DescriptorState::Loading,
        }
    }

    /// The ids among `ids` that are neither cached nor being fetched, in
    /// first-seen order without duplicates; they are now counted as being
    /// fetched. Cached ids among `ids` become recent.
    pub fn to_fetch<'a>(&mut self, ids: impl IntoIterator<Item = &'a ItemId>) -> Vec<ItemId> {
        let mut wanted = Vec::new();
        for id in ids {
            self.clock += 1;
            match self.entries.get_mut(id) {
                Some(Slot::Known { used, .. }) => *used = self.clock,
                Some(Slot::Fetching) => {}
                None => {
                    self.entries.insert(id.clone(), Slot::Fetching);
                    wanted.push(id.clone());
                }
            }
        }
        wanted
    }

    /// Stores a batch answer and returns the ids whose state changed, in the
    /// response's order (descriptors, then missing, then burned).
    pub fn insert_batch(&mut self, response: &BatchGetResponse) -> Vec<ItemId> {
        let answers = response
            .descriptors
            .iter()
            .map(|d| (&d.id, DescriptorState::Ready(Arc::new(d.clone()))))
            .chain(
                response
                    .missing
                    .iter()
                    .map(|id| (id, DescriptorState::NotFound)),
            )
            .chain(
                response
                    .burned
                    .iter()
                    .map(|id| (id, DescriptorState::Burned)),
            );
        let mut changed = Vec::new();
        for (id, state) in answers {
            self.clock += 1;
            let slot = Slot::Known {
                state,
                used: self.clock,
            };
            match self.entries.insert(id.clone(), slot) {
                Some(Slot::Known { state: old, .. }) => {
                    if Some(&old) != self.entries.get(id).and_then(Slot::state) {
                        changed.push(id.clone());
                    }
                }
                Some(Slot::Fetching) | None => {
                    self.answers += 1;
                    changed.push(id.clone());
                }
            }
            self.evict();
        }
        changed
    }

    /// Reports that fetching `ids` failed, so that `to_fetch` offers them again.
    pub fn fetch_failed<'a>(&mut self, ids: impl IntoIterator<Item = &'a ItemId>) {
        for id in ids {
            if matches!(self.entries.get(id), Some(Slot::Fetching)) {
                self.entries.remove(id);
            }
        }
    }

    /// Drops what is known about `id`, so that it is fetched again.
    pub fn forget(&mut self, id: &ItemId) {
        if matches!(self.entries.get(id), Some(Slot::Known { .. })) {
            self.entries.remove(id);
            self.answers -= 1;
        }
    }

    /// Drops the least recently used answers beyond the capacity (a scan:
    /// answers arrive a batch at a time, and the cache is a few thousand).
    fn evict(&mut self) {
        while self.answers > self.capacity.get() {
            let oldest = self
                .entries
                .iter()
                .filter_map(|(id, slot)| match slot {
                    Slot::Known { used, .. } => Some((*used, id)),
                    Slot::Fetching => None,
                })
                .min()
                .map(|(_, id)| id.clone());
            let Some(oldest) = oldest else { return };
            self.entries.remove(&oldest);
            self.answers -= 1;
        }
    }
}

impl Slot {
    fn state(&self) -> Option<&DescriptorState> {
        match self {
            Self::Known { state, .. } => Some(state),
            Self::Fetching => None,
        }
    }
}

#[cfg(test)]
mod tests;
