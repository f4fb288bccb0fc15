//! The propagation harness: a cluster of zone nodes over one store and one
//! fabric, a workload that moves players and changes inventories from every
//! node, and the checks (caches equal the store, subscriptions equal interest).

#![allow(dead_code)] // Each test uses part of the harness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inventory_core::conformance::fresh_user;
use inventory_core::{
    BusReceiver, CacheUpdate, EventBus, FaultPlan, FaultyBus, Inventory, InventoryStore, LocalBus,
    PlayerHub, PlayerHubConfig, PropagationMetrics,
};
use protocol::{
    Change, ChangeId, CharacterId, DeltaOutcome, ItemId, OwnerId, OwnerSnapshot, Quantity, UserId,
    ZoneId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long the caches may take to converge once the workload stops.
pub const QUIESCENCE: Duration = Duration::from_secs(30);

/// The propagation fabric the nodes share.
#[derive(Clone, Debug)]
pub enum Fabric {
    Local(LocalBus),
    #[cfg(feature = "redis")]
    Redis(String),
}

impl Fabric {
    pub async fn connect(&self) -> (Arc<dyn EventBus>, BusReceiver) {
        match self {
            Self::Local(bus) => {
                let (connection, receiver) = bus.connect();
                (Arc::new(connection), receiver)
            }
            #[cfg(feature = "redis")]
            Self::Redis(url) => {
                let config = inventory_core::RedisBusConfig::new(url.clone())
                    .with_backoff(Duration::from_millis(20), Duration::from_millis(500));
                let (bus, receiver) = inventory_core::RedisBus::connect(config)
                    .await
                    .expect("connect to Redis");
                (Arc::new(bus), receiver)
            }
        }
    }

    /// Every player channel with a subscriber, and how many subscribers each.
    pub async fn subscriptions(&self) -> BTreeMap<UserId, usize> {
        match self {
            Self::Local(bus) => bus
                .channels()
                .into_iter()
                .map(|user| {
                    let n = bus.subscriber_count(&user);
                    (user, n)
                })
                .collect(),
            #[cfg(feature = "redis")]
            Self::Redis(url) => redis_subscriptions(url).await,
        }
    }
}

/// `PUBSUB CHANNELS inv:*` then `PUBSUB NUMSUB` of each, as Redis sees them.
#[cfg(feature = "redis")]
async fn redis_subscriptions(url: &str) -> BTreeMap<UserId, usize> {
    let client = redis::Client::open(url).unwrap();
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return BTreeMap::from([(UserId::parse("redis-unreachable").unwrap(), 0)]);
    };
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("inv:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    if channels.is_empty() {
        return BTreeMap::new();
    }
    let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&channels)
        .query_async(&mut connection)
        .await
        .unwrap();
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(channel, n)| {
            let user = channel.strip_prefix("inv:").unwrap();
            (UserId::parse(user).unwrap(), n)
        })
        .collect()
}

/// Zone nodes sharing one store and one fabric, each with its own bus
/// connection and its own publishing facade.
pub struct Cluster {
    pub store: Arc<dyn InventoryStore>,
    pub fabric: Fabric,
    pub nodes: Vec<PlayerHub>,
    pub inventories: Vec<Inventory>,
    pub metrics: Vec<PropagationMetrics>,
}

impl Cluster {
    /// `n` nodes; each publishes through a [`FaultyBus`] when `faults` is set.
    pub async fn start(
        store: Arc<dyn InventoryStore>,
        fabric: Fabric,
        n: usize,
        faults: Option<FaultPlan>,
        config: PlayerHubConfig,
    ) -> Self {
        let (mut nodes, mut inventories, mut all_metrics) = (vec![], vec![], vec![]);
        for i in 0..n {
            let metrics = PropagationMetrics::new();
            let (bus, receiver) = fabric.connect().await;
            let node = PlayerHub::start(
                store.clone(),
                bus.clone(),
                receiver,
                config.clone().with_metrics(metrics.clone()),
            );
            let inventory = Inventory::from_arc(store.clone()).with_metrics(metrics.clone());
            let inventory = match faults {
                Some(plan) => {
                    let plan = FaultPlan {
                        seed: plan.seed + i as u64,
                        ..plan
                    };
                    inventory.with_bus(FaultyBus::new(bus, plan))
                }
                None => inventory.with_bus(bus),
            };
            nodes.push(node);
            inventories.push(inventory);
            all_metrics.push(metrics);
        }
        Self {
            store,
            fabric,
            nodes,
            inventories,
            metrics: all_metrics,
        }
    }

    /// Waits until every node's caches equal the store and every node holds
    /// a cache exactly for the players it is interested in.
    pub async fn assert_converged(&self) {
        let deadline = Instant::now() + QUIESCENCE;
        loop {
            let problem = self.divergence().await;
            match problem {
                None => return,
                Some(problem) if Instant::now() > deadline => {
                    panic!("caches did not converge: {problem}")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn divergence(&self) -> Option<String> {
        for (i, node) in self.nodes.iter().enumerate() {
            let interested: BTreeSet<UserId> = node.interested_players().into_iter().collect();
            let held: BTreeSet<UserId> = node.players().into_iter().collect();
            if interested != held {
                return Some(format!(
                    "node {i} holds {held:?} but is interested in {interested:?}"
                ));
            }
            for user in interested {
                let stored = self.store.load_user(&user).await.unwrap();
                match node.snapshot(&user) {
                    None => return Some(format!("node {i}: {user} not hydrated")),
                    Some(cached) if cached != stored => {
                        return Some(format!(
                            "node {i}: {user} cached {cached:?}, stored {stored:?}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }

    /// What the fabric's subscriptions should be: each player any node is
    /// interested in, with the number of nodes interested.
    pub fn expected_subscriptions(&self) -> BTreeMap<UserId, usize> {
        let mut expected = BTreeMap::new();
        for node in &self.nodes {
            for user in node.interested_players() {
                *expected.entry(user).or_default() += 1;
            }
        }
        expected
    }

    /// Waits until the fabric's subscriptions are exactly the expected ones:
    /// none leaked, none missing.
    pub async fn assert_subscriptions_match_interest(&self) {
        let deadline = Instant::now() + QUIESCENCE;
        loop {
            let expected = self.expected_subscriptions();
            let actual = self.fabric.subscriptions().await;
            if actual == expected {
                let active: i64 = self
                    .metrics
                    .iter()
                    .map(|m| m.snapshot().active_subscriptions)
                    .sum();
                assert_eq!(active as usize, expected.values().sum::<usize>());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "subscriptions {actual:?} do not match interest {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every holder of every node lets every player go; then nothing may
    /// remain.
    pub async fn leave_all(&self) {
        for node in &self.nodes {
            for user in node.interested_players() {
                for holder in node.holders_of(&user) {
                    node.leave(holder, &user).await.unwrap();
                }
            }
            assert!(node.players().is_empty());
            assert_eq!(node.metrics().snapshot().active_subscriptions, 0);
        }
        self.assert_subscriptions_match_interest().await;
        assert!(self.fabric.subscriptions().await.is_empty());
    }

    pub fn total_metrics(&self) -> inventory_core::MetricsSnapshot {
        let mut total = inventory_core::MetricsSnapshot::default();
        for m in &self.metrics {
            let s = m.snapshot();
            total.published += s.published;
            total.publish_failures += s.publish_failures;
            total.received += s.received;
            total.applied += s.applied;
            total.duplicates += s.duplicates;
            total.gaps += s.gaps;
            total.rehydrations += s.rehydrations;
            total.reconnects += s.reconnects;
            total.active_subscriptions += s.active_subscriptions;
        }
        total
    }
}

/// Fresh players, each with an account and a character.
pub fn players(n: usize) -> Vec<UserId> {
    (0..n).map(|_| fresh_user("prop")).collect()
}

fn owners_of(user: &UserId) -> [OwnerId; 2] {
    [
        OwnerId::account(user.clone()),
        OwnerId::character(user.clone(), CharacterId::parse("hero").unwrap()),
    ]
}

fn item(rng: &mut StdRng) -> ItemId {
    ItemId::parse(["wood", "stone", "gold"][rng.random_range(0..3)]).unwrap()
}

fn qty(rng: &mut StdRng, max: u64) -> Quantity {
    Quantity::new(rng.random_range(1..=max)).unwrap()
}

/// A random grant, consume or trade among `users`.
pub fn random_change(rng: &mut StdRng, users: &[UserId]) -> Change {
    let user = &users[rng.random_range(0..users.len())];
    let owner = owners_of(user)[rng.random_range(0..2)].clone();
    let id = ChangeId::random();
    match rng.random_range(0..10) {
        0..5 => Change::new(id).grant(owner, item(rng), qty(rng, 10)),
        5..8 => Change::new(id)
            .grant(owner.clone(), item(rng), qty(rng, 3))
            .consume(owner, ItemId::parse("wood").unwrap(), qty(rng, 3)),
        _ => {
            let other = &users[rng.random_range(0..users.len())];
            if other == user {
                return Change::new(id).grant(owner, item(rng), qty(rng, 10));
            }
            let their = owners_of(other)[rng.random_range(0..2)].clone();
            let wood = ItemId::parse("wood").unwrap();
            let stone = ItemId::parse("stone").unwrap();
            Change::trade(
                id,
                (owner, &[(wood, qty(rng, 2))]),
                (their, &[(stone, qty(rng, 2))]),
            )
        }
    }
}

/// Applies random changes from node `i`'s facade until `deadline`; refused
/// changes (insufficient balance) are part of the game.
pub async fn change_until(
    inventory: Inventory,
    users: Vec<UserId>,
    seed: u64,
    deadline: Instant,
) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut applied = 0;
    while Instant::now() < deadline {
        let change = random_change(&mut rng, &users);
        if inventory.apply(change).await.is_ok() {
            applied += 1;
        }
        if rng.random_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    applied
}

/// The zones of a cluster: `per_node` zones on each node.
pub fn zones(nodes: usize, per_node: usize) -> Vec<(usize, ZoneId)> {
    (0..nodes)
        .flat_map(|n| (0..per_node).map(move |z| (n, ZoneId::parse(format!("n{n}-z{z}")).unwrap())))
        .collect()
}

/// Moves `user` between zones until `deadline`, entering the next zone
/// before leaving the last (a border crossing), sometimes visiting a second
/// zone for a moment. Ends with the player in one zone.
pub async fn wander_until(
    nodes: Vec<PlayerHub>,
    zones: Vec<(usize, ZoneId)>,
    user: UserId,
    seed: u64,
    deadline: Instant,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut here = zones[rng.random_range(0..zones.len())].clone();
    nodes[here.0].join(&here.1, &user).await.unwrap();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..15))).await;
        let next = zones[rng.random_range(0..zones.len())].clone();
        if next == here {
            continue;
        }
        nodes[next.0].join(&next.1, &user).await.unwrap();
        if rng.random_bool(0.2) {
            let visit = zones[rng.random_range(0..zones.len())].clone();
            nodes[visit.0].join(&visit.1, &user).await.unwrap();
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
            if visit != next {
                nodes[visit.0].leave(&visit.1, &user).await.unwrap();
            }
        }
        if here != next {
            nodes[here.0].leave(&here.1, &user).await.unwrap();
        }
        here = next;
    }
}

/// A local subscriber's view of one player, rebuilt from the updates a
/// follower receives; every delta must be the owner's next version.
#[derive(Clone, Default)]
pub struct FollowedView {
    pub owners: Arc<Mutex<BTreeMap<OwnerId, OwnerSnapshot>>>,
}

impl FollowedView {
    pub fn follow(node: &PlayerHub, user: &UserId) -> Self {
        let view = Self::default();
        let mut follower = node.follow(user).expect("the player is held here");
        let owners = view.owners.clone();
        tokio::spawn(async move {
            while let Some(update) = follower.recv().await {
                let mut owners = owners.lock().unwrap();
                match update {
                    CacheUpdate::Resync(snapshots) => {
                        *owners = snapshots
                            .into_iter()
                            .map(|s| (s.owner.clone(), s))
                            .collect();
                    }
                    CacheUpdate::Delta { owner: delta, .. } => {
                        let snapshot = owners
                            .entry(delta.owner.clone())
                            .or_insert_with(|| OwnerSnapshot::empty(delta.owner.clone()));
                        assert_eq!(snapshot.apply(&delta), DeltaOutcome::Applied, "{delta:?}");
                    }
                }
            }
        });
        view
    }

    /// Waits until the view equals the store.
    pub async fn assert_matches(&self, store: &dyn InventoryStore, user: &UserId) {
        let deadline = Instant::now() + QUIESCENCE;
        loop {
            let stored = store.load_user(user).await.unwrap();
            let seen: Vec<OwnerSnapshot> = self.owners.lock().unwrap().values().cloned().collect();
            if seen == stored {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "follower sees {seen:?}, store has {stored:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
