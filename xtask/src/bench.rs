//! `cargo xtask bench`: run the named benchmarks, streaming their report and saving it under target/.
//!
//! Benchmarks are `harness = false` programs that start the servers they need
//! themselves (through testkit) and print `GOAL` lines (`testkit::bench::goal`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;

use crate::job::{self, cargo, display};
use crate::{install, target_dir, wasm};

/// A benchmark `cargo xtask bench <name>` knows how to run.
#[derive(Debug)]
struct Bench {
    name: &'static str,
    package: &'static str,
    /// The `[[bench]]` target in the package's manifest.
    target: &'static str,
    features: &'static [&'static str],
    /// Whether it measures the wasm release bundle, which is built first and
    /// named in `SDK_WASM_BUNDLE`.
    needs_wasm_bundle: bool,
    /// Release binaries it starts, built first (`cargo build --release -p`).
    binaries: &'static [&'static str],
}

impl Bench {
    /// `cargo bench` for this benchmark, with `bench_args` for the program.
    fn command(&self, bench_args: &[String]) -> Command {
        let mut command = cargo();
        command.args(["bench", "-p", self.package, "--bench", self.target]);
        if !self.features.is_empty() {
            command.args(["--features", &self.features.join(",")]);
        }
        if !bench_args.is_empty() {
            command.arg("--").args(bench_args);
        }
        command
    }
}

/// One line per benchmark.
const BENCHES: &[Bench] = &[
    Bench {
        name: "store",
        package: "inventory-core",
        target: "store",
        features: &["sqlite"],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "mongo",
        package: "inventory-core",
        target: "mongo",
        features: &["mongodb"],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "propagation",
        package: "inventory-core",
        target: "propagation",
        features: &["redis", "test-util"],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "wasm",
        package: "sdk-wasm",
        target: "wasm",
        features: &[],
        needs_wasm_bundle: true,
        binaries: &[],
    },
    Bench {
        name: "world",
        package: "examples",
        target: "world",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "descriptors",
        package: "descriptor-service",
        target: "descriptors",
        features: &["sqlite", "mongodb"],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "edge",
        package: "inventory-service",
        target: "edge",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "seams",
        package: "inventory-service",
        target: "seams",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "capacity",
        package: "examples",
        target: "capacity",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &["inventory-service"],
    },
    Bench {
        name: "gameserver",
        package: "inventory-service",
        target: "gameserver",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &[],
    },
    Bench {
        name: "tools",
        package: "examples",
        target: "tools",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &["descriptor-service"],
    },
    Bench {
        name: "support",
        package: "examples",
        target: "support",
        features: &[],
        needs_wasm_bundle: false,
        binaries: &[],
    },
];

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The benchmark to run, or `all` to run each in turn.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the benchmarks.
    #[arg(long)]
    list: bool,
    /// Passed to the benchmark program.
    #[arg(last = true)]
    bench_args: Vec<String>,
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    if args.list {
        for bench in BENCHES {
            println!("{:<12} {}", bench.name, display(&bench.command(&[])));
        }
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    if name == "all" {
        return run_all(root, &args.bench_args);
    }
    let Some(bench) = BENCHES.iter().find(|bench| bench.name == name) else {
        let known: Vec<_> = BENCHES.iter().map(|bench| bench.name).collect();
        bail!(
            "no benchmark named `{name}`; known: {}, all",
            known.join(", ")
        );
    };
    run_one(root, bench, &args.bench_args).map(|_| ())
}

/// Runs every benchmark even if one fails, then lists the goals of all.
fn run_all(root: &Path, bench_args: &[String]) -> Result<()> {
    let mut goals = Vec::new();
    let mut failed = Vec::new();
    for bench in BENCHES {
        match run_one(root, bench, bench_args) {
            Ok(report) => goals.extend(
                report
                    .lines()
                    .filter(|line| line.starts_with("GOAL "))
                    .map(str::to_owned),
            ),
            Err(err) => {
                eprintln!("{err:#}");
                failed.push(bench.name);
            }
        }
    }
    println!("\nGoals of all benchmarks:");
    for goal in &goals {
        println!("  {goal}");
    }
    ensure!(
        failed.is_empty(),
        "benchmarks failed: {}",
        failed.join(", ")
    );
    Ok(())
}

/// Runs one benchmark, echoing its stdout and saving it to
/// target/bench-<name>.txt. Returns the report. Cargo's own output (stderr)
/// goes to the terminal only, so the file holds just the report.
fn run_one(root: &Path, bench: &Bench, bench_args: &[String]) -> Result<String> {
    let report_path = target_dir(root).join(format!("bench-{}.txt", bench.name));
    let mut command = bench.command(bench_args);
    command.current_dir(root).stdout(Stdio::piped());
    for package in bench.binaries {
        let mut build = cargo();
        build
            .args(["build", "--release", "-p", package])
            .current_dir(root);
        job::run(&mut build)?;
    }
    if bench.needs_wasm_bundle {
        install::ensure_wasm_tools(root)?;
        let bundle = wasm::build(root, wasm::TARGETS, wasm::Optimize::WasmOpt)?;
        command.env("SDK_WASM_BUNDLE", &bundle.dirs[0]);
    }
    let shown = display(&command);
    eprintln!("\n==> bench {}\n$ {shown}", bench.name);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let stdout = child.stdout.take().context("the child's stdout is piped")?;

    std::fs::create_dir_all(report_path.parent().unwrap_or(root))?;
    let mut file = File::create(&report_path)
        .with_context(|| format!("cannot create {}", report_path.display()))?;
    let mut report = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read the benchmark's output")?;
        println!("{line}");
        writeln!(file, "{line}")?;
        report.push_str(&line);
        report.push('\n');
    }
    let status = child.wait()?;
    ensure!(
        status.success(),
        "benchmark `{}` failed ({status}): `{shown}`",
        bench.name
    );
    eprintln!("report saved to {}", report_path.display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_names_are_unique_and_leave_all_free() {
        let mut names: Vec<_> = BENCHES.iter().map(|bench| bench.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BENCHES.len());
        assert!(!names.contains(&"all"));
    }
}
