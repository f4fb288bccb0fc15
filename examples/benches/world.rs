//! `cargo xtask bench world`: a short, small world, twice. First calm (no
//! chaos), for latency: client latency (the whole path from the game server
//! through the bus, the node's cache and its WebSocket edge to the SDK) is
//! compared with the raw propagation latency (the same change's event on a
//! bus connection) measured in the same run. Then with every chaos option,
//! for correctness: the audit must PASS. Flags after `--` replace the player
//! count and duration: `cargo xtask bench world -- 500 30`. Last, the
//! crafting economy alone (`--economy`) at 1% of the reference game's
//! (20,436 crafts, 21,823 burns), which must PASS the audit too.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use examples::world::{self, EconomyConfig, WorldConfig, WorldReport};
use testkit::bench::{GoalOp, goal};

async fn run(args: &[String]) -> anyhow::Result<WorldReport> {
    let report = world::run(WorldConfig::from_args(args)?).await?;
    println!("{report}\n");
    Ok(report)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let extra: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let players = extra.first().cloned().unwrap_or_else(|| "300".to_owned());
    let seconds = extra.get(1).cloned().unwrap_or_else(|| "30".to_owned());
    let flags = |chaos: bool| {
        let mut flags: Vec<String> = [
            "--players",
            &players,
            "--zones",
            "4",
            "--duration",
            &seconds,
            "--rate",
            "1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if chaos {
            flags.extend(["--chaos", "--chaos-every", "4"].map(str::to_owned));
        }
        flags
    };
    println!("calm world: {players} players, 4 zones, {seconds} s, SQLite + in-process bus");
    let calm = run(&flags(false)).await?;
    println!(
        "chaos world: the same with Redis and node kills, lost/duplicated/delayed events, slow clients"
    );
    let chaos = run(&flags(true)).await?;

    let ratio = calm.client_latency.p99_ms / calm.propagation_latency.p99_ms.max(1e-3);
    println!(
        "calm: {:.0} changes/s; client p99 {:.2} ms vs propagation p99 {:.2} ms: {ratio:.2}x",
        calm.changes_per_second, calm.client_latency.p99_ms, calm.propagation_latency.p99_ms
    );
    println!(
        "chaos: {:.0} changes/s; client p99 {:.2} ms; {} violations",
        chaos.changes_per_second,
        chaos.client_latency.p99_ms,
        chaos.audit.violations.len()
    );
    println!("economy: 20,436 crafts and 21,823 burns (1% of the reference game's), SQLite");
    let economy = world::run_economy(
        &WorldConfig::from_args(std::iter::empty::<String>())?,
        &EconomyConfig {
            economy: true,
            crafts: 20_436,
            burns: 21_823,
            crafters: 256,
        },
        false,
    )
    .await?;
    println!("{economy}\n");
    println!(
        "chaos: {} crafted, {} burned; economy: {:.0} crafts+burns/s",
        chaos.crafted_descriptors, chaos.burned_descriptors, economy.orders_per_second
    );
    goal(
        "world",
        "calm_audit_violations",
        calm.audit.violations.len() as f64,
        "violations",
        GoalOp::AtMost,
        0.0,
    );
    goal(
        "world",
        "chaos_audit_violations",
        chaos.audit.violations.len() as f64,
        "violations",
        GoalOp::AtMost,
        0.0,
    );
    goal(
        "world",
        "economy_audit_violations",
        economy.audit.violations.len() as f64,
        "violations",
        GoalOp::AtMost,
        0.0,
    );
    goal(
        "world",
        "calm_client_p99",
        calm.client_latency.p99_ms,
        "ms",
        GoalOp::AtMost,
        100.0,
    );
    goal(
        "world",
        "calm_client_vs_propagation_p99",
        ratio,
        "x",
        GoalOp::AtMost,
        3.0,
    );
    Ok(())
}
