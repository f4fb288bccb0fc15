//! The audit understands reverts: a sound revert keeps every check passing
//! (conservation included), and a forged one is reported.

use std::sync::Arc;

use examples::audit::{Evidence, Violation, audit};
use inventory_core::conformance::{item, qty};
use inventory_core::{
    Inventory, InventoryStore, RevertMode, SqliteConfig, SqliteStore, Support, SupportStore,
};
use protocol::{Change, ChangeId, OwnerId, UserId};

fn owner(name: &str) -> OwnerId {
    OwnerId::account(UserId::parse(name).unwrap())
}

/// The violations other than items without descriptors (this test's items
/// have none; the audit's descriptor checks are not what it is about).
async fn violations(
    store: &SqliteStore,
    descriptors: &descriptor_service::SqliteStore,
) -> Vec<Violation> {
    let report = audit(store, descriptors, Evidence::default())
        .await
        .unwrap();
    report
        .violations
        .into_iter()
        .filter(|v| !matches!(v, Violation::NoDescriptor { .. }))
        .collect()
}

#[tokio::test]
async fn reverts_keep_the_audit_passing_and_forged_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("inventory.db"))).unwrap();
    let descriptors =
        descriptor_service::SqliteStore::open(dir.path().join("descriptors.db")).unwrap();
    let shared = Arc::new(store.clone());
    let inventory = Inventory::from_arc(shared.clone() as Arc<dyn InventoryStore>);
    let support = Support::new(inventory.clone(), shared as Arc<dyn SupportStore>);
    let (a, b) = (owner("ann"), owner("bo"));
    inventory
        .apply(Change::new(ChangeId::random()).grant(a.clone(), item("gem"), qty(10)))
        .await
        .unwrap();
    let trade = inventory
        .apply(Change::trade(
            ChangeId::random(),
            (a.clone(), &[(item("gem"), qty(10))]),
            (b.clone(), &[]),
        ))
        .await
        .unwrap();
    inventory
        .apply(Change::new(ChangeId::random()).consume(b.clone(), item("gem"), qty(3)))
        .await
        .unwrap();
    support
        .revert(
            trade.event.change_id,
            ChangeId::random(),
            RevertMode::Partial,
            true,
        )
        .await
        .unwrap();
    assert_eq!(violations(&store, &descriptors).await, []);

    // A "revert" that grants what the original never moved.
    let grant = inventory
        .apply(Change::new(ChangeId::random()).grant(a.clone(), item("gem"), qty(1)))
        .await
        .unwrap();
    let forged = Change::revert_of(grant.event.change_id, ChangeId::random())
        .grant(b.clone(), item("gem"), qty(50))
        .validate()
        .unwrap();
    let applied = store.apply(&forged).await.unwrap();
    assert!(matches!(applied, inventory_core::ApplyOutcome::Applied(_)));
    let found = violations(&store, &descriptors).await;
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::BadRevert { .. })),
        "{found:?}"
    );
}
