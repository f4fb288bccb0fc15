//! The client's bounded descriptor cache: what it knows about each item id,
//! including negative answers, and which ids it still has to fetch.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
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
    entries: LruCache<ItemId, DescriptorState>,
    in_flight: HashSet<ItemId>,
}

impl DescriptorCache {
    /// An empty cache holding at most `capacity` answers.
    #[must_use]
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: LruCache::new(capacity),
            in_flight: HashSet::new(),
        }
    }

    /// The most answers the cache holds.
    #[must_use]
    pub fn capacity(&self) -> NonZeroUsize {
        self.entries.cap()
    }

    /// How many answers the cache holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no answer.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What is known about `id`, without making it recent.
    #[must_use]
    pub fn peek(&self, id: &ItemId) -> DescriptorState {
        self.entries.peek(id).cloned().unwrap_or_default()
    }

    /// What is known about `id`, making it recent.
    pub fn get(&mut self, id: &ItemId) -> DescriptorState {
        self.entries.get(id).cloned().unwrap_or_default()
    }

    /// The ids among `ids` that are neither cached nor being fetched, in
    /// first-seen order without duplicates; they are now counted as being
    /// fetched. Cached ids among `ids` become recent.
    pub fn to_fetch<'a>(&mut self, ids: impl IntoIterator<Item = &'a ItemId>) -> Vec<ItemId> {
        let mut wanted = Vec::new();
        for id in ids {
            if self.entries.get(id).is_none() && self.in_flight.insert(id.clone()) {
                wanted.push(id.clone());
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
            self.in_flight.remove(id);
            if self.entries.peek(id) != Some(&state) {
                changed.push(id.clone());
            }
            self.entries.put(id.clone(), state);
        }
        changed
    }

    /// Reports that fetching `ids` failed, so that `to_fetch` offers them again.
    pub fn fetch_failed<'a>(&mut self, ids: impl IntoIterator<Item = &'a ItemId>) {
        for id in ids {
            self.in_flight.remove(id);
        }
    }

    /// Drops what is known about `id`, so that it is fetched again.
    pub fn forget(&mut self, id: &ItemId) {
        self.entries.pop(id);
    }
}

#[cfg(test)]
mod tests;
