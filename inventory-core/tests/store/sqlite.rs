//! The SQLite store: the conformance suite on a real file, and what only a
//! durable store can show: reopening, corrupt rows, group commit, pruning of
//! the idempotency window, a journal that replays to the same state, and no
//! acknowledged change lost to SIGKILL.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use inventory_core::conformance::{fresh_account, item, qty};
use inventory_core::{
    ApplyOutcome, Error, IDEMPOTENCY_WINDOW, InventoryStore, JournalEntry, JournalRecord,
    MemoryStore, Outbox, OwnerRecord, SqliteConfig, SqliteStore, StoreScan, SupportStore,
    Synchronous,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use protocol::{
    Change, ChangeEvent, ChangeId, CharacterId, ErrorCode, ItemId, OperatorAction, OwnerId,
    OwnerSnapshot, UserId, ValidChange, Version,
};
use tempfile::TempDir;

/// A store in its own temporary directory, which outlives it.
struct TempStore {
    // Fields drop in order: the store closes before its directory goes.
    store: SqliteStore,
    dir: TempDir,
}

impl TempStore {
    fn new() -> Self {
        Self::with(|config| config)
    }

    fn with(configure: impl FnOnce(SqliteConfig) -> SqliteConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = configure(SqliteConfig::new(db_path(dir.path())));
        let store = SqliteStore::open(config).expect("open");
        Self { store, dir }
    }
}

#[async_trait]
impl InventoryStore for TempStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        self.store.apply(change).await
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        self.store.load(owner).await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        self.store.load_user(user).await
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        self.store.lookup(id).await
    }

    fn outbox(&self) -> Option<&dyn Outbox> {
        self.store.outbox()
    }
}

#[async_trait]
impl StoreScan for TempStore {
    async fn scan_journal(
        &self,
        visit: &mut (dyn FnMut(JournalEntry) + Send),
    ) -> Result<(), Error> {
        self.store.scan_journal(visit).await
    }

    async fn scan_owners(&self, visit: &mut (dyn FnMut(OwnerRecord) + Send)) -> Result<(), Error> {
        self.store.scan_owners(visit).await
    }
}

inventory_core::store_conformance_tests!(TempStore::new());

mod outbox {
    use super::TempStore;

    inventory_core::outbox_conformance_tests!(TempStore::new());
}

mod scan {
    use super::TempStore;

    inventory_core::scan_conformance_tests!(TempStore::new());
}

mod support {
    use super::TempStore;

    inventory_core::support_conformance_tests!(TempStore::new());
}

#[async_trait]
impl SupportStore for TempStore {
    async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error> {
        self.store.history(owner, before, limit).await
    }

    async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
        self.store.change(id).await
    }

    async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error> {
        self.store.item_changes(item).await
    }

    async fn record_action(&self, action: &OperatorAction) -> Result<(), Error> {
        self.store.record_action(action).await
    }

    async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error> {
        self.store.actions(before, limit).await
    }
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("inventory.db")
}

fn grant_with(id: ChangeId, owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    Change::new(id)
        .grant(owner.clone(), item(name), qty(n))
        .validate()
        .expect("valid")
}

fn grant(owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    grant_with(ChangeId::random(), owner, name, n)
}

fn consume(owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    Change::new(ChangeId::random())
        .consume(owner.clone(), item(name), qty(n))
        .validate()
        .expect("valid")
}

async fn applied(store: &SqliteStore, change: &ValidChange) -> Vec<(OwnerId, Version)> {
    match store.apply(change).await {
        Ok(ApplyOutcome::Applied(event)) => event.versions(),
        other => panic!("expected Applied for {change:?}, got {other:?}"),
    }
}

fn raw(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(db_path(dir.path())).expect("raw connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(db_path(dir.path()));
    let user = UserId::parse("reopen").expect("id");
    let account = OwnerId::account(user.clone());
    let hero = OwnerId::character(user.clone(), CharacterId::parse("hero").expect("id"));
    let other = fresh_account("reopenother");
    let first = grant(&account, "gold", 10);
    let trade = Change::trade(
        ChangeId::random(),
        (hero.clone(), &[(item("ore"), qty(2))]),
        (other.clone(), &[(item("gem"), qty(1))]),
    )
    .validate()
    .expect("valid");
    let (before, first_versions, trade_versions) = {
        let store = SqliteStore::open(config.clone()).expect("open");
        let first_versions = applied(&store, &first).await;
        applied(&store, &grant(&hero, "ore", 5)).await;
        applied(&store, &grant(&other, "gem", 1)).await;
        applied(&store, &consume(&account, "gold", 4)).await;
        let trade_versions = applied(&store, &trade).await;
        let before = store.load_user(&user).await.expect("load_user");
        (before, first_versions, trade_versions)
    };
    let store = SqliteStore::open(config).expect("reopen");
    assert_eq!(store.load_user(&user).await.expect("load_user"), before);
    assert_eq!(before.len(), 2);
    assert_eq!(before[0].items, BTreeMap::from([(item("gold"), 6)]));
    assert_eq!(
        before[1].items,
        BTreeMap::from([(item("gem"), 1), (item("ore"), 3)])
    );
    assert_eq!(
        store.apply(&first).await.expect("retry"),
        ApplyOutcome::AlreadyApplied(ChangeEvent::from_applied(&first, &first_versions))
    );
    assert_eq!(
        store.apply(&trade).await.expect("retry"),
        ApplyOutcome::AlreadyApplied(ChangeEvent::from_applied(&trade, &trade_versions))
    );
    assert_eq!(store.load(&other).await.expect("load").version.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_reported_naming_the_owner() {
    let temp = TempStore::new();
    let store = &temp.store;
    let bad_item = fresh_account("badid");
    let negative = fresh_account("negative");
    for owner in [&bad_item, &negative] {
        applied(store, &grant(owner, "wood", 5)).await;
    }
    let conn = raw(&temp.dir);
    conn.execute(
        "UPDATE items SET item = 'not an id!' WHERE owner = ?1",
        [bad_item.to_string()],
    )
    .expect("hand-written bad item id");
    // The schema's CHECK refuses a negative quantity; a hand edit may not.
    conn.execute_batch("PRAGMA ignore_check_constraints = ON")
        .expect("pragma");
    conn.execute(
        "UPDATE items SET qty = -3 WHERE owner = ?1",
        [negative.to_string()],
    )
    .expect("hand-written negative quantity");

    for owner in [&bad_item, &negative] {
        match store.load(owner).await {
            Err(Error::Corrupt { owner: named, .. }) => assert_eq!(&named, owner),
            other => panic!("expected Corrupt for {owner}, got {other:?}"),
        }
        match store.load_user(owner.user()).await {
            Err(Error::Corrupt { owner: named, .. }) => assert_eq!(&named, owner),
            other => panic!("expected Corrupt for {owner}, got {other:?}"),
        }
    }
    for change in [consume(&negative, "wood", 1), grant(&negative, "wood", 1)] {
        match store.apply(&change).await {
            Err(Error::Corrupt { owner: named, .. }) => assert_eq!(named, negative),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    // Other owners are unaffected, and so is the writer.
    let healthy = fresh_account("healthy");
    applied(store, &grant(&healthy, "wood", 1)).await;
    assert_eq!(store.load(&healthy).await.expect("load").version.get(), 1);
}

/// A change that fails after it began writing (here: a hand-written trigger
/// refuses its owner's version bump, which comes after its item writes) is
/// rolled back alone, and the changes batched with it still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_failing_half_written_fails_alone() {
    let temp = TempStore::new();
    let store = &temp.store;
    let broken = fresh_account("halfwritten");
    let healthy = fresh_account("halfhealthy");
    applied(store, &grant(&broken, "wood", 5)).await;
    let conn = raw(&temp.dir);
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse_bump BEFORE UPDATE ON owners WHEN NEW.owner = '{broken}' \
         BEGIN SELECT RAISE(ABORT, 'hand-written refusal'); END"
    ))
    .expect("hand-written trigger");
    let changes: Vec<ValidChange> = (0..8)
        .map(|i| {
            if i == 3 {
                grant(&broken, "wood", 1)
            } else {
                grant(&healthy, "gold", 1)
            }
        })
        .collect();
    for _ in 0..3 {
        let outcomes = join_all(changes.iter().map(|c| store.apply(c))).await;
        for (i, outcome) in outcomes.iter().enumerate() {
            match (i, outcome) {
                (3, Err(Error::Corrupt { owner, .. })) => assert_eq!(owner, &broken),
                (3, other) => panic!("expected Corrupt, got {other:?}"),
                (_, Ok(_)) => {}
                (_, Err(e)) => panic!("a healthy change failed: {e}"),
            }
        }
    }
    let held: i64 = conn
        .query_row(
            "SELECT qty FROM items WHERE owner = ?1",
            [broken.to_string()],
            |r| r.get(0),
        )
        .expect("stack");
    assert_eq!(held, 5, "the failed grant left a trace");
    let snap = store.load(&healthy).await.expect("load");
    assert_eq!(snap.items[&item("gold")], 7);
    assert_eq!(snap.version.get(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_concurrent_changes() {
    let temp = TempStore::new();
    let store = &temp.store;
    let owner = fresh_account("batch");
    applied(store, &grant(&owner, "ore", 64)).await;
    let before = store.stats();
    let changes: Vec<ValidChange> = (0..64).map(|_| consume(&owner, "ore", 1)).collect();
    let outcomes = join_all(changes.iter().map(|c| store.apply(c))).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(ApplyOutcome::Applied(_))))
    );
    let after = store.stats();
    let batches = after.batches - before.batches;
    assert_eq!(after.requests - before.requests, 64);
    assert!(
        batches <= 16,
        "64 concurrent changes took {batches} commits"
    );
    assert!(after.largest_batch >= 4, "{after:?}");
    let snap = store.load(&owner).await.expect("load");
    assert!(snap.items.is_empty());
    assert_eq!(snap.version.get(), 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_in_a_batch_rolls_back_only_itself() {
    let temp = TempStore::new();
    let store = &temp.store;
    let owner = fresh_account("savepoint");
    applied(store, &grant(&owner, "wood", 10)).await;
    // Three crafts that each need 5 wood, sent at once: two fit.
    let crafts: Vec<ValidChange> = (0..3)
        .map(|_| {
            Change::new(ChangeId::random())
                .grant(owner.clone(), item("plank"), qty(1))
                .consume(owner.clone(), item("wood"), qty(5))
                .validate()
                .expect("valid")
        })
        .collect();
    let outcomes = join_all(crafts.iter().map(|c| store.apply(c))).await;
    let applied = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(applied, 2, "{outcomes:?}");
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.items, BTreeMap::from([(item("plank"), 2)]));
    assert_eq!(snap.version.get(), 3);
}

/// The journal keeps every change, and with it the record of every change id:
/// a retry of the oldest change, well beyond MongoDB's window of
/// `IDEMPOTENCY_WINDOW` changes per owner, still answers "already applied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_every_change_id_beyond_the_window() {
    let temp = TempStore::with(|c| c.with_synchronous(Synchronous::Off));
    let store = &temp.store;
    let owner = fresh_account("prune");
    let first = grant(&owner, "gem", 1);
    applied(store, &first).await;
    let total = IDEMPOTENCY_WINDOW + 100;
    let tasks = (0..8).map(|t| {
        let owner = owner.clone();
        async move {
            for _ in (t..total).step_by(8) {
                applied(store, &grant(&owner, "wood", 1)).await;
            }
        }
    });
    join_all(tasks).await;
    let conn = raw(&temp.dir);
    let count = |sql: &str| -> i64 {
        conn.query_row(sql, [owner.to_string()], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(
        count("SELECT count(*) FROM journal WHERE versions LIKE '%' || ?1 || '%'"),
        total as i64 + 1
    );
    assert!(matches!(
        store.apply(&first).await,
        Ok(ApplyOutcome::AlreadyApplied(_))
    ));
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.version, Version::new(total as u64 + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_unavailable_then_recovers() {
    let temp = TempStore::with(|c| c.with_busy_timeout(Duration::from_millis(100)));
    let store = &temp.store;
    let owner = fresh_account("busy");
    applied(store, &grant(&owner, "wood", 1)).await;
    // Another process holds the write lock.
    let other = raw(&temp.dir);
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let change = grant(&owner, "wood", 1);
    match store.apply(&change).await {
        Err(e @ Error::Unavailable(_)) => assert_eq!(e.code(), ErrorCode::Unavailable),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // WAL readers are not blocked by a writer.
    assert_eq!(store.load(&owner).await.expect("load").version.get(), 1);
    other.execute_batch("ROLLBACK").expect("unlock");
    applied(store, &change).await;
    assert_eq!(
        store.load(&owner).await.expect("load").items[&item("wood")],
        2
    );
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = rusqlite::Connection::open(db_path(dir.path())).expect("create");
    conn.pragma_update(None, "user_version", 99)
        .expect("pragma");
    drop(conn);
    match SqliteStore::open(SqliteConfig::new(db_path(dir.path()))) {
        Err(Error::Backend(detail)) => assert!(detail.contains("99"), "{detail}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A random change over two users' accounts and characters and three items:
/// (owner index, item index, signed quantity) per operation, and whether it is
/// sent twice at once.
type RandomChange = (Vec<(usize, usize, i64)>, bool);

fn random_changes() -> impl Strategy<Value = Vec<RandomChange>> {
    let op = (0usize..4, 0usize..3, prop_oneof![1i64..6, -5i64..0]);
    proptest::collection::vec((proptest::collection::vec(op, 1..4), any::<bool>()), 1..24)
}

fn build(owners: &[OwnerId], ops: &[(usize, usize, i64)]) -> Option<ValidChange> {
    let items = ["wood", "ore", "gem"];
    let mut change = Change::new(ChangeId::random());
    for &(o, i, q) in ops {
        let (owner, item) = (owners[o].clone(), ItemId::parse(items[i]).ok()?);
        let n = qty(q.unsigned_abs());
        change = if q > 0 {
            change.grant(owner, item, n)
        } else {
            change.consume(owner, item, n)
        };
    }
    change.validate().ok()
}

/// Property: the journal is a faithful record. Replaying its changes in order
/// on a fresh in-memory ledger applies each one (none is refused), produces
/// the versions the journal recorded, and ends in exactly the SQLite store's
/// state; and it holds each applied change exactly once, whatever the
/// duplicates and refusals.
#[test]
fn the_journal_replays_to_the_same_state() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&random_changes(), |changes| {
        runtime.block_on(async {
            let temp = TempStore::with(|c| c.with_synchronous(Synchronous::Off));
            let store = &temp.store;
            let hero = CharacterId::parse("hero").expect("id");
            let (a, b) = (fresh_account("journala"), fresh_account("journalb"));
            let owners = [
                a.clone(),
                OwnerId::character(a.user().clone(), hero.clone()),
                b.clone(),
                OwnerId::character(b.user().clone(), hero),
            ];
            let mut applied_now = 0;
            for (ops, twice) in &changes {
                let Some(change) = build(&owners, ops) else {
                    continue;
                };
                let sends = if *twice { 2 } else { 1 };
                let outcomes = join_all((0..sends).map(|_| store.apply(&change))).await;
                applied_now += outcomes
                    .iter()
                    .filter(|o| matches!(o, Ok(ApplyOutcome::Applied(_))))
                    .count();
            }
            let rows: Vec<(String, String)> = raw(&temp.dir)
                .prepare("SELECT change, versions FROM journal ORDER BY seq")
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .expect("journal");
            prop_assert_eq!(rows.len(), applied_now);
            let replay = MemoryStore::new();
            for (body, versions) in &rows {
                let change: ValidChange = serde_json::from_str(body).expect("journal change");
                let versions: Vec<(OwnerId, Version)> =
                    serde_json::from_str(versions).expect("journal versions");
                prop_assert_eq!(
                    replay.apply(&change).await.expect("replay").versions(),
                    versions
                );
            }
            for owner in &owners {
                prop_assert_eq!(
                    store.load(owner).await.expect("load"),
                    replay.load(owner).await.expect("load")
                );
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

const CHILD_DB: &str = "INVENTORY_CORE_SQLITE_CHILD_DB";
const CHILD_TASKS: usize = 8;
const KILL_AFTER_ACKS: usize = 200;

/// The child half of `sigkill_loses_no_acknowledged_change`: applies grants
/// from several tasks, printing `sent <owner> <id>` before each and
/// `acked <owner> <id>` after each acknowledgement, until it is killed.
#[test]
#[ignore = "run by sigkill_loses_no_acknowledged_change in a child process"]
fn durability_child() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(path)).expect("open");
        let tasks = (0..CHILD_TASKS).map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let owner = OwnerId::parse(&format!("a:durable{t}")).expect("owner");
                // Bounded so a child nobody kills still ends, well inside the
                // idempotency window the parent relies on.
                for _ in 0..IDEMPOTENCY_WINDOW {
                    let id = ChangeId::random();
                    say(&format!("sent {owner} {id}"));
                    applied(&store, &grant_with(id, &owner, "wood", 1)).await;
                    say(&format!("acked {owner} {id}"));
                }
            })
        });
        for task in join_all(tasks).await {
            task.expect("task");
        }
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("flush");
}

#[test]
fn sigkill_loses_no_acknowledged_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db_path(dir.path());
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "sqlite::durability_child",
            "--nocapture",
            "--ignored",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut sent: HashMap<OwnerId, Vec<ChangeId>> = HashMap::new();
    let mut acked: HashMap<OwnerId, Vec<ChangeId>> = HashMap::new();
    let mut acks = 0;
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        let mut words = line.split(' ');
        // Lines from the test harness itself are skipped.
        let (Some(what @ ("sent" | "acked")), Some(owner), Some(id), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let owner = OwnerId::parse(owner).expect("owner");
        let id = ChangeId::parse(id).expect("change id");
        if what == "sent" {
            sent.entry(owner).or_default().push(id);
        } else {
            acked.entry(owner).or_default().push(id);
            acks += 1;
        }
        if acks >= KILL_AFTER_ACKS && !killed {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    child.wait().expect("reap child");
    assert!(killed, "the child ended after {acks} acks, before the kill");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(&path)).expect("reopen");
        for (owner, sent) in &sent {
            let acked = acked.get(owner).map_or(&[][..], Vec::as_slice);
            let snap = store.load(owner).await.expect("load");
            let balance = snap.items.get(&item("wood")).copied().unwrap_or(0);
            assert!(
                acked.len() as u64 <= balance && balance <= sent.len() as u64,
                "{owner}: {} acked, {balance} held, {} sent",
                acked.len(),
                sent.len()
            );
            assert_eq!(snap.version.get(), balance, "{owner}");
            for id in acked {
                let retry = store.apply(&grant_with(*id, owner, "wood", 1)).await;
                assert!(
                    matches!(retry, Ok(ApplyOutcome::AlreadyApplied(_))),
                    "{owner} {id}: {retry:?}"
                );
            }
            let after = store.load(owner).await.expect("load");
            assert_eq!(after, snap, "retries changed {owner}");
        }
    });
}

/// The outbox mark survives a reopening: a relay started after a crash
/// publishes from where the last one marked, not from the beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_mark_survives_a_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(db_path(dir.path()));
    let owner = fresh_account("mark");
    let (marked, unmarked) = {
        let store = SqliteStore::open(config.clone()).expect("open");
        let marked = applied(&store, &grant(&owner, "wood", 1)).await;
        let outbox = store.outbox().expect("outbox");
        let entries = outbox.read_after(None, 10).await.expect("read");
        assert_eq!(entries.len(), 1);
        outbox
            .mark_published(&entries[0].position)
            .await
            .expect("mark");
        let unmarked = applied(&store, &grant(&owner, "wood", 2)).await;
        (marked, unmarked)
    };
    let store = SqliteStore::open(config).expect("reopen");
    let entries = store
        .outbox()
        .expect("outbox")
        .read_after(None, 10)
        .await
        .expect("read");
    let versions: Vec<_> = entries.iter().map(|e| e.event.versions()).collect();
    assert_eq!(versions, vec![unmarked]);
    assert_ne!(versions[0], marked);
}
