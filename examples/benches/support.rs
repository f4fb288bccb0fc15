//! `cargo xtask bench support`: what support staff do, each figure against
//! a raw indexed journal query (or an ordinary change) in the same run, on
//! a SQLite store in this process.
//!
//! 1. **history**: pages of 100 of an owner with 100,000 journaled changes
//!    (`Support::history`, at random depths) against the same page read by
//!    a raw SQL query over the same index on a connection of its own (rows
//!    fetched, not decoded): `history_over_raw`.
//! 2. **revert**: reverting a trade (4 stacks) against applying a trade of
//!    the same size, interleaved: `revert_over_change` (mean latency).
//! 3. **custody**: the custody of a crafted item moved 1,000 times against
//!    the raw query of its journal rows: `custody_over_raw`.
//!
//! MongoDB is not measured here (the conformance suite runs the same
//! contract on both topologies; the secantus test server's timings would
//! say little about `mongod`).
//!
//! Environment: `SUPPORT_CHANGES` (the owner's history, default 100,000),
//! `SUPPORT_MOVES` (the item's moves, default 1,000), `SUPPORT_ROUNDS`
//! (measured repetitions, default 300).

// A benchmark's report is its standard output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures::future::join_all;
use inventory_core::{
    Inventory, InventoryStore, RevertMode, SqliteConfig, SqliteStore, Support, SupportStore,
};
use protocol::{Change, ChangeId, ChangeKind, ItemId, OwnerId, Quantity, UserId, Version};
use rand::Rng;
use testkit::bench::{GoalOp, env_count, goal};

const NAME: &str = "support";
const PAGE: usize = 100;
const IN_FLIGHT: usize = 256;

const RAW_HISTORY: &str = "SELECT j.seq, j.change, j.versions, j.applied_at \
     FROM journal_owners o JOIN journal j ON j.seq = o.seq \
     WHERE o.owner = ?1 AND o.version < ?2 ORDER BY o.version DESC LIMIT ?3";
const RAW_CUSTODY: &str = "SELECT j.seq, j.change, j.versions, j.applied_at \
     FROM journal_items i JOIN journal j ON j.seq = i.seq WHERE i.item = ?1 ORDER BY i.seq";

fn owner(name: &str) -> OwnerId {
    OwnerId::account(UserId::parse(name).expect("user"))
}

fn item(name: &str) -> ItemId {
    ItemId::parse(name).expect("item")
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).expect("qty")
}

/// Raw rows of `sql`, fetched and dropped.
fn raw_rows(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> usize {
    let mut statement = conn.prepare_cached(sql).expect("prepare");
    let rows = statement
        .query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .expect("query");
    let mut fetched = 0;
    for row in rows {
        drop(row.expect("row"));
        fetched += 1;
    }
    fetched
}

fn trade(a: &OwnerId, b: &OwnerId) -> Change {
    Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("sword"), qty(1))]),
        (b.clone(), &[(item("gold"), qty(10))]),
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let changes = env_count("SUPPORT_CHANGES", 100_000);
    let moves = env_count("SUPPORT_MOVES", 1_000);
    let rounds = env_count("SUPPORT_ROUNDS", 300);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("inventory.db");
    let store = Arc::new(SqliteStore::open(SqliteConfig::new(&path))?);
    let inventory = Inventory::from_arc(store.clone() as Arc<dyn InventoryStore>);
    let support = Support::new(inventory.clone(), store.clone() as Arc<dyn SupportStore>);
    let raw = rusqlite::Connection::open(&path)?;

    // The long history: `changes` grants to one owner.
    let deep = owner("deep");
    let started = Instant::now();
    for chunk in (0..changes).collect::<Vec<_>>().chunks(IN_FLIGHT) {
        let applied = join_all(chunk.iter().map(|_| {
            inventory.apply(Change::new(ChangeId::random()).grant(
                deep.clone(),
                item("wood"),
                qty(1),
            ))
        }))
        .await;
        for result in applied {
            result?;
        }
    }
    println!(
        "loaded {changes} changes of one owner in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 1. history pages at random depths, ours and raw interleaved.
    let mut rng = rand::rng();
    let (mut ours, mut baseline) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let before = rng.random_range(PAGE as u64 + 1..=changes as u64);
        let started = Instant::now();
        let page = support
            .history(&deep, Some(Version::new(before)), PAGE)
            .await?;
        ours += started.elapsed();
        ensure!(page.entries.len() == PAGE, "a full page");
        let started = Instant::now();
        let rows = raw_rows(
            &raw,
            RAW_HISTORY,
            rusqlite::params![deep.to_string(), before as i64, PAGE as i64],
        );
        baseline += started.elapsed();
        ensure!(rows == PAGE, "a full raw page");
    }
    let history_ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    println!(
        "history: {:.3} ms a page, raw {:.3} ms",
        ours.as_secs_f64() * 1e3 / rounds as f64,
        baseline.as_secs_f64() * 1e3 / rounds as f64
    );

    // 2. reverts of trades against trades of the same size.
    let (a, b) = (owner("trader-a"), owner("trader-b"));
    inventory
        .apply(
            Change::new(ChangeId::random())
                .grant(a.clone(), item("sword"), qty(1_000_000))
                .grant(b.clone(), item("gold"), qty(1_000_000)),
        )
        .await?;
    let (mut reverts, mut trades) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let change = trade(&a, &b);
        let started = Instant::now();
        let applied = inventory.apply(change).await?;
        trades += started.elapsed();
        let started = Instant::now();
        let outcome = support
            .revert(
                applied.event.change_id,
                ChangeId::random(),
                RevertMode::Whole,
                true,
            )
            .await?;
        reverts += started.elapsed();
        ensure!(outcome.applied.is_some(), "reverted");
    }
    let revert_ratio = reverts.as_secs_f64() / trades.as_secs_f64();
    println!(
        "revert: {:.3} ms, trade {:.3} ms",
        reverts.as_secs_f64() * 1e3 / rounds as f64,
        trades.as_secs_f64() * 1e3 / rounds as f64
    );

    // 3. custody of an item moved `moves` times.
    let craft_id = ChangeId::random();
    let relic = protocol::crafted_item_id(craft_id);
    inventory
        .apply(Change::new(craft_id).with_kind(ChangeKind::Craft).grant(
            a.clone(),
            relic.clone(),
            qty(1),
        ))
        .await?;
    for n in 0..moves {
        let (from, to) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        inventory
            .apply(Change::trade(
                ChangeId::random(),
                (from.clone(), &[(relic.clone(), qty(1))]),
                (to.clone(), &[]),
            ))
            .await?;
    }
    let custody_rounds = (rounds / 10).max(10);
    let (mut ours, mut baseline) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..custody_rounds {
        let started = Instant::now();
        let custody = support.custody(&relic).await?.expect("moved");
        ours += started.elapsed();
        ensure!(custody.steps.len() == moves + 1, "every move");
        let started = Instant::now();
        let rows = raw_rows(&raw, RAW_CUSTODY, [relic.as_str()]);
        baseline += started.elapsed();
        ensure!(rows == moves + 1, "every raw row");
    }
    let custody_ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    println!(
        "custody: {:.2} ms, raw {:.2} ms",
        ours.as_secs_f64() * 1e3 / custody_rounds as f64,
        baseline.as_secs_f64() * 1e3 / custody_rounds as f64
    );

    goal(
        NAME,
        "history_over_raw",
        history_ratio,
        "x",
        GoalOp::AtMost,
        2.0,
    );
    goal(
        NAME,
        "revert_over_change",
        revert_ratio,
        "x",
        GoalOp::AtMost,
        2.0,
    );
    goal(
        NAME,
        "custody_over_raw",
        custody_ratio,
        "x",
        GoalOp::AtMost,
        2.0,
    );
    Ok(())
}
