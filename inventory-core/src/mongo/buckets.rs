//! Item buckets: the layout of an owner whose stacks outgrew one document.
//!
//! An update on the test server (and, less so, on `mongod`) costs in
//! proportion to the elements of the document it rewrites, so a change on an
//! owner of 10,000 stacks cost 7x one on 10 stacks while the stacks lived in
//! the owner's document. Past a limit (`stacks_per_document`, 64 by default)
//! the owner is split:
//!
//! ```text
//! { _id: "c:alice:hero", u: "alice", v: 42, b: 512, recent: [...] }   // the head
//! { _id: "c:alice:hero#17", u: "alice", o: "c:alice:hero",              // bucket 17 of 512
//!   items: { wood: 7, ... } }
//! ```
//!
//! The head keeps the version and the window; each stack lives in bucket
//! `fnv1a(item) mod b`. A change then updates the head (`v + 1`, the window,
//! filter `b: <count>`) and each bucket its items fall in (the guards in
//! that bucket's filter), all in the change's transaction: two small
//! documents instead of one large one. A split (and a later re-split into
//! twice as many buckets when a bucket outgrows the limit) is one
//! transaction: read the head and the buckets, compare-and-set the head on
//! its version, delete the old buckets, insert every new one (empty ones
//! too, so updates never upsert). Any change concurrent with it conflicts on
//! the head; a change computed for the old layout misses on `b` and is
//! computed again. Splits need transactions: a standalone server keeps every
//! owner in one document.

use std::collections::BTreeMap;

use mongodb::bson::{Bson, Document, doc};
use protocol::{ItemId, Operation, OwnerId, ValidChange};

use super::document::{
    Guarded, ID, ITEMS, OwnerUpdate, RECENT, USER, VERSION, WINDOW, applied_entry, corrupt, guarded,
};
use crate::Error;

/// The head's bucket count, present once the owner is split.
pub(crate) const BUCKETS: &str = "b";
/// A bucket's owner id, in its string form.
pub(crate) const OWNER: &str = "o";
/// Stacks one document holds before the owner is split (or re-split).
pub(crate) const DEFAULT_STACKS_PER_DOCUMENT: usize = 64;
/// The most buckets an owner is split into (65,536 stacks at 16 a bucket).
pub(crate) const MAX_BUCKETS: u32 = 4096;

/// Where an owner's stacks live.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    /// In the owner's own document.
    Head,
    /// In this many bucket documents.
    Buckets(u32),
}

/// The layout a head document (projected with `b`) records.
pub(crate) fn layout_of(owner: &OwnerId, head: &Document) -> Result<Layout, Error> {
    match head.get(BUCKETS) {
        None => Ok(Layout::Head),
        Some(Bson::Int32(n)) if *n > 0 => Ok(Layout::Buckets(n.unsigned_abs())),
        Some(Bson::Int64(n)) if *n > 0 => u32::try_from(*n)
            .map(Layout::Buckets)
            .map_err(|_| corrupt(owner, format!("bucket count `b` is {n}"))),
        Some(other) => Err(corrupt(owner, format!("bucket count `b` is {other}"))),
    }
}

/// The bucket of `item` among `buckets`: FNV-1a of its id, so every node and
/// every version of the store agrees.
pub(crate) fn bucket_of(item: &ItemId, buckets: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in item.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(buckets.max(1))).unwrap_or_default()
}

/// The `_id` of bucket `k` of `owner` (`#` is outside the owner-id grammar).
pub(crate) fn bucket_id(owner: &OwnerId, k: u32) -> String {
    format!("{owner}#{k}")
}

/// The updates applying `owner`'s part of `change` to a split owner: the
/// head (version and window, filter `b: <buckets>`), then one per bucket
/// the part touches, in bucket order.
pub(crate) fn bucketed_updates(
    owner: &OwnerId,
    change: &ValidChange,
    buckets: u32,
) -> (OwnerUpdate, Vec<OwnerUpdate>) {
    let head = OwnerUpdate {
        filter: doc! {
            ID: owner.to_string(),
            USER: owner.user().as_str(),
            BUCKETS: i64::from(buckets),
            RECENT: { "$ne": applied_entry(change.id()) },
        },
        update: doc! {
            "$inc": { VERSION: 1_i64 },
            "$push": { RECENT: { "$each": [applied_entry(change.id())], "$slice": WINDOW } },
        },
        projection: doc! { ID: 0, VERSION: 1 },
    };
    let mut by_bucket: BTreeMap<u32, Vec<&Operation>> = BTreeMap::new();
    for op in change.ops_for(owner) {
        by_bucket
            .entry(bucket_of(op.item(), buckets))
            .or_default()
            .push(op);
    }
    let parts = by_bucket
        .into_iter()
        .map(|(k, ops)| {
            let Guarded {
                filter,
                inc,
                projection,
            } = guarded(
                ops.into_iter(),
                doc! { ID: bucket_id(owner, k), USER: owner.user().as_str() },
            );
            OwnerUpdate {
                filter,
                update: doc! { "$inc": inc },
                projection,
            }
        })
        .collect();
    (head, parts)
}

/// The filter of the buckets of `owner`.
pub(crate) fn buckets_filter(owner: &OwnerId) -> Document {
    doc! { USER: owner.user().as_str(), OWNER: owner.to_string() }
}

/// The filter of the buckets of `owner` holding `items`.
pub(crate) fn buckets_holding<'a>(
    owner: &OwnerId,
    items: impl Iterator<Item = &'a ItemId>,
    buckets: u32,
) -> Document {
    let mut ids: Vec<String> = items
        .map(|item| bucket_id(owner, bucket_of(item, buckets)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    doc! { ID: { "$in": ids }, USER: owner.user().as_str() }
}

/// Copies the stacks of `bucket` into `head`'s `items`, so that the rules
/// written for one document (snapshots, guards, diagnoses) read a split
/// owner as one.
pub(crate) fn merge_items(head: &mut Document, bucket: &Document) {
    let Ok(stacks) = bucket.get_document(ITEMS) else {
        return;
    };
    if !matches!(head.get(ITEMS), Some(Bson::Document(_))) {
        head.insert(ITEMS, Document::new());
    }
    if let Ok(items) = head.get_document_mut(ITEMS) {
        for (key, value) in stacks {
            items.insert(key.clone(), value.clone());
        }
    }
}

/// How many stacks a post-image projected with every stack shows.
pub(crate) fn stacks_in(post: &Document) -> usize {
    post.get_document(ITEMS).map_or(0, Document::len)
}

/// The zero clean-up's filter for `item`, in the document that holds it.
pub(crate) fn holder_filter(owner: &OwnerId, item: &ItemId, layout: Layout) -> Document {
    match layout {
        Layout::Head => doc! { ID: owner.to_string(), USER: owner.user().as_str() },
        Layout::Buckets(n) => doc! {
            ID: bucket_id(owner, bucket_of(item, n)),
            USER: owner.user().as_str(),
        },
    }
}

/// A split (or re-split) computed from the head and buckets read in its
/// transaction.
#[derive(Debug)]
pub(crate) struct Split {
    /// `{_id, u, v: <read>, b: <read or absent>}`: the head as it was read.
    pub(crate) filter: Document,
    /// `{$set: {b: <count>}, $unset: {items: ""}}`.
    pub(crate) update: Document,
    /// Every bucket of the new layout, empty ones included.
    pub(crate) buckets: Vec<Document>,
    /// The new bucket count.
    pub(crate) count: u32,
}

/// The split of `owner` into enough buckets for about a quarter of
/// `per_document` stacks each (at least twice as many as now), or `None`
/// when no document holds more than `per_document` stacks (a split already
/// done) or it would not add buckets (at [`MAX_BUCKETS`]).
pub(crate) fn split(
    owner: &OwnerId,
    head: &Document,
    buckets: &[Document],
    per_document: usize,
) -> Result<Option<Split>, Error> {
    let layout = layout_of(owner, head)?;
    let crowded = match layout {
        Layout::Head => stacks_in(head) > per_document,
        Layout::Buckets(_) => buckets.iter().any(|b| stacks_in(b) > per_document),
    };
    if !crowded {
        return Ok(None);
    }
    let mut whole = head.clone();
    for bucket in buckets {
        merge_items(&mut whole, bucket);
    }
    let stacks: Vec<(String, Bson)> = whole
        .get_document(ITEMS)
        .map(|items| {
            items
                .iter()
                .filter(|(_, n)| !matches!(n, Bson::Int64(0) | Bson::Int32(0)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let per_bucket = (per_document / 4).max(1);
    let wanted = u32::try_from(stacks.len().div_ceil(per_bucket))
        .unwrap_or(u32::MAX)
        .max(2);
    let now = match layout {
        Layout::Head => 1,
        Layout::Buckets(n) => n,
    };
    let count = wanted
        .max(now.saturating_mul(2))
        .checked_next_power_of_two()
        .unwrap_or(MAX_BUCKETS)
        .min(MAX_BUCKETS);
    if count <= now {
        return Ok(None);
    }
    let mut contents = vec![Document::new(); count as usize];
    for (key, value) in stacks {
        let item = ItemId::parse(key.as_str())
            .map_err(|e| corrupt(owner, format!("bad item key {key:?}: {e}")))?;
        contents[bucket_of(&item, count) as usize].insert(key, value);
    }
    let user = owner.user().as_str();
    let buckets = (0..count)
        .zip(contents)
        .map(|(k, items)| {
            doc! { ID: bucket_id(owner, k), USER: user, OWNER: owner.to_string(), ITEMS: items }
        })
        .collect();
    let mut filter = doc! {
        ID: owner.to_string(),
        USER: user,
        VERSION: head.get(VERSION).cloned().unwrap_or(Bson::Int64(0)),
    };
    filter.insert(
        BUCKETS,
        match layout {
            Layout::Head => doc! { "$exists": false }.into(),
            Layout::Buckets(n) => Bson::Int64(i64::from(n)),
        },
    );
    Ok(Some(Split {
        filter,
        update: doc! { "$set": { BUCKETS: i64::from(count) }, "$unset": { ITEMS: "" } },
        buckets,
        count,
    }))
}

#[cfg(test)]
mod tests;
