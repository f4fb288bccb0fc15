//! Test data shared by the unit tests.

use protocol::{BatchGetResponse, Descriptor, DescriptorKind, ItemId, OwnerId, Stacking, UserId};

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
    Descriptor {
        id: item(id),
        kind: DescriptorKind::Catalog,
        template: None,
        name: format!("The {id}"),
        stacking: Stacking::Stackable,
        revision: 1,
        created_at: 0,
        crafted_by: None,
        inputs: Vec::new(),
        attributes: Default::default(),
    }
}

/// A batch answer: `found` descriptors, `missing` and `burned` ids.
pub(crate) fn batch(found: &[&str], missing: &[&str], burned: &[&str]) -> BatchGetResponse {
    BatchGetResponse {
        descriptors: found.iter().map(|id| descriptor(id)).collect(),
        missing: missing.iter().map(|id| item(id)).collect(),
        burned: burned.iter().map(|id| item(id)).collect(),
    }
}
