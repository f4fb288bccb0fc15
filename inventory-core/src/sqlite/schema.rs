//! The store's SQLite schema: its migrations, keyed by `PRAGMA user_version`.
//!
//! Tables are `STRICT` (a hand-written text quantity is refused) and carry
//! `CHECK`s that restate the ledger's invariants, as a second line of defence
//! behind the guards in the writer's SQL.
//!
//! - `owners`: one row per touched owner with its version (the row exists
//!   exactly when the version is above 0).
//! - `items`: one row per positive stack; the writer deletes a stack the moment
//!   it reaches 0.
//! - `journal`: every applied change, forever, in application order: its id,
//!   kind, JSON body, the versions it produced and when. Indexed by change id
//!   (`journal_by_change`, migration 2): it is the store-wide record of
//!   applied change ids that answers retries ("already applied", with the
//!   recorded event), refuses an id reused for other content, and answers
//!   lookups; and the audit reads it.
//!
//! - `outbox_mark` (migration 3): one row, the journal sequence number up to
//!   which the outbox relay has published. Created at the journal's end, so
//!   the changes applied before it (published by the write path then) are
//!   not published again.
//!
//! - `journal_owners` (migration 4): one row per owner a journaled change
//!   touched, keyed by (owner, version): an owner's history, a page at a
//!   time, from the primary key.
//! - `journal_items` (migration 4): one row per crafted item (`x-` and 32
//!   hex digits) a journaled change moved, keyed by (item, seq): an item's
//!   custody from the primary key. Stackable items are left out: their
//!   rows would grow with every change.
//! - `operator_log` (migration 4): the operator audit log, keyed by the
//!   action's sortable id, its body as JSON.
//!
//! Migration 4 fills `journal_owners` and `journal_items` from the journal
//! already written.
//!
//! Migration 2 dropped `recent_changes`, the per-owner window of change ids
//! that answered retries before: a window per owner could not see an id
//! applied to another owner.

/// Migration `n` (0-based) takes a database from `user_version` n to n + 1;
/// the foundation runs them when it opens the file.
pub(super) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE owners (
        owner   TEXT PRIMARY KEY,
        user    TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX owners_by_user ON owners (user);

    CREATE TABLE items (
        owner TEXT NOT NULL,
        item  TEXT NOT NULL,
        qty   INTEGER NOT NULL CHECK (qty >= 0),
        PRIMARY KEY (owner, item)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE recent_changes (
        owner     TEXT NOT NULL,
        version   INTEGER NOT NULL,
        change_id BLOB NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (owner, version)
    ) STRICT, WITHOUT ROWID;
    CREATE UNIQUE INDEX recent_changes_by_id ON recent_changes (owner, change_id);

    CREATE TABLE journal (
        seq        INTEGER PRIMARY KEY,
        change_id  BLOB NOT NULL,
        kind       TEXT NOT NULL,
        change     TEXT NOT NULL,
        versions   TEXT NOT NULL,
        applied_at INTEGER NOT NULL
    ) STRICT;
",
    "
    CREATE INDEX journal_by_change ON journal (change_id);
    DROP TABLE recent_changes;
",
    "
    CREATE TABLE outbox_mark (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL CHECK (seq >= 0)
    ) STRICT;
    INSERT INTO outbox_mark (id, seq) SELECT 1, coalesce(max(seq), 0) FROM journal;
",
    "
    CREATE TABLE journal_owners (
        owner   TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version > 0),
        seq     INTEGER NOT NULL,
        PRIMARY KEY (owner, version)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO journal_owners (owner, version, seq)
        SELECT json_extract(v.value, '$[0]'), json_extract(v.value, '$[1]'), j.seq
        FROM journal j, json_each(j.versions) v;

    CREATE TABLE journal_items (
        item TEXT NOT NULL,
        seq  INTEGER NOT NULL,
        PRIMARY KEY (item, seq)
    ) STRICT, WITHOUT ROWID;
    INSERT OR IGNORE INTO journal_items (item, seq)
        SELECT json_extract(o.value, '$.item'), j.seq
        FROM journal j, json_each(j.change, '$.ops') o
        WHERE json_extract(o.value, '$.item') GLOB 'x-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]';

    CREATE TABLE operator_log (
        id   TEXT PRIMARY KEY,
        body TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;
",
];
