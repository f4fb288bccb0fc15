//! The storage port: the [`DescriptorStore`] trait, its contract, and what it
//! answers.

use std::fmt;

use async_trait::async_trait;
use protocol::{BurnOutcome, Descriptor, ItemId};

use crate::Error;

#[cfg(feature = "mongodb")]
pub(crate) mod mongo;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// What a store holds under one id.
#[derive(Clone, PartialEq, Debug)]
pub enum Record {
    /// A live descriptor.
    Live(Descriptor),
    /// A tombstone: the id existed and was burned.
    Burned(ItemId),
}

impl Record {
    /// The id this record is about.
    #[must_use]
    pub fn id(&self) -> &ItemId {
        match self {
            Self::Live(descriptor) => &descriptor.id,
            Self::Burned(id) => id,
        }
    }
}

/// Whether a write changed anything.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteOutcome {
    /// The write was applied.
    Applied,
    /// The store already held exactly this content (a retried write).
    Unchanged,
}

/// Durable storage of descriptors and tombstones.
///
/// # Contract
///
/// Callers hand over descriptors that passed [`Descriptor::validate`] and the
/// size check; stores do not re-validate. Every method is atomic per id.
///
/// - [`get_many`](Self::get_many) answers, in **one store query** (one
///   statement, one `find` with `$in`), a [`Record`] for every given id that
///   is stored, live or burned, in any order; ids never stored are simply
///   absent. Ids are distinct. An empty slice answers an empty list without a
///   query.
/// - [`create`](Self::create): absent → stored, `Applied`; the identical
///   descriptor already stored → `Unchanged`; different content under the id
///   → [`Error::Conflict`]; burned → [`Error::Burned`]. Nothing is written
///   unless `Applied`.
/// - [`revise`](Self::revise) takes a catalog descriptor with revision
///   `n >= 2`: stored catalog at `n - 1` → replaced, `Applied`; stored at `n`
///   with identical content → `Unchanged`; any other revision or content →
///   [`Error::Conflict`]; stored crafted → [`Error::Immutable`]; absent →
///   [`Error::NotFound`]; burned → [`Error::Burned`].
/// - [`burn`](Self::burn): live → tombstone, [`BurnOutcome::Burned`];
///   already burned → [`BurnOutcome::AlreadyBurned`]; absent →
///   [`Error::NotFound`] and nothing written. A tombstone is permanent: the id
///   is never reused.
/// - Unreachable backends answer [`Error::Unavailable`]; the same call may be
///   retried.
#[async_trait]
pub trait DescriptorStore: Send + Sync + fmt::Debug + 'static {
    /// The records stored under `ids`, in one query.
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error>;
    /// Stores a new descriptor (idempotent by id and content).
    async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error>;
    /// Replaces a catalog descriptor by its next revision.
    async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error>;
    /// Replaces a descriptor by a tombstone (idempotent).
    async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error>;
    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), Error>;
}

/// Decides a revise from what is stored, for stores whose conditional update
/// did not match: the pure half of the revise contract.
pub(crate) fn classify_failed_revise(
    stored: Option<&Record>,
    descriptor: &Descriptor,
) -> Result<WriteOutcome, Error> {
    match stored {
        None => Err(Error::NotFound(descriptor.id.clone())),
        Some(Record::Burned(id)) => Err(Error::Burned(id.clone())),
        Some(Record::Live(current)) if current.kind == protocol::DescriptorKind::Crafted => {
            Err(Error::Immutable(current.id.clone()))
        }
        Some(Record::Live(current)) if current == descriptor => Ok(WriteOutcome::Unchanged),
        Some(Record::Live(current)) => Err(Error::conflict(
            &descriptor.id,
            format!(
                "stored revision is {}; revision {} must follow it with new content",
                current.revision, descriptor.revision
            ),
        )),
    }
}

/// Decides a create that found the id taken.
pub(crate) fn classify_failed_create(
    stored: Option<&Record>,
    descriptor: &Descriptor,
) -> Result<WriteOutcome, Error> {
    match stored {
        Some(Record::Live(current)) if current == descriptor => Ok(WriteOutcome::Unchanged),
        Some(Record::Live(_)) => Err(Error::conflict(
            &descriptor.id,
            "already exists with different content",
        )),
        Some(Record::Burned(id)) => Err(Error::Burned(id.clone())),
        None => Err(Error::Internal(format!(
            "descriptor {} neither insertable nor stored",
            descriptor.id
        ))),
    }
}
