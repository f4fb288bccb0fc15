//! The store never wedges: 64 and 256 concurrent callers send mixed
//! single-owner and two-owner changes on 20 players for 30 s, on both
//! topologies. Every call answers (applied, refused with a code, or
//! unavailable) within [`BOUND`], and the store is consistent afterwards:
//! each player's version is the number of journaled changes touching it, and
//! its balances are the replay of the journal.
//!
//! The bound: a call waits at most 5 s for a permit (`busy_timeout`), and
//! each of its operations at most 5 s here (`operation_timeout`); conflicts
//! are retried with at most 100 ms of backoff each. A call that takes longer
//! than 20 s is a wedge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory_core::conformance::{fresh_user, item, owners_replay_the_journal, qty};
use inventory_core::{ApplyOutcome, Error, InventoryStore, MongoConfig, MongoStore};
use protocol::{Change, ChangeId, OwnerId, ValidChange};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long the callers run.
const RUN: Duration = Duration::from_secs(30);
/// No call may take longer.
const BOUND: Duration = Duration::from_secs(20);
/// Players the changes are spread over.
const PLAYERS: usize = 20;
/// Each player's starting gold.
const STOCK: u64 = 1_000;

/// What the callers saw.
#[derive(Default, Debug)]
struct Tally {
    applied: u64,
    refused: u64,
    unavailable: u64,
    slowest: Duration,
}

fn random_change(players: &[OwnerId], rng: &mut impl Rng) -> ValidChange {
    let a = &players[rng.random_range(0..players.len())];
    let n = qty(rng.random_range(1..=3));
    let change = match rng.random_range(0..3) {
        0 => Change::new(ChangeId::random()).grant(a.clone(), item("gold"), n),
        1 => Change::new(ChangeId::random()).consume(a.clone(), item("gold"), n),
        _ => {
            let mut b = a;
            while b == a {
                b = &players[rng.random_range(0..players.len())];
            }
            Change::new(ChangeId::random())
                .consume(a.clone(), item("gold"), n)
                .grant(b.clone(), item("gold"), n)
        }
    };
    change.validate().expect("valid")
}

async fn caller(store: MongoStore, players: Arc<Vec<OwnerId>>, until: Instant, seed: u64) -> Tally {
    let mut tally = Tally::default();
    let mut rng = StdRng::seed_from_u64(seed);
    while Instant::now() < until {
        let change = random_change(&players, &mut rng);
        let started = Instant::now();
        let outcome = store.apply(&change).await;
        tally.slowest = tally.slowest.max(started.elapsed());
        match outcome {
            Ok(ApplyOutcome::Applied(_)) => tally.applied += 1,
            Err(Error::Insufficient { .. } | Error::BalanceOverflow { .. }) => tally.refused += 1,
            Err(Error::Unavailable(_)) => tally.unavailable += 1,
            other => panic!("{change:?} answered {other:?}"),
        }
    }
    tally
}

async fn never_wedges(uri: String, callers: usize) {
    let config = MongoConfig::new(uri)
        .with_database(testkit::unique_name("inventory_load"))
        .with_busy_timeout(Duration::from_secs(5))
        .with_operation_timeout(Duration::from_secs(5));
    let store = MongoStore::connect(config).await.expect("connect");
    let players: Arc<Vec<OwnerId>> = Arc::new(
        (0..PLAYERS)
            .map(|_| OwnerId::account(fresh_user("load")))
            .collect(),
    );
    for player in players.iter() {
        let stock = Change::new(ChangeId::random())
            .grant(player.clone(), item("gold"), qty(STOCK))
            .validate()
            .expect("valid");
        let _ = store.apply(&stock).await.expect("stock");
    }
    let until = Instant::now() + RUN;
    let tasks: Vec<_> = (0..callers as u64)
        .map(|seed| tokio::spawn(caller(store.clone(), Arc::clone(&players), until, seed)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = tokio::time::timeout(RUN + BOUND, task)
            .await
            .expect("a caller wedged")
            .expect("caller");
        total.applied += tally.applied;
        total.refused += tally.refused;
        total.unavailable += tally.unavailable;
        total.slowest = total.slowest.max(tally.slowest);
    }
    assert!(total.applied > 0, "{total:?}");
    assert!(total.slowest <= BOUND, "{total:?}");

    let journaled = owners_replay_the_journal(&store, &players).await;
    assert!(
        journaled >= total.applied + PLAYERS as u64,
        "every applied change is journaled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_set_64_callers_never_wedge() {
    never_wedges(testkit::mongodb_uri(), 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_set_256_callers_never_wedge() {
    never_wedges(testkit::mongodb_uri(), 256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_64_callers_never_wedge() {
    never_wedges(testkit::mongodb_standalone_uri(), 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_256_callers_never_wedge() {
    never_wedges(testkit::mongodb_standalone_uri(), 256).await;
}
