//! One node process on MongoDB never wedges: 64 and 256 concurrent HTTP
//! callers send mixed single-owner and two-owner changes on 20 players for
//! [`run_for`] (30 s unless `NODE_LOAD_SECONDS` says otherwise), on a replica
//! set and on a standalone server. Every request answers, within [`BOUND`],
//! with an applied change (201), a refusal with its code (409
//! `insufficient_balance` or `balance_overflow`) or 503 `unavailable`; and
//! afterwards the store is consistent: each player's version counts the
//! journal's entries touching it, its balances are the journal's replay, and
//! none is negative.
//!
//! The bound: the node runs the store with its defaults, so a request waits
//! at most 5 s for its owners' locks and for a permit (`busy_timeout`, then
//! 503), then makes a handful of database operations (milliseconds each on
//! this server, each capped at 10 s by `operation_timeout`), with conflicts
//! retried after at most 100 ms of backoff. A request still unanswered after
//! 20 s is a wedge: the node froze this way under 64 callers when the
//! driver's pool of 10 connections was held by transactions waiting on each
//! other.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use inventory_core::conformance::owners_replay_the_journal;
use inventory_core::{MongoConfig, MongoStore};
use protocol::{ChangeId, OwnerId};
use serde_json::{Value, json};

use crate::common::{SERVICE_TOKEN, node_command, owner};

/// No request may take longer.
const BOUND: Duration = Duration::from_secs(20);
/// Players the changes are spread over.
const PLAYERS: usize = 20;
/// Each player's starting gold.
const STOCK: u64 = 20;

/// One load at a time: each measures one node on an otherwise idle machine.
static ONE_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the callers run: 30 s, or `NODE_LOAD_SECONDS`.
fn run_for() -> Duration {
    let seconds = std::env::var("NODE_LOAD_SECONDS").ok().map_or(30, |s| {
        s.parse().expect("NODE_LOAD_SECONDS is whole seconds")
    });
    Duration::from_secs(seconds)
}

/// What the callers saw.
#[derive(Default, Debug)]
struct Tally {
    applied: u64,
    refused: u64,
    unavailable: u64,
    slowest: Duration,
    /// Anything else: a status or body outside the contract, or no answer.
    wrong: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: Self) {
        self.applied += other.applied;
        self.refused += other.refused;
        self.unavailable += other.unavailable;
        self.slowest = self.slowest.max(other.slowest);
        self.wrong.extend(other.wrong);
    }
}

/// The `n`th change of `caller`: a grant, a consume or a move of gold
/// between two players, spread over every player.
fn change(caller: usize, n: usize) -> Value {
    let a = (caller * 7 + n * 3) % PLAYERS;
    let qty = 1 + (caller + n) % 3;
    let ops = match (caller + n) % 3 {
        0 => json!([{"op": "grant", "owner": player(a), "item": "gold", "qty": qty}]),
        1 => json!([{"op": "consume", "owner": player(a), "item": "gold", "qty": qty}]),
        _ => {
            let b = (a + 1 + n % (PLAYERS - 1)) % PLAYERS;
            json!([
                {"op": "consume", "owner": player(a), "item": "gold", "qty": qty},
                {"op": "grant", "owner": player(b), "item": "gold", "qty": qty},
            ])
        }
    };
    json!({"id": ChangeId::random(), "ops": ops})
}

fn player(n: usize) -> String {
    format!("a:p{n}")
}

async fn caller(http: reqwest::Client, base: String, caller: usize, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut n = 0;
    while Instant::now() < until {
        let body = change(caller, n);
        n += 1;
        let started = Instant::now();
        let answer = http
            .post(format!("{base}/v1/changes"))
            .bearer_auth(SERVICE_TOKEN)
            .json(&body)
            .send()
            .await;
        let answer = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                response
                    .json::<Value>()
                    .await
                    .map(|body| (status, body))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        tally.slowest = tally.slowest.max(started.elapsed());
        match answer {
            Ok((201, body)) if body.get("event").is_some() => tally.applied += 1,
            Ok((409, body))
                if body["code"] == "insufficient_balance" || body["code"] == "balance_overflow" =>
            {
                tally.refused += 1;
            }
            Ok((503, body)) if body["code"] == "unavailable" => tally.unavailable += 1,
            Ok((status, answer)) => tally.wrong.push(format!("{body} → {status} {answer}")),
            Err(e) => tally.wrong.push(format!("{body} → {e}")),
        }
    }
    tally
}

fn mongo_node(dir: &Path, uri: &str, database: &str) -> Command {
    let mut command = node_command(dir, &[]);
    command
        .env("MONGODB_URI", uri)
        .env("MONGODB_DATABASE", database);
    command
}

async fn never_wedges(uri: String, callers: usize) {
    let _alone = ONE_LOAD.lock().await;
    let database = testkit::unique_name("node_load");
    let dir = tempfile::tempdir().unwrap();
    let mut node = testkit::NodeProcess::spawn(mongo_node(dir.path(), &uri, &database));
    let http = reqwest::Client::builder()
        .timeout(BOUND + Duration::from_secs(5))
        .build()
        .unwrap();
    for n in 0..PLAYERS {
        let stock = json!({"id": ChangeId::random(), "ops": [
            {"op": "grant", "owner": player(n), "item": "gold", "qty": STOCK}
        ]});
        let response = http
            .post(format!("{}/v1/changes", node.base()))
            .bearer_auth(SERVICE_TOKEN)
            .json(&stock)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
    let run = run_for();
    let until = Instant::now() + run;
    let tasks: Vec<_> = (0..callers)
        .map(|n| tokio::spawn(caller(http.clone(), node.base().to_owned(), n, until)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = tokio::time::timeout(run + BOUND + Duration::from_secs(10), task)
            .await
            .expect("a caller wedged")
            .unwrap();
        total.add(tally);
    }
    node.kill();
    assert!(
        total.wrong.is_empty(),
        "{} answers outside the contract, the first: {:?}",
        total.wrong.len(),
        total.wrong.first()
    );
    assert!(total.applied > 0, "{total:?}");
    assert!(total.slowest <= BOUND, "a request took too long: {total:?}");

    let store = MongoStore::connect(MongoConfig::new(uri).with_database(&database))
        .await
        .unwrap();
    let players: Vec<OwnerId> = (0..PLAYERS).map(|n| owner(&player(n))).collect();
    let journaled = owners_replay_the_journal(&store, &players).await;
    // A 503 may hide a change that committed: at least the 201s are there.
    assert!(
        journaled >= total.applied + PLAYERS as u64,
        "every applied change is journaled: {journaled} entries, {total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_replica_set_answers_64_callers() {
    never_wedges(testkit::mongodb_uri(), 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_replica_set_answers_256_callers() {
    never_wedges(testkit::mongodb_uri(), 256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_standalone_server_answers_64_callers() {
    never_wedges(testkit::mongodb_standalone_uri(), 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_on_a_standalone_server_answers_256_callers() {
    never_wedges(testkit::mongodb_standalone_uri(), 256).await;
}
