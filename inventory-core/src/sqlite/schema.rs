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
//! - `recent_changes`: per owner, the last [`IDEMPOTENCY_WINDOW`] changes
//!   (version, change id, journal sequence number). It answers retries
//!   ("already applied, at this version") and, later, resumes ("the deltas
//!   after version v"). The writer prunes it as it goes, by primary key range.
//! - `journal`: every applied change, forever, in application order, for the
//!   audit: its id, kind, JSON body, the versions it produced and when.
//!
//! [`IDEMPOTENCY_WINDOW`]: crate::IDEMPOTENCY_WINDOW

/// Migration `n` (0-based) takes a database from `user_version` n to n + 1;
/// the foundation runs them when it opens the file.
pub(super) const MIGRATIONS: &[&str] = &["
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
"];
