//! Reporting helpers shared by every benchmark: goal lines, latency percentiles, rates, memory.
//!
//! Benchmarks are `harness = false` programs run by `cargo xtask bench`, whose
//! report is their standard output; the `GOAL` lines have one fixed format so
//! that tools and people can grep them across runs.

// This module's job is to print the benchmark report on stdout (it is the
// only part of testkit that does); everything else logs through panics.
#![allow(clippy::print_stdout)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Which side of its target a figure must be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalOp {
    /// The figure passes when it is `>=` the target (throughput, ratios to beat).
    AtLeast,
    /// The figure passes when it is `<=` the target (latency, memory).
    AtMost,
}

impl GoalOp {
    fn holds(self, value: f64, target: f64) -> bool {
        match self {
            GoalOp::AtLeast => value >= target,
            GoalOp::AtMost => value <= target,
        }
    }
}

impl fmt::Display for GoalOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoalOp::AtLeast => ">=",
            GoalOp::AtMost => "<=",
        })
    }
}

/// Prints `GOAL <name>/<figure>: <value> <unit> (goal <op> <target>) PASS|MISS`
/// and returns whether the goal is met.
///
/// ```
/// use testkit::bench::{goal, GoalOp};
///
/// assert!(goal("store", "apply_ratio", 1.84, "x", GoalOp::AtLeast, 1.5));
/// ```
pub fn goal(name: &str, figure: &str, value: f64, unit: &str, op: GoalOp, target: f64) -> bool {
    let pass = op.holds(value, target);
    println!("{}", goal_line(name, figure, value, unit, op, target, pass));
    pass
}

fn goal_line(
    name: &str,
    figure: &str,
    value: f64,
    unit: &str,
    op: GoalOp,
    target: f64,
    pass: bool,
) -> String {
    let verdict = if pass { "PASS" } else { "MISS" };
    format!(
        "GOAL {name}/{figure}: {} {unit} (goal {op} {}) {verdict}",
        format_figure(value),
        format_figure(target)
    )
}

/// About three significant digits, but never rounding away integer digits:
/// `17234`, `123`, `12.3`, `1.23`, `0.0123`.
pub fn format_figure(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor();
    // The cast is exact: a small whole number, clamped to be non-negative.
    let decimals = (2.0 - magnitude).clamp(0.0, 12.0) as usize;
    format!("{value:.decimals$}")
}

/// A count from the environment variable `name` (a benchmark's scale), or
/// `default` when it is unset or not a number.
#[must_use]
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Operations per second.
pub fn rate(ops: u64, elapsed: Duration) -> f64 {
    // Precision loss above 2^53 operations is irrelevant for a rate.
    ops as f64 / elapsed.as_secs_f64()
}

/// The resident set size of this process (`VmRSS` in `/proc/self/status`),
/// or `None` where that file does not exist.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// The resident set size of process `pid` (`VmRSS` in `/proc/<pid>/status`),
/// or `None` if it is gone or that file does not exist.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The peak resident set size of process `pid` so far (`VmHWM` in
/// `/proc/<pid>/status`), or `None` if it is gone or that file does not
/// exist. Poll it while the process runs: it is gone with the process.
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM:")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_status_kib(status, "VmRSS:")
}

/// A `<field> <n> kB` line of a `/proc` status file, in bytes.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix(field))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The release binary `name` beside the running benchmark
/// (`target/release/deps/<bench>-…` → `target/release/<name>`), or the path
/// in the environment variable `override_var` when it is set.
///
/// # Panics
///
/// When the binary is missing: the message says how to build it (`cargo
/// xtask bench` builds a benchmark's binaries first).
#[must_use]
pub fn release_binary(name: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running benchmark's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("a target dir");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --bin {name}` (cargo xtask bench does), or set {override_var}",
        path.display()
    );
    path
}

/// Records latencies and reports p50, p99 and max.
///
/// Backed by an HDR histogram (3 significant digits, nanosecond resolution),
/// so millions of samples cost a few kilobytes. Give each thread its own
/// recorder and [`merge`](LatencyRecorder::merge) them at the end.
#[derive(Clone, Debug)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            histogram: Histogram::new(3).expect("3 significant digits is a valid precision"),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        // The histogram grows as needed, so recording fails only beyond its
        // absolute limit (centuries); keep such a sample at the maximum.
        if self.histogram.record(nanos).is_err() {
            self.histogram.saturating_record(nanos);
        }
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        self.histogram
            .add(&other.histogram)
            .expect("auto-resizing histograms always merge");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0.0 to 1.0); zero when nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.histogram.max())
    }

    /// Prints `LATENCY <name>/<figure>: n=<count> p50=<µs> p99=<µs> max=<µs>`.
    pub fn report(&self, name: &str, figure: &str) {
        println!("{}", self.report_line(name, figure));
    }

    fn report_line(&self, name: &str, figure: &str) -> String {
        let micros = |latency: Duration| format_figure(latency.as_secs_f64() * 1e6);
        format!(
            "LATENCY {name}/{figure}: n={} p50={} us p99={} us max={} us",
            self.count(),
            micros(self.p50()),
            micros(self.p99()),
            micros(self.max())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goal_lines_have_the_fixed_format() {
        let check = |value, op, target, pass, expected: &str| {
            assert_eq!(
                goal_line("store", "apply", value, "ops/s", op, target, pass),
                expected
            );
        };
        check(
            17234.4,
            GoalOp::AtLeast,
            10000.0,
            true,
            "GOAL store/apply: 17234 ops/s (goal >= 10000) PASS",
        );
        check(
            1.234,
            GoalOp::AtMost,
            1.0,
            false,
            "GOAL store/apply: 1.23 ops/s (goal <= 1.00) MISS",
        );
        assert!(GoalOp::AtLeast.holds(2.0, 2.0));
        assert!(!GoalOp::AtMost.holds(2.1, 2.0));
    }

    #[test]
    fn figures_keep_about_three_significant_digits() {
        for (value, expected) in [
            (0.0, "0"),
            (0.012345, "0.0123"),
            (1.2345, "1.23"),
            (12.345, "12.3"),
            (123.45, "123"),
            (17234.4, "17234"),
            (-5.5, "-5.50"),
        ] {
            assert_eq!(format_figure(value), expected, "{value}");
        }
    }

    #[test]
    fn rates_and_rss() {
        assert!((rate(500, Duration::from_millis(250)) - 2000.0).abs() < 1e-9);
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_bytes().is_some_and(|rss| rss > 0));
        assert_eq!(rss_of(std::process::id()).map(|rss| rss > 0), Some(true));
    }

    #[test]
    fn latency_percentiles_merge_across_recorders() {
        let mut first = LatencyRecorder::new();
        let mut second = LatencyRecorder::new();
        for micros in 1..=100 {
            first.record(Duration::from_micros(micros));
            second.record(Duration::from_micros(micros + 100));
        }
        first.merge(&second);
        assert_eq!(first.count(), 200);
        let near = |actual: Duration, micros: u64| {
            actual.abs_diff(Duration::from_micros(micros)) <= Duration::from_micros(1)
        };
        assert!(near(first.p50(), 100), "{:?}", first.p50());
        assert!(near(first.p99(), 198), "{:?}", first.p99());
        assert!(near(first.max(), 200), "{:?}", first.max());
        assert!(
            first
                .report_line("store", "apply")
                .starts_with("LATENCY store/apply: n=200 p50=100 us")
        );
    }
}
