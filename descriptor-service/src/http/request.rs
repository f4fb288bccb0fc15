//! Pure decoding and checking of request bodies: no IO, fuzzed by tests.

use std::collections::HashSet;

use protocol::{Descriptor, ItemId, MAX_BATCH_IDS};
use serde::Deserialize;

use crate::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatchRequest {
    ids: Vec<String>,
}

/// Decodes a batch get body `{"ids": [...]}` into distinct ids in request
/// order. The count is checked before the grammar, duplicates included.
pub fn decode_batch_request(body: &[u8]) -> Result<Vec<ItemId>, Error> {
    let raw: RawBatchRequest =
        serde_json::from_slice(body).map_err(|e| Error::Malformed(e.to_string()))?;
    if raw.ids.len() > MAX_BATCH_IDS {
        return Err(Error::BatchTooLarge(raw.ids.len()));
    }
    let mut seen = HashSet::with_capacity(raw.ids.len());
    let mut ids = Vec::with_capacity(raw.ids.len());
    for id in raw.ids {
        let id = ItemId::parse(id)?;
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Decodes and checks a descriptor body: JSON shape (unknown fields refused),
/// the model's rules, and the size of its compact JSON.
pub fn decode_descriptor(body: &[u8]) -> Result<Descriptor, Error> {
    let descriptor: Descriptor =
        serde_json::from_slice(body).map_err(|e| Error::Malformed(e.to_string()))?;
    descriptor.validate()?;
    let size = serde_json::to_vec(&descriptor)
        .map_err(|e| Error::Internal(e.to_string()))?
        .len();
    Descriptor::check_size(size)?;
    Ok(descriptor)
}

#[cfg(test)]
mod tests;
