//! Exactly-once at the seams (`cargo xtask bench seams`), on one
//! `redis-server` started here and the `inventory-service` binary run as a
//! process over SQLite files in a temp dir:
//!
//! 1. The write path never waits on the bus: p99 of `POST /v1/changes` while
//!    redis-server is stopped, over the p99 while it runs, in rounds of the
//!    same run. Goal: <= 1.5x.
//! 2. No acknowledged change's event is lost: a subscriber (`PSUBSCRIBE
//!    inv:*`) records every event while changes flow from concurrent callers;
//!    the node is SIGKILLed mid-load and restarted on the same files; every
//!    change answered `201` must reach the subscriber. Goal: 0 lost.
//! 3. Conflicting retries publish nothing: changes are posted, then their ids
//!    re-posted with other content (`409 change_conflict`); any event whose
//!    content differs from the original's, or any copy beyond the original's
//!    one, counts. Goal: 0.
//! 4. The outbox costs little: guarded changes per second through
//!    `Inventory::apply` on SQLite with the relay publishing to Redis (a
//!    subscriber receiving every event, counted), over `InventoryStore::apply`
//!    alone on a fresh store, 32 concurrent callers, interleaved. Goal: >= 0.8.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use inventory_core::{
    ApplyOutcome, Inventory, InventoryStore, RedisBus, RedisBusConfig, SqliteConfig, SqliteStore,
};
use protocol::{Change, ChangeEvent, ChangeId, ItemId, OwnerId, Quantity, UserId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::bench::{GoalOp, LatencyRecorder, format_figure, goal, rate};
use testkit::{NodeProcess, RedisServer};

const NAME: &str = "seams";
const SERVICE_TOKEN: &str = "bench-service-token-0123";
const JWT_SECRET: &str = "bench-jwt-secret-0123456789";
/// Changes per phase (Redis up, Redis down) of figure 1, over all rounds.
const LATENCY_SAMPLES: usize = 2000;
const LATENCY_ROUNDS: usize = 4;
const KILL_CALLERS: usize = 16;
/// How long changes flow before the node is SIGKILLed.
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(2000);
/// How long acknowledged events may take to reach the subscriber.
const SETTLE: Duration = Duration::from_secs(30);
const CONFLICTS: usize = 300;
const APPLY_CALLERS: usize = 32;
const APPLY_RUN: Duration = Duration::from_secs(4);

type Goal = (&'static str, f64, &'static str, GoalOp, f64);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut redis_server = RedisServer::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut goals = Vec::new();
    goals.push(runtime.block_on(figure_1(&mut redis_server, dir.path())));
    goals.extend(runtime.block_on(figures_2_and_3(&redis_server, dir.path())));
    goals.push(runtime.block_on(figure_4(&redis_server, dir.path())));
    println!();
    for (figure, value, unit, op, target) in goals {
        goal(NAME, figure, value, unit, op, target);
    }
}

/// The node binary over `dir/inventory.db`, publishing on `redis_url`.
fn node_command(dir: &Path, redis_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory-service"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("INVENTORY_JWT_SECRET", JWT_SECRET)
        .env("REDIS_URL", redis_url)
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL")
        .env_remove("INVENTORY_DESCRIPTOR_SQLITE_PATH");
    command
}

fn grant(id: ChangeId, owner: &str, item: &str, qty: i64) -> Value {
    json!({"id": id, "ops": [{"op": "grant", "owner": owner, "item": item, "qty": qty}]})
}

/// Posts `body`; the status and the decoded body, or `None` when the node
/// did not answer (killed).
async fn post(http: &reqwest::Client, base: &str, body: &Value) -> Option<(StatusCode, Value)> {
    let response = http
        .post(format!("{base}/v1/changes"))
        .bearer_auth(SERVICE_TOKEN)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let body = response.json().await.ok()?;
    Some((status, body))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// Every event seen on `inv:*`, by change id.
#[derive(Clone, Default)]
struct Seen {
    events: Arc<Mutex<HashMap<ChangeId, Vec<ChangeEvent>>>>,
    count: Arc<AtomicU64>,
}

impl Seen {
    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn events(&self, id: ChangeId) -> Vec<ChangeEvent> {
        self.events
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }

    fn missing(&self, ids: &[ChangeId]) -> usize {
        let events = self.events.lock().unwrap();
        ids.iter().filter(|id| !events.contains_key(id)).count()
    }

    /// Waits until every one of `ids` was seen, or `SETTLE` has passed; how
    /// long that took.
    async fn settle(&self, ids: &[ChangeId]) -> Duration {
        let started = Instant::now();
        while self.missing(ids) > 0 && started.elapsed() < SETTLE {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    /// Waits until `count` events were seen, or `SETTLE` has passed.
    async fn settle_count(&self, count: u64) -> Duration {
        let started = Instant::now();
        while self.count() < count && started.elapsed() < SETTLE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }
}

/// A raw `PSUBSCRIBE inv:*` recording every event; unsubscribed when
/// dropped, so that it costs nothing to the figures after its own.
struct Subscription {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes `inv:*`, subscribed when this returns; with `record`, keeps
/// every event, else only counts them (as light as a subscriber gets, for
/// the rate figure).
async fn subscribe(redis_url: &str, record: bool) -> Subscription {
    let client = redis::Client::open(redis_url).expect("a Redis URL");
    let mut pubsub = client.get_async_pubsub().await.expect("a subscriber");
    pubsub.psubscribe("inv:*").await.expect("PSUBSCRIBE");
    let seen = Seen::default();
    let into = seen.clone();
    let task = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            if record {
                let event: ChangeEvent =
                    serde_json::from_slice(message.get_payload_bytes()).expect("an event");
                into.events
                    .lock()
                    .unwrap()
                    .entry(event.change_id)
                    .or_default()
                    .push(event);
            }
            into.count.fetch_add(1, Ordering::Relaxed);
        }
    });
    Subscription { seen, task }
}

/// `samples` sequential grants to a few players, each one's latency.
async fn timed_posts(base: &str, samples: usize, recorder: &mut LatencyRecorder) {
    let http = http_client();
    for n in 0..samples {
        let body = grant(ChangeId::random(), &format!("a:p{}", n % 50), "wood", 1);
        let started = Instant::now();
        let (status, answer) = post(&http, base, &body).await.expect("an answer");
        recorder.record(started.elapsed());
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
}

async fn figure_1(redis_server: &mut RedisServer, dir: &Path) -> Goal {
    let files = dir.join("latency");
    std::fs::create_dir_all(&files).expect("a dir");
    let node = NodeProcess::spawn(node_command(&files, &redis_server.url()));
    let mut warmup = LatencyRecorder::new();
    timed_posts(node.base(), 200, &mut warmup).await;
    let (mut up, mut down) = (LatencyRecorder::new(), LatencyRecorder::new());
    // Rounds, so that noise from the machine hits both phases alike.
    for _ in 0..LATENCY_ROUNDS {
        timed_posts(node.base(), LATENCY_SAMPLES / LATENCY_ROUNDS, &mut up).await;
        redis_server.kill();
        timed_posts(node.base(), LATENCY_SAMPLES / LATENCY_ROUNDS, &mut down).await;
        redis_server.restart();
    }
    println!("figure 1: POST /v1/changes on the node process, Redis up and down");
    up.report(NAME, "write_redis_up");
    down.report(NAME, "write_redis_down");
    let ratio = down.p99().as_secs_f64() / up.p99().as_secs_f64();
    println!("p99 down/up: {} x", format_figure(ratio));
    (
        "write_p99_redis_down_over_up",
        ratio,
        "x",
        GoalOp::AtMost,
        1.5,
    )
}

/// Callers posting grants until the node stops answering; the events of
/// the changes it acknowledged.
async fn load_until_killed(base: String) -> (Vec<ChangeEvent>, u64) {
    let unanswered = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..KILL_CALLERS)
        .map(|caller| {
            let (base, unanswered) = (base.clone(), Arc::clone(&unanswered));
            tokio::spawn(async move {
                let http = http_client();
                let mut acked = Vec::new();
                for n in 0.. {
                    let owner = format!("a:k{caller}-{}", n % 4);
                    let body = grant(ChangeId::random(), &owner, "ore", 1);
                    match post(&http, &base, &body).await {
                        Some((StatusCode::CREATED, answer)) => acked.push(
                            serde_json::from_value::<ChangeEvent>(answer["event"].clone())
                                .expect("an event"),
                        ),
                        Some((status, answer)) => panic!("{status}: {answer}"),
                        None => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for caller in callers {
        acked.extend(caller.await.expect("a caller"));
    }
    (acked, unanswered.load(Ordering::Relaxed))
}

async fn figures_2_and_3(redis_server: &RedisServer, dir: &Path) -> [Goal; 2] {
    let files = dir.join("kill");
    std::fs::create_dir_all(&files).expect("a dir");
    let url = redis_server.url();
    let subscription = subscribe(&url, true).await;
    let seen = &subscription.seen;
    let mut node = NodeProcess::spawn(node_command(&files, &url));
    let load = tokio::spawn(load_until_killed(node.base().to_owned()));
    tokio::time::sleep(LOAD_BEFORE_KILL).await;
    node.kill();
    let (acked, unanswered) = load.await.expect("the load");
    let node = NodeProcess::spawn(node_command(&files, &url));
    let ids: Vec<ChangeId> = acked.iter().map(|event| event.change_id).collect();
    let settled = seen.settle(&ids).await;
    let lost = seen.missing(&ids);
    let changed = acked
        .iter()
        .filter(|event| !seen.events(event.change_id).contains(event))
        .count();
    println!();
    println!("figure 2: node SIGKILLed mid-load, restarted on the same files");
    println!(
        "{} changes acknowledged by {KILL_CALLERS} callers in {} ms, {unanswered} calls cut by the kill",
        acked.len(),
        LOAD_BEFORE_KILL.as_millis()
    );
    println!(
        "events seen: {} in all; acknowledged but never seen: {lost}; seen only with other \
         content: {}; settled {} ms after the restart",
        seen.count(),
        changed.saturating_sub(lost),
        settled.as_millis()
    );

    // Figure 3, on the restarted node.
    let http = http_client();
    let mut originals = Vec::new();
    for n in 0..CONFLICTS {
        let id = ChangeId::random();
        let (status, answer) = post(
            &http,
            node.base(),
            &grant(id, &format!("a:c{n}"), "wood", 1),
        )
        .await
        .expect("an answer");
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        originals.push(
            serde_json::from_value::<ChangeEvent>(answer["event"].clone()).expect("an event"),
        );
    }
    let mut refused = 0;
    for (n, original) in originals.iter().enumerate() {
        // Alternately another owner (the cross-owner finding) and the same one.
        let owner = if n % 2 == 0 {
            "a:bob".to_owned()
        } else {
            format!("a:c{n}")
        };
        let (status, answer) = post(
            &http,
            node.base(),
            &grant(original.change_id, &owner, "diamond", 999),
        )
        .await
        .expect("an answer");
        if status == StatusCode::CONFLICT && answer["code"] == "change_conflict" {
            refused += 1;
        } else {
            println!("a conflicting retry answered {status}: {answer}");
        }
    }
    let ids: Vec<ChangeId> = originals.iter().map(|event| event.change_id).collect();
    seen.settle(&ids).await;
    // Anything published for the retries comes after the originals' events.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut published = 0;
    for original in &originals {
        let events = seen.events(original.change_id);
        let others = events.iter().filter(|event| *event != original).count();
        let copies = events.len() - others;
        published += others + copies.saturating_sub(1);
    }
    println!();
    println!("figure 3: conflicting retries");
    println!(
        "{CONFLICTS} changes, then {CONFLICTS} retries of their ids with other content: \
         {refused} refused with change_conflict; events beyond the originals': {published}"
    );
    [
        (
            "events_lost_after_kill",
            lost as f64,
            "events",
            GoalOp::AtMost,
            0.0,
        ),
        (
            "conflicting_retries_published",
            published as f64,
            "events",
            GoalOp::AtMost,
            0.0,
        ),
    ]
}

/// A fresh SQLite store in `dir`, stocked for guarded consumes.
async fn stocked_store(dir: &Path, name: &str, owner: &OwnerId, item: &ItemId) -> SqliteStore {
    let store = SqliteStore::open(SqliteConfig::new(dir.join(name))).expect("a store");
    let stock = Change::new(ChangeId::random())
        .grant(
            owner.clone(),
            item.clone(),
            Quantity::new(1_000_000_000).expect("qty"),
        )
        .validate()
        .expect("valid");
    assert!(matches!(
        store.apply(&stock).await,
        Ok(ApplyOutcome::Applied(_))
    ));
    store
}

fn consume(owner: &OwnerId, item: &ItemId) -> Change {
    Change::new(ChangeId::random()).consume(
        owner.clone(),
        item.clone(),
        Quantity::new(1).expect("qty"),
    )
}

/// `APPLY_CALLERS` callers applying guarded consumes for `APPLY_RUN`
/// through `apply`; changes applied per second.
async fn run_callers<F, Fut>(apply: F) -> (u64, Duration)
where
    F: Fn(Change) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let owner = OwnerId::account(UserId::parse("bench").expect("id"));
    let item = ItemId::parse("ore").expect("id");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..APPLY_CALLERS)
        .map(|_| {
            let (stop, done, apply) = (Arc::clone(&stop), Arc::clone(&done), apply.clone());
            let (owner, item) = (owner.clone(), item.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if apply(consume(&owner, &item)).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(APPLY_RUN).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a caller");
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

/// `InventoryStore::apply` alone.
async fn store_run(dir: &Path, name: &str) -> (u64, Duration) {
    let owner = OwnerId::account(UserId::parse("bench").expect("id"));
    let item = ItemId::parse("ore").expect("id");
    let store = Arc::new(stocked_store(dir, name, &owner, &item).await);
    run_callers(move |change: Change| {
        let store = Arc::clone(&store);
        async move {
            let change = change.validate().expect("valid");
            matches!(store.apply(&change).await, Ok(ApplyOutcome::Applied(_)))
        }
    })
    .await
}

/// `Inventory::apply` with the outbox relay publishing to Redis, and a
/// subscriber that must receive every event: the run's figures and how
/// long the subscriber took to catch up after it.
async fn outbox_run(dir: &Path, name: &str, redis_url: &str) -> (u64, Duration, Duration) {
    let owner = OwnerId::account(UserId::parse("bench").expect("id"));
    let item = ItemId::parse("ore").expect("id");
    let store = stocked_store(dir, name, &owner, &item).await;
    let subscription = subscribe(redis_url, false).await;
    let seen = &subscription.seen;
    let (bus, _messages) = RedisBus::connect(RedisBusConfig::new(redis_url))
        .await
        .expect("the bus");
    let inventory = Inventory::new(store).with_bus(bus);
    // The stock's event, published by the relay, comes first.
    seen.settle_count(1).await;
    let (done, elapsed) = {
        let inventory = inventory.clone();
        run_callers(move |change: Change| {
            let inventory = inventory.clone();
            async move {
                matches!(inventory.apply(change).await, Ok(applied) if !applied.already_applied)
            }
        })
        .await
    };
    let catch_up = seen.settle_count(done + 1).await;
    assert!(
        seen.count() > done,
        "the subscriber receives every applied change's event: {} of {}",
        seen.count(),
        done + 1
    );
    inventory.close(Duration::from_secs(5)).await;
    (done, elapsed, catch_up)
}

async fn figure_4(redis_server: &RedisServer, dir: &Path) -> Goal {
    let files = dir.join("apply");
    std::fs::create_dir_all(&files).expect("a dir");
    let url = redis_server.url();
    let (mut store_done, mut store_time) = (0, Duration::ZERO);
    let (mut outbox_done, mut outbox_time) = (0, Duration::ZERO);
    let mut catch_up = Duration::ZERO;
    // Interleaved (store, outbox, outbox, store) so that drift hits both.
    for (round, outbox_first) in [false, true].into_iter().enumerate() {
        for outbox in [outbox_first, !outbox_first] {
            if outbox {
                let (done, time, lag) =
                    outbox_run(&files, &format!("outbox{round}.db"), &url).await;
                (outbox_done, outbox_time) = (outbox_done + done, outbox_time + time);
                catch_up = catch_up.max(lag);
            } else {
                let (done, time) = store_run(&files, &format!("store{round}.db")).await;
                (store_done, store_time) = (store_done + done, store_time + time);
            }
        }
    }
    let store_rate = rate(store_done, store_time);
    let outbox_rate = rate(outbox_done, outbox_time);
    println!();
    println!("figure 4: guarded consumes on SQLite, {APPLY_CALLERS} callers");
    println!(
        "{:<60} {:>10} changes/s",
        "InventoryStore::apply alone",
        format_figure(store_rate)
    );
    println!(
        "{:<60} {:>10} changes/s",
        "Inventory::apply, outbox relay publishing to Redis",
        format_figure(outbox_rate)
    );
    println!(
        "the subscriber received all {outbox_done} events, the last at most {} ms after the run",
        catch_up.as_millis()
    );
    let ratio = outbox_rate / store_rate;
    println!("ratio: {} x", format_figure(ratio));
    (
        "apply_rate_with_outbox_over_store",
        ratio,
        "x",
        GoalOp::AtLeast,
        0.8,
    )
}
