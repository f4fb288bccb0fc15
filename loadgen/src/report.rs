//! What one loadgen process measured, and the sum of several.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to three
/// significant digits.
const MAX_LATENCY_MICROS: u64 = 600_000_000;

/// A latency histogram that serializes as its recorded values.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(
            Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)
                .unwrap_or_else(|_| unreachable!("the bounds are valid")),
        )
    }
}

impl Latencies {
    /// Records one latency (clamped into the histogram's range).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0
            .saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many latencies were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0 to 1); zero when nothing was recorded.
    #[must_use]
    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(quantile))
    }
}

impl Serialize for Latencies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let values: Vec<(u64, u64)> = self
            .0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        values.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Latencies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<(u64, u64)>::deserialize(deserializer)?;
        let mut latencies = Self::default();
        for (value, count) in values {
            latencies
                .0
                .record_n(value.clamp(1, MAX_LATENCY_MICROS), count)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(latencies)
    }
}

/// What one loadgen process measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// Client sessions that were welcomed.
    pub sessions: u64,
    /// Deltas received that were the next version of their owner.
    pub deltas: u64,
    /// Deltas for a version already held (repeats).
    pub duplicates: u64,
    /// Deltas that skipped versions (the node then resyncs with a snapshot).
    pub gaps: u64,
    /// Snapshot messages received (one per welcome, more after gaps).
    pub snapshots: u64,
    /// Connections lost and opened again.
    pub reconnects: u64,
    /// Changes the traffic sent that were applied.
    pub applied: u64,
    /// Changes the node refused by a guard (not enough items): expected.
    pub refused: u64,
    /// Everything else that went wrong, by error code (or transport error).
    pub errors: BTreeMap<String, u64>,
    /// From each change's making to a client holding its delta.
    pub delta_latency: Latencies,
    /// From sending a change to its HTTP answer.
    pub http_latency: Latencies,
    /// How long the measured phase lasted.
    pub elapsed_secs: f64,
    /// The process's own CPU time (user and system) over the whole run.
    pub cpu_secs: f64,
    /// The process's peak resident memory.
    pub peak_rss_bytes: u64,
    /// With `--keep-versions`: the version each session held of each of its
    /// owners at the end.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, u64>,
}

impl Report {
    /// Counts one error.
    pub fn error(&mut self, code: impl Into<String>) {
        *self.errors.entry(code.into()).or_insert(0) += 1;
    }

    /// Adds `other` to this report: counts and latencies add, the elapsed
    /// time is the longest, CPU adds up, peak memory is the largest.
    pub fn merge(&mut self, other: &Self) {
        self.sessions += other.sessions;
        self.deltas += other.deltas;
        self.duplicates += other.duplicates;
        self.gaps += other.gaps;
        self.snapshots += other.snapshots;
        self.reconnects += other.reconnects;
        self.applied += other.applied;
        self.refused += other.refused;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_insert(0) += n;
        }
        self.delta_latency.merge(&other.delta_latency);
        self.http_latency.merge(&other.http_latency);
        self.elapsed_secs = self.elapsed_secs.max(other.elapsed_secs);
        self.cpu_secs += other.cpu_secs;
        self.peak_rss_bytes = self.peak_rss_bytes.max(other.peak_rss_bytes);
        self.versions
            .extend(other.versions.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// Records this process's CPU time and peak memory so far.
    pub fn record_process(&mut self) {
        let (cpu, rss) = process_usage();
        self.cpu_secs = cpu;
        self.peak_rss_bytes = rss;
    }

    /// The figures people read.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let per_sec = |n: u64| {
            if self.elapsed_secs > 0.0 {
                n as f64 / self.elapsed_secs
            } else {
                0.0
            }
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Summary {
            sessions: self.sessions,
            deltas_per_sec: per_sec(self.deltas),
            applied_per_sec: per_sec(self.applied),
            delta_p50_ms: ms(self.delta_latency.quantile(0.5)),
            delta_p99_ms: ms(self.delta_latency.quantile(0.99)),
            delta_p999_ms: ms(self.delta_latency.quantile(0.999)),
            http_p99_ms: ms(self.http_latency.quantile(0.99)),
            gaps: self.gaps,
            duplicates: self.duplicates,
            errors: self.errors.values().sum(),
            cpu_secs: self.cpu_secs,
        }
    }
}

/// The headline figures of a report.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Client sessions welcomed.
    pub sessions: u64,
    /// Deltas delivered per second.
    pub deltas_per_sec: f64,
    /// Changes applied per second.
    pub applied_per_sec: f64,
    /// Change-to-client latency, median.
    pub delta_p50_ms: f64,
    /// Change-to-client latency, 99th percentile.
    pub delta_p99_ms: f64,
    /// Change-to-client latency, 99.9th percentile.
    pub delta_p999_ms: f64,
    /// HTTP answer latency of the changes, 99th percentile.
    pub http_p99_ms: f64,
    /// Deltas that skipped versions.
    pub gaps: u64,
    /// Deltas received twice.
    pub duplicates: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// The load's own CPU time.
    pub cpu_secs: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sessions {} | deltas {:.0}/s p50 {:.1} ms p99 {:.1} ms p999 {:.1} ms | applied {:.0}/s http p99 {:.1} ms | gaps {} duplicates {} errors {} | load CPU {:.1} s",
            self.sessions,
            self.deltas_per_sec,
            self.delta_p50_ms,
            self.delta_p99_ms,
            self.delta_p999_ms,
            self.applied_per_sec,
            self.http_p99_ms,
            self.gaps,
            self.duplicates,
            self.errors,
            self.cpu_secs
        )
    }
}

/// This process's CPU seconds (user + system) and peak resident bytes, from
/// `/proc/self` (Linux; zeros elsewhere).
#[must_use]
pub fn process_usage() -> (f64, u64) {
    process_usage_of("self")
}

/// The same for process `pid` (`"self"` or a number).
#[must_use]
pub fn process_usage_of(pid: &str) -> (f64, u64) {
    // The kernel's USER_HZ: 100 on every Linux architecture we run on.
    const TICKS_PER_SEC: f64 = 100.0;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which may hold spaces.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / TICKS_PER_SEC)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    (cpu, rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_json_and_merge() {
        let mut a = Report {
            deltas: 3,
            ..Report::default()
        };
        a.error("unavailable");
        for ms in [1, 2, 3] {
            a.delta_latency.record(Duration::from_millis(ms));
        }
        let mut b: Report = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(b.delta_latency.count(), 3);
        b.merge(&a);
        assert_eq!(b.deltas, 6);
        assert_eq!(b.errors["unavailable"], 2);
        assert_eq!(b.delta_latency.count(), 6);
        let p99 = b.delta_latency.quantile(0.99);
        assert!(p99 >= Duration::from_micros(2_990) && p99 <= Duration::from_micros(3_010));
    }

    #[test]
    fn this_process_uses_some_memory() {
        let (_, rss) = process_usage();
        assert!(rss > 0);
    }
}
