//! Crafting and burning unique items, which live in two systems at once: the
//! item's stack (quantity 1) in an inventory store, and its descriptor in the
//! descriptor service. The two writes cannot share a transaction, so the
//! order of the steps is the protocol, chosen so that no failure at any step
//! leaves a phantom item or a lost input.
//!
//! **Craft** ([`craft`]):
//! 1. create the descriptor (idempotent by id and content);
//! 2. apply one `Craft` change that consumes the inputs and grants the item,
//!    atomically and idempotently by change id;
//! 3. only if the store *refused* step 2 (the inputs are not there), burn the
//!    descriptor, so the id can never be granted later.
//!
//! **Burn** ([`burn`]):
//! 1. apply one `Burn` change that consumes the item and grants the recovered
//!    resources;
//! 2. burn the descriptor.
//!
//! What holds whatever fails:
//! - Inputs are consumed if and only if the item is granted (one change).
//! - An item is never held without a live descriptor: the descriptor exists
//!   before the grant and is burned only after the item is gone.
//! - A failure whose outcome is unknown (code [`ErrorCode::Unavailable`])
//!   undoes nothing: the caller retries **the same order** (same change id,
//!   same descriptor) until it gets an answer, and the retry finishes exactly
//!   what the first attempt started. Until then a live descriptor may exist
//!   that nobody holds (an orphan); it is harmless and the audit counts it.
//! - A refused craft leaves a burned descriptor and untouched inputs; retrying
//!   it is refused again (`burned`).
//!
//! Attempts of one order must be sequential (one caller retrying). Two
//! concurrent attempts of the same craft could interleave a refusal's burn
//! with the other attempt's grant.
//!
//! The descriptor service is reached through the [`DescriptorRegistry`] port;
//! its adapters (the in-process service, HTTP) live with the zone node, so the
//! domain depends on neither.

use std::fmt;

use async_trait::async_trait;
pub use protocol::{BurnOrder, CraftOrder, crafted_item_id};
use protocol::{Descriptor, ErrorCode, ItemId};

use crate::{AppliedChange, Error, Inventory};

/// Where crafted descriptors are created and burned.
///
/// Contract:
/// - [`create`](Self::create) stores a new descriptor; storing the identical
///   descriptor again is `Ok` (a retry). An id that was burned answers code
///   [`ErrorCode::Burned`]; an id holding other content,
///   [`ErrorCode::Conflict`].
/// - [`burn`](Self::burn) tombstones a descriptor; burning it again is `Ok`.
///   An id that never existed answers [`ErrorCode::NotFound`].
/// - When the registry cannot be reached the code is
///   [`ErrorCode::Unavailable`] and the call may be retried.
#[async_trait]
pub trait DescriptorRegistry: Send + Sync + fmt::Debug {
    /// Stores a new descriptor (idempotent by id and content).
    async fn create(&self, descriptor: &Descriptor) -> Result<(), RegistryError>;
    /// Tombstones a descriptor (idempotent).
    async fn burn(&self, id: &ItemId) -> Result<(), RegistryError>;
}

/// A [`DescriptorRegistry`]'s answer other than `Ok`: a stable code from the
/// shared table (which says whether the write was refused or its outcome is
/// unknown) and a message for people.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("descriptor registry: {code}: {message}")]
pub struct RegistryError {
    code: ErrorCode,
    message: String,
}

impl RegistryError {
    /// An error with a code and a message for people.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for people.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The wall clock in milliseconds since the Unix epoch: a crafted item's
/// creation time.
#[must_use]
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Crafts: creates the descriptor, then applies the craft change; burns the
/// descriptor again if the store refuses the change. See the module
/// documentation for what holds when a step fails.
///
/// # Errors
/// - an invalid order (`invalid_*` codes): nothing was written;
/// - the store's refusal (`insufficient_balance`, `balance_overflow`): the
///   inputs are untouched and the descriptor is burned;
/// - `burned`: the order was refused before;
/// - `unavailable`: the outcome is unknown; retry the same order.
///
/// [`Error::code`] tells them apart, whichever system answered.
pub async fn craft(
    inventory: &Inventory,
    registry: &dyn DescriptorRegistry,
    order: &CraftOrder,
) -> Result<AppliedChange, Error> {
    let change = order.change()?;
    registry.create(&order.descriptor).await?;
    match inventory.apply_valid(&change).await {
        Ok(applied) => Ok(applied),
        Err(err) if is_refusal(&err) => {
            registry.burn(&order.descriptor.id).await?;
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Burns: applies the burn change, then burns the descriptor. See the module
/// documentation for what holds when a step fails.
///
/// # Errors
/// - an invalid order: nothing was written;
/// - `insufficient_balance`: the owner does not hold the item; nothing was
///   written and the descriptor is untouched;
/// - `invalid_descriptor`: the item is not a crafted item's id;
/// - `unavailable`: the outcome is unknown; retry the same order.
pub async fn burn(
    inventory: &Inventory,
    registry: &dyn DescriptorRegistry,
    order: &BurnOrder,
) -> Result<AppliedChange, Error> {
    let change = order.change()?;
    let applied = inventory.apply_valid(&change).await?;
    match registry.burn(&order.item).await {
        // An item granted by a plain change has no descriptor: it is gone
        // all the same, and the burn is applied.
        Err(err) if err.code() == ErrorCode::NotFound => {
            tracing::warn!(item = %order.item, "burned an item that had no descriptor");
        }
        other => other?,
    }
    Ok(applied)
}

/// Whether the store answered that it did not and will not apply the change
/// (a final answer: a code the table says is not retryable), as opposed to an
/// outcome it could not tell.
fn is_refusal(err: &Error) -> bool {
    !err.code().is_retryable()
}
