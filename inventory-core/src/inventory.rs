//! The facade game servers call: validate, apply through the store, return the
//! event to propagate.

use std::sync::Arc;

use protocol::{Change, ChangeEvent, OwnerId, OwnerSnapshot, UserId, ValidChange};

use crate::{ApplyOutcome, Error, InventoryStore};

/// The result of [`Inventory::apply`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AppliedChange {
    /// The event describing the change, with the versions it produced.
    pub event: ChangeEvent,
    /// True if the store had applied this change id before and changed
    /// nothing now (a retry).
    pub already_applied: bool,
}

/// Validates and applies changes through an [`InventoryStore`].
///
/// Cloning is cheap and shares the store.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn InventoryStore>,
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
        Self { store }
    }

    /// The store behind this facade.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn InventoryStore> {
        &self.store
    }

    /// Validates `change`, applies it atomically and returns its event.
    ///
    /// A retry of an applied change returns the same event with
    /// `already_applied` set; nothing is applied twice.
    pub async fn apply(&self, change: Change) -> Result<AppliedChange, Error> {
        self.apply_valid(&change.validate()?).await
    }

    /// Applies an already validated change.
    pub async fn apply_valid(&self, change: &ValidChange) -> Result<AppliedChange, Error> {
        let outcome = self.store.apply(change).await?;
        let already_applied = matches!(outcome, ApplyOutcome::AlreadyApplied(_));
        let event = ChangeEvent::from_applied(change, outcome.versions());
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
