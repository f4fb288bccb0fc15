//! The world simulation end to end: a chaos smoke run that must end with a
//! PASS audit, and the audit proving it can fail.

#![allow(clippy::print_stdout, reason = "the report helps read a failure")]

use examples::audit::{self, Violation};
use examples::world::{self, WorldConfig};

fn config(args: &[&str]) -> WorldConfig {
    WorldConfig::from_args(args).expect("valid world flags")
}

/// 150 players over 3 zones for 20 s with every chaos option: Redis killed
/// and restarted, zone nodes killed (their players move) and restarted,
/// events dropped, duplicated and delayed, slow clients; players gather,
/// trade, move, craft and burn. Nothing may be duplicated or lost, every held
/// crafted item has its live descriptor, and every client must end up
/// showing the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_smoke_run_passes_the_audit() {
    let report = world::run(config(&[
        "--players",
        "150",
        "--zones",
        "3",
        "--duration",
        "20",
        "--rate",
        "1",
        "--chaos",
        "--chaos-every",
        "3",
        "--settle",
        "30",
    ]))
    .await
    .expect("the world runs");
    println!("{report}");
    assert!(report.audit.passed(), "{}", report.audit);
    assert!(report.changes > 500, "the world did work: {report}");
    assert!(
        report.chaos["redis_kills"] >= 1,
        "Redis was killed: {report}"
    );
    assert!(
        report.chaos["node_kills"] >= 1,
        "a node was killed: {report}"
    );
    assert_eq!(report.audit.client_views_checked, report.audit.owners);
    assert!(
        report.crafted_descriptors > 0,
        "items were crafted: {report}"
    );
    assert!(report.burned_descriptors > 0, "items were burned: {report}");
    assert_eq!(
        report.audit.changes_by_kind.get("craft").copied(),
        Some(report.crafted_descriptors),
        "every acknowledged craft is journaled once: {report}"
    );
    assert_eq!(
        report.audit.changes_by_kind.get("burn").copied(),
        Some(report.burned_descriptors),
        "every acknowledged burn is journaled once: {report}"
    );
}

/// A world's files pass the standalone audit; after one balance is raised
/// behind the store's back, the audit names exactly that stack and item.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_fails_on_a_corrupted_balance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let report = world::run(config(&[
        "--players",
        "20",
        "--zones",
        "2",
        "--duration",
        "3",
        "--rate",
        "2",
        "--data-dir",
        data,
    ]))
    .await
    .expect("the world runs");
    assert!(report.audit.passed(), "{}", report.audit);

    let inventory = dir.path().join("inventory.db");
    let descriptors = dir.path().join("descriptors.db");
    let clean = audit::audit_sqlite(&inventory, &descriptors)
        .await
        .expect("audit");
    assert!(clean.passed(), "{clean}");

    let conn = rusqlite::Connection::open(&inventory).expect("open");
    let (owner, item, qty): (String, String, i64) = conn
        .query_row(
            "SELECT owner, item, qty FROM items ORDER BY owner, item LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("a stack");
    conn.execute(
        "UPDATE items SET qty = qty + 7 WHERE owner = ?1 AND item = ?2",
        [&owner, &item],
    )
    .expect("corrupt");
    drop(conn);

    let corrupted = audit::audit_sqlite(&inventory, &descriptors)
        .await
        .expect("audit");
    assert!(!corrupted.passed());
    assert_eq!(corrupted.violations.len(), 2, "{corrupted}");
    assert_eq!(
        corrupted.violations[0],
        Violation::BalanceMismatch {
            owner: owner.clone(),
            item: item.clone(),
            stored: qty + 7,
            journaled: qty,
        }
    );
    assert!(
        matches!(&corrupted.violations[1], Violation::SupplyMismatch { item: i, stored, expected, .. }
            if *i == item && stored - expected == 7),
        "{corrupted}"
    );
    assert!(
        corrupted
            .to_string()
            .ends_with("audit: FAIL (2 violations)")
    );
}

/// Crafted items in the audit: a burn applied to the inventory whose
/// descriptor burn never happened leaves an orphan (counted, not a
/// violation); a held item whose descriptor is burned behind the store's
/// back is a violation naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_checks_crafted_items() {
    use descriptor_service::DescriptorStore;
    use protocol::{Change, ChangeId, ChangeKind, OwnerId, Quantity};

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("utf-8 path");
    let report = world::run(config(&[
        "--players",
        "20",
        "--zones",
        "2",
        "--duration",
        "4",
        "--rate",
        "4",
        "--gather",
        "50",
        "--craft",
        "50",
        "--trade",
        "0",
        "--move",
        "0",
        "--burn",
        "0",
        "--data-dir",
        data,
    ]))
    .await
    .expect("the world runs");
    assert!(report.audit.passed(), "{}", report.audit);
    assert!(report.audit.unique_items_held >= 2, "{report}");
    assert_eq!(report.audit.orphan_descriptors, 0, "{report}");

    let inventory = dir.path().join("inventory.db");
    let descriptors = dir.path().join("descriptors.db");
    let conn = rusqlite::Connection::open(&inventory).expect("open");
    let held: Vec<(String, String)> = conn
        .prepare("SELECT owner, item FROM items WHERE item LIKE 'x-%' ORDER BY owner, item LIMIT 2")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("crafted stacks");
    drop(conn);
    let [(burner, burned_item), (holder, revoked_item)] = <[_; 2]>::try_from(held).expect("two");

    {
        let store =
            inventory_core::SqliteStore::open(inventory_core::SqliteConfig::new(&inventory))
                .expect("store");
        let owner = OwnerId::parse(&burner).expect("owner id");
        let change = Change::new(ChangeId::random())
            .with_kind(ChangeKind::Burn)
            .consume(
                owner,
                protocol::ItemId::parse(&burned_item).expect("item id"),
                Quantity::ONE,
            );
        inventory_core::Inventory::new(store)
            .apply(change)
            .await
            .expect("the burn applies");
    }
    let orphaned = audit::audit_sqlite(&inventory, &descriptors)
        .await
        .expect("audit");
    assert!(orphaned.passed(), "{orphaned}");
    assert_eq!(orphaned.orphan_descriptors, 1, "{orphaned}");

    descriptor_service::SqliteStore::open(&descriptors)
        .expect("descriptors")
        .burn(&protocol::ItemId::parse(&revoked_item).expect("item id"))
        .await
        .expect("burned");
    let revoked = audit::audit_sqlite(&inventory, &descriptors)
        .await
        .expect("audit");
    assert_eq!(
        revoked.violations,
        vec![Violation::BurnedDescriptorHeld {
            owner: holder,
            item: revoked_item,
        }],
        "{revoked}"
    );
    assert_eq!(revoked.orphan_descriptors, 1, "{revoked}");
}
