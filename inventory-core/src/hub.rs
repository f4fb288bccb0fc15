//! The player hub: which holders (game zones, client feeds) of one server
//! process hold which players, the bus subscriptions that interest requires,
//! and the player caches fed by them.
//!
//! The decisions are made by pure code ([`ZoneInterest`] counts, the
//! [`PlayerCache`] version rule); this module does the IO around them:
//! subscribing, loading from the store, reading the bus, waking followers.
//!
//! # Concurrency
//!
//! All bookkeeping sits behind one std mutex, never held across an await.
//! Subscription IO for one player is serialized by one of a fixed set of
//! async locks (chosen by hashing the player), and every pass under that lock
//! *reconciles*: it compares the interest ("someone here wants this player")
//! with the fact ("we hold a cache and a subscription") and fixes the
//! difference until they agree. So a join racing a leave for one player cannot
//! leave a subscription without interest, or interest without a subscription,
//! whatever order their IO completes in.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use protocol::{ChangeEvent, ChangeId, ChangeKind, OwnerDelta, OwnerSnapshot, UserId};
use tokio::sync::mpsc;

use crate::cache::{EventOutcome, HydrationOutcome, PlayerCache};
use crate::interest::{Holder, ZoneInterest};
use crate::{BusMessage, BusReceiver, Error, EventBus, InventoryStore, PropagationMetrics};

/// How many async locks serialize per-player subscription IO.
const SUBSCRIPTION_SHARDS: usize = 64;

/// What a follower of a player's cache receives.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CacheUpdate {
    /// One owner moved to its next version.
    Delta {
        /// The change that moved it.
        change_id: ChangeId,
        /// What the change meant.
        kind: ChangeKind,
        /// The owner, its new version and the stacks that moved.
        owner: OwnerDelta,
    },
    /// Start over from these snapshots (first delivery, after a gap, after a
    /// reconnection, or after the follower lagged).
    Resync(Vec<OwnerSnapshot>),
}

/// How a [`PlayerHub`] behaves.
#[derive(Clone, Debug)]
pub struct PlayerHubConfig {
    follower_capacity: usize,
    version_check_interval: Option<Duration>,
    version_check_grace: Duration,
    rehydrate_concurrency: usize,
    metrics: PropagationMetrics,
}

impl Default for PlayerHubConfig {
    fn default() -> Self {
        Self {
            follower_capacity: 256,
            version_check_interval: Some(Duration::from_secs(30)),
            version_check_grace: Duration::from_secs(1),
            rehydrate_concurrency: 32,
            metrics: PropagationMetrics::new(),
        }
    }
}

impl PlayerHubConfig {
    /// Followers hold 256 updates, every cache is version-checked every 30 s
    /// (with 1 s of grace), 32 re-hydrations run at once, fresh metrics.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many updates a follower may have pending before it is resynced.
    #[must_use]
    pub fn with_follower_capacity(mut self, capacity: usize) -> Self {
        self.follower_capacity = capacity.max(1);
        self
    }

    /// How often every cache is compared with the store's versions (`None`:
    /// never). This catches an event lost without a disconnection and with no
    /// later event to reveal the gap; it costs one store read per player.
    #[must_use]
    pub fn with_version_check_interval(mut self, interval: Option<Duration>) -> Self {
        self.version_check_interval = interval;
        self
    }

    /// How long a version check waits, when it finds a cache behind the
    /// store, for the events already on their way (published behind the
    /// write) before it re-hydrates the cache (default 1 s; at most half
    /// the check interval). Without it, every check under load re-hydrates
    /// caches that were about to catch up.
    #[must_use]
    pub fn with_version_check_grace(mut self, grace: Duration) -> Self {
        self.version_check_grace = grace;
        self
    }

    /// How many store loads a reconnection or a version check runs at once.
    #[must_use]
    pub fn with_rehydrate_concurrency(mut self, n: usize) -> Self {
        self.rehydrate_concurrency = n.max(1);
        self
    }

    /// The counters to update (shared with a publisher, say).
    #[must_use]
    pub fn with_metrics(mut self, metrics: PropagationMetrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// One server process's player caches, held while a game zone or a client
/// feed here holds the player. Cloning is cheap and shares the hub; the hub
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct PlayerHub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PlayerHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerHub").finish_non_exhaustive()
    }
}

struct Shared {
    store: Arc<dyn InventoryStore>,
    bus: Box<dyn EventBus>,
    config: PlayerHubConfig,
    state: Mutex<State>,
    shards: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
    incarnations: AtomicU64,
}

#[derive(Default)]
struct State {
    interest: ZoneInterest,
    players: HashMap<UserId, Player>,
}

/// A player held here: the cache, and who follows it.
struct Player {
    /// Distinguishes this entry from an earlier one for the same player, so a
    /// load started for a dropped entry is never installed in a new one.
    incarnation: u64,
    cache: PlayerCache,
    followers: Vec<FollowerSlot>,
}

struct FollowerSlot {
    /// Shared, not cloned, per follower; and a channel's first block holds
    /// 32 slots, so a pointer keeps an idle follower small.
    sender: mpsc::Sender<Arc<CacheUpdate>>,
    lagged: Arc<AtomicBool>,
}

impl Player {
    /// Sends `update` to every follower; a full follower is marked lagged and
    /// skipped until it has drained, then resynced; a gone one is forgotten.
    fn notify(&mut self, update: CacheUpdate) {
        let update = Arc::new(update);
        self.followers.retain(|slot| {
            if slot.lagged.load(Ordering::Acquire) {
                return !slot.sender.is_closed();
            }
            match slot.sender.try_send(Arc::clone(&update)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagged.store(true, Ordering::Release);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    fn resync_followers(&mut self) {
        self.notify(CacheUpdate::Resync(self.cache.snapshots()));
    }
}

/// A job for a store load: which player, which entry, which generation.
type Hydration = (UserId, u64, u64);

impl PlayerHub {
    /// Starts a hub over `store`, subscribing through `bus`, whose messages
    /// arrive on `receiver`. Needs a Tokio runtime.
    ///
    /// `bus` must be this hub's own connection (a publisher may share it):
    /// a connection's subscriptions are a set, so two hubs subscribing
    /// through one connection would release each other's channels.
    #[must_use]
    pub fn start(
        store: Arc<dyn InventoryStore>,
        bus: impl EventBus,
        receiver: BusReceiver,
        config: PlayerHubConfig,
    ) -> Self {
        let shared = Arc::new(Shared {
            store,
            bus: Box::new(bus),
            state: Mutex::new(State::default()),
            shards: (0..SUBSCRIPTION_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: RandomState::new(),
            incarnations: AtomicU64::new(0),
            config,
        });
        tokio::spawn(read_bus(Arc::downgrade(&shared), receiver));
        if let Some(interval) = shared.config.version_check_interval {
            tokio::spawn(check_versions_every(Arc::downgrade(&shared), interval));
        }
        Self { shared }
    }

    /// `holder` (a game zone: a [`ZoneId`](protocol::ZoneId) converts)
    /// takes an interest in `user`. When it is the first interest here,
    /// subscribes to the player's channel and hydrates the cache; returns once
    /// the cache is hydrated. On error the join is undone.
    pub async fn join(&self, holder: impl Into<Holder>, user: &UserId) -> Result<(), Error> {
        let holder = holder.into();
        let _ = self.shared.lock().interest.join(&holder, user);
        if let Err(e) = self.shared.reconcile(user).await {
            let _ = self.shared.lock().interest.leave(&holder, user);
            // Best effort: the undo only releases what the failed join took.
            let _ = self.shared.reconcile(user).await;
            return Err(e);
        }
        Ok(())
    }

    /// `holder` lets go of `user`. When it was the last interest here, drops
    /// the cache (ending its followers' streams) and unsubscribes.
    pub async fn leave(&self, holder: impl Into<Holder>, user: &UserId) -> Result<(), Error> {
        let _ = self.shared.lock().interest.leave(&holder.into(), user);
        self.shared.reconcile(user).await
    }

    /// The cached owners of `user`, if the player is held here and hydrated.
    #[must_use]
    pub fn snapshot(&self, user: &UserId) -> Option<Vec<OwnerSnapshot>> {
        let state = self.shared.lock();
        let player = state.players.get(user)?;
        player.cache.is_ready().then(|| player.cache.snapshots())
    }

    /// Every player with a cache here (hydrated or not), in no order.
    #[must_use]
    pub fn players(&self) -> Vec<UserId> {
        self.shared.lock().players.keys().cloned().collect()
    }

    /// Every player some holder here is interested in, in no order.
    #[must_use]
    pub fn interested_players(&self) -> Vec<UserId> {
        self.shared.lock().interest.users().cloned().collect()
    }

    /// The holders holding `user`.
    #[must_use]
    pub fn holders_of(&self, user: &UserId) -> Vec<Holder> {
        self.shared
            .lock()
            .interest
            .holders_of(user)
            .cloned()
            .collect()
    }

    /// The hub's counters.
    #[must_use]
    pub fn metrics(&self) -> &PropagationMetrics {
        &self.shared.config.metrics
    }

    /// Follows `user`'s cache: a [`CacheUpdate::Resync`] first (as soon as the
    /// cache is hydrated), then each applied delta in version order, or a new
    /// `Resync` after a gap. `None` if the player is not held here. The stream
    /// ends when the last holder here lets the player go.
    #[must_use]
    pub fn follow(&self, user: &UserId) -> Option<Follower> {
        let mut state = self.shared.lock();
        let player = state.players.get_mut(user)?;
        let (sender, receiver) = mpsc::channel(self.shared.config.follower_capacity);
        if player.cache.is_ready() {
            // The channel is new and has room for one.
            let _ = sender.try_send(Arc::new(CacheUpdate::Resync(player.cache.snapshots())));
        }
        let lagged = Arc::new(AtomicBool::new(false));
        player.followers.push(FollowerSlot {
            sender,
            lagged: lagged.clone(),
        });
        Some(Follower {
            user: user.clone(),
            receiver,
            lagged,
            hub: Arc::downgrade(&self.shared),
        })
    }
}

/// A local subscriber to one player's cache (see [`PlayerHub::follow`]).
#[derive(Debug)]
pub struct Follower {
    user: UserId,
    receiver: mpsc::Receiver<Arc<CacheUpdate>>,
    lagged: Arc<AtomicBool>,
    hub: Weak<Shared>,
}

impl Follower {
    /// The next update, or `None` once the player is no longer held here.
    pub async fn recv(&mut self) -> Option<CacheUpdate> {
        match self.receiver.try_recv() {
            Ok(update) => return Some(Arc::unwrap_or_clone(update)),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if self.lagged.load(Ordering::Acquire) {
            // Drained after lagging: restart from the cache as it is now. The
            // flag is cleared under the state lock, the same lock deltas are
            // sent under, so the next delta sent follows this snapshot.
            let hub = self.hub.upgrade()?;
            let state = hub.lock();
            let player = state.players.get(&self.user)?;
            self.lagged.store(false, Ordering::Release);
            if player.cache.is_ready() {
                return Some(CacheUpdate::Resync(player.cache.snapshots()));
            }
            // Hydrating: its end sends a Resync.
        }
        self.receiver.recv().await.map(Arc::unwrap_or_clone)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerHub").finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is completed before the guard is dropped
        // and nothing in it panics midway, so a poisoned state is consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn metrics(&self) -> &PropagationMetrics {
        &self.config.metrics
    }

    /// A version check's grace: at most half its interval.
    fn grace(&self) -> Duration {
        let grace = self.config.version_check_grace;
        self.config
            .version_check_interval
            .map_or(grace, |interval| grace.min(interval / 2))
    }

    /// Brings the subscription and cache of `user` in line with the interest.
    async fn reconcile(self: &Arc<Self>, user: &UserId) -> Result<(), Error> {
        let shard = self.hasher.hash_one(user) as usize % self.shards.len();
        let _serialized = self.shards[shard].lock().await;
        loop {
            let (wanted, held) = {
                let state = self.lock();
                (
                    state.interest.is_interested(user),
                    state.players.contains_key(user),
                )
            };
            match (wanted, held) {
                (true, false) => self.take_player(user).await?,
                (false, true) => self.drop_player(user).await?,
                _ => return Ok(()),
            }
        }
    }

    /// Subscribe first, then load: an event published during the load is
    /// buffered by the new cache and replayed on top of the load.
    async fn take_player(self: &Arc<Self>, user: &UserId) -> Result<(), Error> {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed);
        let cache = PlayerCache::new(user.clone());
        let generation = cache.generation();
        self.lock().players.insert(
            user.clone(),
            Player {
                incarnation,
                cache,
                followers: Vec::new(),
            },
        );
        if let Err(e) = self.bus.subscribe(user).await {
            self.lock().players.remove(user);
            return Err(e);
        }
        self.metrics().subscription_opened();
        if let Err(e) = self.hydrate((user.clone(), incarnation, generation)).await {
            self.lock().players.remove(user);
            self.bus.unsubscribe(user).await?;
            self.metrics().subscription_closed();
            return Err(e);
        }
        Ok(())
    }

    async fn drop_player(&self, user: &UserId) -> Result<(), Error> {
        // Dropping the entry drops the follower senders: their streams end.
        self.lock().players.remove(user);
        self.bus.unsubscribe(user).await?;
        self.metrics().subscription_closed();
        Ok(())
    }

    /// Loads `user` and installs the load if the entry and generation are
    /// still current, again while the replay finds holes.
    async fn hydrate(&self, (user, incarnation, mut generation): Hydration) -> Result<(), Error> {
        loop {
            let snapshots = self.store.load_user(&user).await?;
            self.metrics().add_rehydrations(1);
            let mut state = self.lock();
            let Some(player) = state.players.get_mut(&user) else {
                return Ok(());
            };
            if player.incarnation != incarnation {
                return Ok(());
            }
            match player.cache.finish_hydration(generation, snapshots) {
                HydrationOutcome::Ready {
                    applied,
                    duplicates,
                } => {
                    self.metrics().add_applied(applied);
                    self.metrics().add_duplicates(duplicates);
                    player.resync_followers();
                    return Ok(());
                }
                HydrationOutcome::Stale => return Ok(()),
                HydrationOutcome::Gap(next) => {
                    self.metrics().add_gaps(1);
                    generation = next;
                }
            }
        }
    }

    /// Re-hydrates in the background; a failed load is retried by the next
    /// version check.
    fn spawn_hydration(self: &Arc<Self>, job: Hydration) {
        let hub = self.clone();
        tokio::spawn(async move {
            if let Err(e) = hub.hydrate(job).await {
                tracing::warn!(error = %e, "re-hydration failed; the next version check retries");
            }
        });
    }

    fn on_event(self: &Arc<Self>, user: UserId, event: ChangeEvent) {
        self.metrics().add_received(1);
        let mut state = self.lock();
        let Some(player) = state.players.get_mut(&user) else {
            // Released meanwhile: an event in flight after the unsubscribe.
            return;
        };
        let (change_id, kind) = (event.change_id, event.kind);
        match player.cache.on_event(event) {
            EventOutcome::Buffered => {}
            EventOutcome::Duplicate => self.metrics().add_duplicates(1),
            EventOutcome::Applied(deltas) => {
                self.metrics().add_applied(deltas.len() as u64);
                for owner in deltas {
                    player.notify(CacheUpdate::Delta {
                        change_id,
                        kind,
                        owner,
                    });
                }
            }
            EventOutcome::Gap(generation) => {
                self.metrics().add_gaps(1);
                let job = (user, player.incarnation, generation);
                drop(state);
                self.spawn_hydration(job);
            }
        }
    }

    /// Compares every cache with the store and re-hydrates those behind.
    /// After a reconnection (`restart_hydrations`), hydrations in progress are
    /// restarted too: their load may predate the events lost meanwhile.
    /// With `spread`, the players' checks start evenly over that time instead
    /// of all at once (the periodic check: one store read per player, which
    /// in a burst would hold up the writes and the deltas of the moment).
    async fn check_versions(self: &Arc<Self>, restart_hydrations: bool, spread: Option<Duration>) {
        let jobs: Vec<(UserId, u64, Option<u64>)> = {
            let mut state = self.lock();
            state
                .players
                .iter_mut()
                .filter_map(|(user, player)| {
                    if player.cache.is_ready() {
                        Some((user.clone(), player.incarnation, None))
                    } else if restart_hydrations {
                        let generation = player.cache.begin_hydration();
                        Some((user.clone(), player.incarnation, Some(generation)))
                    } else {
                        None
                    }
                })
                .collect()
        };
        let pace =
            spread.map(|spread| spread / u32::try_from(jobs.len().max(1)).unwrap_or(u32::MAX));
        let start = tokio::time::Instant::now();
        futures::stream::iter(jobs.into_iter().zip(0u32..))
            .for_each_concurrent(self.config.rehydrate_concurrency, |(job, n)| async move {
                if let Some(pace) = pace {
                    tokio::time::sleep_until(start + pace.saturating_mul(n)).await;
                }
                if let Err(e) = self.check_one(job).await {
                    tracing::warn!(error = %e, "version check failed; the next one retries");
                }
            })
            .await;
    }

    async fn check_one(
        &self,
        (user, incarnation, restarted): (UserId, u64, Option<u64>),
    ) -> Result<(), Error> {
        if let Some(generation) = restarted {
            return self.hydrate((user, incarnation, generation)).await;
        }
        let stored = self.store.load_user(&user).await?;
        let behind = |player: &Player| {
            player.incarnation == incarnation
                && player.cache.is_ready()
                && stored
                    .iter()
                    .any(|s| s.version > player.cache.version(&s.owner))
        };
        if !self.lock().players.get(&user).is_some_and(behind) {
            return Ok(());
        }
        // The events of changes the store holds may still be on their way
        // (the outbox publishes behind the write): a cache that catches up
        // within the grace had no gap.
        tokio::time::sleep(self.grace()).await;
        let generation = {
            let mut state = self.lock();
            let Some(player) = state.players.get_mut(&user) else {
                return Ok(());
            };
            if !behind(player) {
                return Ok(());
            }
            self.metrics().add_gaps(1);
            player.cache.begin_hydration()
        };
        self.hydrate((user, incarnation, generation)).await
    }
}

/// Feeds the bus messages to the hub until either is gone.
async fn read_bus(hub: Weak<Shared>, mut receiver: BusReceiver) {
    while let Some(message) = receiver.recv().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        match message {
            BusMessage::Event { user, event } => hub.on_event(user, event),
            BusMessage::Resubscribed => {
                hub.metrics().add_reconnects(1);
                tokio::spawn(async move { hub.check_versions(true, None).await });
            }
        }
    }
}

async fn check_versions_every(hub: Weak<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(hub) = hub.upgrade() else {
            return;
        };
        hub.check_versions(false, Some(interval / 2)).await;
    }
}
