//! The owner document as pure code over BSON: the filter and update each
//! operation sends, and the reading of a stored document back into a
//! snapshot, an idempotency answer or the guard that refused a change.
//!
//! Nothing here does IO, so every rule is unit-tested without a server.

use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Document, doc};
use protocol::{
    ChangeId, ItemId, MAX_BALANCE, Operation, OwnerId, OwnerSnapshot, UserId, ValidChange, Version,
    is_crafted_item_id,
};

use super::buckets::{BUCKETS, Layout, holder_filter};
use crate::ledger::next_balance;
use crate::{Error, JournalEntry, OwnerRecord};

/// The owner id, in its string form (`a:<user>` / `c:<user>:<character>`).
pub(crate) const ID: &str = "_id";
/// The user the owner belongs to (indexed, for `load_user`).
pub(crate) const USER: &str = "u";
/// The owner's version.
pub(crate) const VERSION: &str = "v";
/// One field per item: `items.<item id>` holds the balance as an `Int64`.
pub(crate) const ITEMS: &str = "items";
/// The ids of the owner's most recent changes, oldest first, one entry per
/// version: the last entry produced version `v`, the one before `v - 1`, and so
/// on. The entry's version is therefore implied by its position, which keeps
/// the window small (27 bytes per entry, [`OWNER_WINDOW`] entries at most).
pub(crate) const RECENT: &str = "recent";

/// How many change ids an owner document keeps. The journal, not this window,
/// is the store-wide record of a change id; the window is the per-owner guard
/// that keeps a continued or concurrent attempt of one change from applying
/// an owner's part twice, and it only has to outlive such an attempt (a
/// retry within seconds). Small and fixed, so its cost does not grow: 64
/// entries are about 1.7 KB of every owner document.
pub(crate) const OWNER_WINDOW: usize = 64;

/// The journal field holding the change as JSON text.
const CHANGE: &str = "c";
/// The journal field holding the versions the change produced, as JSON text;
/// absent while the entry is a pending claim.
const VERSIONS: &str = "p";
/// The journal field marking a pending claim (`"pending"`); absent once the
/// change is applied.
const STATE: &str = "s";
const PENDING: &str = "pending";
/// The journal field holding when the change was applied (Int64
/// milliseconds since the Unix epoch); absent on entries written before it
/// existed and on pending claims.
pub(crate) const APPLIED_AT: &str = "t";
/// The journal field holding one `<owner>/<version>` key per owner the
/// change touched (multikey-indexed): an owner's history is a point lookup
/// of its versions, which are dense.
pub(crate) const HISTORY_KEYS: &str = "h";
/// The journal field listing the crafted items the change moved
/// (multikey-indexed, absent when none): an item's custody.
pub(crate) const CRAFTED_ITEMS: &str = "x";

/// The history key of `owner` at `version`.
pub(crate) fn history_key(owner: &OwnerId, version: Version) -> String {
    format!("{owner}/{}", version.get())
}

/// The support fields of an entry whose versions are known: when, and the
/// history keys.
fn support_fields(versions: &[(OwnerId, Version)], applied_at: i64) -> Document {
    let keys: Vec<String> = versions
        .iter()
        .map(|(owner, version)| history_key(owner, *version))
        .collect();
    doc! { APPLIED_AT: applied_at, HISTORY_KEYS: keys }
}

/// The crafted items `change` moves, for [`CRAFTED_ITEMS`].
fn crafted_items(change: &ValidChange) -> Vec<&str> {
    change
        .ops()
        .iter()
        .filter(|op| is_crafted_item_id(op.item()))
        .map(|op| op.item().as_str())
        .collect()
}

/// Adds [`CRAFTED_ITEMS`] to a journal document when the change moves any.
fn with_crafted_items(mut entry: Document, change: &ValidChange) -> Document {
    let crafted = crafted_items(change);
    if !crafted.is_empty() {
        entry.insert(CRAFTED_ITEMS, crafted);
    }
    entry
}

/// The subtype of a `recent` entry that retracts a change undone by
/// compensation: it keeps the entry's position (and so every other entry's
/// version) while the change id itself no longer counts as applied.
const RETRACTED: BinarySubtype = BinarySubtype::UserDefined(0x80);

/// The window as the `$slice` of a `$push`.
#[allow(clippy::cast_possible_wrap)] // OWNER_WINDOW is 64.
pub(crate) const WINDOW: i32 = -(OWNER_WINDOW as i32);

/// The `recent` entry recording that `id` was applied.
pub(crate) fn applied_entry(id: ChangeId) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: id.as_uuid().as_bytes().to_vec(),
    })
}

fn retracted_entry(id: ChangeId) -> Bson {
    Bson::Binary(Binary {
        subtype: RETRACTED,
        bytes: id.as_uuid().as_bytes().to_vec(),
    })
}

/// The path of an item's balance.
pub(crate) fn item_path(item: &ItemId) -> String {
    // Safe as a field path: the ItemId grammar is `[A-Za-z0-9_-]{1,64}`, so no
    // `.`, `$` or NUL can reach the database.
    format!("{ITEMS}.{item}")
}

/// As an `Int64`: every quantity and balance is at most `MAX_BALANCE`.
#[allow(clippy::cast_possible_wrap)]
pub(crate) fn int(n: u64) -> i64 {
    n as i64
}

/// One atomic update of an owner's document (or of one of its buckets) for
/// its part of a change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OwnerUpdate {
    /// `{_id, u, b: {$exists: false}, recent: {$ne: <change id>}, items.<consumed>: {$gte: n}, items.<granted>: {$not: {$gt: MAX - n}}}`.
    pub(crate) filter: Document,
    /// `{$inc: {items.<x>: ±n, v: 1}, $push: {recent: {$each: [<change id>], $slice: -64}}}`.
    pub(crate) update: Document,
    /// The post-image fields the caller needs: the version, and every stack
    /// (a part that grants) or each consumed balance (to spot a zero).
    pub(crate) projection: Document,
}

/// The update applying `owner`'s operations of `change` to an owner whose
/// stacks live in its own document (not split into buckets: the filter
/// requires `b` to be absent, so an update computed before a split misses).
/// A part that grants projects every stack, so the caller sees when the
/// document outgrows its limit.
pub(crate) fn owner_update(owner: &OwnerId, change: &ValidChange) -> OwnerUpdate {
    let Guarded {
        filter,
        mut inc,
        mut projection,
    } = guarded(
        change.ops_for(owner),
        doc! {
            ID: owner.to_string(),
            USER: owner.user().as_str(),
            BUCKETS: { "$exists": false },
            RECENT: { "$ne": applied_entry(change.id()) },
        },
    );
    inc.insert(VERSION, 1_i64);
    projection.insert(VERSION, 1);
    OwnerUpdate {
        filter,
        update: doc! {
            "$inc": inc,
            "$push": { RECENT: { "$each": [applied_entry(change.id())], "$slice": WINDOW } },
        },
        projection,
    }
}

/// The guarded part of an update, before the version and the window.
pub(crate) struct Guarded {
    /// The filter given, plus `items.<consumed>: {$gte: n}` and
    /// `items.<granted>: {$not: {$gt: MAX - n}}`.
    pub(crate) filter: Document,
    /// `items.<x>: ±n`.
    pub(crate) inc: Document,
    /// Every stack if an operation grants (so the caller can count them),
    /// else the consumed balances (to spot a stack at zero).
    pub(crate) projection: Document,
}

/// The guards and increments of `ops`, added to `filter`.
pub(crate) fn guarded<'a>(
    ops: impl Iterator<Item = &'a Operation>,
    mut filter: Document,
) -> Guarded {
    let mut inc = Document::new();
    let mut consumed = Vec::new();
    let mut grants = false;
    for op in ops {
        let path = item_path(op.item());
        let qty = op.qty().get();
        match op {
            Operation::Consume { .. } => {
                filter.insert(path.clone(), doc! { "$gte": int(qty) });
                inc.insert(path.clone(), -int(qty));
                consumed.push(path);
            }
            Operation::Grant { .. } => {
                // `$not: {$gt}` also matches a missing field, where `$lte` would not.
                filter.insert(
                    path.clone(),
                    doc! { "$not": { "$gt": int(MAX_BALANCE - qty) } },
                );
                inc.insert(path, int(qty));
                grants = true;
            }
        }
    }
    let mut projection = doc! { ID: 0 };
    if grants {
        projection.insert(ITEMS, 1);
    } else {
        for path in consumed {
            projection.insert(path, 1);
        }
    }
    Guarded {
        filter,
        inc,
        projection,
    }
}

/// The document of an owner no change has touched yet, inserted (and a
/// duplicate key ignored) before its first update. Updates never upsert: an
/// upsert whose guard failed would insert a negative balance or collide with
/// the existing document, and concurrent upserts are where servers differ.
/// An untouched document (`v: 0`) is invisible to loads.
pub(crate) fn skeleton(owner: &OwnerId) -> Document {
    doc! {
        ID: owner.to_string(),
        USER: owner.user().as_str(),
        VERSION: 0_i64,
        ITEMS: {},
        RECENT: [],
    }
}

/// The projection a diagnosis or a compensation needs: version, window and the
/// touched balances.
pub(crate) fn touched_projection(owner: &OwnerId, change: &ValidChange) -> Document {
    let mut projection = doc! { ID: 0, VERSION: 1, RECENT: 1, BUCKETS: 1 };
    for op in change.ops_for(owner) {
        projection.insert(item_path(op.item()), 1);
    }
    projection
}

/// The version an applied update produced, from its projected post-image.
pub(crate) fn post_image_version(owner: &OwnerId, post: &Document) -> Result<Version, Error> {
    version_of(owner, post)
}

/// The consumed stacks the post-image shows at zero, to be removed.
pub(crate) fn emptied_items<'a>(
    owner: &'a OwnerId,
    change: &'a ValidChange,
    post: &'a Document,
) -> impl Iterator<Item = &'a ItemId> + 'a {
    change
        .ops_for(owner)
        .filter(|op| matches!(op, Operation::Consume { .. }))
        .map(Operation::item)
        .filter(move |item| matches!(balance(owner, post, item), Ok(0)))
}

/// Removes a zero stack, only if it is still zero: a concurrent grant that
/// refilled it makes the filter miss. The version is untouched: the balance
/// (absent = 0) did not change. `layout` says which document holds it.
pub(crate) fn zero_cleanup(owner: &OwnerId, item: &ItemId, layout: Layout) -> (Document, Document) {
    let path = item_path(item);
    let mut filter = holder_filter(owner, item, layout);
    filter.insert(path.as_str(), 0_i64);
    (filter, doc! { "$unset": { path: "" } })
}

/// Why an owner update matched nothing, decided from the document read after it.
#[derive(Debug)]
pub(crate) enum Diagnosis {
    /// The change id is in the window: the change was applied at this version.
    AlreadyApplied(Version),
    /// A guard fails against the current balances.
    Refused(Error),
    /// Neither: a concurrent change moved the balances between the update and
    /// the read. The update should be sent again.
    Raced,
    /// The owner has no document yet and the part would apply to an empty
    /// one: insert the [`skeleton`] and send the update again.
    Missing,
}

/// Decides why `owner`'s update for `change` matched nothing, from the owner's
/// document (projected with [`touched_projection`]) read afterwards.
pub(crate) fn diagnose(
    owner: &OwnerId,
    change: &ValidChange,
    doc: Option<&Document>,
) -> Result<Diagnosis, Error> {
    let Some(doc) = doc else {
        // No document: nothing was applied, and every consume sees 0.
        return Ok(match first_refusal(owner, change, None)? {
            Some(refusal) => Diagnosis::Refused(refusal),
            None => Diagnosis::Missing,
        });
    };
    if let Some(version) = applied_version(owner, doc, change.id())? {
        return Ok(Diagnosis::AlreadyApplied(version));
    }
    Ok(match first_refusal(owner, change, Some(doc))? {
        Some(refusal) => Diagnosis::Refused(refusal),
        None => Diagnosis::Raced,
    })
}

/// The first operation of `owner`'s part whose guard fails on `doc`, if any.
pub(crate) fn first_refusal(
    owner: &OwnerId,
    change: &ValidChange,
    doc: Option<&Document>,
) -> Result<Option<Error>, Error> {
    for op in change.ops_for(owner) {
        let held = match doc {
            Some(doc) => balance(owner, doc, op.item())?,
            None => 0,
        };
        if let Err(refusal) = next_balance(op, held) {
            return Ok(Some(refusal));
        }
    }
    Ok(None)
}

/// The version `id` produced on this owner, if it is in the window.
pub(crate) fn applied_version(
    owner: &OwnerId,
    doc: &Document,
    id: ChangeId,
) -> Result<Option<Version>, Error> {
    let recent = recent_of(owner, doc)?;
    let entry = applied_entry(id);
    let Some(index) = recent.iter().rposition(|e| *e == entry) else {
        return Ok(None);
    };
    let version = version_of(owner, doc)?.get();
    let behind = (recent.len() - 1 - index) as u64;
    version
        .checked_sub(behind)
        .filter(|v| *v > 0)
        .map(|v| Some(Version::new(v)))
        .ok_or_else(|| corrupt(owner, "the change window is longer than the version"))
}

/// The compensating update for one owner's part of a change.
#[derive(Debug)]
pub(crate) struct Undo {
    /// `{_id, u, v: <version read>}`: the update applies to exactly the
    /// document it was computed from (compare-and-set).
    pub(crate) filter: Document,
    /// `{$inc: {items.<x>: ∓n, v: 1}, $set: {recent: <window with the change retracted>}}`.
    pub(crate) update: Document,
    /// The stacks the undo brings to zero, to be removed afterwards.
    pub(crate) emptied: Vec<ItemId>,
}

/// The compensating update that undoes `owner`'s part of `change`, if that part
/// is applied: the inverse `$inc` of every balance, `v + 1` (a version is never
/// reused, so a cache that saw the undone part re-hydrates on the next gap),
/// and the window rewritten with the change's entry retracted and a retraction
/// entry for the new version, so the change id may be applied again later.
///
/// `Ok(None)`: nothing to undo (the part is not applied, or was already
/// undone), which makes a retried compensation a no-op.
/// `Err(Insufficient)`: the granted items were spent meanwhile; the undo must wait.
pub(crate) fn undo_update(
    owner: &OwnerId,
    change: &ValidChange,
    doc: Option<&Document>,
) -> Result<Option<Undo>, Error> {
    let Some(doc) = doc else {
        return Ok(None);
    };
    let mut recent = recent_of(owner, doc)?.clone();
    let entry = applied_entry(change.id());
    let Some(index) = recent.iter().rposition(|e| *e == entry) else {
        return Ok(None);
    };
    let version = version_of(owner, doc)?;
    let mut inc = Document::new();
    let mut emptied = Vec::new();
    for op in change.ops_for(owner) {
        let held = balance(owner, doc, op.item())?;
        if let Operation::Grant { item, qty, .. } = op {
            if held < qty.get() {
                return Err(Error::Insufficient {
                    owner: owner.clone(),
                    item: item.clone(),
                    requested: qty.get(),
                    held,
                });
            }
            if held == qty.get() {
                emptied.push(item.clone());
            }
        }
        inc.insert(item_path(op.item()), -op.delta());
    }
    inc.insert(VERSION, 1_i64);
    recent[index] = retracted_entry(change.id());
    recent.push(retracted_entry(change.id()));
    let excess = recent.len().saturating_sub(OWNER_WINDOW);
    recent.drain(..excess);
    Ok(Some(Undo {
        filter: doc! {
            ID: owner.to_string(),
            USER: owner.user().as_str(),
            VERSION: int(version.get()),
        },
        update: doc! { "$inc": inc, "$set": { RECENT: recent } },
        emptied,
    }))
}

/// Reads a stored document (projected without `recent`) as a snapshot; stacks
/// at zero (not yet cleaned up) are hidden.
pub(crate) fn snapshot(owner: &OwnerId, doc: &Document) -> Result<OwnerSnapshot, Error> {
    let mut snapshot = OwnerSnapshot::empty(owner.clone());
    snapshot.version = version_of(owner, doc)?;
    let items = match doc.get(ITEMS) {
        None => return Ok(snapshot),
        Some(Bson::Document(items)) => items,
        Some(other) => {
            return Err(corrupt(
                owner,
                format!("`items` is a {:?}", other.element_type()),
            ));
        }
    };
    for (key, value) in items {
        let item = ItemId::parse(key.as_str())
            .map_err(|e| corrupt(owner, format!("bad item key {key:?}: {e}")))?;
        let n = quantity(owner, key, value)?;
        if n > 0 {
            snapshot.items.insert(item, n);
        }
    }
    Ok(snapshot)
}

/// The owner a document listed for `user` names; a malformed or foreign `_id`
/// is reported against the user's account.
pub(crate) fn owner_of(user: &UserId, doc: &Document) -> Result<OwnerId, Error> {
    match doc.get(ID) {
        Some(Bson::String(id)) => match OwnerId::parse(id) {
            Ok(owner) if owner.user() == user => Ok(owner),
            _ => Err(corrupt(
                &OwnerId::account(user.clone()),
                format!("a document of this user has the malformed _id {id:?}"),
            )),
        },
        other => Err(corrupt(
            &OwnerId::account(user.clone()),
            format!("a document of this user has the _id {other:?}"),
        )),
    }
}

fn version_of(owner: &OwnerId, doc: &Document) -> Result<Version, Error> {
    match doc.get(VERSION) {
        None => Ok(Version::ZERO),
        Some(Bson::Int64(v)) if *v >= 0 => Ok(Version::new(v.unsigned_abs())),
        Some(Bson::Int32(v)) if *v >= 0 => Ok(Version::new(u64::from(v.unsigned_abs()))),
        Some(other) => Err(corrupt(owner, format!("version `v` is {other}"))),
    }
}

fn recent_of<'a>(owner: &OwnerId, doc: &'a Document) -> Result<&'a Vec<Bson>, Error> {
    static EMPTY: Vec<Bson> = Vec::new();
    match doc.get(RECENT) {
        None => Ok(&EMPTY),
        Some(Bson::Array(recent)) => Ok(recent),
        Some(other) => Err(corrupt(
            owner,
            format!("`recent` is a {:?}", other.element_type()),
        )),
    }
}

fn balance(owner: &OwnerId, doc: &Document, item: &ItemId) -> Result<u64, Error> {
    match doc.get(ITEMS) {
        None => Ok(0),
        Some(Bson::Document(items)) => items
            .get(item.as_str())
            .map_or(Ok(0), |value| quantity(owner, item.as_str(), value)),
        Some(other) => Err(corrupt(
            owner,
            format!("`items` is a {:?}", other.element_type()),
        )),
    }
}

fn quantity(owner: &OwnerId, key: &str, value: &Bson) -> Result<u64, Error> {
    let n = match value {
        Bson::Int64(n) => *n,
        Bson::Int32(n) => i64::from(*n),
        other => {
            return Err(corrupt(
                owner,
                format!("item {key} holds {other}, not an integer"),
            ));
        }
    };
    u64::try_from(n).map_err(|_| corrupt(owner, format!("item {key} holds a negative balance {n}")))
}

pub(crate) fn corrupt(owner: &OwnerId, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        owner: owner.clone(),
        detail: detail.into(),
    }
}

#[cfg(test)]
mod tests;

/// The journal document of an applied change: `_id` = the change id (so a
/// second insert of the same change fails with E11000), `c` = the change and
/// `p` = the versions it produced, both as JSON text.
pub(crate) fn journal_entry(
    change: &ValidChange,
    versions: &[(OwnerId, Version)],
    applied_at: i64,
) -> Result<Document, Error> {
    let mut entry = doc! {
        ID: applied_entry(change.id()),
        CHANGE: serde_json::to_string(change).map_err(json_error)?,
        VERSIONS: serde_json::to_string(versions).map_err(json_error)?,
    };
    entry.extend(support_fields(versions, applied_at));
    Ok(with_crafted_items(entry, change))
}

/// The journal document claiming a change id before its owners are updated
/// (the path without transactions): `{_id, c, s: "pending"}`.
pub(crate) fn pending_claim(change: &ValidChange) -> Result<Document, Error> {
    Ok(with_crafted_items(
        doc! {
            ID: applied_entry(change.id()),
            CHANGE: serde_json::to_string(change).map_err(json_error)?,
            STATE: PENDING,
        },
        change,
    ))
}

/// The filter matching `id`'s journal entry while it is a pending claim.
pub(crate) fn pending_filter(id: ChangeId) -> Document {
    doc! { ID: applied_entry(id), STATE: PENDING }
}

/// The update turning a pending claim into the entry of an applied change.
pub(crate) fn mark_applied(
    versions: &[(OwnerId, Version)],
    applied_at: i64,
) -> Result<Document, Error> {
    let mut set = doc! { VERSIONS: serde_json::to_string(versions).map_err(json_error)? };
    set.extend(support_fields(versions, applied_at));
    Ok(doc! {
        "$set": set,
        "$unset": { STATE: "" },
    })
}

/// The filter of the journal entries of applied changes (pending claims left out).
pub(crate) fn applied_only() -> Document {
    doc! { STATE: { "$exists": false } }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Backend(e.to_string())
}

/// What the journal holds for a change id.
#[derive(Debug)]
pub(crate) enum Recorded {
    /// The change is applied, with the versions it produced.
    Applied(JournalEntry),
    /// The change id is claimed by an attempt that has not finished (or
    /// crashed): the change may be applied on some, all or none of its owners.
    Pending(ValidChange),
}

/// A journal document read back.
pub(crate) fn read_recorded(doc: &Document) -> Result<Recorded, Error> {
    let malformed = |why: String| {
        Error::Backend(format!(
            "journal entry {:?} is malformed: {why}",
            doc.get(ID)
        ))
    };
    let text = |key: &str| doc.get_str(key).map_err(|e| malformed(e.to_string()));
    let change = serde_json::from_str(text(CHANGE)?).map_err(|e| malformed(e.to_string()))?;
    if doc.contains_key(STATE) {
        return Ok(Recorded::Pending(change));
    }
    Ok(Recorded::Applied(JournalEntry {
        change,
        versions: serde_json::from_str(text(VERSIONS)?).map_err(|e| malformed(e.to_string()))?,
    }))
}

/// The journal document of an applied change read back (scans filter out
/// pending claims with [`applied_only`]).
pub(crate) fn read_journal_entry(doc: &Document) -> Result<JournalEntry, Error> {
    match read_recorded(doc)? {
        Recorded::Applied(entry) => Ok(entry),
        Recorded::Pending(change) => Err(Error::Backend(format!(
            "journal entry {} is still pending",
            change.id()
        ))),
    }
}

/// The owner an owner document (read whole, as scans do) is about.
pub(crate) fn owner_id(doc: &Document) -> Result<OwnerId, Error> {
    let id = doc.get_str(ID).unwrap_or_default();
    OwnerId::parse(id)
        .map_err(|e| Error::Backend(format!("owner document {id:?} has a bad _id: {e}")))
}

/// An owner document read back raw: signed balances, zeros left out.
pub(crate) fn owner_record(doc: &Document) -> Result<OwnerRecord, Error> {
    let owner = owner_id(doc)?;
    let version = version_of(&owner, doc)?;
    let mut items = std::collections::BTreeMap::new();
    if let Ok(stored) = doc.get_document(ITEMS) {
        for (key, value) in stored {
            let item = ItemId::parse(key.as_str())
                .map_err(|e| corrupt(&owner, format!("bad item key {key:?}: {e}")))?;
            let n = match value {
                Bson::Int64(n) => *n,
                Bson::Int32(n) => i64::from(*n),
                other => {
                    return Err(corrupt(
                        &owner,
                        format!("balance of {key} is a {:?}", other.element_type()),
                    ));
                }
            };
            if n != 0 {
                items.insert(item, n);
            }
        }
    }
    Ok(OwnerRecord {
        owner,
        version,
        items,
    })
}
