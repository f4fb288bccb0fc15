//! The SQLite foundation on a real file: opening and pragmas, migrations, the
//! group commit, the reader pool.

use std::time::Duration;

use backends::{BatchWriter, Database, Error, SqliteConfig};
use futures::future::join_all;
use rusqlite::Connection;

/// Counts one row per request; a negative request is refused, leaving no
/// trace, while the rest of its batch commits.
#[derive(Debug)]
struct Counter;

impl BatchWriter for Counter {
    type Request = i64;
    type Outcome = Result<i64, String>;

    fn write_batch(&mut self, conn: &mut Connection, batch: &[i64]) -> Vec<Self::Outcome> {
        let tx = conn.transaction().expect("begin");
        let outcomes = batch
            .iter()
            .map(|&n| {
                if n < 0 {
                    return Err(format!("{n} is refused"));
                }
                tx.execute("INSERT INTO counts (n) VALUES (?1)", [n])
                    .map(|_| n)
                    .map_err(|e| e.to_string())
            })
            .collect();
        tx.commit().expect("commit");
        outcomes
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE counts (n INTEGER NOT NULL) STRICT;",
    "CREATE INDEX counts_by_n ON counts (n);",
];

async fn count(db: &Database<Counter>) -> i64 {
    db.read(|conn| Ok::<_, Error>(conn.query_row("SELECT count(*) FROM counts", [], |r| r.get(0))?))
        .await
        .expect("count")
}

#[tokio::test]
async fn open_creates_the_directory_sets_wal_and_migrates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/deeper/counts.db");
    let db = Database::open(&SqliteConfig::new(&path), SCHEMA, Counter).expect("open");
    assert_eq!(db.write(1).await.expect("write"), Ok(1));
    let raw = Connection::open(&path).expect("raw");
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2);
}

#[tokio::test]
async fn reopening_migrates_only_what_is_new_and_keeps_the_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(dir.path().join("counts.db"));
    let db = Database::open(&config, &SCHEMA[..1], Counter).expect("open");
    db.write(7).await.expect("write").expect("counted");
    drop(db);
    let db = Database::open(&config, SCHEMA, Counter).expect("reopen");
    assert_eq!(count(&db).await, 1);
    let indexes: i64 = db
        .read(|conn| {
            Ok::<_, Error>(conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'counts_by_n'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("indexes");
    assert_eq!(indexes, 1);
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("counts.db");
    let conn = Connection::open(&path).expect("create");
    conn.pragma_update(None, "user_version", 99)
        .expect("pragma");
    drop(conn);
    match Database::open(&SqliteConfig::new(&path), SCHEMA, Counter) {
        Err(
            e @ Error::NewerSchema {
                found: 99,
                known: 2,
            },
        ) => assert!(!e.is_transient()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_a_refusal_stays_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(dir.path().join("counts.db"))
        .with_linger(Duration::from_millis(2))
        .with_batch_limit(32);
    let db = Database::open(&config, SCHEMA, Counter).expect("open");
    let before = db.stats();
    let outcomes = join_all((-1..63).map(|n| db.write(n))).await;
    let refused = outcomes.iter().filter(|o| matches!(o, Ok(Err(_)))).count();
    assert_eq!(refused, 1, "{outcomes:?}");
    let after = db.stats();
    assert_eq!(after.requests - before.requests, 64);
    let batches = after.batches - before.batches;
    assert!(batches <= 16, "64 concurrent writes took {batches} commits");
    assert!((4..=32).contains(&after.largest_batch), "{after:?}");
    assert_eq!(count(&db).await, 63);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_proceed_while_another_connection_holds_the_write_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("counts.db");
    let config = SqliteConfig::new(&path)
        .with_busy_timeout(Duration::from_millis(100))
        .with_readers(2);
    let db = Database::open(&config, SCHEMA, Counter).expect("open");
    db.write(1).await.expect("write").expect("counted");
    let other = Connection::open(&path).expect("raw");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let reads = join_all((0..8).map(|_| count(&db))).await;
    assert!(reads.iter().all(|&n| n == 1), "{reads:?}");
    other.execute_batch("ROLLBACK").expect("unlock");
}

#[tokio::test]
async fn what_a_clone_wrote_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(dir.path().join("counts.db"));
    let db = Database::open(&config, SCHEMA, Counter).expect("open");
    let clone = db.clone();
    assert_eq!(clone.write(5).await.expect("write"), Ok(5));
    drop(clone);
    drop(db);
    let db = Database::open(&config, SCHEMA, Counter).expect("reopen");
    assert_eq!(count(&db).await, 1);
}
