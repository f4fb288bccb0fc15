//! `cargo xtask`: the project's multi-step jobs (test harness, benchmarks,
//! wasm build, the node with its page).

// A command-line tool whose output is its interface: progress and summaries
// go to the terminal directly, not through a logging framework.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod fuzz;
mod install;
mod job;
mod node;
mod test;
mod tidy;
mod wasm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the tests need, start their servers, lint, and run every test.
    Test(test::TestArgs),
    /// Run a benchmark (or `all`) and save its report to target/bench-<name>.txt.
    Bench(bench::BenchArgs),
    /// Build the release npm packages of sdk-wasm into target/npm/{web,bundler}.
    Wasm(wasm::WasmArgs),
    /// Build the browser SDK's web package and run the zone node with its live page (the demo binary).
    Node(node::NodeArgs),
    /// Fuzz the node's and the descriptor service's HTTP APIs from their OpenAPI documents (schemathesis), as `test` does.
    FuzzApi,
}

fn main() -> ExitCode {
    let root = workspace_root();
    let result = match Cli::parse().command {
        Command::Test(args) => test::run(&root, &args),
        Command::Bench(args) => bench::run(&root, &args),
        Command::Wasm(args) => wasm::run(&root, &args),
        Command::Node(args) => node::run(&root, &args),
        Command::FuzzApi => install::ensure_schemathesis(&root).and_then(|()| fuzz::run(&root)),
    };
    // The error chain is the message; a backtrace of xtask itself never helps.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's own manifest sits one level below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_owned()
}

/// `$CARGO_TARGET_DIR` (relative to the workspace) or `<workspace>/target`.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}
