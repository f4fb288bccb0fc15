//! Prometheus metrics, one registry per node (several nodes live in one test
//! process), rendered as text at `/metrics`. The propagation counters of
//! `inventory-core` are copied in at render time.

use inventory_core::PropagationMetrics;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Reads one propagation counter from a snapshot.
type ReadCounter = fn(&inventory_core::MetricsSnapshot) -> i64;

/// The node's counters and gauges. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    propagation: PropagationMetrics,
    propagation_gauges: Vec<(IntGauge, ReadCounter)>,
    pub(crate) clients_connected: IntGauge,
    pub(crate) player_feeds: IntGauge,
    pub(crate) deltas_sent: IntCounter,
    pub(crate) bytes_sent: IntCounter,
    pub(crate) snapshots_sent: IntCounter,
    pub(crate) resumes: IntCounter,
    pub(crate) slow_client_disconnects: IntCounter,
    pub(crate) client_errors: IntCounterVec,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, IntCounter::new(name, help).expect("valid metric"))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

impl Metrics {
    /// A fresh registry that also exports `propagation`'s counters.
    #[must_use]
    pub fn new(propagation: PropagationMetrics) -> Self {
        let registry = Registry::new_custom(Some("inventory".into()), None).expect("valid prefix");
        let exported: [(&str, &str, ReadCounter); 9] = [
            (
                "events_published",
                "Events published (one per change and touched player)",
                |s| s.published as i64,
            ),
            (
                "publish_failures",
                "Publishes that failed (caches recover by version checks)",
                |s| s.publish_failures as i64,
            ),
            ("events_received", "Events received from the bus", |s| {
                s.received as i64
            }),
            (
                "deltas_applied",
                "Owner deltas applied to player caches",
                |s| s.applied as i64,
            ),
            (
                "duplicates_discarded",
                "Events or deltas discarded as already seen",
                |s| s.duplicates as i64,
            ),
            (
                "gaps_detected",
                "Version gaps detected by player caches",
                |s| s.gaps as i64,
            ),
            ("rehydrations", "Player caches loaded from the store", |s| {
                s.rehydrations as i64
            }),
            (
                "bus_reconnects",
                "Bus reconnections followed by a version check",
                |s| s.reconnects as i64,
            ),
            ("bus_subscriptions", "Player channels subscribed now", |s| {
                s.active_subscriptions
            }),
        ];
        let propagation_gauges = exported
            .into_iter()
            .map(|(name, help, read)| (gauge(&registry, name, help), read))
            .collect();
        Self {
            clients_connected: gauge(&registry, "clients_connected", "Client WebSockets open now"),
            player_feeds: gauge(
                &registry,
                "player_feeds",
                "Players with a client feed on this node",
            ),
            deltas_sent: counter(
                &registry,
                "deltas_sent_total",
                "Delta messages sent to clients",
            ),
            bytes_sent: counter(
                &registry,
                "client_bytes_sent_total",
                "Payload bytes sent to clients",
            ),
            snapshots_sent: counter(
                &registry,
                "snapshots_sent_total",
                "Snapshot messages sent to clients",
            ),
            resumes: counter(
                &registry,
                "resumes_total",
                "Hellos answered with missed deltas for at least one owner",
            ),
            slow_client_disconnects: counter(
                &registry,
                "slow_client_disconnects_total",
                "Clients disconnected because their send queue was full",
            ),
            client_errors: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("client_errors_total", "Errors answered to clients, by code"),
                    &["code"],
                )
                .expect("valid metric"),
            ),
            registry,
            propagation,
            propagation_gauges,
        }
    }

    /// Every metric in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let snapshot = self.propagation.snapshot();
        for (gauge, read) in &self.propagation_gauges {
            gauge.set(read(&snapshot));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).unwrap_or_default()
    }
}
