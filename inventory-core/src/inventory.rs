//! The facade game servers call: validate, apply through the store, publish
//! the event on each touched player's channel, return it.

use std::sync::Arc;

use protocol::{Change, ChangeEvent, OwnerId, OwnerSnapshot, UserId, ValidChange};

use crate::{ApplyOutcome, Error, EventBus, InventoryStore, PropagationMetrics};

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
/// The event is published only after the store confirmed the change, once on
/// each touched player's channel (a trade reaches both players). A retry
/// answered "already applied" publishes again: the first publish may have been
/// lost with whatever made the caller retry, and consumers discard repeats.
///
/// A failed publish does **not** fail the call. The change is applied, and an
/// error would invite the caller to retry something that cannot be undone; it
/// is logged and counted (`publish_failures`) instead, and caches recover by
/// gap detection on the player's next event or by their periodic version check.
///
/// Cloning is cheap and shares the store and the bus.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn InventoryStore>,
    bus: Option<Arc<dyn EventBus>>,
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
            metrics: PropagationMetrics::new(),
        }
    }

    /// Publishes every applied change on `bus`.
    #[must_use]
    pub fn with_bus(mut self, bus: impl EventBus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// Counts publishes in `metrics` (shared with a hub, say).
    #[must_use]
    pub fn with_metrics(mut self, metrics: PropagationMetrics) -> Self {
        self.metrics = metrics;
        self
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
    /// A retry of an applied change returns the same event with
    /// `already_applied` set (and publishes it again); nothing is applied
    /// twice.
    pub async fn apply(&self, change: Change) -> Result<AppliedChange, Error> {
        self.apply_valid(&change.validate()?).await
    }

    /// Applies an already validated change.
    pub async fn apply_valid(&self, change: &ValidChange) -> Result<AppliedChange, Error> {
        let outcome = self.store.apply(change).await?;
        let already_applied = matches!(outcome, ApplyOutcome::AlreadyApplied(_));
        let event = ChangeEvent::from_applied(change, outcome.versions());
        if let Some(bus) = &self.bus {
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

    /// One owner's items and version.
    pub async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        self.store.load(owner).await
    }

    /// Every owner of a user.
    pub async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        self.store.load_user(user).await
    }
}
