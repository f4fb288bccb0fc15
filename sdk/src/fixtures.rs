//! Test data shared by the unit tests.

use protocol::{BatchGetResponse, Descriptor, ItemId, OwnerId, UserId};

pub(crate) fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

pub(crate) fn owner(id: &str) -> OwnerId {
    OwnerId::parse(id).unwrap()
}

pub(crate) fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub(crate) fn descriptor(id: &str) -> Descriptor {
    Descriptor::catalog(item(id), format!("The {id}"))
}

/// A batch answer: `found` descriptors, `missing` and `burned` ids.
pub(crate) fn batch(found: &[&str], missing: &[&str], burned: &[&str]) -> BatchGetResponse {
    BatchGetResponse {
        descriptors: found.iter().map(|id| descriptor(id)).collect(),
        missing: missing.iter().map(|id| item(id)).collect(),
        burned: burned.iter().map(|id| item(id)).collect(),
    }
}
