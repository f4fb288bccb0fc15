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
];
