//! The facade game servers call: validate, apply through the store, publish
//! the event on each touched player's channel, return it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use protocol::{Change, ChangeEvent, ChangeId, OwnerId, OwnerSnapshot, UserId, ValidChange};

use crate::{
    ApplyOutcome, Error, EventBus, InventoryStore, OutboxRelay, PropagationMetrics, RelayConfig,
};

/// The result of [`Inventory::apply`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AppliedChange {
    /// The event describing the change, with the versions it produced.
    pub event: ChangeEvent,
    /// True if the store had applied this change id before and changed
    /// nothing now (a retry).
    pub already_applied: bool,
}

/// Validates and applies changes through an [`InventoryStore`], and publishes
/// each applied change on an [`EventBus`] if it has one.
///
/// # Publishing
///
/// An event is published only after the store confirmed the change, once on
/// each touched player's channel (a trade reaches both players).
///
/// - **From the outbox** (a store with an [`Outbox`](crate::Outbox): SQLite,
///   memory): [`with_bus`](Self::with_bus) starts an [`OutboxRelay`], which
///   publishes every applied change from the store's durable record, in
///   order, retrying while the bus is down. `apply` answers as soon as the
///   change is durable and never waits on the bus; no applied change's event
///   is lost, even if the process dies right after the commit (the relay of
///   the next start publishes it). One relay per store: share one `Inventory`
///   (clones) rather than building several with buses over one store.
/// - **Inline** (a store without an outbox): `apply` publishes after the
///   store answered. A failed publish does **not** fail the call (the change
///   is applied; an error would invite a retry of something that cannot be
///   undone); it is logged and counted (`publish_failures`), and caches
///   recover by gap detection or their periodic version check. A retry
///   answered "already applied" publishes the recorded event again.
///
/// A change refused as a conflict ([`Error::ChangeConflict`]) publishes
/// nothing.
///
/// Cloning is cheap and shares the store, the bus and the relay.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn InventoryStore>,
    bus: Option<Arc<dyn EventBus>>,
    relay: Option<Arc<Mutex<Option<OutboxRelay>>>>,
    relay_config: RelayConfig,
    metrics: PropagationMetrics,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").finish_non_exhaustive()
    }
}

impl Inventory {
    /// A facade over `store`.
    #[must_use]
    pub fn new(store: impl InventoryStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A facade over a shared store.
    #[must_use]
    pub fn from_arc(store: Arc<dyn InventoryStore>) -> Self {
        Self {
            store,
            bus: None,
            relay: None,
            relay_config: RelayConfig::default(),
            metrics: PropagationMetrics::new(),
        }
    }

    /// Publishes every applied change on `bus`: through an [`OutboxRelay`]
    /// started now if the store has an outbox (needs a Tokio runtime), else
    /// inline.
    #[must_use]
    pub fn with_bus(self, bus: impl EventBus) -> Self {
        self.with_relay(bus, RelayConfig::default())
    }

    /// Like [`with_bus`](Self::with_bus), with the relay's settings.
    #[must_use]
    pub fn with_relay(mut self, bus: impl EventBus, config: RelayConfig) -> Self {
        self.bus = Some(Arc::new(bus));
        self.relay_config = config;
        self.start_relay();
        self
    }

    /// Counts publishes in `metrics` (shared with a hub, say), the relay's
    /// too: a relay already started is started again over them.
    #[must_use]
    pub fn with_metrics(mut self, metrics: PropagationMetrics) -> Self {
        self.metrics = metrics;
        if self.relay.is_some() {
            self.start_relay();
        }
        self
    }

    /// Starts the outbox relay over the bus and metrics now set, replacing
    /// any relay this facade started (no clone exists yet: the builders take
    /// `self`).
    fn start_relay(&mut self) {
        let Some(bus) = &self.bus else {
            return;
        };
        self.relay = OutboxRelay::start(
            Arc::clone(&self.store),
            Arc::clone(bus),
            self.metrics.clone(),
            self.relay_config,
        )
        .map(|relay| Arc::new(Mutex::new(Some(relay))));
    }

    /// Publishes what the outbox relay has pending and stops it, waiting at
    /// most `timeout` (a graceful shutdown); a no-op without a relay. What is
    /// left is published by the next start's relay.
    pub async fn close(&self, timeout: Duration) {
        let relay = self
            .relay
            .as_ref()
            .and_then(|relay| relay.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(relay) = relay {
            relay.close(timeout).await;
        }
    }

    /// The publish counters.
    #[must_use]
    pub fn metrics(&self) -> &PropagationMetrics {
        &self.metrics
    }

    /// The store behind this facade.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn InventoryStore> {
        &self.store
    }

    /// Validates `change`, applies it atomically, publishes and returns its
    /// event.
    ///
    /// A retry of an applied change returns the event recorded when it was
    /// applied, with `already_applied` set (and publishes it again); nothing
    /// is applied twice. The same change id with other content fails with
    /// [`Error::ChangeConflict`] and publishes nothing.
    pub async fn apply(&self, change: Change) -> Result<AppliedChange, Error> {
        self.apply_valid(&change.validate()?).await
    }

    /// Applies an already validated change.
    pub async fn apply_valid(&self, change: &ValidChange) -> Result<AppliedChange, Error> {
        let outcome = self.store.apply(change).await?;
        let already_applied = matches!(outcome, ApplyOutcome::AlreadyApplied(_));
        let event = outcome.into_event();
        if let (Some(bus), None) = (&self.bus, &self.relay) {
            for user in change.users() {
                match bus.publish(user, &event).await {
                    Ok(()) => self.metrics.add_published(1),
                    Err(e) => {
                        self.metrics.add_publish_failures(1);
                        tracing::warn!(change = %event.change_id, %user, error = %e, "publish failed; caches will catch up");
                    }
                }
            }
        }
        Ok(AppliedChange {
            event,
            already_applied,
        })
    }

    /// The recorded event of an applied change, or `None` if no change with
    /// this id was applied (see [`InventoryStore::lookup`]). Read-only: what a
    /// caller asks after a write whose outcome it does not know.
    pub async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        self.store.lookup(id).await
    }

    /// One owner's items and version.
    pub async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        self.store.load(owner).await
    }

    /// Every owner of a user.
    pub async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        self.store.load_user(user).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use protocol::{ItemId, Quantity};

    use super::*;
    use crate::{LocalBus, MemoryStore};

    /// The relay counts in the facade's metrics whichever builder came
    /// first.
    #[tokio::test]
    async fn the_relay_counts_in_metrics_set_after_the_bus() {
        let metrics = PropagationMetrics::new();
        let (connection, _receiver) = LocalBus::new().connect();
        let inventory = Inventory::new(MemoryStore::new())
            .with_bus(connection)
            .with_metrics(metrics.clone());
        let alice = OwnerId::account(UserId::parse("alice").unwrap());
        let change = Change::new(ChangeId::random()).grant(
            alice,
            ItemId::parse("wood").unwrap(),
            Quantity::new(1).unwrap(),
        );
        inventory.apply(change).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.snapshot().published < 1 {
            assert!(Instant::now() < deadline, "{:?}", metrics.snapshot());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(inventory.metrics().snapshot().published, 1);
    }
}
