//! A tiny game server loop on `sdk::GameServerClient`: each tick, players
//! loot, drink a potion, trade and craft, against a zone node.
//!
//! ```sh
//! cargo xtask node -- --service-token dev-service-token-0123
//! cargo run -p examples --bin game_server -- --token dev-service-token-0123
//! ```
//!
//! Every write carries a fresh change id; the client retries an unknown
//! outcome with the same change, so a tick never loots twice. A refusal (a
//! potion the player does not have) is a game event, not a failure.

// What the game does is this program's output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use protocol::{Change, ChangeId, CraftOrder, ItemId, OwnerId, Quantity, UserId, ZoneId};
use sdk::GameServerClient;

#[derive(Debug, Parser)]
struct Args {
    /// The zone node's base URL.
    #[arg(long, env = "INVENTORY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The node's service token (`--service-token` of the node).
    #[arg(long, env = "INVENTORY_SERVICE_TOKEN")]
    token: String,
    /// Ticks to play.
    #[arg(long, default_value_t = 5)]
    ticks: u32,
    /// Pause between ticks, in milliseconds.
    #[arg(long, default_value_t = 200)]
    tick_ms: u64,
}

/// Now, in milliseconds since the Unix epoch: a crafted item's creation
/// time.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn id(value: &str) -> anyhow::Result<ItemId> {
    Ok(ItemId::parse(value)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let node = GameServerClient::builder(&args.url, &args.token).build()?;
    let zone = ZoneId::parse("forest")?;
    let (alice_user, bob_user) = (UserId::parse("alice")?, UserId::parse("bob")?);
    let (alice, bob) = (
        OwnerId::account(alice_user.clone()),
        OwnerId::account(bob_user.clone()),
    );
    for user in [&alice_user, &bob_user] {
        node.join(&zone, user).await.context("joining the zone")?;
    }
    let one = Quantity::new(1)?;
    for tick in 0..args.ticks {
        // Loot: a wolf drops wood and a potion for alice, iron for bob.
        let loot = Change::new(ChangeId::random())
            .grant(alice.clone(), id("wood")?, Quantity::new(3)?)
            .grant(alice.clone(), id("potion")?, one)
            .grant(bob.clone(), id("iron")?, Quantity::new(2)?);
        node.apply(&loot).await.context("loot")?;
        // Consume: alice drinks a potion; refused if she has none.
        let drink = Change::new(ChangeId::random()).consume(alice.clone(), id("potion")?, one);
        match node.apply(&drink).await {
            Ok(_) => println!("tick {tick}: alice drinks a potion"),
            Err(refused) if !refused.is_retryable() => {
                println!("tick {tick}: alice has no potion ({})", refused.code());
            }
            Err(unknown) => return Err(unknown).context("drink"),
        }
        // Trade: alice's wood for bob's iron, both sides or neither.
        let trade = Change::trade(
            ChangeId::random(),
            (alice.clone(), &[(id("wood")?, Quantity::new(2)?)]),
            (bob.clone(), &[(id("iron")?, one)]),
        );
        node.apply(&trade).await.context("trade")?;
        // Craft: alice turns her last wood into a unique shield; retried
        // after an unknown outcome, the same order makes the same shield.
        let shield = CraftOrder::new(
            ChangeId::random(),
            alice.clone(),
            "Wooden Shield",
            [(id("wood")?, one)],
            unix_millis(),
        );
        node.craft(&shield).await.context("craft")?;
        println!("tick {tick}: alice crafts {}", shield.descriptor.id);
        tokio::time::sleep(Duration::from_millis(args.tick_ms)).await;
    }
    for (name, owner) in [("alice", &alice), ("bob", &bob)] {
        let snapshot = node.load(owner).await?;
        let items: Vec<String> = snapshot
            .items
            .iter()
            .map(|(item, qty)| format!("{item} {qty}"))
            .collect();
        println!(
            "{name} at version {}: {}",
            snapshot.version.get(),
            items.join(", ")
        );
    }
    for user in [&alice_user, &bob_user] {
        node.leave(&zone, user).await.context("leaving the zone")?;
    }
    Ok(())
}
