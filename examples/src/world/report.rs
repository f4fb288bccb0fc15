//! The world's final report: what ran, how fast, how late, what chaos did,
//! and the audit's verdict.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::audit::AuditReport;

/// Latency quantiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quantiles {
    /// Samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Quantiles {
    pub(crate) fn of(recorder: &testkit::bench::LatencyRecorder) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Self {
            samples: recorder.count(),
            p50_ms: ms(recorder.p50()),
            p99_ms: ms(recorder.p99()),
            max_ms: ms(recorder.max()),
        }
    }
}

impl fmt::Display for Quantiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} samples)",
            self.p50_ms, self.p99_ms, self.max_ms, self.samples
        )
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorldReport {
    /// Simulated players (each with an SDK client).
    pub players: usize,
    /// Zone nodes.
    pub zones: usize,
    /// The store and bus used.
    pub backend: String,
    /// Seconds of simulated play.
    pub seconds: f64,
    /// Changes applied (acknowledged, retries not counted).
    pub changes: u64,
    /// `changes / seconds`.
    pub changes_per_second: f64,
    /// Actions by kind, refusals and retries.
    pub actions: BTreeMap<String, u64>,
    /// Descriptors crafted.
    pub crafted_descriptors: u64,
    /// Descriptors burned.
    pub burned_descriptors: u64,
    /// From the start of a change to its event on a bus connection.
    pub propagation_latency: Quantiles,
    /// From the start of a change to the player's client showing it.
    pub client_latency: Quantiles,
    /// Events or deltas discarded as already seen by the nodes' caches.
    pub duplicates_discarded: u64,
    /// Version gaps detected by the nodes' caches.
    pub gaps: u64,
    /// Player caches loaded from the store (first hydrations included).
    pub rehydrations: u64,
    /// Client hellos answered with the missed deltas (resumes).
    pub resumes: u64,
    /// Client sessions re-established by the SDK after a lost connection.
    pub client_reconnects: u64,
    /// Clients the nodes cut off for being slow.
    pub slow_client_disconnects: u64,
    /// Publishes that failed (Redis down).
    pub publish_failures: u64,
    /// Chaos events by kind.
    pub chaos: BTreeMap<String, u64>,
    /// Resident memory at the end, MiB.
    pub rss_mib: f64,
    /// The audit.
    pub audit: AuditReport,
}

impl fmt::Display for WorldReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "world: {} players over {} zones on {}, {:.1} s",
            self.players, self.zones, self.backend, self.seconds
        )?;
        writeln!(
            f,
            "changes: {} ({:.0}/s); actions {:?}",
            self.changes, self.changes_per_second, self.actions
        )?;
        writeln!(
            f,
            "descriptors: {} crafted, {} burned",
            self.crafted_descriptors, self.burned_descriptors
        )?;
        writeln!(f, "propagation latency: {}", self.propagation_latency)?;
        writeln!(f, "client latency: {}", self.client_latency)?;
        writeln!(
            f,
            "caches: {} duplicates discarded, {} gaps, {} re-hydrations; {} resumes, {} client reconnects, {} slow clients cut off, {} failed publishes",
            self.duplicates_discarded,
            self.gaps,
            self.rehydrations,
            self.resumes,
            self.client_reconnects,
            self.slow_client_disconnects,
            self.publish_failures
        )?;
        writeln!(f, "chaos: {:?}", self.chaos)?;
        writeln!(f, "memory: {:.0} MiB resident", self.rss_mib)?;
        write!(f, "{}", self.audit)
    }
}
