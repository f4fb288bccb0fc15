//! `cargo xtask bench gameserver`: what the game servers' contract costs,
//! against baselines measured in the same run, on a node process over SQLite
//! (the embedded default: in-process bus, no servers to install):
//!
//! 1. **client**: changes per second through `sdk::GameServerClient::apply`
//!    (local validation, typed answers, retry machinery) from 32 concurrent
//!    callers, against raw `reqwest` posting the same JSON with the same
//!    pooled client settings and only checking the status
//!    (`client_over_raw_http`). The two alternate in rounds so that neither
//!    gets the quieter half of the run.
//! 2. **craft**: crafts per second through `POST /v1/crafts` (the node
//!    process, its embedded descriptor service; `GameServerClient::craft`)
//!    against `inventory_core::crafting::craft` in this process over the same
//!    kind of stack (an inventory on SQLite, the descriptor service in
//!    process on SQLite), 32 callers each (`craft_http_over_inprocess`).
//!
//! Environment: `GAMESERVER_ROUND_SECONDS` (default 5; 4 rounds of each way
//! for the client, 2 for crafts).

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inventory_core::crafting;
use inventory_core::{Inventory, SqliteConfig, SqliteStore};
use inventory_service::registry::InProcessRegistry;
use protocol::{Change, ChangeId, CraftOrder, ItemId, OwnerId, Quantity, UserId};
use sdk::GameServerClient;
use testkit::NodeProcess;
use testkit::bench::{GoalOp, goal, rate};

const NAME: &str = "gameserver";
const SERVICE_TOKEN: &str = "gameserver-bench-service-token";
const JWT_SECRET: &str = "gameserver-bench-jwt-secret-0123";
const CALLERS: usize = 32;
const ROUNDS: usize = 4;

fn round_length() -> Duration {
    let seconds = std::env::var("GAMESERVER_ROUND_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(seconds)
}

/// The node binary over `dir`'s SQLite file, on its embedded defaults.
fn node_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory-service"));
    command
        .current_dir(dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("INVENTORY_JWT_SECRET", JWT_SECRET)
        .env_remove("REDIS_URL")
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL");
    command
}

/// Caller `n`'s next change: one gold to its own account, so that callers
/// never contend for a row and the figure is the path's, not the store's
/// locking.
fn loot(n: usize) -> Change {
    let owner = OwnerId::account(UserId::parse(format!("player-{n}")).expect("valid id"));
    Change::new(ChangeId::random()).grant(
        owner,
        ItemId::parse("gold").expect("valid id"),
        Quantity::new(1).expect("valid quantity"),
    )
}

/// How one caller sends a change, or crafts.
#[derive(Clone)]
enum Way {
    Client(GameServerClient),
    Raw(reqwest::Client, String),
    CraftHttp(GameServerClient),
    CraftInProcess(Inventory, Arc<InProcessRegistry>),
}

/// Caller `n`'s next craft: a sword from 3 ore and 1 wood of its account.
fn sword(n: usize) -> CraftOrder {
    let owner = OwnerId::account(UserId::parse(format!("smith-{n}")).expect("valid id"));
    CraftOrder::new(
        ChangeId::random(),
        owner,
        "Sword",
        [
            (
                ItemId::parse("ore").expect("valid id"),
                Quantity::new(3).expect("valid"),
            ),
            (
                ItemId::parse("wood").expect("valid id"),
                Quantity::new(1).expect("valid"),
            ),
        ],
        1_700_000_000_000,
    )
}

/// Enough ore and wood for every craft caller `n` can make in a run.
fn stock(n: usize) -> Change {
    let owner = OwnerId::account(UserId::parse(format!("smith-{n}")).expect("valid id"));
    let plenty = Quantity::new(100_000_000).expect("valid");
    Change::new(ChangeId::random())
        .grant(
            owner.clone(),
            ItemId::parse("ore").expect("valid id"),
            plenty,
        )
        .grant(owner, ItemId::parse("wood").expect("valid id"), plenty)
}

impl Way {
    async fn act(&self, n: usize) {
        match self {
            Self::CraftHttp(client) => {
                client.craft(&sword(n)).await.expect("crafted");
            }
            Self::CraftInProcess(inventory, registry) => {
                crafting::craft(inventory, registry.as_ref(), &sword(n))
                    .await
                    .expect("crafted");
            }
            _ => self.apply(&loot(n)).await,
        }
    }

    async fn apply(&self, change: &Change) {
        match self {
            Self::Client(client) => {
                client.apply(change).await.expect("applied");
            }
            Self::Raw(http, url) => {
                let response = http
                    .post(url)
                    .bearer_auth(SERVICE_TOKEN)
                    .json(change)
                    .send()
                    .await
                    .expect("sent");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("answered");
            }
            Self::CraftHttp(client) => {
                client.apply(change).await.expect("applied");
            }
            Self::CraftInProcess(inventory, _) => {
                inventory.apply(change.clone()).await.expect("applied");
            }
        }
    }
}

/// Changes per second from [`CALLERS`] concurrent callers over `length`.
async fn drive(way: &Way, length: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|n| {
            let (way, stop, done) = (way.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    way.act(n).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let changes = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for caller in callers {
        caller.await.expect("a caller");
    }
    rate(changes, elapsed)
}

async fn client_over_raw(base: &str) -> f64 {
    let length = round_length();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let raw = Way::Raw(http, format!("{base}/v1/changes"));
    let client = Way::Client(
        GameServerClient::builder(base, SERVICE_TOKEN)
            .build()
            .expect("a client"),
    );
    // Warm both (connections, the SQLite file) before measuring.
    drive(&raw, Duration::from_secs(1)).await;
    drive(&client, Duration::from_secs(1)).await;
    let (mut raw_total, mut client_total) = (0.0, 0.0);
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [&raw, &client]
        } else {
            [&client, &raw]
        };
        let mut rates = [0.0; 2];
        for way in order {
            let per_second = drive(way, length).await;
            let slot = usize::from(matches!(way, Way::Client(_)));
            rates[slot] = per_second;
        }
        println!(
            "gameserver: round {round}: raw reqwest {:.0} changes/s, GameServerClient {:.0} changes/s",
            rates[0], rates[1]
        );
        raw_total += rates[0];
        client_total += rates[1];
    }
    println!(
        "gameserver: mean over {ROUNDS} rounds of {} s, {CALLERS} callers: raw {:.0}/s, client {:.0}/s",
        length.as_secs(),
        raw_total / ROUNDS as f64,
        client_total / ROUNDS as f64
    );
    client_total / raw_total
}

async fn craft_http_over_inprocess(base: &str, dir: &Path) -> f64 {
    let length = round_length();
    let http = Way::CraftHttp(
        GameServerClient::builder(base, SERVICE_TOKEN)
            .build()
            .expect("a client"),
    );
    let store = SqliteStore::open(SqliteConfig::new(dir.join("in-process.db"))).expect("a store");
    let inventory = Inventory::from_arc(Arc::new(store));
    let descriptors = descriptor_service::SqliteStore::open(dir.join("in-process-descriptors.db"))
        .expect("a descriptor store");
    let registry =
        InProcessRegistry(descriptor_service::Descriptors::builder(Arc::new(descriptors)).build());
    let in_process = Way::CraftInProcess(inventory, Arc::new(registry));
    for way in [&http, &in_process] {
        for n in 0..CALLERS {
            way.apply(&stock(n)).await;
        }
        drive(way, Duration::from_secs(1)).await;
    }
    let (mut http_total, mut in_process_total) = (0.0, 0.0);
    for round in 0..ROUNDS / 2 {
        let order = if round % 2 == 0 {
            [&http, &in_process]
        } else {
            [&in_process, &http]
        };
        let mut rates = [0.0; 2];
        for way in order {
            let slot = usize::from(matches!(way, Way::CraftInProcess(..)));
            rates[slot] = drive(way, length).await;
        }
        println!(
            "gameserver: round {round}: POST /v1/crafts {:.0} crafts/s, in-process crafting::craft {:.0} crafts/s",
            rates[0], rates[1]
        );
        http_total += rates[0];
        in_process_total += rates[1];
    }
    http_total / in_process_total
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let node = NodeProcess::spawn(node_command(dir.path()));
    println!("== client: {CALLERS} callers, GameServerClient vs raw reqwest, node on SQLite");
    let ratio = runtime.block_on(client_over_raw(node.base()));
    println!("== craft: {CALLERS} callers, POST /v1/crafts vs crafting::craft in process");
    let craft_ratio = runtime.block_on(craft_http_over_inprocess(node.base(), dir.path()));
    drop(node);
    goal(
        NAME,
        "client_over_raw_http",
        ratio,
        "x",
        GoalOp::AtLeast,
        0.9,
    );
    goal(
        NAME,
        "craft_http_over_inprocess",
        craft_ratio,
        "x",
        GoalOp::AtLeast,
        0.5,
    );
}
