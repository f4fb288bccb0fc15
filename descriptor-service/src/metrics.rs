//! Prometheus metrics, one registry per service instance (so several
//! instances can live in one process, as they do in tests).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The service's counters and histograms.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) cache_hits: IntCounter,
    pub(crate) negative_hits: IntCounter,
    pub(crate) cache_misses: IntCounter,
    pub(crate) store_queries: IntCounterVec,
    pub(crate) batch_size: Histogram,
    /// Only the HTTP adapter has requests to time.
    #[cfg(feature = "http")]
    pub(crate) request_seconds: prometheus::HistogramVec,
    pub(crate) invalidations: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(counter.clone()))
        .expect("metric registered once");
    counter
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("descriptors".into()), None).expect("valid prefix");
        let store_queries = IntCounterVec::new(
            Opts::new("store_queries_total", "Store queries, by operation"),
            &["op"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("batch_ids", "Distinct ids per batch get")
                .buckets(vec![1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
        )
        .expect("valid metric");
        #[cfg(feature = "http")]
        let request_seconds = prometheus::HistogramVec::new(
            HistogramOpts::new("request_seconds", "Request latency, by route").buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                1.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let invalidations = IntCounterVec::new(
            Opts::new(
                "invalidations_total",
                "Cache invalidations, by origin (local or remote)",
            ),
            &["origin"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(store_queries.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(batch_size.clone()),
            Box::new(invalidations.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        #[cfg(feature = "http")]
        registry
            .register(Box::new(request_seconds.clone()))
            .expect("metric registered once");
        Self {
            cache_hits: counter(&registry, "cache_hits_total", "Ids answered from the cache"),
            negative_hits: counter(
                &registry,
                "negative_cache_hits_total",
                "Ids answered missing or burned from the negative cache",
            ),
            cache_misses: counter(
                &registry,
                "cache_misses_total",
                "Ids fetched from the store",
            ),
            registry,
            store_queries,
            batch_size,
            #[cfg(feature = "http")]
            request_seconds,
            invalidations,
        }
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("Prometheus text is UTF-8")
    }

    /// How many read queries the store has answered (`get_many` calls).
    #[must_use]
    pub fn store_reads(&self) -> u64 {
        self.store_queries.with_label_values(&["get_many"]).get()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_only_counters_are_named_total() {
        let metrics = Metrics::new();
        // A labelled family is rendered once it has a series.
        metrics.store_queries.with_label_values(&["get_many"]).inc();
        metrics.invalidations.with_label_values(&["local"]).inc();
        metrics
            .request_seconds
            .with_label_values(&["/v1/descriptors/batch"])
            .observe(0.001);
        let text = metrics.render();
        assert_eq!(testkit::check_metric_names(&text), 7, "{text}");
    }
}
