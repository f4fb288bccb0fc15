//! One player's server-side cache as pure logic: hydration with an event
//! buffer, then events applied by the version rule of
//! [`OwnerSnapshot::apply`] (the one place that rule lives), duplicates
//! discarded by version and by change id, gaps turned into re-hydrations.
//!
//! # The hydration protocol
//!
//! The caller subscribes to the player's channel *before* loading from the
//! store, so no event published during the load is missed:
//!
//! 1. [`PlayerCache::new`] starts in the hydrating state: events are buffered.
//! 2. The caller subscribes, then loads the player from the store.
//! 3. [`PlayerCache::finish_hydration`] installs the loaded snapshots and
//!    replays the buffer through the version rule: events at or below the
//!    loaded versions are duplicates, the next ones apply, a hole is a gap.
//!
//! A gap (or a reconnection, or anything that makes the cache doubtful) calls
//! [`PlayerCache::begin_hydration`], which returns a new generation: only the
//! load started for the latest generation is installed, so a load that raced
//! with a newer doubt can never leave the cache behind.

use std::collections::{BTreeMap, HashSet, VecDeque};

use protocol::{
    ChangeEvent, ChangeId, DeltaOutcome, OwnerDelta, OwnerId, OwnerSnapshot, UserId, Version,
};

/// How many recent change ids a player cache remembers to discard repeats.
pub const SEEN_WINDOW: usize = 1024;

/// What [`PlayerCache::on_event`] did with an event.
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub enum EventOutcome {
    /// The cache is hydrating: the event is kept for the replay.
    Buffered,
    /// Everything in the event was already seen; nothing changed.
    Duplicate,
    /// These owner deltas are applied, in version order (possibly none, for an
    /// event that touched none of this player's owners).
    Applied(Vec<OwnerDelta>),
    /// A version is missing: the cache now buffers and must be re-hydrated
    /// for this generation.
    Gap(u64),
}

/// What [`PlayerCache::finish_hydration`] did with a load.
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
pub enum HydrationOutcome {
    /// The load is installed and the buffer replayed; the cache is ready.
    /// Counts the buffered events applied and discarded as duplicates.
    Ready {
        /// Buffered events that applied on top of the load.
        applied: u64,
        /// Buffered events already covered by the load.
        duplicates: u64,
    },
    /// A newer hydration was started since this load began: it is ignored.
    Stale,
    /// The replay found a hole: hydrate again for this generation.
    Gap(u64),
}

/// The recent change ids of one player, bounded.
#[derive(Clone, Debug, Default)]
struct SeenIds {
    order: VecDeque<ChangeId>,
    ids: HashSet<ChangeId>,
}

impl SeenIds {
    fn contains(&self, id: &ChangeId) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: ChangeId) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > SEEN_WINDOW
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }
}

/// One player's owners (account and characters) as this process knows them.
#[derive(Clone, Debug)]
pub struct PlayerCache {
    user: UserId,
    owners: BTreeMap<OwnerId, OwnerSnapshot>,
    /// `Some` while hydrating: the events received since the load began.
    buffer: Option<Vec<ChangeEvent>>,
    generation: u64,
    seen: SeenIds,
}

impl PlayerCache {
    /// A cache for `user` in the hydrating state (generation 1): subscribe,
    /// load, then call [`finish_hydration`](Self::finish_hydration) with 1.
    #[must_use]
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            owners: BTreeMap::new(),
            buffer: Some(Vec::new()),
            generation: 1,
            seen: SeenIds::default(),
        }
    }

    /// The player.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// True once hydrated and not waiting for a re-hydration.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.buffer.is_none()
    }

    /// The current generation (the one a load must carry to be installed).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every owner of the player the cache holds, in ascending owner order.
    /// Stale while hydrating.
    #[must_use]
    pub fn snapshots(&self) -> Vec<OwnerSnapshot> {
        self.owners.values().cloned().collect()
    }

    /// The version the cache holds for `owner` (zero if it holds none).
    #[must_use]
    pub fn version(&self, owner: &OwnerId) -> Version {
        self.owners.get(owner).map_or(Version::ZERO, |s| s.version)
    }

    /// Starts a (re-)hydration: events are buffered from now on, and only a
    /// load finished with the returned generation is installed.
    pub fn begin_hydration(&mut self) -> u64 {
        self.buffer.get_or_insert_with(Vec::new);
        self.generation += 1;
        self.generation
    }

    /// Takes one event received on the player's channel. Deltas for other
    /// players' owners (the other side of a trade) are ignored: they travel on
    /// those players' own channels.
    pub fn on_event(&mut self, event: ChangeEvent) -> EventOutcome {
        if let Some(buffer) = &mut self.buffer {
            buffer.push(event);
            return EventOutcome::Buffered;
        }
        if self.seen.contains(&event.change_id) {
            return EventOutcome::Duplicate;
        }
        let mut applied = Vec::new();
        let mut duplicate = false;
        for delta in &event.owners {
            if delta.owner.user() != &self.user {
                continue;
            }
            let snapshot = self
                .owners
                .entry(delta.owner.clone())
                .or_insert_with(|| OwnerSnapshot::empty(delta.owner.clone()));
            match snapshot.apply(delta) {
                DeltaOutcome::Applied => applied.push(delta.clone()),
                DeltaOutcome::Duplicate => duplicate = true,
                DeltaOutcome::Gap | DeltaOutcome::Inconsistent => {
                    let generation = self.begin_hydration();
                    // Kept for the replay: usually the load covers it, but if
                    // not it applies then.
                    if let Some(buffer) = &mut self.buffer {
                        buffer.push(event);
                    }
                    return EventOutcome::Gap(generation);
                }
            }
        }
        self.seen.insert(event.change_id);
        if applied.is_empty() && duplicate {
            EventOutcome::Duplicate
        } else {
            EventOutcome::Applied(applied)
        }
    }

    /// Installs a load made for `generation` and replays the buffer on top.
    /// Snapshots of other players' owners are ignored.
    pub fn finish_hydration(
        &mut self,
        generation: u64,
        snapshots: Vec<OwnerSnapshot>,
    ) -> HydrationOutcome {
        if generation != self.generation || self.buffer.is_none() {
            return HydrationOutcome::Stale;
        }
        self.owners = snapshots
            .into_iter()
            .filter(|s| s.owner.user() == &self.user)
            .map(|s| (s.owner.clone(), s))
            .collect();
        let mut buffer = self.buffer.take().unwrap_or_default().into_iter();
        let (mut applied, mut duplicates) = (0, 0);
        while let Some(event) = buffer.next() {
            match self.on_event(event) {
                EventOutcome::Applied(deltas) => applied += deltas.len() as u64,
                EventOutcome::Duplicate => duplicates += 1,
                EventOutcome::Gap(generation) => {
                    // The events after the hole may still apply on top of the
                    // next load: keep them for its replay.
                    if let Some(next) = &mut self.buffer {
                        next.extend(buffer);
                    }
                    return HydrationOutcome::Gap(generation);
                }
                // The buffer was taken above, so replayed events never buffer.
                EventOutcome::Buffered => {}
            }
        }
        HydrationOutcome::Ready {
            applied,
            duplicates,
        }
    }
}

#[cfg(test)]
mod tests;
