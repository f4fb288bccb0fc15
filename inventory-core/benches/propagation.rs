//! Propagation over Redis against raw Redis pub/sub, on one `redis-server`
//! started here, in one run:
//!
//! 1. Latency from the store's confirmation on node A to the delta applied in
//!    node B's cache (seen by a follower), against a `PUBLISH` seen by a
//!    `SUBSCRIBE`r. Goal: our p99 <= 3x the raw p99.
//! 2. The same latency, and the publish rate, with 75,000 player channels
//!    subscribed across three nodes, against the rate with one channel.
//!    Goal: >= 0.9x.
//! 3. Deltas applied per second by one node holding 8 zones and 8,000
//!    players, against raw pub/sub messages per second over 8,000 channels.
//!
//! Run: `cargo xtask bench propagation`.

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use inventory_core::{
    ApplyOutcome, CacheUpdate, Error, EventBus, Inventory, InventoryStore, MemoryStore, PlayerHub,
    PlayerHubConfig, RedisBus, RedisBusConfig,
};
use protocol::{
    Change, ChangeEvent, ChangeId, ItemId, OwnerId, OwnerSnapshot, Quantity, UserId, ValidChange,
    ZoneId,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind};
use testkit::bench::{GoalOp, LatencyRecorder, goal, rate};
use tokio::sync::mpsc;

const NAME: &str = "propagation";
const LATENCY_SAMPLES: usize = 2000;
const CHANNELS_75K: usize = 75_000;
const ZONES_8: usize = 8;
const PLAYERS_8K: usize = 8_000;
const RATE_WINDOW: Duration = Duration::from_secs(3);
const PUBLISHERS: usize = 32;

/// A store that remembers when it last confirmed a change: the start of the
/// propagation latency.
#[derive(Clone, Default)]
struct TimedStore {
    inner: MemoryStore,
    confirmed: Arc<Mutex<Option<Instant>>>,
}

#[async_trait]
impl InventoryStore for TimedStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let outcome = self.inner.apply(change).await;
        *self.confirmed.lock().unwrap() = Some(Instant::now());
        outcome
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        self.inner.load(owner).await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        self.inner.load_user(user).await
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        self.inner.lookup(id).await
    }
}

fn user(i: usize) -> UserId {
    UserId::parse(format!("p{i}")).unwrap()
}

fn grant(user: &UserId) -> Change {
    Change::new(ChangeId::random()).grant(
        OwnerId::account(user.clone()),
        ItemId::parse("wood").unwrap(),
        Quantity::new(1).unwrap(),
    )
}

/// The bytes of a typical event, for the raw baseline.
fn sample_payload() -> Vec<u8> {
    let change = grant(&user(12345)).validate().unwrap();
    let owner = OwnerId::account(user(12345));
    let event = ChangeEvent::from_applied(&change, &[(owner, protocol::Version::new(42))]);
    serde_json::to_vec(&event).unwrap()
}

async fn redis_bus(url: &str) -> (RedisBus, inventory_core::BusReceiver) {
    RedisBus::connect(RedisBusConfig::new(url))
        .await
        .expect("connect the bus")
}

/// A raw subscriber connection whose messages land in a channel.
async fn raw_subscriber(url: &str) -> (MultiplexedConnection, mpsc::UnboundedReceiver<PushInfo>) {
    let client = redis::Client::open(url).unwrap();
    let info = client.get_connection_info().clone();
    let info = info.clone().set_redis_settings(
        info.redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3),
    );
    let client = redis::Client::open(info).unwrap();
    let (sender, receiver) = mpsc::unbounded_channel();
    let config = AsyncConnectionConfig::new().set_push_sender(sender);
    let connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    (connection, receiver)
}

async fn raw_publisher(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Time from just before `PUBLISH` to the message at the subscriber.
async fn raw_latency(url: &str, samples: usize, recorder: &mut LatencyRecorder) {
    let (mut subscriber, mut pushes) = raw_subscriber(url).await;
    subscriber.subscribe("raw:latency").await.unwrap();
    let mut publisher = raw_publisher(url).await;
    let payload = sample_payload();
    for _ in 0..samples {
        let mut command = redis::cmd("PUBLISH");
        command.arg("raw:latency").arg(&payload);
        let start = Instant::now();
        let publish = command.query_async::<i64>(&mut publisher);
        let receive = async {
            loop {
                let push = pushes.recv().await.unwrap();
                if push.kind == PushKind::Message {
                    return Instant::now();
                }
            }
        };
        let (published, received) = tokio::join!(publish, receive);
        published.unwrap();
        recorder.record(received - start);
    }
}

/// Time from the store's confirmation on A to the delta at B's follower.
async fn our_latency(
    a: &Inventory,
    confirmed: &Mutex<Option<Instant>>,
    b: &PlayerHub,
    user: &UserId,
    samples: usize,
    recorder: &mut LatencyRecorder,
) {
    let mut follower = b.follow(user).expect("the player is present on B");
    // The first update is the snapshot.
    let _ = follower.recv().await;
    for _ in 0..samples {
        let apply = a.apply(grant(user));
        let receive = async {
            loop {
                match follower.recv().await.expect("follower open") {
                    CacheUpdate::Delta { .. } => return Instant::now(),
                    CacheUpdate::Resync(_) => {}
                }
            }
        };
        let (applied, received) = tokio::join!(apply, receive);
        applied.unwrap();
        let start = confirmed.lock().unwrap().expect("a confirmation");
        recorder.record(received.saturating_duration_since(start));
    }
}

/// Both latencies, interleaved in rounds so that noise hits both alike.
async fn compare_latency(
    url: &str,
    a: &Inventory,
    confirmed: &Mutex<Option<Instant>>,
    b: &PlayerHub,
    user: &UserId,
    figure: &str,
) -> (LatencyRecorder, LatencyRecorder) {
    let (mut raw, mut ours) = (LatencyRecorder::new(), LatencyRecorder::new());
    let rounds = 4;
    for _ in 0..rounds {
        raw_latency(url, LATENCY_SAMPLES / rounds, &mut raw).await;
        our_latency(a, confirmed, b, user, LATENCY_SAMPLES / rounds, &mut ours).await;
    }
    raw.report(NAME, &format!("raw_pubsub_{figure}"));
    ours.report(NAME, &format!("confirm_to_cache_{figure}"));
    (raw, ours)
}

/// Changes applied (and published) per second by `PUBLISHERS` concurrent
/// tasks on `users`.
async fn publish_rate(a: &Inventory, users: &[UserId]) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + RATE_WINDOW;
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let (a, users, count) = (a.clone(), users.to_vec(), count.clone());
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    a.apply(grant(&users[i % users.len()])).await.unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                    i += PUBLISHERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    rate(count.load(Ordering::Relaxed), start.elapsed())
}

/// Events published per second on `users`' channels by `PUBLISHERS` tasks
/// through `bus`, timed until `nodes` received them all. Each event's delta is
/// for an owner of no player present, so caches take it (decode, look up,
/// dedupe by change id) without a version to keep in step: the figure is the
/// fabric's, free of the store's cost.
async fn fabric_publish_rate(bus: &RedisBus, users: &[UserId], nodes: &[&PlayerHub]) -> f64 {
    let received = || -> u64 { nodes.iter().map(|n| n.metrics().snapshot().received).sum() };
    let before = received();
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + RATE_WINDOW;
    let nobody = OwnerId::account(UserId::parse("nobody").unwrap());
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let (bus, users, sent, nobody) =
                (bus.clone(), users.to_vec(), sent.clone(), nobody.clone());
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    let change = Change::new(ChangeId::random())
                        .grant(
                            nobody.clone(),
                            ItemId::parse("wood").unwrap(),
                            Quantity::new(1).unwrap(),
                        )
                        .validate()
                        .unwrap();
                    let event = ChangeEvent::from_applied(
                        &change,
                        &[(nobody.clone(), protocol::Version::new(1))],
                    );
                    bus.publish(&users[i % users.len()], &event).await.unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += PUBLISHERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    let catch_up = Instant::now() + Duration::from_secs(60);
    while received() - before < total && Instant::now() < catch_up {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    rate(received() - before, start.elapsed())
}

/// One change for each of `users`, many at once.
async fn warm_up(a: &Inventory, users: &[UserId]) {
    futures::stream::iter(users)
        .for_each_concurrent(PUBLISHERS, |user| async move {
            a.apply(grant(user)).await.unwrap();
        })
        .await;
}

/// Joins `users` into `zone` on `node`, many at once.
async fn join_all(node: &PlayerHub, zone: &ZoneId, users: &[UserId]) {
    futures::stream::iter(users)
        .for_each_concurrent(256, |user| async move {
            node.join(zone, user).await.unwrap();
        })
        .await;
}

fn node(store: &TimedStore, bus: RedisBus, receiver: inventory_core::BusReceiver) -> PlayerHub {
    PlayerHub::start(
        Arc::new(store.clone()),
        bus,
        receiver,
        PlayerHubConfig::new()
            .with_version_check_interval(None)
            .with_follower_capacity(4096),
    )
}

/// Raw messages per second: `PUBLISHERS` tasks publish on `channels`
/// channels, one subscriber connection receives; timed until all arrived.
async fn raw_throughput(url: &str, channels: usize) -> f64 {
    let (mut subscriber, mut pushes) = raw_subscriber(url).await;
    let names: Vec<String> = (0..channels).map(|i| format!("raw:{i}")).collect();
    for batch in names.chunks(1000) {
        subscriber.subscribe(batch).await.unwrap();
    }
    let publisher = raw_publisher(url).await;
    let payload = Arc::new(sample_payload());
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let last_received = Arc::new(Mutex::new(Instant::now()));
    let counter = {
        let (received, last_received) = (received.clone(), last_received.clone());
        tokio::spawn(async move {
            while let Some(push) = pushes.recv().await {
                if push.kind == PushKind::Message {
                    received.fetch_add(1, Ordering::Relaxed);
                    *last_received.lock().unwrap() = Instant::now();
                }
            }
        })
    };
    let start = Instant::now();
    let deadline = start + RATE_WINDOW;
    let names = Arc::new(names);
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|t| {
            let (mut publisher, payload, sent, names) = (
                publisher.clone(),
                payload.clone(),
                sent.clone(),
                names.clone(),
            );
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < deadline {
                    redis::cmd("PUBLISH")
                        .arg(&names[i % names.len()])
                        .arg(&*payload)
                        .query_async::<i64>(&mut publisher)
                        .await
                        .unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += PUBLISHERS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    let catch_up = Instant::now() + Duration::from_secs(60);
    while received.load(Ordering::Relaxed) < total && Instant::now() < catch_up {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = *last_received.lock().unwrap() - start;
    counter.abort();
    drop(subscriber);
    rate(received.load(Ordering::Relaxed), elapsed)
}

/// Deltas applied per second by `b`, fed by `a`, timed until `b` caught up.
async fn our_throughput(a: &Inventory, b: &PlayerHub, users: &[UserId]) -> f64 {
    let before = b.metrics().snapshot().applied;
    let published_before = a.metrics().snapshot().published;
    let start = Instant::now();
    let _ = publish_rate(a, users).await;
    let expected = a.metrics().snapshot().published - published_before;
    let catch_up = Instant::now() + Duration::from_secs(60);
    while b.metrics().snapshot().applied - before < expected && Instant::now() < catch_up {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    rate(b.metrics().snapshot().applied - before, start.elapsed())
}

fn ratio(ours: Duration, raw: Duration) -> f64 {
    ours.as_secs_f64() / raw.as_secs_f64()
}

async fn run() {
    let server = testkit::RedisServer::start();
    let url = server.url();
    let store = TimedStore::default();
    let (a_bus, _a_receiver) = redis_bus(&url).await;
    let a = Inventory::new(store.clone()).with_bus(a_bus.clone());
    let (b_bus, b_receiver) = redis_bus(&url).await;
    let b = node(&store, b_bus, b_receiver);
    let probe = user(0);
    let zone = ZoneId::parse("zone-0").unwrap();
    b.join(&zone, &probe).await.unwrap();

    println!("# 0. the store alone (no bus), few players vs many");
    {
        let alone = Inventory::new(MemoryStore::new());
        let many: Vec<UserId> = (1..=CHANNELS_75K).map(user).collect();
        warm_up(&alone, &many).await;
        let few = publish_rate(&alone, &many[..3]).await;
        let all = publish_rate(&alone, &many).await;
        println!("FIGURE {NAME}/store_only_rate_3_players: {few:.0} changes/s");
        println!("FIGURE {NAME}/store_only_rate_75k_players: {all:.0} changes/s");
        println!("FIGURE {NAME}/store_only_rate_ratio: {:.2} x", all / few);
    }

    println!("# 1. latency, one player channel");
    let (raw, ours) = compare_latency(&url, &a, &store.confirmed, &b, &probe, "1ch").await;
    let p99_ratio = ratio(ours.p99(), raw.p99());
    println!(
        "FIGURE {NAME}/p50_ratio: {:.2} x",
        ratio(ours.p50(), raw.p50())
    );

    println!("# 2. {CHANNELS_75K} player channels over three nodes");
    // The baseline uses the same three nodes, each subscribed to a single
    // player's channel, so that the two rates differ only by the number of
    // channels subscribed, not by the number of receiving connections.
    let mut others = Vec::new();
    for _ in 0..2 {
        let (bus, receiver) = redis_bus(&url).await;
        others.push(node(&store, bus, receiver));
    }
    let singles = vec![
        probe.clone(),
        user(CHANNELS_75K + 1),
        user(CHANNELS_75K + 2),
    ];
    for (other, single) in others.iter().zip(&singles[1..]) {
        other.join(&zone, single).await.unwrap();
    }
    warm_up(&a, &singles).await;
    let receivers = [&b, &others[0], &others[1]];
    let single_fabric = fabric_publish_rate(&a_bus, &singles, &receivers).await;
    println!("FIGURE {NAME}/fabric_rate_1ch_per_node: {single_fabric:.0} events/s");
    let single_rate = publish_rate(&a, &singles).await;
    println!("FIGURE {NAME}/change_rate_1ch_per_node: {single_rate:.0} changes/s");

    let users: Vec<UserId> = (1..=CHANNELS_75K).map(user).collect();
    let start = Instant::now();
    let per_node = CHANNELS_75K / 3;
    let mut parts = users.chunks(per_node);
    join_all(&b, &zone, parts.next().unwrap()).await;
    for (other, part) in others.iter().zip(parts) {
        join_all(other, &zone, part).await;
    }
    println!(
        "FIGURE {NAME}/join_75k: {:.0} joins/s",
        rate(CHANNELS_75K as u64, start.elapsed())
    );
    let (raw_75k, ours_75k) = compare_latency(&url, &a, &store.confirmed, &b, &probe, "75k").await;
    let p99_ratio_75k = ratio(ours_75k.p99(), raw_75k.p99());
    println!("FIGURE {NAME}/p99_ratio_75k: {p99_ratio_75k:.2} x");
    // Touch every player once first, as the single players were: the rates
    // then compare steady states, not first-touch allocations in the store
    // and the caches.
    warm_up(&a, &users).await;
    let receivers = [&b, &others[0], &others[1]];
    let many_fabric = fabric_publish_rate(&a_bus, &users, &receivers).await;
    println!("FIGURE {NAME}/fabric_rate_75k: {many_fabric:.0} events/s");
    let many_rate = publish_rate(&a, &users).await;
    println!("FIGURE {NAME}/change_rate_75k: {many_rate:.0} changes/s");
    println!(
        "FIGURE {NAME}/change_rate_75k_ratio: {:.2} x (includes the store's own slowdown, see store_only_rate_ratio)",
        many_rate / single_rate
    );
    drop(others);
    for user in &users[..per_node] {
        b.leave(&zone, user).await.unwrap();
    }

    println!("# 3. one node with {ZONES_8} zones and {PLAYERS_8K} players");
    let (bus, receiver) = redis_bus(&url).await;
    let busy = node(&store, bus, receiver);
    let players: Vec<UserId> = (0..PLAYERS_8K).map(|i| user(100_000 + i)).collect();
    for (z, part) in players.chunks(PLAYERS_8K / ZONES_8).enumerate() {
        join_all(&busy, &ZoneId::parse(format!("zone-{z}")).unwrap(), part).await;
    }
    warm_up(&a, &players).await;
    let raw_rate = raw_throughput(&url, PLAYERS_8K).await;
    let our_rate = our_throughput(&a, &busy, &players).await;
    println!("FIGURE {NAME}/raw_messages_8k: {raw_rate:.0} msgs/s");
    println!("FIGURE {NAME}/deltas_applied_8k: {our_rate:.0} deltas/s");
    println!(
        "FIGURE {NAME}/throughput_8k_ratio: {:.2} x",
        our_rate / raw_rate
    );
    let m = busy.metrics().snapshot();
    println!(
        "FIGURE {NAME}/busy_node: applied={} duplicates={} gaps={} rehydrations={} subscriptions={}",
        m.applied, m.duplicates, m.gaps, m.rehydrations, m.active_subscriptions
    );

    goal(NAME, "p99_ratio", p99_ratio, "x", GoalOp::AtMost, 3.0);
    goal(
        NAME,
        "publish_rate_75k_ratio",
        many_fabric / single_fabric,
        "x",
        GoalOp::AtLeast,
        0.9,
    );
    drop(server);
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
