//! Propagation metrics: plain atomics, read with [`PropagationMetrics::snapshot`].
//! Every value only grows (a counter) except `active_subscriptions`, a level
//! (a gauge); exporters must keep that distinction.
//!
//! There is no global registry on purpose: the service reads a snapshot and
//! exports it (to Prometheus or anything else), and tests read the same numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters and one gauge shared by a publisher
/// ([`Inventory`](crate::Inventory)) and a [`PlayerHub`](crate::PlayerHub).
/// Cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct PropagationMetrics {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    applied: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
    rehydrations: AtomicU64,
    reconnects: AtomicU64,
    active_subscriptions: AtomicI64,
}

/// The metrics as of one moment: counters, then the one gauge.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MetricsSnapshot {
    /// Events published, one per (change, touched user).
    pub published: u64,
    /// Publishes that failed; the change stays applied and caches recover by
    /// gap detection or re-hydration.
    pub publish_failures: u64,
    /// Events received from the bus.
    pub received: u64,
    /// Owner deltas applied to a cache.
    pub applied: u64,
    /// Events or owner deltas discarded as already seen.
    pub duplicates: u64,
    /// Gaps detected (a version skipped, or a delta the cache cannot apply).
    pub gaps: u64,
    /// Player caches loaded from the store, first hydrations included.
    pub rehydrations: u64,
    /// Bus reconnections followed by a re-check of every cached player.
    pub reconnects: u64,
    /// Player channels this process is subscribed to now (a gauge).
    pub active_subscriptions: i64,
}

macro_rules! counter {
    ($($name:ident => $field:ident),* $(,)?) => {
        $(
            pub(crate) fn $name(&self, n: u64) {
                self.counters.$field.fetch_add(n, Ordering::Relaxed);
            }
        )*
    };
}

impl PropagationMetrics {
    /// Fresh counters at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    counter!(
        add_published => published,
        add_publish_failures => publish_failures,
        add_received => received,
        add_applied => applied,
        add_duplicates => duplicates,
        add_gaps => gaps,
        add_rehydrations => rehydrations,
        add_reconnects => reconnects,
    );

    pub(crate) fn subscription_opened(&self) {
        self.counters
            .active_subscriptions
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn subscription_closed(&self) {
        self.counters
            .active_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Every metric, read now.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            published: get(&c.published),
            publish_failures: get(&c.publish_failures),
            received: get(&c.received),
            applied: get(&c.applied),
            duplicates: get(&c.duplicates),
            gaps: get(&c.gaps),
            rehydrations: get(&c.rehydrations),
            reconnects: get(&c.reconnects),
            active_subscriptions: c.active_subscriptions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters() {
        let metrics = PropagationMetrics::new();
        let clone = metrics.clone();
        clone.add_applied(3);
        clone.subscription_opened();
        clone.subscription_opened();
        clone.subscription_closed();
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.applied, 3);
        assert_eq!(snapshot.active_subscriptions, 1);
    }
}
