//! The world simulation: zone nodes, a descriptor service, a shared store and
//! bus, and thousands of players connected through the SDK, with optional
//! chaos; ends with a report and the audit's verdict (exit code 1 on FAIL).
//! With `--economy`, the crafting economy alone at full speed instead (see
//! `examples::world::EconomyConfig`).
//!
//! ```text
//! cargo run --release -p examples --bin world -- --players 2000 --zones 8 --duration 60 --chaos
//! cargo run --release -p examples --bin world -- --economy --crafts 2043630 --burns 2182348
//! ```

#![allow(clippy::print_stdout, reason = "the report goes to stdout")]

use clap::Parser;
use examples::world::{self, EconomyConfig, WorldConfig};

/// Run a world and audit it: chaos, the economy and the audit. It runs
/// every part in one process, so its latencies are not a capacity figure:
/// capacity is measured by `loadgen` (separate processes beside node
/// processes; `cargo xtask bench capacity`).
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    world: WorldConfig,
    #[command(flatten)]
    economy: EconomyConfig,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    args.world.progress = !args.json;
    let passed = if args.economy.economy {
        let report = world::run_economy(&args.world, &args.economy, !args.json).await?;
        print(&report, args.json)?;
        report.audit.passed()
    } else {
        let report = world::run(args.world).await?;
        print(&report, args.json)?;
        report.audit.passed()
    };
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

fn print<R: std::fmt::Display + serde::Serialize>(report: &R, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
