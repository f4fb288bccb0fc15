//! How the foundation's one writer thread writes a batch of changes (the
//! group commit itself, batching and lingering, is [`backends::sqlite`]'s).
//!
//! The batch's changes are applied in order inside ONE `BEGIN IMMEDIATE`
//! transaction, committed once (one fsync per batch under
//! `synchronous = FULL`); the foundation answers each caller only then. A
//! refused change must leave no trace in the batch: the writer checks a
//! change's guards before it writes any of it (see [`Isolation`]), and falls
//! back to a `SAVEPOINT` per change if a change ever fails half-written.
//!
//! Being the only writer is also what makes the idempotency check atomic: the
//! "was this change id applied, and with what content?" lookup in the journal
//! and the write happen in the same transaction, and no other writer can slip
//! in between.

use backends::BatchWriter;
use protocol::{
    ChangeEvent, MAX_BALANCE, Operation, OwnerId, ValidChange, Version, is_crafted_item_id,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::ledger::next_balance;
use crate::{ApplyOutcome, Error};

use super::{corrupt_or_sql, read, sql_error};

/// The store's side of the writer thread: applies a batch of changes.
#[derive(Debug)]
pub(super) struct ChangeWriter;

impl BatchWriter for ChangeWriter {
    type Request = ValidChange;
    type Outcome = Outcome;

    fn write_batch(&mut self, conn: &mut Connection, batch: &[ValidChange]) -> Vec<Outcome> {
        apply_batch(conn, batch)
    }
}

// The guarded consume: the `WHERE` refuses an overdraft in the same statement
// that writes, a second line behind the pre-check. (No `RETURNING` anywhere:
// SQLite builds an ephemeral table for it, which costs more than the
// statements it would save.)
const CONSUME: &str =
    "UPDATE items SET qty = qty - ?1 WHERE owner = ?2 AND item = ?3 AND qty >= ?1";
const HELD: &str = "SELECT qty FROM items WHERE owner = ?1 AND item = ?2";
const DELETE_EMPTY: &str = "DELETE FROM items WHERE owner = ?1 AND item = ?2 AND qty = 0";
// The guarded grant: a new stack, or an increment the upsert's `WHERE` refuses
// above MAX_BALANCE (then no row changes).
const GRANT: &str = "INSERT INTO items (owner, item, qty) VALUES (?1, ?2, ?3) \
     ON CONFLICT (owner, item) DO UPDATE SET qty = qty + excluded.qty \
     WHERE qty + excluded.qty <= ?4";
// Two lookups rather than one join: with STAT4, SQLite re-prepares a join
// whose plan might depend on the bound values, on every run.
const VERSION: &str = "SELECT version FROM owners WHERE owner = ?1";
const NEW_OWNER: &str = "INSERT INTO owners (owner, user, version) VALUES (?1, ?2, 1)";
const BUMP_VERSION: &str = "UPDATE owners SET version = version + 1 WHERE owner = ?1";
const JOURNAL: &str = "INSERT INTO journal (change_id, kind, change, versions, applied_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";
const JOURNAL_OWNER: &str = "INSERT INTO journal_owners (owner, version, seq) VALUES (?1, ?2, ?3)";
const JOURNAL_ITEM: &str = "INSERT OR IGNORE INTO journal_items (item, seq) VALUES (?1, ?2)";

/// How a batch keeps one change's failure from touching the others.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isolation {
    /// The fast path: a change's guards are checked (reads inside the
    /// writer's exclusive transaction, with the same pure rule as the
    /// in-memory ledger) before it writes anything, so a refused change has
    /// nothing to undo. A failure after a change began writing gives the
    /// whole batch up, to be redone with savepoints.
    Prechecked,
    /// Each change's writes under its own `SAVEPOINT`, rolled back alone on
    /// any failure. Not the default: SQLite copies every page a savepoint's
    /// change touches into a sub-journal.
    Savepoints,
}

/// Why a change was not applied.
enum Failure {
    /// Refused with nothing of it written: the batch goes on.
    Refused(Error),
    /// Failed after some of it was written, in the fast path: the batch must
    /// be rolled back and redone with savepoints.
    Dirty(Error),
}

pub(super) type Outcome = Result<ApplyOutcome, Error>;

/// Applies a batch in one transaction; one outcome per request, in order.
fn apply_batch(conn: &mut Connection, batch: &[ValidChange]) -> Vec<Outcome> {
    match run_batch(conn, batch, Isolation::Prechecked) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            tracing::warn!(%error, "a change failed half-written; redoing its batch with savepoints");
            run_batch(conn, batch, Isolation::Savepoints)
                .unwrap_or_else(|error| all_unavailable(batch, &error.to_string()))
        }
    }
}

fn all_unavailable(batch: &[ValidChange], why: &str) -> Vec<Outcome> {
    batch
        .iter()
        .map(|_| Err(Error::Unavailable(why.to_owned())))
        .collect()
}

/// One attempt at a batch; `Err` when a change failed half-written (the
/// transaction is then rolled back).
fn run_batch(
    conn: &mut Connection,
    batch: &[ValidChange],
    isolation: Isolation,
) -> Result<Vec<Outcome>, Error> {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        return Ok(all_unavailable(batch, &e.to_string()));
    }
    let applied_at = crate::now_millis();
    let mut outcomes = Vec::with_capacity(batch.len());
    for change in batch {
        match apply_one(conn, change, applied_at, isolation) {
            Ok(outcome) => outcomes.push(Ok(outcome)),
            Err(Failure::Refused(error)) => {
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back on its own (I/O
                    // error, disk full): the earlier changes are gone too.
                    return Ok(all_unavailable(
                        batch,
                        "the batch transaction was rolled back by SQLite",
                    ));
                }
                outcomes.push(Err(error));
            }
            Err(Failure::Dirty(error)) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(error);
            }
        }
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let why = e.to_string();
        if !conn.is_autocommit() {
            // Leave the connection usable for the next batch.
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Ok(all_unavailable(batch, &why));
    }
    Ok(outcomes)
}

/// Applies one change inside the batch transaction.
fn apply_one(
    conn: &Connection,
    change: &ValidChange,
    applied_at: i64,
    isolation: Isolation,
) -> Result<ApplyOutcome, Failure> {
    if let Some(recorded) = read::recorded(conn, change.id()).map_err(Failure::Refused)? {
        if !recorded.change.same_content(change) {
            return Err(Failure::Refused(Error::ChangeConflict { id: change.id() }));
        }
        return Ok(ApplyOutcome::AlreadyApplied(recorded.event()));
    }
    let states = owner_states(conn, change).map_err(Failure::Refused)?;
    let balances = check_guards(conn, change).map_err(Failure::Refused)?;
    let applied = |versions: Vec<(OwnerId, Version)>| {
        ApplyOutcome::Applied(ChangeEvent::from_applied(change, &versions))
    };
    if isolation == Isolation::Prechecked {
        return write_change(conn, change, &states, &balances, applied_at)
            .map(applied)
            .map_err(Failure::Dirty);
    }
    conn.prepare_cached("SAVEPOINT change")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| Failure::Refused(sql_error(e)))?;
    let (outcome, end) = match write_change(conn, change, &states, &balances, applied_at) {
        Ok(versions) => (Ok(applied(versions)), "RELEASE change"),
        Err(refused) => (Err(Failure::Refused(refused)), "ROLLBACK TO change"),
    };
    let ended = conn
        .prepare_cached(end)
        .and_then(|mut s| s.execute([]))
        .and_then(|_| {
            if outcome.is_ok() {
                Ok(0)
            } else {
                conn.prepare_cached("RELEASE change")?.execute([])
            }
        });
    if let Err(e) = ended {
        // A savepoint that cannot be closed could leave half a change in the
        // batch: give the whole batch up instead (the caller sees autocommit).
        let _ = conn.execute_batch("ROLLBACK");
        return Err(Failure::Refused(sql_error(e)));
    }
    outcome
}

/// Each operation's balance afterwards, or the first guard the change
/// breaks, from the balances as of now in this transaction. The writer is the
/// only writer, so nothing changes between this check and the writes; the
/// writes keep their SQL guards all the same.
fn check_guards(conn: &Connection, change: &ValidChange) -> Result<Vec<u64>, Error> {
    change
        .ops()
        .iter()
        .map(|op| {
            let owner = op.owner();
            let held: Option<i64> = conn
                .prepare_cached(HELD)
                .and_then(|mut s| {
                    s.query_row(params![owner.to_string(), op.item().as_str()], |r| r.get(0))
                })
                .optional()
                .map_err(|e| corrupt_or_sql(e, owner))?;
            let held = u64::try_from(held.unwrap_or(0)).map_err(|_| Error::Corrupt {
                owner: owner.clone(),
                detail: format!("negative quantity of {}", op.item()),
            })?;
            next_balance(op, held)
        })
        .collect()
}

/// One owner of a change as the writer's transaction sees it.
struct OwnerState<'a> {
    owner: &'a OwnerId,
    key: String,
    /// The version before the change; 0 for an owner never touched.
    version: i64,
}

fn owner_states<'a>(
    conn: &Connection,
    change: &'a ValidChange,
) -> Result<Vec<OwnerState<'a>>, Error> {
    change
        .owners()
        .map(|owner| {
            let key = owner.to_string();
            let version: Option<i64> = conn
                .prepare_cached(VERSION)
                .and_then(|mut s| s.query_row(params![key], |r| r.get(0)))
                .optional()
                .map_err(|e| corrupt_or_sql(e, owner))?;
            let version = match version {
                None => 0,
                Some(version) => {
                    stored_version(version, owner)?;
                    version
                }
            };
            Ok(OwnerState {
                owner,
                key,
                version,
            })
        })
        .collect()
}

/// Every write of one change whose guards passed; `balances` are the
/// operations' balances afterwards.
fn write_change(
    conn: &Connection,
    change: &ValidChange,
    states: &[OwnerState<'_>],
    balances: &[u64],
    applied_at: i64,
) -> Result<Vec<(OwnerId, Version)>, Error> {
    for (op, balance) in change.ops().iter().zip(balances) {
        write_operation(conn, op, *balance)?;
    }
    let mut versions = Vec::with_capacity(states.len());
    for state in states {
        let owner = state.owner;
        let sql_err = |e| corrupt_or_sql(e, owner);
        let bumped = if state.version == 0 {
            conn.prepare_cached(NEW_OWNER)
                .and_then(|mut s| s.execute(params![state.key, owner.user().as_str()]))
        } else {
            conn.prepare_cached(BUMP_VERSION)
                .and_then(|mut s| s.execute(params![state.key]))
        }
        .map_err(sql_err)?;
        if bumped != 1 {
            return Err(Error::Corrupt {
                owner: owner.clone(),
                detail: "the version row vanished during the change".to_owned(),
            });
        }
        versions.push((
            owner.clone(),
            stored_version(state.version.saturating_add(1), owner)?,
        ));
    }
    let id = *change.id().as_uuid().as_bytes();
    let id = id.as_slice();
    let body = serde_json::to_string(change).map_err(|e| Error::Backend(e.to_string()))?;
    let kind = serde_json::to_value(change.kind()).map_err(|e| Error::Backend(e.to_string()))?;
    let produced = serde_json::to_string(&versions).map_err(|e| Error::Backend(e.to_string()))?;
    conn.prepare_cached(JOURNAL)
        .and_then(|mut s| s.execute(params![id, kind.as_str(), body, produced, applied_at]))
        .map_err(sql_error)?;
    let seq = conn.last_insert_rowid();
    for (owner, version) in &versions {
        conn.prepare_cached(JOURNAL_OWNER)
            .and_then(|mut s| s.execute(params![owner.to_string(), version.get() as i64, seq]))
            .map_err(sql_error)?;
    }
    for op in change
        .ops()
        .iter()
        .filter(|op| is_crafted_item_id(op.item()))
    {
        conn.prepare_cached(JOURNAL_ITEM)
            .and_then(|mut s| s.execute(params![op.item().as_str(), seq]))
            .map_err(sql_error)?;
    }
    Ok(versions)
}

/// One guarded grant or consume, whose guard the pre-check passed; a stack
/// left at `balance` 0 is deleted.
fn write_operation(conn: &Connection, op: &Operation, balance: u64) -> Result<(), Error> {
    let owner = op.owner();
    let key = owner.to_string();
    let item = op.item().as_str();
    // Quantities are at most MAX_QUANTITY, far below i64::MAX.
    let qty = op.qty().get() as i64;
    let sql_err = |e| corrupt_or_sql(e, owner);
    let written = match op {
        Operation::Consume { .. } => conn
            .prepare_cached(CONSUME)
            .and_then(|mut s| s.execute(params![qty, key, item])),
        Operation::Grant { .. } => conn
            .prepare_cached(GRANT)
            .and_then(|mut s| s.execute(params![key, item, qty, MAX_BALANCE as i64])),
    }
    .map_err(sql_err)?;
    if written == 0 {
        // Only another process writing the file despite the writer's lock
        // could make a guard refuse what the pre-check accepted.
        return Err(Error::Backend(format!(
            "the guard on {item} of {owner} refused a change its pre-check accepted"
        )));
    }
    if balance == 0 {
        conn.prepare_cached(DELETE_EMPTY)
            .and_then(|mut s| s.execute(params![key, item]))
            .map_err(sql_err)?;
    }
    Ok(())
}

/// A version read back from the database, which must be positive.
fn stored_version(version: i64, owner: &OwnerId) -> Result<Version, Error> {
    u64::try_from(version)
        .ok()
        .filter(|v| *v > 0)
        .map(Version::new)
        .ok_or_else(|| Error::Corrupt {
            owner: owner.clone(),
            detail: format!("stored version {version} is not positive"),
        })
}
