//! The MongoDB store against the raw driver, on one `secantusd-rs` started for
//! the run (a single-node replica set).
//!
//! 1. A guarded single-item change through `MongoStore::apply` vs a raw
//!    `update_one({_id}, {$inc: {n: 1}})`, at 1 and 32 concurrent callers,
//!    each caller on its own document. Both sides use a pool of 64
//!    connections; the store's owners are warmed up with 1,024 changes first,
//!    so their change window is full (the steady state).
//! 2. A hot owner: 50, then 400 concurrent callers consuming 1 at a time from
//!    one stack. A monitor loads the owner throughout: the balance must never
//!    go negative (or rise), and the final balance must equal the start minus
//!    the consumes that succeeded.
//! 3. One change on an owner holding 10,000 stacks vs one holding 10.
//! 4. A two-user trade against a single-owner change, 32 callers each: the
//!    callers trade in a ring (caller `i` gives one gold from owner `i` to
//!    owner `i + 1`, so every owner is in two trades at once), or each consumes
//!    from its own owner; the p99 latency of each.
//! 5. No goal, the explanation of 1 and 3: the raw `$inc` on a document that
//!    merely holds a 1,024-entry array (the shape of the change window), one
//!    27 KB binary field (the same bytes in one element) or 10,000 item fields
//!    (the large owner's shape), vs on a tiny one. On `secantusd-rs` an update
//!    costs in proportion to the document's element count far more than to
//!    its size, whatever the update touches.
//!
//! Rounds alternate between the compared sides so that the machine's noise
//! hits both alike; each ratio is computed over the totals of all rounds.

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inventory_core::{ApplyOutcome, Error, InventoryStore, MongoConfig, MongoStore};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};
use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId, ValidChange};
use testkit::bench::{GoalOp, LatencyRecorder, goal};

/// How long each side runs per round.
const ROUND: Duration = Duration::from_secs(3);
/// Rounds per comparison (sides alternate within each).
const ROUNDS: usize = 3;
/// The stock the hot owner starts with: more than any run can consume.
const HOT_STOCK: u64 = 100_000_000;

type Op = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

fn main() {
    let server = testkit::MongoServer::start(testkit::Topology::ReplicaSet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(server.uri()));
}

async fn run(uri: String) {
    let database = testkit::unique_name("bench_mongo");
    // 400 callers queue on the hot owner for longer than the default 5 s a
    // call may wait to start: this measures throughput, not that bound.
    let config = MongoConfig::new(&uri)
        .with_database(&database)
        .with_busy_timeout(Duration::from_secs(60));
    let store = MongoStore::connect(config)
        .await
        .expect("connect the store");
    // The store's pool is 64 connections by default; the raw side gets as many.
    let mut options = mongodb::options::ClientOptions::parse(&uri)
        .await
        .expect("parse the URI");
    options.max_pool_size = Some(64);
    let raw = mongodb::Client::with_options(options)
        .expect("connect the raw driver")
        .database(&database)
        .collection::<Document>("raw");

    let mut ratios = Vec::new();
    for callers in [1, 32] {
        ratios.push((callers, single_item(&store, &raw, callers).await));
    }
    let hot = hot_owner(&store).await;
    let large = large_inventory(&store).await;
    let trade = trade_vs_single(&store).await;
    element_cost(&raw).await;

    for (callers, ratio) in ratios {
        goal(
            "mongo",
            &format!("ratio_at_{callers}"),
            ratio,
            "x",
            GoalOp::AtLeast,
            0.5,
        );
    }
    goal(
        "mongo",
        "hot_owner_400_vs_50",
        hot,
        "x",
        GoalOp::AtLeast,
        0.8,
    );
    goal(
        "mongo",
        "large_inventory_cost_ratio",
        large,
        "x",
        GoalOp::AtMost,
        1.5,
    );
    goal(
        "mongo",
        "trade_p99_over_single_p99",
        trade,
        "x",
        GoalOp::AtMost,
        3.0,
    );
}

fn item(name: &str) -> ItemId {
    ItemId::parse(name).expect("item id")
}

fn owner(tag: &str) -> OwnerId {
    OwnerId::account(UserId::parse(testkit::unique_name(tag)).expect("user id"))
}

fn grant(owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    Change::new(ChangeId::random())
        .grant(owner.clone(), item(name), Quantity::new(n).expect("qty"))
        .validate()
        .expect("valid change")
}

fn consume(owner: &OwnerId, name: &str) -> ValidChange {
    Change::new(ChangeId::random())
        .consume(owner.clone(), item(name), Quantity::new(1).expect("qty"))
        .validate()
        .expect("valid change")
}

async fn applied(store: &MongoStore, change: &ValidChange) {
    match store.apply(change).await {
        Ok(ApplyOutcome::Applied(_)) => {}
        other => panic!("expected Applied, got {other:?}"),
    }
}

/// Runs `op(caller)` in a loop from `callers` tasks for `ROUND`; operations per second.
async fn rate(callers: usize, op: &Op) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (stop, done, op) = (stop.clone(), done.clone(), op.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    op(caller).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("caller task");
    }
    testkit::bench::rate(done.load(Ordering::Relaxed), start.elapsed())
}

/// Alternates rounds of `a` and `b`; the mean rate of each.
async fn compare(callers_a: usize, a: &Op, callers_b: usize, b: &Op) -> (f64, f64) {
    let (mut sum_a, mut sum_b) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        sum_a += rate(callers_a, a).await;
        sum_b += rate(callers_b, b).await;
    }
    (sum_a / ROUNDS as f64, sum_b / ROUNDS as f64)
}

/// Figure 1: ours / raw at `callers` concurrent callers.
async fn single_item(
    store: &MongoStore,
    raw: &mongodb::Collection<Document>,
    callers: usize,
) -> f64 {
    let owners: Arc<Vec<OwnerId>> = Arc::new((0..callers).map(|_| owner("single")).collect());
    let warm = owners.iter().map(|owner| async move {
        applied(store, &grant(owner, "wood", HOT_STOCK)).await;
        for _ in 1..inventory_core::IDEMPOTENCY_WINDOW {
            applied(store, &consume(owner, "wood")).await;
        }
    });
    futures::future::join_all(warm).await;
    let prefix = testkit::unique_name("raw");
    for caller in 0..callers {
        raw.insert_one(doc! { "_id": format!("{prefix}-{caller}"), "n": 0_i64 })
            .await
            .expect("insert raw document");
    }
    let raw_op: Op = {
        let raw = raw.clone();
        Arc::new(move |caller| {
            let (raw, id) = (raw.clone(), format!("{prefix}-{caller}"));
            Box::pin(async move {
                raw.update_one(doc! { "_id": id }, doc! { "$inc": { "n": 1_i64 } })
                    .await
                    .expect("raw update");
            })
        })
    };
    let ours_op: Op = {
        let store = store.clone();
        Arc::new(move |caller| {
            let (store, owners) = (store.clone(), owners.clone());
            Box::pin(async move { applied(&store, &consume(&owners[caller], "wood")).await })
        })
    };
    let (raw_rate, ours_rate) = compare(callers, &raw_op, callers, &ours_op).await;
    let ratio = ours_rate / raw_rate;
    println!(
        "mongo/single_item at {callers} callers: raw {raw_rate:.0}/s, ours {ours_rate:.0}/s, ratio {ratio:.2}x"
    );
    ratio
}

/// Figure 2: our rate at 400 callers / at 50 callers on one owner's stack,
/// with the exactness and no-negative checks.
async fn hot_owner(store: &MongoStore) -> f64 {
    let hot = owner("hot");
    applied(store, &grant(&hot, "ore", HOT_STOCK)).await;
    let succeeded = Arc::new(AtomicU64::new(0));
    let op: Op = {
        let (store, hot, succeeded) = (store.clone(), hot.clone(), succeeded.clone());
        Arc::new(move |_| {
            let (store, hot, succeeded) = (store.clone(), hot.clone(), succeeded.clone());
            Box::pin(async move {
                applied(&store, &consume(&hot, "ore")).await;
                succeeded.fetch_add(1, Ordering::Relaxed);
            })
        })
    };
    let watching = Arc::new(AtomicBool::new(true));
    let monitor = {
        let (store, hot, watching) = (store.clone(), hot.clone(), watching.clone());
        tokio::spawn(async move {
            let (mut last, mut loads) = (HOT_STOCK, 0_u64);
            while watching.load(Ordering::Relaxed) {
                match store.load(&hot).await {
                    Ok(snap) => {
                        let now = snap.items.get(&item("ore")).copied().unwrap_or(0);
                        assert!(now <= last, "the hot balance rose from {last} to {now}");
                        last = now;
                        loads += 1;
                    }
                    Err(Error::Corrupt { detail, .. }) => panic!("hot owner corrupt: {detail}"),
                    Err(e) => panic!("load failed: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            loads
        })
    };
    let (at_50, at_400) = compare(50, &op, 400, &op).await;
    watching.store(false, Ordering::Relaxed);
    let loads = monitor.await.expect("monitor");
    let consumed = succeeded.load(Ordering::Relaxed);
    let left = store.load(&hot).await.expect("load").items[&item("ore")];
    assert_eq!(left, HOT_STOCK - consumed, "the hot balance is exact");
    let ratio = at_400 / at_50;
    println!(
        "mongo/hot_owner: 50 callers {at_50:.0}/s, 400 callers {at_400:.0}/s, ratio {ratio:.2}x; \
         {consumed} consumes, final balance exact ({left}), never negative ({loads} loads watched)"
    );
    ratio
}

/// Figure 3: the cost of one change on a 10,000-stack owner / on a 10-stack owner.
async fn large_inventory(store: &MongoStore) -> f64 {
    let small = owner("small");
    let large = owner("large");
    for (owner, stacks) in [(&small, 10_usize), (&large, 10_000)] {
        for batch in 0..stacks.div_ceil(250) {
            let mut change = Change::new(ChangeId::random());
            for i in batch * 250..((batch + 1) * 250).min(stacks) {
                change = change.grant(
                    owner.clone(),
                    item(&format!("item-{i:05}")),
                    Quantity::new(HOT_STOCK).expect("qty"),
                );
            }
            applied(store, &change.validate().expect("valid")).await;
        }
        for _ in 0..inventory_core::IDEMPOTENCY_WINDOW {
            applied(store, &consume(owner, "item-00005")).await;
        }
    }
    let op_on = |owner: OwnerId| -> Op {
        let store = store.clone();
        Arc::new(move |_| {
            let (store, owner) = (store.clone(), owner.clone());
            Box::pin(async move { applied(&store, &consume(&owner, "item-00005")).await })
        })
    };
    let (small_rate, large_rate) = compare(1, &op_on(small), 1, &op_on(large)).await;
    let ratio = small_rate / large_rate;
    println!(
        "mongo/large_inventory: 10 stacks {small_rate:.0}/s, 10,000 stacks {large_rate:.0}/s, \
         one change costs {ratio:.2}x"
    );
    ratio
}

/// Runs `op(caller)` in a loop from `callers` tasks for `ROUND`; each call's latency.
async fn latencies(callers: usize, op: &Op) -> LatencyRecorder {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (stop, op) = (stop.clone(), op.clone());
            tokio::spawn(async move {
                let mut recorder = LatencyRecorder::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    op(caller).await;
                    recorder.record(started.elapsed());
                }
                recorder
            })
        })
        .collect();
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = LatencyRecorder::new();
    for task in tasks {
        all.merge(&task.await.expect("caller task"));
    }
    all
}

/// Figure 4: a ring of two-user trades' p99 / single-owner changes' p99, 32 callers.
async fn trade_vs_single(store: &MongoStore) -> f64 {
    const CALLERS: usize = 32;
    let owners: Arc<Vec<OwnerId>> = Arc::new((0..CALLERS).map(|_| owner("ring")).collect());
    for owner in owners.iter() {
        applied(store, &grant(owner, "gold", HOT_STOCK)).await;
    }
    let single: Op = {
        let (store, owners) = (store.clone(), owners.clone());
        Arc::new(move |caller| {
            let (store, owners) = (store.clone(), owners.clone());
            Box::pin(async move { applied(&store, &consume(&owners[caller], "gold")).await })
        })
    };
    let trade: Op = {
        let (store, owners) = (store.clone(), owners.clone());
        Arc::new(move |caller| {
            let (store, owners) = (store.clone(), owners.clone());
            Box::pin(async move {
                let change = Change::trade(
                    ChangeId::random(),
                    (
                        owners[caller].clone(),
                        &[(item("gold"), Quantity::new(1).expect("qty"))],
                    ),
                    (owners[(caller + 1) % CALLERS].clone(), &[]),
                )
                .validate()
                .expect("valid trade");
                applied(&store, &change).await;
            })
        })
    };
    let (mut singles, mut trades) = (LatencyRecorder::new(), LatencyRecorder::new());
    for _ in 0..ROUNDS {
        singles.merge(&latencies(CALLERS, &single).await);
        trades.merge(&latencies(CALLERS, &trade).await);
    }
    singles.report("mongo", "single_owner_at_32");
    trades.report("mongo", "trade_ring_at_32");
    trades.p99().as_secs_f64() / singles.p99().as_secs_f64()
}

/// Figure 5: what an element costs, on the raw driver.
async fn element_cost(raw: &mongodb::Collection<Document>) {
    let prefix = testkit::unique_name("shape");
    let entry = |n: u64| {
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: bytes.to_vec(),
        })
    };
    let window: Vec<Bson> = (0..inventory_core::IDEMPOTENCY_WINDOW as u64)
        .map(entry)
        .collect();
    let blob = Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![7; 27 * 1024],
    });
    let stacks: Document = (0..10_000)
        .map(|i| (format!("item-{i:05}"), Bson::Int64(1)))
        .collect();
    let shapes = [
        doc! { "_id": format!("{prefix}-tiny"), "n": 0_i64 },
        doc! { "_id": format!("{prefix}-array"), "n": 0_i64, "recent": window },
        doc! { "_id": format!("{prefix}-blob"), "n": 0_i64, "blob": blob },
        doc! { "_id": format!("{prefix}-stacks"), "n": 0_i64, "items": stacks },
    ];
    raw.insert_many(shapes).await.expect("insert shapes");
    let inc = |shape: &str| -> Op {
        let (raw, id) = (raw.clone(), format!("{prefix}-{shape}"));
        Arc::new(move |_| {
            let (raw, id) = (raw.clone(), id.clone());
            Box::pin(async move {
                raw.update_one(doc! { "_id": id }, doc! { "$inc": { "n": 1_i64 } })
                    .await
                    .expect("raw update");
            })
        })
    };
    let (tiny, array) = compare(1, &inc("tiny"), 1, &inc("array")).await;
    let (tiny_again, blob) = compare(1, &inc("tiny"), 1, &inc("blob")).await;
    let (tiny_third, stacks) = compare(1, &inc("tiny"), 1, &inc("stacks")).await;
    println!(
        "mongo/element_cost: raw $inc on a tiny document {tiny:.0}/s; on one holding a \
         1,024-entry array {array:.0}/s ({:.2}x); on one holding a 27 KB binary {blob:.0}/s ({:.2}x); \
         on one holding 10,000 item fields {stacks:.0}/s ({:.2}x)",
        array / tiny,
        blob / tiny_again,
        stacks / tiny_third
    );
}
