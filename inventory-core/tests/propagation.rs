//! Propagation across zone nodes sharing one store: at quiescence every cache
//! equals the store, whatever the fabric does (loss, duplicates, reordering,
//! a Redis crash), and the fabric's subscriptions are exactly the players some
//! node is interested in. Each scenario runs on the in-process bus and on a
//! real `redis-server`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, Fabric, FollowedView};
use inventory_core::{FaultPlan, InventoryStore, LocalBus, MemoryStore, PlayerHubConfig};
use protocol::{ChangeEvent, OwnerId, Version, ZoneId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 3;

fn memory_store() -> Arc<dyn InventoryStore> {
    Arc::new(MemoryStore::new())
}

/// Players cross zones on three nodes while every node applies changes; one
/// player stays home on node 0 with a local follower.
async fn players_cross_zones(
    store: Arc<dyn InventoryStore>,
    fabric: Fabric,
    faults: Option<FaultPlan>,
    config: PlayerHubConfig,
    during: impl AsyncFnOnce(),
) -> Cluster {
    let cluster = Cluster::start(store, fabric, NODES, faults, config).await;
    let users = common::players(12);
    let home = ZoneId::parse("home").unwrap();
    cluster.nodes[0].join(&home, &users[0]).await.unwrap();
    let view = FollowedView::follow(&cluster.nodes[0], &users[0]);

    let deadline = Instant::now() + Duration::from_millis(1500);
    let zones = common::zones(NODES, 2);
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        tasks.push(tokio::spawn(common::wander_until(
            cluster.nodes.clone(),
            zones.clone(),
            user.clone(),
            100 + i as u64,
            deadline,
        )));
    }
    let mut changers = Vec::new();
    for (i, inventory) in cluster.inventories.iter().enumerate() {
        changers.push(tokio::spawn(common::change_until(
            inventory.clone(),
            users.clone(),
            i as u64,
            deadline,
        )));
    }
    during().await;
    for task in tasks {
        task.await.unwrap();
    }
    let mut applied = 0;
    for changer in changers {
        applied += changer.await.unwrap();
    }
    assert!(applied > 50, "only {applied} changes applied");

    cluster.assert_converged().await;
    view.assert_matches(cluster.store.as_ref(), &users[0]).await;
    cluster.assert_subscriptions_match_interest().await;
    cluster
}

async fn convergence(store: Arc<dyn InventoryStore>, fabric: Fabric) {
    let config = PlayerHubConfig::new().with_version_check_interval(None);
    let cluster = players_cross_zones(store, fabric, None, config, async || {}).await;
    let metrics = cluster.total_metrics();
    assert!(metrics.applied > 0 && metrics.published > 0, "{metrics:?}");
    assert_eq!(metrics.publish_failures, 0);
    cluster.leave_all().await;
}

/// Loss, duplication and reordering of published events. A lost event with no
/// later one to reveal the gap is found by the periodic version check.
async fn faulty_fabric(store: Arc<dyn InventoryStore>, fabric: Fabric) {
    let faults = FaultPlan::none(7)
        .with_drop(0.05)
        .with_duplicate(0.1)
        .with_delay(0.1, Duration::from_millis(20));
    let config =
        PlayerHubConfig::new().with_version_check_interval(Some(Duration::from_millis(200)));
    let cluster = players_cross_zones(store, fabric, Some(faults), config, async || {}).await;
    let metrics = cluster.total_metrics();
    assert!(metrics.duplicates > 0, "{metrics:?}");
    assert!(metrics.gaps > 0, "{metrics:?}");
    cluster.leave_all().await;
}

/// Many tasks join and leave one player on random zones of three nodes while
/// changes are made to the player.
async fn join_leave_storm(store: Arc<dyn InventoryStore>, fabric: Fabric) {
    let config = PlayerHubConfig::new().with_version_check_interval(None);
    let cluster = Cluster::start(store, fabric, NODES, None, config).await;
    let user = common::players(1).remove(0);
    let zones = common::zones(NODES, 4);
    let mut tasks = Vec::new();
    for t in 0..24u64 {
        let (nodes, zones, user) = (cluster.nodes.clone(), zones.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(t);
            for _ in 0..60 {
                let (n, zone) = &zones[rng.random_range(0..zones.len())];
                if rng.random_bool(0.5) {
                    nodes[*n].join(zone, &user).await.unwrap();
                } else {
                    nodes[*n].leave(zone, &user).await.unwrap();
                }
                if rng.random_bool(0.2) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    let changers: Vec<_> = cluster
        .inventories
        .iter()
        .enumerate()
        .map(|(i, inventory)| {
            tokio::spawn(common::change_until(
                inventory.clone(),
                vec![user.clone()],
                i as u64,
                deadline,
            ))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for changer in changers {
        changer.await.unwrap();
    }
    // Make sure at least one node holds the player for the cache check.
    cluster.nodes[0]
        .join(&ZoneId::parse("anchor").unwrap(), &user)
        .await
        .unwrap();
    cluster.assert_converged().await;
    cluster.assert_subscriptions_match_interest().await;
    cluster.leave_all().await;
}

/// A SQLite store in a temporary directory, which must outlive it.
#[cfg(feature = "sqlite")]
fn sqlite_store() -> (Arc<dyn InventoryStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = inventory_core::SqliteConfig::new(dir.path().join("inventory.db"));
    let store = inventory_core::SqliteStore::open(config).expect("open SQLite");
    (Arc::new(store), dir)
}

/// The single-node default: the in-process bus over SQLite.
#[cfg(feature = "sqlite")]
mod local_sqlite {
    use super::*;

    fn fabric() -> Fabric {
        Fabric::Local(LocalBus::new())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_converge() {
        let (store, _dir) = sqlite_store();
        convergence(store, fabric()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lossy_duplicating_reordering_bus_converges() {
        let (store, _dir) = sqlite_store();
        faulty_fabric(store, fabric()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn join_leave_storm_leaks_nothing() {
        let (store, _dir) = sqlite_store();
        join_leave_storm(store, fabric()).await;
    }
}

mod local {
    use super::*;

    fn fabric() -> Fabric {
        Fabric::Local(LocalBus::new())
    }

    mod bus_contract {
        use std::sync::LazyLock;

        use super::*;

        static BUS: LazyLock<LocalBus> = LazyLock::new(LocalBus::new);

        inventory_core::bus_conformance_tests!(|| async {
            Fabric::Local(BUS.clone()).connect().await
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_converge() {
        convergence(memory_store(), fabric()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lossy_duplicating_reordering_bus_converges() {
        faulty_fabric(memory_store(), fabric()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn join_leave_storm_leaks_nothing() {
        join_leave_storm(memory_store(), fabric()).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::Mutex;

    use testkit::RedisServer;

    use super::*;

    fn fabric(server: &RedisServer) -> Fabric {
        Fabric::Redis(server.url())
    }

    /// The bus contract on the shared Redis of the harness (`REDIS_URL`).
    mod bus_contract {
        use super::*;

        inventory_core::bus_conformance_tests!(|| async {
            Fabric::Redis(testkit::redis_url()).connect().await
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_converge() {
        let server = RedisServer::start();
        convergence(memory_store(), fabric(&server)).await;
    }

    /// Everything published on `inv:*`, decoded with its channel, in arrival
    /// order.
    async fn record_events(url: &str, into: Arc<Mutex<Vec<(String, ChangeEvent)>>>) {
        use futures::StreamExt;
        let client = ::redis::Client::open(url).expect("redis url");
        let mut pubsub = client.get_async_pubsub().await.expect("subscriber");
        pubsub.psubscribe("inv:*").await.expect("psubscribe");
        tokio::spawn(async move {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let payload: Vec<u8> = message.get_payload().expect("payload");
                let event: ChangeEvent = serde_json::from_slice(&payload).expect("an event");
                into.lock()
                    .unwrap()
                    .push((message.get_channel_name().to_owned(), event));
            }
        });
    }

    /// Redis killed while changes flow on SQLite: every change is answered
    /// while nothing can be published (the write path never waits on the
    /// bus), and once Redis is back every event of the outage is published,
    /// in version order per owner.
    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_outbox_publishes_in_order_what_a_redis_outage_held_back() {
        let (store, _dir) = sqlite_store();
        redis_outage(store).await;
    }

    /// The same on a MongoDB replica set, whose outbox is the journal's
    /// change stream.
    #[cfg(feature = "mongodb")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_mongodb_outbox_publishes_in_order_what_a_redis_outage_held_back() {
        redis_outage(mongo_store().await).await;
    }

    /// Three nodes over one MongoDB replica set: every node's store reads
    /// the same journal, one of them publishes.
    #[cfg(feature = "mongodb")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_converge_on_mongodb() {
        let server = RedisServer::start();
        convergence(mongo_store().await, fabric(&server)).await;
    }

    #[cfg(feature = "mongodb")]
    async fn mongo_store() -> Arc<dyn InventoryStore> {
        let config = inventory_core::MongoConfig::new(testkit::mongodb_uri())
            .with_database(testkit::unique_name("propagation"));
        Arc::new(
            inventory_core::MongoStore::connect(config)
                .await
                .expect("connect to the replica set"),
        )
    }

    async fn redis_outage(store: Arc<dyn InventoryStore>) {
        use inventory_core::{
            Inventory, PropagationMetrics, RedisBus, RedisBusConfig, RelayConfig,
        };

        let mut server = RedisServer::start();
        let (bus, _receiver) = RedisBus::connect(RedisBusConfig::new(server.url()))
            .await
            .expect("bus");
        let metrics = PropagationMetrics::new();
        let relay = RelayConfig::new()
            .with_retry_delays(Duration::from_millis(300), Duration::from_millis(600));
        let inventory = Inventory::from_arc(store.clone())
            .with_metrics(metrics.clone())
            .with_relay(bus, relay);
        let received = Arc::new(Mutex::new(Vec::new()));
        record_events(&server.url(), received.clone()).await;
        let users = common::players(3);
        let mut rng = StdRng::seed_from_u64(11);
        let mut before = Vec::new();
        while before.len() < 10 {
            if let Ok(applied) = inventory
                .apply(common::random_change(&mut rng, &users))
                .await
            {
                before.push(applied.event.change_id);
            }
        }
        wait_until(|| received.lock().unwrap().len() >= before.len()).await;

        let mut server = tokio::task::spawn_blocking(move || {
            server.kill();
            server
        })
        .await
        .unwrap();
        let published = metrics.snapshot().published;
        let mut during = Vec::new();
        while during.len() < 30 {
            if let Ok(applied) = inventory
                .apply(common::random_change(&mut rng, &users))
                .await
            {
                during.push(applied.event.change_id);
            }
        }
        assert_eq!(
            metrics.snapshot().published,
            published,
            "nothing can be published"
        );
        // The relay tries (and fails) behind the writes.
        wait_until(|| metrics.snapshot().publish_failures > 0).await;
        assert_eq!(
            metrics.snapshot().published,
            published,
            "nothing can be published"
        );

        let after_restart = Arc::new(Mutex::new(Vec::new()));
        let url = server.url();
        let _server = tokio::task::spawn_blocking(move || {
            server.restart();
            server
        })
        .await
        .unwrap();
        record_events(&url, after_restart.clone()).await;
        wait_until(|| {
            let got = after_restart.lock().unwrap();
            during
                .iter()
                .all(|id| got.iter().any(|(_, e)| e.change_id == *id))
        })
        .await;
        let mut last: std::collections::BTreeMap<(String, OwnerId), Version> = Default::default();
        for (channel, event) in after_restart.lock().unwrap().iter() {
            for owner in &event.owners {
                let key = (channel.clone(), owner.owner.clone());
                let previous = last.insert(key, owner.version);
                assert!(
                    previous.is_none_or(|v| v < owner.version),
                    "{} went from {previous:?} to {}",
                    owner.owner,
                    owner.version
                );
            }
        }
    }

    async fn wait_until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + common::QUIESCENCE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lossy_duplicating_reordering_bus_converges() {
        let server = RedisServer::start();
        faulty_fabric(memory_store(), fabric(&server)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn join_leave_storm_leaks_nothing() {
        let server = RedisServer::start();
        join_leave_storm(memory_store(), fabric(&server)).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_converge_on_sqlite() {
        let server = RedisServer::start();
        let (store, _dir) = sqlite_store();
        convergence(store, fabric(&server)).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lossy_duplicating_reordering_bus_converges_on_sqlite() {
        let server = RedisServer::start();
        let (store, _dir) = sqlite_store();
        faulty_fabric(store, fabric(&server)).await;
    }

    /// `redis-server` is killed mid-run and restarted on the same port: every
    /// node reconnects, re-subscribes what it still needs and re-checks its
    /// caches; no version check timer helps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_killed_and_restarted_mid_run() {
        let server = Arc::new(Mutex::new(RedisServer::start()));
        let url = server.lock().unwrap().url();
        let config = PlayerHubConfig::new().with_version_check_interval(None);
        let crash = {
            let server = server.clone();
            async move || {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let s = server.clone();
                tokio::task::spawn_blocking(move || s.lock().unwrap().kill())
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                tokio::task::spawn_blocking(move || server.lock().unwrap().restart())
                    .await
                    .unwrap();
            }
        };
        let cluster =
            players_cross_zones(memory_store(), Fabric::Redis(url), None, config, crash).await;
        let metrics = cluster.total_metrics();
        assert!(metrics.reconnects >= NODES as u64, "{metrics:?}");
        cluster.leave_all().await;
    }

    /// Changes made only while Redis is down, none after: their events are
    /// lost and no later event reveals a gap, so only the re-check after
    /// re-subscription can bring the caches up to date.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn changes_made_while_redis_is_down_reach_every_cache() {
        let mut server = RedisServer::start();
        let config = PlayerHubConfig::new().with_version_check_interval(None);
        let cluster = Cluster::start(memory_store(), fabric(&server), NODES, None, config).await;
        let users = common::players(4);
        for (i, user) in users.iter().enumerate() {
            let node = &cluster.nodes[i % NODES];
            node.join(&ZoneId::parse("plaza").unwrap(), user)
                .await
                .unwrap();
        }
        let server = tokio::task::spawn_blocking(move || {
            server.kill();
            server
        })
        .await
        .unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        for i in 0..20 {
            let change = common::random_change(&mut rng, &users);
            let _ = cluster.inventories[i % NODES].apply(change).await;
        }
        // The outbox relay publishes behind the writes, and fails while
        // Redis is down.
        wait_until(|| cluster.total_metrics().publish_failures > 0).await;
        let _server = tokio::task::spawn_blocking(move || {
            let mut server = server;
            server.restart();
            server
        })
        .await
        .unwrap();
        cluster.assert_converged().await;
        cluster.assert_subscriptions_match_interest().await;
        cluster.leave_all().await;
    }
}

/// Single-node behaviours of the facade and the node, on the in-process bus.
mod single_node {
    use inventory_core::{CacheUpdate, Inventory, PlayerHub, PropagationMetrics};
    use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity};

    use super::*;

    fn grant(owner: &OwnerId, n: u64) -> Change {
        Change::new(ChangeId::random()).grant(
            owner.clone(),
            ItemId::parse("wood").unwrap(),
            Quantity::new(n).unwrap(),
        )
    }

    /// The outbox publishes each applied change once: a retry answered
    /// "already applied" and a conflicting reuse of the id publish nothing.
    #[tokio::test]
    async fn the_outbox_publishes_a_change_once_and_never_a_refused_one() {
        let store = memory_store();
        let bus = LocalBus::new();
        let metrics = PropagationMetrics::new();
        let (connection, receiver) = bus.connect();
        let node = PlayerHub::start(
            store.clone(),
            connection.clone(),
            receiver,
            PlayerHubConfig::new().with_metrics(metrics.clone()),
        );
        let inventory = Inventory::from_arc(store.clone())
            .with_metrics(metrics.clone())
            .with_bus(connection);
        let user = common::players(1).remove(0);
        let owner = OwnerId::account(user.clone());
        node.join(&ZoneId::parse("town").unwrap(), &user)
            .await
            .unwrap();
        // Hydrated by the time join returns.
        assert_eq!(node.snapshot(&user), Some(vec![]));

        let change = grant(&owner, 3);
        assert!(
            !inventory
                .apply(change.clone())
                .await
                .unwrap()
                .already_applied
        );
        assert!(
            inventory
                .apply(change.clone())
                .await
                .unwrap()
                .already_applied
        );
        let mut conflicting = change.clone();
        conflicting.ops = grant(&owner, 999).ops;
        let refused = inventory.apply(conflicting).await.unwrap_err();
        assert_eq!(refused.code(), protocol::ErrorCode::ChangeConflict);
        let deadline = Instant::now() + common::QUIESCENCE;
        while metrics.snapshot().received < 1 {
            assert!(Instant::now() < deadline, "{:?}", metrics.snapshot());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Time for anything else to arrive, if something were sent.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m = metrics.snapshot();
        assert_eq!(
            (m.published, m.received, m.applied, m.duplicates),
            (1, 1, 1, 0),
            "{m:?}"
        );
        assert_eq!(
            node.snapshot(&user),
            Some(store.load_user(&user).await.unwrap())
        );
    }

    #[tokio::test]
    async fn a_lagging_follower_is_resynced_not_buffered_without_bound() {
        let store = memory_store();
        let bus = LocalBus::new();
        let (connection, receiver) = bus.connect();
        let node = PlayerHub::start(
            store.clone(),
            connection.clone(),
            receiver,
            PlayerHubConfig::new().with_follower_capacity(4),
        );
        let inventory = Inventory::from_arc(store.clone()).with_bus(connection);
        let user = common::players(1).remove(0);
        let owner = OwnerId::account(user.clone());
        node.join(&ZoneId::parse("town").unwrap(), &user)
            .await
            .unwrap();
        let mut follower = node.follow(&user).unwrap();
        for _ in 0..50 {
            inventory.apply(grant(&owner, 1)).await.unwrap();
        }
        let stored = store.load_user(&user).await.unwrap();
        let deadline = Instant::now() + common::QUIESCENCE;
        while node.snapshot(&user) != Some(stored.clone()) {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The first snapshot and three deltas fit; then a resync to the end.
        let mut updates = Vec::new();
        while updates.last() != Some(&CacheUpdate::Resync(stored.clone())) {
            updates.push(follower.recv().await.unwrap());
        }
        assert!(updates.len() <= 5, "{updates:?}");
        assert!(matches!(updates[0], CacheUpdate::Resync(_)));

        // Then it follows normally again, and ends when the player leaves.
        inventory.apply(grant(&owner, 1)).await.unwrap();
        assert!(matches!(
            follower.recv().await,
            Some(CacheUpdate::Delta { .. })
        ));
        node.leave(&ZoneId::parse("town").unwrap(), &user)
            .await
            .unwrap();
        assert_eq!(follower.recv().await, None);
        assert!(node.follow(&user).is_none());
    }
}

/// A bus whose publishes each take `delay`, in order: the outbox relay
/// running behind the store, as under load.
#[derive(Clone)]
struct LateBus {
    inner: inventory_core::LocalConnection,
    delay: Duration,
}

#[async_trait::async_trait]
impl inventory_core::EventBus for LateBus {
    async fn publish(
        &self,
        user: &protocol::UserId,
        event: &ChangeEvent,
    ) -> Result<(), inventory_core::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.publish(user, event).await
    }

    async fn subscribe(&self, user: &protocol::UserId) -> Result<(), inventory_core::Error> {
        self.inner.subscribe(user).await
    }

    async fn unsubscribe(&self, user: &protocol::UserId) -> Result<(), inventory_core::Error> {
        self.inner.unsubscribe(user).await
    }
}

/// Version checks while every event arrives late: a cache about to catch up
/// is not re-hydrated (the check's grace), and with no grace the same run
/// re-hydrates (so the test can tell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_checks_leave_caches_that_are_catching_up_alone() {
    async fn run(grace: Duration) -> u64 {
        let store = memory_store();
        let bus = LocalBus::new();
        let (connection, receiver) = bus.connect();
        let metrics = inventory_core::PropagationMetrics::new();
        let hub = inventory_core::PlayerHub::start(
            store.clone(),
            connection.clone(),
            receiver,
            PlayerHubConfig::new()
                .with_version_check_interval(Some(Duration::from_millis(100)))
                .with_version_check_grace(grace)
                .with_metrics(metrics.clone()),
        );
        let late = LateBus {
            inner: connection,
            delay: Duration::from_millis(3),
        };
        let inventory = inventory_core::Inventory::from_arc(store.clone()).with_bus(late);
        let users = common::players(4);
        let zone = ZoneId::parse("z").unwrap();
        for user in &users {
            hub.join(&zone, user).await.unwrap();
        }
        let mut rng = StdRng::seed_from_u64(3);
        let until = Instant::now() + Duration::from_millis(1000);
        while Instant::now() < until {
            let _ = inventory
                .apply(common::random_change(&mut rng, &users))
                .await;
            tokio::time::sleep(Duration::from_millis(4)).await;
        }
        metrics.snapshot().gaps
    }
    assert_eq!(
        run(Duration::from_millis(50)).await,
        0,
        "a cache catching up was re-hydrated"
    );
    assert!(
        run(Duration::ZERO).await > 0,
        "without a grace the checks re-hydrate"
    );
}
