//! `cargo bench -p inventory-core --bench store`: guarded single-item changes
//! per second through `InventoryStore` on SQLite, with 1 and 32 concurrent
//! callers, against a baseline measured in the same run: the naive raw
//! rusqlite loop (one autocommit guarded `UPDATE`, so one fsync, per change)
//! with the same durability settings (WAL, `synchronous = FULL`, a file on the
//! same disk).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inventory_core::{ApplyOutcome, InventoryStore, SqliteConfig, SqliteStore, Synchronous};
use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId, ValidChange};
use testkit::bench::{GoalOp, format_figure, goal, rate};

const RUN: Duration = Duration::from_secs(6);
const MANY: usize = 32;
const CROWD: usize = 256;
const GUARDED_UPDATE: &str =
    "UPDATE items SET qty = qty - ?1 WHERE owner = ?2 AND item = ?3 AND qty >= ?1";

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fsync = fsync_latency(&dir.path().join("probe"));
    let raw_1 = raw_rate(&dir.path().join("raw1.db"), 1);
    let ours_1 = ours_rate(&dir.path().join("ours1.db"), 1);
    let raw_many = raw_rate(&dir.path().join("raw32.db"), MANY);
    let ours_many = ours_rate(&dir.path().join("ours32.db"), MANY);
    // Context, not goals: what more callers buy, and the CPU-bound ceiling of
    // our path when commits do not wait for the disk.
    let ours_crowd = ours_rate(&dir.path().join("ours256.db"), CROWD);
    let ours_normal = ours_rate_with(&dir.path().join("ours32normal.db"), MANY, |c| {
        c.with_synchronous(Synchronous::Normal)
    });
    println!(
        "fsync after a 4 KiB in-place write on this disk: {} ms (mean over 1 s)",
        format_figure(fsync.as_secs_f64() * 1e3)
    );
    report("raw rusqlite, 1 caller", raw_1);
    report("InventoryStore, 1 caller", ours_1);
    report(&format!("raw rusqlite, {MANY} callers"), raw_many);
    report(&format!("InventoryStore, {MANY} callers"), ours_many);
    report(&format!("InventoryStore, {CROWD} callers"), ours_crowd);
    report(
        &format!("InventoryStore, {MANY} callers, synchronous=NORMAL"),
        ours_normal,
    );
    println!(
        "ratio ours/raw at 1 caller: {} x",
        format_figure(ours_1 / raw_1)
    );
    println!(
        "ratio ours/raw at {MANY} callers: {} x",
        format_figure(ours_many / raw_many)
    );
    goal(
        "store",
        "ratio_at_32",
        ours_many / raw_many,
        "x",
        GoalOp::AtLeast,
        1.0,
    );
    goal(
        "store",
        "rate_at_32",
        ours_many,
        "changes/s",
        GoalOp::AtLeast,
        20_000.0,
    );
}

fn report(what: &str, rate: f64) {
    println!("{what:<52} {:>10} changes/s", format_figure(rate));
}

/// The baseline: `callers` threads, each with its own connection, each
/// running the guarded `UPDATE` in autocommit (one transaction and one fsync
/// per change), waiting on the busy timeout when another holds the lock.
fn raw_rate(path: &Path, callers: usize) -> f64 {
    let setup = raw_connection(path);
    setup
        .execute_batch(
            "CREATE TABLE items (owner TEXT NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL,
                PRIMARY KEY (owner, item)) STRICT, WITHOUT ROWID;
             INSERT INTO items VALUES ('a:bench', 'ore', 1000000000000);",
        )
        .expect("raw schema");
    grow_wal(&setup);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (stop, done, path) = (stop.clone(), done.clone(), path.to_owned());
            std::thread::spawn(move || {
                let conn = raw_connection(&path);
                let mut update = conn.prepare_cached(GUARDED_UPDATE).expect("prepare");
                while !stop.load(Ordering::Relaxed) {
                    if update.execute((1, "a:bench", "ore")).expect("update") == 1 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("raw caller");
    }
    rate(done.load(Ordering::Relaxed), started.elapsed())
}

fn raw_connection(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open raw");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn
}

/// Ours: `callers` tasks each applying guarded single-item consumes through
/// `InventoryStore::apply`, on the default (durable) configuration.
fn ours_rate(path: &Path, callers: usize) -> f64 {
    ours_rate_with(path, callers, |config| config)
}

fn ours_rate_with(
    path: &Path,
    callers: usize,
    configure: impl FnOnce(SqliteConfig) -> SqliteConfig,
) -> f64 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(configure(SqliteConfig::new(path))).expect("open");
        grow_wal(&raw_connection(path));
        let owner = OwnerId::account(UserId::parse("bench").expect("id"));
        let ore = ItemId::parse("ore").expect("id");
        let stock = Change::new(ChangeId::random())
            .grant(
                owner.clone(),
                ore.clone(),
                Quantity::new(1_000_000_000).expect("qty"),
            )
            .validate()
            .expect("valid");
        assert!(matches!(
            store.apply(&stock).await,
            Ok(ApplyOutcome::Applied(_))
        ));
        let consume = move || -> ValidChange {
            Change::new(ChangeId::random())
                .consume(owner.clone(), ore.clone(), Quantity::new(1).expect("qty"))
                .validate()
                .expect("valid")
        };
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let before = store.stats();
        let cpu_before = process_cpu();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (stop, done, store, consume) =
                    (stop.clone(), done.clone(), store.clone(), consume.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(ApplyOutcome::Applied(_)) = store.apply(&consume()).await {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let started = Instant::now();
        tokio::time::sleep(RUN).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("caller");
        }
        let changes_per_s = rate(done.load(Ordering::Relaxed), started.elapsed());
        let stats = store.stats();
        let cpu = process_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before));
        let batches = stats.batches - before.batches;
        let requests = stats.requests - before.requests;
        println!(
            "  ({callers} callers: {requests} changes in {batches} commits, {} per commit, \
             {} ms per commit, {} us of CPU per change)",
            format_figure(requests as f64 / batches.max(1) as f64),
            format_figure(RUN.as_secs_f64() * 1e3 / batches.max(1) as f64),
            cpu.map_or_else(
                || "?".to_owned(),
                |cpu| format_figure(cpu.as_secs_f64() * 1e6 / requests.max(1) as f64)
            )
        );
        changes_per_s
    })
}

/// Puts a fresh database in the steady state of a long-running one: a WAL
/// file already grown past what a checkpoint interval writes, so commits
/// overwrite it in place instead of growing it (growing costs a metadata
/// flush per fsync). Done the same way for the baseline and for ours.
fn grow_wal(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "CREATE TABLE wal_ballast (b BLOB);
         INSERT INTO wal_ballast VALUES (zeroblob(6000000));
         DROP TABLE wal_ballast;",
    )
    .expect("grow the WAL");
}

/// The mean time of overwriting 4 KiB in place in a file and fsyncing it (as
/// a steady-state WAL commit does), over about a second: the floor under the
/// latency of any change acknowledged only once it is durable.
fn fsync_latency(path: &Path) -> Duration {
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 1024;
    let mut file = std::fs::File::create(path).expect("probe file");
    file.write_all(&vec![0u8; BLOCK * BLOCKS])
        .expect("probe fill");
    file.sync_all().expect("probe fsync");
    let started = Instant::now();
    let mut syncs = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        let offset = (syncs as usize % BLOCKS * BLOCK) as u64;
        file.seek(SeekFrom::Start(offset)).expect("probe seek");
        file.write_all(&[7u8; BLOCK]).expect("probe write");
        file.sync_all().expect("probe fsync");
        syncs += 1;
    }
    started.elapsed() / syncs
}

/// CPU time used so far by this process's live threads (Linux
/// `/proc/self/task/*/schedstat`), or `None` where that is not available.
/// Unlike wall time, it hardly moves when other work shares the machine.
fn process_cpu() -> Option<Duration> {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(nanos))
}
