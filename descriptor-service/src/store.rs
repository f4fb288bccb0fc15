//! The storage port: the [`DescriptorStore`] trait, its contract, and what it
//! answers.

use std::fmt;

use async_trait::async_trait;
use protocol::{BurnOutcome, Descriptor, DescriptorKind, ItemId, UserId};

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

/// What a [`DescriptorStore::scan`] selects. The default selects every live
/// descriptor.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct ScanFilter {
    /// Only descriptors of this kind.
    pub kind: Option<DescriptorKind>,
    /// Only descriptors crafted by this user.
    pub crafted_by: Option<UserId>,
    /// Only descriptors created at or after this time (ms since the epoch).
    pub since: Option<u64>,
    /// Only descriptors created before this time (ms since the epoch).
    pub until: Option<u64>,
    /// Tombstones too. A tombstone keeps nothing but its id, so this cannot
    /// be combined with the content filters above.
    pub include_burned: bool,
}

impl ScanFilter {
    /// Refuses filters that cannot be answered: an empty or inverted time
    /// range (`since >= until`), and tombstones asked with content filters.
    pub fn validate(&self) -> Result<(), Error> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(Error::Unprocessable(format!(
                "the time range is empty: since ({since}) must be before until ({until})"
            )));
        }
        if self.include_burned && self.has_content_filter() {
            return Err(Error::Unprocessable(
                "include_burned cannot be combined with kind, crafted_by, since or until: \
                 a burned descriptor keeps only its id"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether any of kind, crafted_by, since, until is set.
    #[must_use]
    pub fn has_content_filter(&self) -> bool {
        self.kind.is_some()
            || self.crafted_by.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// Whether `record` is selected (the reference the stores' queries must
    /// agree with).
    #[must_use]
    pub fn matches(&self, record: &Record) -> bool {
        match record {
            Record::Burned(_) => self.include_burned,
            Record::Live(d) => {
                self.kind.is_none_or(|kind| d.kind == kind)
                    && self
                        .crafted_by
                        .as_ref()
                        .is_none_or(|user| d.crafted_by.as_ref() == Some(user))
                    && self.since.is_none_or(|since| d.created_at >= since)
                    && self.until.is_none_or(|until| d.created_at < until)
            }
        }
    }
}

/// The most records one [`DescriptorStore::scan`] call answers.
pub const MAX_SCAN_LIMIT: usize = protocol::MAX_LIST_LIMIT;

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
/// - [`scan`](Self::scan) answers, in **one store query**, the first
///   `limit` records (1..=[`MAX_SCAN_LIMIT`]) that `filter` selects (see
///   [`ScanFilter::matches`]) and whose id is greater than `after`, in
///   ascending id order (byte order of the id). The order is total and ids
///   are never reused, so paging with `after` = the last id of the previous
///   page never returns an id twice, and returns every record that is
///   selected for the whole paging, whatever is created and burned
///   meanwhile. Fewer than `limit` records means the end was reached. The
///   filter was validated ([`ScanFilter::validate`]) by the caller.
/// - [`count`](Self::count) answers, in **one store query**, how many
///   records `filter` selects now: what a scan from the start would page
///   through if nothing changed meanwhile (a progress total, not a
///   snapshot).
/// - [`identity`](Self::identity) answers the store's name: made once, when
///   the store (file, database) was first opened, and the same afterwards
///   for every replica and restart that uses it; two stores never share one.
///   Listing cursors carry it, so that a cursor is refused by a service over
///   another store.
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
    /// The next page of records `filter` selects after the id `after`.
    async fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<Record>, Error>;
    /// How many records `filter` selects now.
    async fn count(&self, filter: &ScanFilter) -> Result<u64, Error>;
    /// Checks that the backend answers (readiness).
    async fn ping(&self) -> Result<(), Error>;
    /// The store's name, made when it was first opened.
    async fn identity(&self) -> Result<String, Error>;
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
        Some(Record::Live(current)) if current.kind == DescriptorKind::Crafted => {
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

/// A kind as the stored JSON spells it (the stores' scan queries).
pub(crate) fn kind_name(kind: DescriptorKind) -> &'static str {
    match kind {
        DescriptorKind::Catalog => "catalog",
        DescriptorKind::Crafted => "crafted",
    }
}
