//! Loads on a read-only connection, each inside one read transaction so that
//! an owner's items and version come from the same WAL snapshot.

use std::collections::BTreeMap;

use protocol::{
    ChangeId, ItemId, MAX_BALANCE, OperatorAction, OwnerId, OwnerSnapshot, UserId, Version,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, JournalEntry, JournalRecord, OwnerRecord};

use super::{corrupt_or_sql, sql_error};

const VERSION: &str = "SELECT version FROM owners WHERE owner = ?1";
const ITEMS: &str = "SELECT item, qty FROM items WHERE owner = ?1";
const USER_OWNERS: &str = "SELECT owner FROM owners WHERE user = ?1";
// The first entry: a change id is journaled once (the writer checks before it
// writes); ordered all the same, so a database that predates that check
// answers with the change that applied first.
const RECORDED: &str =
    "SELECT seq, change, versions FROM journal WHERE change_id = ?1 ORDER BY seq LIMIT 1";

/// One owner's snapshot.
pub(super) fn load(conn: &mut Connection, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
    let tx = conn.transaction().map_err(sql_error)?;
    let snapshot = read_owner(&tx, owner)?;
    tx.commit().map_err(sql_error)?;
    Ok(snapshot)
}

/// Every touched owner of `user`, in ascending owner order, all from one
/// snapshot.
pub(super) fn load_user(conn: &mut Connection, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
    let tx = conn.transaction().map_err(sql_error)?;
    let account = OwnerId::account(user.clone());
    let keys: Vec<String> = tx
        .prepare_cached(USER_OWNERS)
        .and_then(|mut s| {
            s.query_map([user.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| corrupt_or_sql(e, &account))?;
    let mut snapshots = Vec::with_capacity(keys.len());
    for key in keys {
        let owner = OwnerId::parse(&key)
            .ok()
            .filter(|owner| owner.user() == user)
            .ok_or_else(|| Error::Corrupt {
                owner: account.clone(),
                detail: format!("owner row {key:?} does not name an owner of this user"),
            })?;
        snapshots.push(read_owner(&tx, &owner)?);
    }
    tx.commit().map_err(sql_error)?;
    snapshots.sort_by(|a, b| a.owner.cmp(&b.owner));
    Ok(snapshots)
}

fn read_owner(conn: &Connection, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
    let key = owner.to_string();
    let corrupt = |detail: String| Error::Corrupt {
        owner: owner.clone(),
        detail,
    };
    let version: Option<i64> = conn
        .prepare_cached(VERSION)
        .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
        .map_err(|e| corrupt_or_sql(e, owner))?;
    let version = match version {
        None => Version::ZERO,
        Some(v) if v > 0 => Version::new(v as u64),
        Some(v) => return Err(corrupt(format!("stored version {v} is not positive"))),
    };
    let rows: Vec<(String, i64)> = conn
        .prepare_cached(ITEMS)
        .and_then(|mut s| {
            s.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| corrupt_or_sql(e, owner))?;
    let mut items = BTreeMap::new();
    for (item, qty) in rows {
        let id = ItemId::parse(&item).map_err(|e| corrupt(format!("bad item id: {e}")))?;
        let qty = u64::try_from(qty)
            .ok()
            .filter(|q| (1..=MAX_BALANCE).contains(q))
            .ok_or_else(|| corrupt(format!("quantity {qty} of {item} is out of range")))?;
        items.insert(id, qty);
    }
    if version == Version::ZERO && !items.is_empty() {
        return Err(corrupt("items stored without a version".to_owned()));
    }
    Ok(OwnerSnapshot {
        owner: owner.clone(),
        version,
        items,
    })
}

const JOURNAL_PAGE: &str =
    "SELECT seq, change, versions FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2";
const OWNERS_PAGE: &str =
    "SELECT owner, version FROM owners WHERE owner > ?1 ORDER BY owner LIMIT ?2";
const ITEMS_OF_RANGE: &str =
    "SELECT owner, item, qty FROM items WHERE owner >= ?1 AND owner <= ?2 AND qty != 0";

/// The journal entry of change `id`, if it was applied: the writer's check
/// before it applies a change, and a lookup's answer.
pub(super) fn recorded(conn: &Connection, id: ChangeId) -> Result<Option<JournalEntry>, Error> {
    let row: Option<(i64, String, String)> = conn
        .prepare_cached(RECORDED)
        .and_then(|mut s| {
            s.query_row(params![id.as_uuid().as_bytes().as_slice()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .optional()
        .map_err(sql_error)?;
    row.map(|(seq, change, versions)| journal_entry(seq, &change, &versions))
        .transpose()
}

fn journal_entry(seq: i64, change: &str, versions: &str) -> Result<JournalEntry, Error> {
    let malformed =
        |e: serde_json::Error| Error::Backend(format!("journal entry {seq} is malformed: {e}"));
    Ok(JournalEntry {
        change: serde_json::from_str(change).map_err(malformed)?,
        versions: serde_json::from_str(versions).map_err(malformed)?,
    })
}

/// The outbox relay's mark: the journal sequence number published up to.
pub(super) fn outbox_mark(conn: &mut Connection) -> Result<i64, Error> {
    conn.prepare_cached("SELECT seq FROM outbox_mark WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sql_error)
}

/// The journal entries after sequence number `after`, at most `limit`, each
/// with its sequence number, in order.
pub(super) fn journal_page(
    conn: &mut Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, JournalEntry)>, Error> {
    let rows: Vec<(i64, String, String)> = conn
        .prepare_cached(JOURNAL_PAGE)
        .and_then(|mut s| {
            s.query_map(params![after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()
        })
        .map_err(sql_error)?;
    rows.into_iter()
        .map(|(seq, change, versions)| Ok((seq, journal_entry(seq, &change, &versions)?)))
        .collect()
}

/// The owners after `after` in ascending order, at most `limit`, each with
/// its stored stacks, from one read transaction.
pub(super) fn owners_page(
    conn: &mut Connection,
    after: &str,
    limit: usize,
) -> Result<Vec<OwnerRecord>, Error> {
    let tx = conn.transaction().map_err(sql_error)?;
    let owners: Vec<(String, i64)> = tx
        .prepare_cached(OWNERS_PAGE)
        .and_then(|mut s| {
            s.query_map(params![after, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql_error)?;
    let (Some((first, _)), Some((last, _))) = (owners.first(), owners.last()) else {
        return Ok(Vec::new());
    };
    let mut items: BTreeMap<String, BTreeMap<ItemId, i64>> = BTreeMap::new();
    let rows: Vec<(String, String, i64)> = tx
        .prepare_cached(ITEMS_OF_RANGE)
        .and_then(|mut s| {
            s.query_map(params![first, last], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()
        })
        .map_err(sql_error)?;
    for (owner, item, qty) in rows {
        let id = ItemId::parse(&item)
            .map_err(|e| Error::Backend(format!("{owner} holds a bad item id {item:?}: {e}")))?;
        items.entry(owner).or_default().insert(id, qty);
    }
    tx.commit().map_err(sql_error)?;
    owners
        .into_iter()
        .map(|(key, version)| {
            let owner = OwnerId::parse(&key)
                .map_err(|e| Error::Backend(format!("bad owner id {key:?}: {e}")))?;
            Ok(OwnerRecord {
                version: Version::new(u64::try_from(version).unwrap_or(0)),
                items: items.remove(&key).unwrap_or_default(),
                owner,
            })
        })
        .collect()
}

const HISTORY: &str = "SELECT j.seq, j.change, j.versions, j.applied_at \
     FROM journal_owners o JOIN journal j ON j.seq = o.seq \
     WHERE o.owner = ?1 AND o.version < ?2 ORDER BY o.version DESC LIMIT ?3";
const ITEM_CHANGES: &str = "SELECT j.seq, j.change, j.versions, j.applied_at \
     FROM journal_items i JOIN journal j ON j.seq = i.seq WHERE i.item = ?1 ORDER BY i.seq";
const ONE_CHANGE: &str = "SELECT seq, change, versions, applied_at FROM journal \
     WHERE change_id = ?1 ORDER BY seq LIMIT 1";
const ACTIONS: &str = "SELECT body FROM operator_log WHERE id < ?1 ORDER BY id DESC LIMIT ?2";

/// Up to `limit` of `owner`'s journaled changes below version `before`,
/// newest first.
pub(super) fn history(
    conn: &mut Connection,
    owner: &OwnerId,
    before: Option<Version>,
    limit: usize,
) -> Result<Vec<JournalRecord>, Error> {
    let before = before.map_or(i64::MAX, |v| i64::try_from(v.get()).unwrap_or(i64::MAX));
    records(
        conn,
        HISTORY,
        params![owner.to_string(), before, limit as i64],
    )
}

/// Every journaled change that moved the crafted `item`, in journal order.
pub(super) fn item_changes(
    conn: &mut Connection,
    item: &ItemId,
) -> Result<Vec<JournalRecord>, Error> {
    records(conn, ITEM_CHANGES, params![item.as_str()])
}

/// The record of change `id`, if it was applied.
pub(super) fn change(conn: &mut Connection, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
    let mut found = records(
        conn,
        ONE_CHANGE,
        params![id.as_uuid().as_bytes().as_slice()],
    )?;
    Ok(found.pop())
}

fn records(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<JournalRecord>, Error> {
    let rows: Vec<(i64, String, String, i64)> = conn
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql_error)?;
    rows.into_iter()
        .map(|(seq, change, versions, at)| {
            Ok(JournalRecord {
                entry: journal_entry(seq, &change, &versions)?,
                applied_at: u64::try_from(at).ok(),
            })
        })
        .collect()
}

/// Up to `limit` operator actions with an id below `before`, newest first.
pub(super) fn actions(
    conn: &mut Connection,
    before: Option<&str>,
    limit: usize,
) -> Result<Vec<OperatorAction>, Error> {
    // Ids are ASCII digits, '-' and hex; '~' sorts above them all.
    let before = before.unwrap_or("~");
    let bodies: Vec<String> = conn
        .prepare_cached(ACTIONS)
        .and_then(|mut s| {
            s.query_map(params![before, limit as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql_error)?;
    bodies
        .iter()
        .map(|body| {
            serde_json::from_str(body)
                .map_err(|e| Error::Backend(format!("operator log entry is malformed: {e}")))
        })
        .collect()
}
