//! Prometheus metrics, one registry per node (several nodes live in one test
//! process), rendered as text at `/metrics`. The propagation metrics of
//! `inventory-core` are read from its snapshot at each scrape.

use std::collections::HashMap;

use inventory_core::{MetricsSnapshot, PropagationMetrics};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The node's counters and gauges. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) clients_connected: IntGauge,
    pub(crate) player_feeds: IntGauge,
    pub(crate) deltas_sent: IntCounter,
    pub(crate) bytes_sent: IntCounter,
    pub(crate) snapshots_sent: IntCounter,
    pub(crate) resumes: IntCounter,
    pub(crate) slow_client_disconnects: IntCounter,
    pub(crate) client_errors: IntCounterVec,
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
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

/// How one propagation metric is read from a snapshot, and what it is.
#[derive(Clone, Copy, Debug)]
enum Reading {
    /// A count that only grows.
    Counter(fn(&MetricsSnapshot) -> u64),
    /// A level that goes up and down.
    Gauge(fn(&MetricsSnapshot) -> i64),
}

/// The propagation metrics a node exports: name, help, reading.
const PROPAGATION: [(&str, &str, Reading); 9] = [
    (
        "events_published_total",
        "Events published (one per change and touched player)",
        Reading::Counter(|s| s.published),
    ),
    (
        "publish_failures_total",
        "Publishes that failed (caches recover by version checks)",
        Reading::Counter(|s| s.publish_failures),
    ),
    (
        "events_received_total",
        "Events received from the bus",
        Reading::Counter(|s| s.received),
    ),
    (
        "deltas_applied_total",
        "Owner deltas applied to player caches",
        Reading::Counter(|s| s.applied),
    ),
    (
        "duplicates_discarded_total",
        "Events or deltas discarded as already seen",
        Reading::Counter(|s| s.duplicates),
    ),
    (
        "gaps_detected_total",
        "Version gaps detected by player caches",
        Reading::Counter(|s| s.gaps),
    ),
    (
        "rehydrations_total",
        "Player caches loaded from the store",
        Reading::Counter(|s| s.rehydrations),
    ),
    (
        "bus_reconnects_total",
        "Bus reconnections followed by a version check",
        Reading::Counter(|s| s.reconnects),
    ),
    (
        "bus_subscriptions",
        "Player channels subscribed now",
        Reading::Gauge(|s| s.active_subscriptions),
    ),
];

/// Exports [`PROPAGATION`]: `inventory-core` counts in plain atomics and knows
/// nothing of Prometheus, so each scrape reads one snapshot and renders it
/// with the type each value has.
#[derive(Clone, Debug)]
struct PropagationCollector {
    propagation: PropagationMetrics,
    descs: Vec<Desc>,
}

impl PropagationCollector {
    fn new(propagation: PropagationMetrics) -> Self {
        let descs = PROPAGATION
            .iter()
            .map(|(name, help, _)| {
                Desc::new((*name).into(), (*help).into(), Vec::new(), HashMap::new())
                    .expect("valid metric")
            })
            .collect();
        Self { propagation, descs }
    }
}

impl Collector for PropagationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.propagation.snapshot();
        PROPAGATION
            .iter()
            .flat_map(|(name, help, reading)| match reading {
                Reading::Counter(read) => {
                    let counter = IntCounter::new(*name, *help).expect("valid metric");
                    counter.inc_by(read(&snapshot));
                    counter.collect()
                }
                Reading::Gauge(read) => {
                    let gauge = IntGauge::new(*name, *help).expect("valid metric");
                    gauge.set(read(&snapshot));
                    gauge.collect()
                }
            })
            .collect()
    }
}

impl Metrics {
    /// A fresh registry that also exports `propagation`'s metrics.
    #[must_use]
    pub fn new(propagation: PropagationMetrics) -> Self {
        let registry = Registry::new_custom(Some("inventory".into()), None).expect("valid prefix");
        register(&registry, PropagationCollector::new(propagation));
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
        }
    }

    /// Every metric in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_only_counters_are_named_total() {
        let metrics = Metrics::new(PropagationMetrics::new());
        // A labelled family is rendered once it has a series.
        metrics
            .client_errors
            .with_label_values(&["rate_limited"])
            .inc();
        let text = metrics.render();
        assert_eq!(
            testkit::check_metric_names(&text),
            PROPAGATION.len() + 8,
            "{text}"
        );
    }

    #[tokio::test]
    async fn propagation_metrics_are_read_at_each_scrape() {
        use inventory_core::{Inventory, LocalBus, MemoryStore};
        use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};

        let propagation = PropagationMetrics::new();
        let metrics = Metrics::new(propagation.clone());
        let (connection, _receiver) = LocalBus::new().connect();
        let inventory = Inventory::new(MemoryStore::new())
            .with_metrics(propagation)
            .with_bus(connection);
        let has = |text: &str, line: &str| text.lines().any(|l| l == line);
        let before = metrics.render();
        for line in [
            "# TYPE inventory_events_published_total counter",
            "inventory_events_published_total 0",
            "# TYPE inventory_bus_subscriptions gauge",
            "inventory_bus_subscriptions 0",
        ] {
            assert!(has(&before, line), "{line} missing from\n{before}");
        }
        let alice = OwnerId::account(UserId::parse("alice").unwrap());
        let wood = ItemId::parse("wood").unwrap();
        let change = Change::new(ChangeId::random()).grant(alice, wood, Quantity::new(1).unwrap());
        inventory.apply(change).await.unwrap();
        // The outbox relay publishes behind the write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let after = metrics.render();
            if has(&after, "inventory_events_published_total 1") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{after}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
