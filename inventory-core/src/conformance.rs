//! The shared conformance suite: every [`InventoryStore`] must pass it.
//!
//! Each case is a public async function over `&dyn InventoryStore` that panics
//! on a violation. Cases use fresh, uniquely named users, so one store (and one
//! database) can serve every case, even across runs. Generate one test per
//! case in an adapter's integration tests with [`store_conformance_tests!`]:
//!
//! ```ignore
//! inventory_core::store_conformance_tests!(my_adapter_test_store().await);
//! ```
//!
//! The macro needs `tokio` (with `macros` and `rt-multi-thread`) in the
//! calling crate.
//!
//! [`store_conformance_tests!`]: crate::store_conformance_tests

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use protocol::{
    Change, ChangeEvent, ChangeId, ChangeKind, CharacterId, ErrorCode, ItemId, MAX_BALANCE,
    MAX_OPERATIONS, MAX_QUANTITY, OperatorAction, OwnerId, Quantity, UserId, ValidChange, Version,
};

use crate::{
    ApplyOutcome, Error, IDEMPOTENCY_WINDOW, Inventory, InventoryStore, JournalEntry,
    JournalRecord, Outbox, OutboxEntry, OwnerRecord, RevertMode, StoreScan, Support, SupportStore,
};

/// Generates one `#[tokio::test]` per conformance case; `$make` is an
/// expression (it may `.await`) that yields the store under test.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            fresh_owner_is_empty_at_version_zero,
            grant_then_load,
            guarded_consume_rejects_insufficient_and_writes_nothing,
            consume_to_zero_removes_the_stack,
            multi_operation_change_is_all_or_nothing,
            multi_owner_change_is_all_or_nothing,
            versions_increment_once_per_touched_owner,
            retry_answers_already_applied_and_changes_nothing,
            retry_answers_the_recorded_event_whatever_the_operation_order,
            reused_id_with_other_content_is_a_conflict_and_writes_nothing,
            reused_id_on_other_owners_is_a_conflict_and_writes_nothing,
            lookup_answers_the_recorded_event_of_applied_changes_only,
            failed_change_id_can_be_retried_later,
            idempotency_window_covers_1024_changes,
            trade_moves_both_sides_atomically,
            trade_retry_is_idempotent,
            concurrent_consumers_never_overdraw,
            concurrent_grants_and_consumes_sum_exactly,
            concurrent_retries_of_one_change_apply_it_once,
            large_inventory_of_10000_items,
            balance_overflow_is_refused,
            load_user_lists_account_and_characters,
            malformed_changes_never_reach_the_store,
            random_sequences_with_retries_match_the_model,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = $make;
                $crate::conformance::$case(&store).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per [`StoreScan`] conformance case; `$make`
/// yields a store implementing both [`InventoryStore`] and [`StoreScan`].
#[macro_export]
macro_rules! scan_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            journal_records_each_applied_change_once,
            owner_scan_matches_loads,
        );
    };
}

/// Generates one `#[tokio::test]` per [`Outbox`] conformance case; `$make`
/// yields a store whose [`InventoryStore::outbox`] is `Some`.
#[macro_export]
macro_rules! outbox_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@cases $make;
            outbox_lists_each_applied_change_once_in_order,
            outbox_mark_moves_the_start_forward_only,
        );
    };
}

/// A user id no other case or run uses.
#[must_use]
pub fn fresh_user(tag: &str) -> UserId {
    let suffix = ChangeId::random().as_uuid().simple().to_string();
    UserId::parse(format!("{tag}-{}", &suffix[..16])).expect("valid user id")
}

/// The account scope of a fresh user.
#[must_use]
pub fn fresh_account(tag: &str) -> OwnerId {
    OwnerId::account(fresh_user(tag))
}

/// An item id from a literal.
#[must_use]
pub fn item(name: &str) -> ItemId {
    ItemId::parse(name).expect("valid item id")
}

/// A quantity from a literal.
#[must_use]
pub fn qty(n: u64) -> Quantity {
    Quantity::new(n).expect("valid quantity")
}

fn grant(owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    Change::new(ChangeId::random())
        .grant(owner.clone(), item(name), qty(n))
        .validate()
        .expect("valid change")
}

fn consume(owner: &OwnerId, name: &str, n: u64) -> ValidChange {
    Change::new(ChangeId::random())
        .consume(owner.clone(), item(name), qty(n))
        .validate()
        .expect("valid change")
}

async fn applied(store: &dyn InventoryStore, change: &ValidChange) -> Vec<(OwnerId, Version)> {
    applied_event(store, change).await.versions()
}

async fn applied_event(store: &dyn InventoryStore, change: &ValidChange) -> ChangeEvent {
    match store.apply(change).await {
        Ok(ApplyOutcome::Applied(event)) => {
            assert_eq!(event, ChangeEvent::from_applied(change, &event.versions()));
            event
        }
        other => panic!("expected Applied for {change:?}, got {other:?}"),
    }
}

/// `change` with its id replaced by `id`.
fn with_id(change: &ValidChange, id: ChangeId) -> ValidChange {
    let mut plain = change.clone().into_inner();
    plain.id = id;
    plain.validate().expect("valid change")
}

async fn expect_conflict(store: &dyn InventoryStore, change: &ValidChange) {
    match store.apply(change).await {
        Err(Error::ChangeConflict { id }) => assert_eq!(id, change.id()),
        other => panic!("expected ChangeConflict for {change:?}, got {other:?}"),
    }
}

async fn balance(store: &dyn InventoryStore, owner: &OwnerId, name: &str) -> u64 {
    store
        .load(owner)
        .await
        .expect("load")
        .items
        .get(&item(name))
        .copied()
        .unwrap_or(0)
}

async fn version(store: &dyn InventoryStore, owner: &OwnerId) -> u64 {
    store.load(owner).await.expect("load").version.get()
}

/// An owner never touched loads as empty at version 0.
pub async fn fresh_owner_is_empty_at_version_zero(store: &dyn InventoryStore) {
    let owner = fresh_account("fresh");
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.owner, owner);
    assert_eq!(snap.version, Version::ZERO);
    assert!(snap.items.is_empty());
    assert!(
        store
            .load_user(owner.user())
            .await
            .expect("load_user")
            .is_empty()
    );
}

/// A grant creates the owner at version 1 and load returns the stack.
pub async fn grant_then_load(store: &dyn InventoryStore) {
    let owner = fresh_account("grant");
    let versions = applied(store, &grant(&owner, "wood", 7)).await;
    assert_eq!(versions, vec![(owner.clone(), Version::new(1))]);
    applied(store, &grant(&owner, "wood", 3)).await;
    applied(store, &grant(&owner, "stone", 1)).await;
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.version, Version::new(3));
    assert_eq!(
        snap.items,
        BTreeMap::from([(item("stone"), 1), (item("wood"), 10)])
    );
}

/// A consume of more than held fails with `Insufficient` naming the stack, and
/// writes nothing.
pub async fn guarded_consume_rejects_insufficient_and_writes_nothing(store: &dyn InventoryStore) {
    let owner = fresh_account("guard");
    applied(store, &grant(&owner, "wood", 5)).await;
    match store.apply(&consume(&owner, "wood", 6)).await {
        Err(Error::Insufficient {
            owner: o,
            item: i,
            requested,
            held,
        }) => {
            assert_eq!((o, i, requested, held), (owner.clone(), item("wood"), 6, 5));
        }
        other => panic!("expected Insufficient, got {other:?}"),
    }
    match store.apply(&consume(&owner, "never_held", 1)).await {
        Err(e) => assert_eq!(e.code(), ErrorCode::InsufficientBalance),
        other => panic!("expected Insufficient, got {other:?}"),
    }
    assert_eq!(balance(store, &owner, "wood").await, 5);
    assert_eq!(version(store, &owner).await, 1);
}

/// A stack consumed to exactly zero disappears from snapshots, and can be
/// granted again.
pub async fn consume_to_zero_removes_the_stack(store: &dyn InventoryStore) {
    let owner = fresh_account("zero");
    applied(store, &grant(&owner, "wood", 5)).await;
    applied(store, &grant(&owner, "stone", 1)).await;
    applied(store, &consume(&owner, "wood", 5)).await;
    let snap = store.load(&owner).await.expect("load");
    assert!(!snap.items.contains_key(&item("wood")), "{snap:?}");
    assert_eq!(snap.items.len(), 1);
    applied(store, &grant(&owner, "wood", 2)).await;
    assert_eq!(balance(store, &owner, "wood").await, 2);
}

/// Within one owner, one failing operation fails the whole change.
pub async fn multi_operation_change_is_all_or_nothing(store: &dyn InventoryStore) {
    let owner = fresh_account("multiop");
    applied(store, &grant(&owner, "wood", 5)).await;
    let change = Change::new(ChangeId::random())
        .grant(owner.clone(), item("plank"), qty(2))
        .consume(owner.clone(), item("wood"), qty(4))
        .consume(owner.clone(), item("nail"), qty(1))
        .validate()
        .expect("valid");
    assert!(store.apply(&change).await.is_err());
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.items, BTreeMap::from([(item("wood"), 5)]));
    assert_eq!(snap.version, Version::new(1));
}

/// Across owners (account and character), one failing part fails every part.
pub async fn multi_owner_change_is_all_or_nothing(store: &dyn InventoryStore) {
    let user = fresh_user("multiowner");
    let account = OwnerId::account(user.clone());
    let hero = OwnerId::character(user, CharacterId::parse("hero").expect("id"));
    applied(store, &grant(&account, "gold", 10)).await;
    applied(store, &grant(&hero, "ore", 1)).await;
    // The account part would succeed; the character part cannot.
    let change = Change::new(ChangeId::random())
        .consume(account.clone(), item("gold"), qty(10))
        .consume(hero.clone(), item("ore"), qty(2))
        .grant(hero.clone(), item("sword"), qty(1))
        .validate()
        .expect("valid");
    assert!(store.apply(&change).await.is_err());
    assert_eq!(balance(store, &account, "gold").await, 10);
    assert_eq!(balance(store, &hero, "sword").await, 0);
    assert_eq!(version(store, &account).await, 1);
    assert_eq!(version(store, &hero).await, 1);
    // Reversed roles: the account part fails.
    let change = Change::new(ChangeId::random())
        .consume(account.clone(), item("gold"), qty(11))
        .consume(hero.clone(), item("ore"), qty(1))
        .validate()
        .expect("valid");
    assert!(store.apply(&change).await.is_err());
    assert_eq!(balance(store, &hero, "ore").await, 1);
    assert_eq!(version(store, &hero).await, 1);
}

/// Each applied change bumps every touched owner's version by one, and only
/// those.
pub async fn versions_increment_once_per_touched_owner(store: &dyn InventoryStore) {
    let a = fresh_account("vera");
    let b = fresh_account("verb");
    let both = Change::new(ChangeId::random())
        .grant(a.clone(), item("x"), qty(1))
        .grant(a.clone(), item("y"), qty(1))
        .grant(b.clone(), item("x"), qty(1))
        .validate()
        .expect("valid");
    let mut expected = vec![(a.clone(), Version::new(1)), (b.clone(), Version::new(1))];
    expected.sort();
    assert_eq!(applied(store, &both).await, expected);
    assert_eq!(
        applied(store, &grant(&a, "x", 1)).await,
        vec![(a.clone(), Version::new(2))]
    );
    assert_eq!(version(store, &b).await, 1);
}

/// A retry of an applied change answers `AlreadyApplied` with the versions it
/// produced, and changes nothing, even after later changes.
pub async fn retry_answers_already_applied_and_changes_nothing(store: &dyn InventoryStore) {
    let owner = fresh_account("retry");
    let change = grant(&owner, "wood", 5);
    let first = applied(store, &change).await;
    applied(store, &grant(&owner, "wood", 1)).await;
    for _ in 0..3 {
        match store.apply(&change).await {
            Ok(ApplyOutcome::AlreadyApplied(event)) => assert_eq!(event.versions(), first),
            other => panic!("expected AlreadyApplied, got {other:?}"),
        }
    }
    assert_eq!(balance(store, &owner, "wood").await, 6);
    assert_eq!(version(store, &owner).await, 2);
}

/// A retry with the same content in another operation order answers the
/// event recorded when the change was applied: its versions and its deltas
/// in their original order.
pub async fn retry_answers_the_recorded_event_whatever_the_operation_order(
    store: &dyn InventoryStore,
) {
    let user = fresh_user("recorded");
    let account = OwnerId::account(user.clone());
    let hero = OwnerId::character(user, CharacterId::parse("hero").expect("id"));
    let id = ChangeId::random();
    let original = Change::new(id)
        .grant(account.clone(), item("wood"), qty(2))
        .grant(hero.clone(), item("ore"), qty(3))
        .grant(account.clone(), item("gem"), qty(1))
        .validate()
        .expect("valid");
    let reordered = Change::new(id)
        .grant(account.clone(), item("gem"), qty(1))
        .grant(account.clone(), item("wood"), qty(2))
        .grant(hero.clone(), item("ore"), qty(3))
        .validate()
        .expect("valid");
    let event = applied_event(store, &original).await;
    applied(store, &grant(&account, "wood", 1)).await;
    match store.apply(&reordered).await {
        Ok(ApplyOutcome::AlreadyApplied(retried)) => assert_eq!(retried, event),
        other => panic!("expected AlreadyApplied, got {other:?}"),
    }
    assert_eq!(balance(store, &account, "wood").await, 3);
    assert_eq!(version(store, &account).await, 2);
    assert_eq!(version(store, &hero).await, 1);
}

/// A change id applied once and then sent with other content (another
/// quantity, another item, another kind, more operations) is refused with
/// `ChangeConflict`, and nothing of it is written.
pub async fn reused_id_with_other_content_is_a_conflict_and_writes_nothing(
    store: &dyn InventoryStore,
) {
    let owner = fresh_account("conflict");
    let original = grant(&owner, "wood", 1);
    applied(store, &original).await;
    let id = original.id();
    let others = [
        Change::new(id).grant(owner.clone(), item("wood"), qty(999)),
        Change::new(id).grant(owner.clone(), item("diamond"), qty(999)),
        Change::new(id)
            .with_kind(ChangeKind::Craft)
            .grant(owner.clone(), item("wood"), qty(1)),
        Change::new(id)
            .grant(owner.clone(), item("wood"), qty(1))
            .grant(owner.clone(), item("diamond"), qty(1)),
        Change::new(id).consume(owner.clone(), item("wood"), qty(1)),
    ];
    for other in others {
        expect_conflict(store, &other.validate().expect("valid")).await;
    }
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.items, BTreeMap::from([(item("wood"), 1)]));
    assert_eq!(snap.version, Version::new(1));
    assert!(matches!(
        store.apply(&original).await,
        Ok(ApplyOutcome::AlreadyApplied(_))
    ));
}

/// The record of a change id is global: once applied to one owner, the id
/// cannot apply to any other owner (a game server rebuilding a retried change
/// with other owners must not apply it twice).
pub async fn reused_id_on_other_owners_is_a_conflict_and_writes_nothing(
    store: &dyn InventoryStore,
) {
    let alice = fresh_account("reuse-alice");
    let bob = fresh_account("reuse-bob");
    let hero = OwnerId::character(
        alice.user().clone(),
        CharacterId::parse("hero").expect("id"),
    );
    let original = grant(&alice, "wood", 1);
    applied(store, &original).await;
    let id = original.id();
    applied(store, &grant(&bob, "gold", 10)).await;
    let others = [
        Change::new(id).grant(bob.clone(), item("diamond"), qty(999)),
        Change::new(id).grant(hero.clone(), item("wood"), qty(1)),
        Change::new(id)
            .grant(alice.clone(), item("wood"), qty(1))
            .grant(bob.clone(), item("wood"), qty(1)),
        Change::trade(
            id,
            (bob.clone(), &[(item("gold"), qty(1))]),
            (hero.clone(), &[]),
        ),
    ];
    for other in others {
        expect_conflict(store, &other.validate().expect("valid")).await;
    }
    let bob_now = store.load(&bob).await.expect("load");
    assert_eq!(bob_now.items, BTreeMap::from([(item("gold"), 10)]));
    assert_eq!(bob_now.version, Version::new(1));
    assert_eq!(version(store, &hero).await, 0);
    assert_eq!(version(store, &alice).await, 1);
}

/// `lookup` answers the recorded event of an applied change (also after a
/// retry and later changes) and `None` for an id never applied or refused.
pub async fn lookup_answers_the_recorded_event_of_applied_changes_only(store: &dyn InventoryStore) {
    let a = fresh_account("lookup-a");
    let b = fresh_account("lookup-b");
    let first = grant(&a, "wood", 5);
    let event = applied_event(store, &first).await;
    assert_eq!(
        store.lookup(first.id()).await.expect("lookup"),
        Some(event.clone())
    );
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("wood"), qty(2))]),
        (b.clone(), &[]),
    )
    .validate()
    .expect("valid");
    let trade_event = applied_event(store, &trade).await;
    let _ = store.apply(&first).await.expect("retry");
    assert_eq!(store.lookup(first.id()).await.expect("lookup"), Some(event));
    assert_eq!(
        store.lookup(trade.id()).await.expect("lookup"),
        Some(trade_event)
    );
    let refused = consume(&a, "wood", 100);
    assert!(store.apply(&refused).await.is_err());
    assert_eq!(store.lookup(refused.id()).await.expect("lookup"), None);
    assert_eq!(
        store.lookup(ChangeId::random()).await.expect("lookup"),
        None
    );
}

/// A change that failed leaves no idempotency record: once the balance allows
/// it, the same id applies.
pub async fn failed_change_id_can_be_retried_later(store: &dyn InventoryStore) {
    let owner = fresh_account("failretry");
    let change = consume(&owner, "wood", 3);
    assert!(store.apply(&change).await.is_err());
    applied(store, &grant(&owner, "wood", 3)).await;
    assert_eq!(
        applied(store, &change).await,
        vec![(owner.clone(), Version::new(2))]
    );
    assert_eq!(balance(store, &owner, "wood").await, 0);
}

/// A change is still recognised while it is among the owner's last 1,024
/// changes (here, the oldest of them).
pub async fn idempotency_window_covers_1024_changes(store: &dyn InventoryStore) {
    let owner = fresh_account("window");
    let first = grant(&owner, "wood", 1);
    applied(store, &first).await;
    for _ in 1..IDEMPOTENCY_WINDOW {
        applied(store, &grant(&owner, "stone", 1)).await;
    }
    assert!(matches!(
        store.apply(&first).await,
        Ok(ApplyOutcome::AlreadyApplied(_))
    ));
    assert_eq!(balance(store, &owner, "wood").await, 1);
}

/// A trade moves both sides in one step and conserves items; a trade one side
/// cannot pay moves nothing.
pub async fn trade_moves_both_sides_atomically(store: &dyn InventoryStore) {
    let a = fresh_account("tradea");
    let b = fresh_account("tradeb");
    applied(store, &grant(&a, "gold", 10)).await;
    applied(store, &grant(&b, "sword", 1)).await;
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("gold"), qty(7))]),
        (b.clone(), &[(item("sword"), qty(1))]),
    )
    .validate()
    .expect("valid");
    applied(store, &trade).await;
    assert_eq!(balance(store, &a, "gold").await, 3);
    assert_eq!(balance(store, &a, "sword").await, 1);
    assert_eq!(balance(store, &b, "gold").await, 7);
    assert_eq!(balance(store, &b, "sword").await, 0);
    let unpaid = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("gold"), qty(3))]),
        (b.clone(), &[(item("sword"), qty(1))]),
    )
    .validate()
    .expect("valid");
    assert_eq!(
        store
            .apply(&unpaid)
            .await
            .expect_err("b has no sword")
            .code(),
        ErrorCode::InsufficientBalance
    );
    assert_eq!(balance(store, &a, "gold").await, 3);
    assert_eq!(balance(store, &b, "gold").await, 7);
    assert_eq!(version(store, &a).await, 2);
    assert_eq!(version(store, &b).await, 2);
}

/// A retried trade answers `AlreadyApplied` for both sides and moves nothing.
pub async fn trade_retry_is_idempotent(store: &dyn InventoryStore) {
    let a = fresh_account("tretrya");
    let b = fresh_account("tretryb");
    applied(store, &grant(&a, "gold", 10)).await;
    applied(store, &grant(&b, "gem", 2)).await;
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("gold"), qty(4))]),
        (b.clone(), &[(item("gem"), qty(1))]),
    )
    .validate()
    .expect("valid");
    let first = applied(store, &trade).await;
    match store.apply(&trade).await {
        Ok(ApplyOutcome::AlreadyApplied(event)) => assert_eq!(event.versions(), first),
        other => panic!("expected AlreadyApplied, got {other:?}"),
    }
    assert_eq!(balance(store, &a, "gold").await, 6);
    assert_eq!(balance(store, &b, "gold").await, 4);
}

/// 16 tasks race to consume one at a time from one stack: exactly the stack's
/// size succeed, the rest are refused, and the balance never goes negative.
pub async fn concurrent_consumers_never_overdraw(store: &dyn InventoryStore) {
    let owner = fresh_account("overdraw");
    applied(store, &grant(&owner, "ore", 200)).await;
    let tasks = (0..16).map(|_| {
        let owner = owner.clone();
        async move {
            let mut ok = 0u64;
            for _ in 0..20 {
                match store.apply(&consume(&owner, "ore", 1)).await {
                    Ok(ApplyOutcome::Applied(_)) => ok += 1,
                    Err(Error::Insufficient { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            ok
        }
    });
    let succeeded: u64 = join_all(tasks).await.into_iter().sum();
    assert_eq!(succeeded, 200);
    assert_eq!(balance(store, &owner, "ore").await, 0);
    assert_eq!(version(store, &owner).await, 201);
}

/// 16 tasks grant and consume on one owner concurrently: the final balance and
/// version are exact.
pub async fn concurrent_grants_and_consumes_sum_exactly(store: &dyn InventoryStore) {
    let owner = fresh_account("concurrent");
    let tasks = (0..16).map(|_| {
        let owner = owner.clone();
        async move {
            for _ in 0..25 {
                applied(store, &grant(&owner, "wood", 2)).await;
                applied(store, &consume(&owner, "wood", 1)).await;
            }
        }
    });
    join_all(tasks).await;
    assert_eq!(balance(store, &owner, "wood").await, 16 * 25);
    assert_eq!(version(store, &owner).await, 16 * 50);
}

/// The same change sent 16 times at once is applied exactly once.
pub async fn concurrent_retries_of_one_change_apply_it_once(store: &dyn InventoryStore) {
    let a = fresh_account("dupa");
    let b = fresh_account("dupb");
    applied(store, &grant(&a, "gold", 5)).await;
    let change = Change::new(ChangeId::random())
        .consume(a.clone(), item("gold"), qty(5))
        .grant(b.clone(), item("gold"), qty(5))
        .validate()
        .expect("valid");
    let outcomes = join_all((0..16).map(|_| store.apply(&change))).await;
    let mut fresh = 0;
    for outcome in outcomes {
        match outcome {
            Ok(ApplyOutcome::Applied(_)) => fresh += 1,
            Ok(ApplyOutcome::AlreadyApplied(_)) => {}
            Err(e) => panic!("a retry must not fail: {e}"),
        }
    }
    assert_eq!(fresh, 1);
    assert_eq!(balance(store, &a, "gold").await, 0);
    assert_eq!(balance(store, &b, "gold").await, 5);
    assert_eq!(version(store, &b).await, 1);
}

/// One owner holds 10,000 distinct stacks; loads return them all and changes
/// still apply.
pub async fn large_inventory_of_10000_items(store: &dyn InventoryStore) {
    let owner = fresh_account("large");
    let per_change = MAX_OPERATIONS.min(250);
    for batch in 0..10_000 / per_change {
        let mut change = Change::new(ChangeId::random());
        for i in 0..per_change {
            let n = batch * per_change + i;
            change = change.grant(
                owner.clone(),
                item(&format!("item-{n:05}")),
                qty(n as u64 + 1),
            );
        }
        applied(store, &change.validate().expect("valid")).await;
    }
    applied(store, &consume(&owner, "item-09999", 10_000)).await;
    applied(store, &consume(&owner, "item-00041", 1)).await;
    let snap = store.load(&owner).await.expect("load");
    assert_eq!(snap.items.len(), 9_999);
    assert_eq!(snap.items[&item("item-00041")], 41);
    assert_eq!(snap.items[&item("item-05000")], 5_001);
    assert_eq!(snap.version.get() as usize, 10_000 / per_change + 2);
}

/// A grant that would exceed `MAX_BALANCE` is refused and writes nothing.
pub async fn balance_overflow_is_refused(store: &dyn InventoryStore) {
    let owner = fresh_account("overflow");
    let grants = MAX_BALANCE / MAX_QUANTITY;
    let tasks = (0..8).map(|t| {
        let owner = owner.clone();
        async move {
            for _ in (t..grants).step_by(8) {
                applied(store, &grant(&owner, "gold", MAX_QUANTITY)).await;
            }
        }
    });
    join_all(tasks).await;
    assert_eq!(balance(store, &owner, "gold").await, MAX_BALANCE);
    let over = Change::new(ChangeId::random())
        .grant(owner.clone(), item("silver"), qty(1))
        .grant(owner.clone(), item("gold"), qty(1))
        .validate()
        .expect("valid");
    match store.apply(&over).await {
        Err(Error::BalanceOverflow { item: i, .. }) => assert_eq!(i, item("gold")),
        other => panic!("expected BalanceOverflow, got {other:?}"),
    }
    assert_eq!(balance(store, &owner, "silver").await, 0);
    assert_eq!(version(store, &owner).await, grants);
}

/// `load_user` returns the account scope and every touched character.
pub async fn load_user_lists_account_and_characters(store: &dyn InventoryStore) {
    let user = fresh_user("loaduser");
    let other = fresh_account("loaduserother");
    let account = OwnerId::account(user.clone());
    let heroes: Vec<OwnerId> = ["hero1", "hero2"]
        .iter()
        .map(|c| OwnerId::character(user.clone(), CharacterId::parse(*c).expect("id")))
        .collect();
    for owner in heroes.iter().chain([&account, &other]) {
        applied(store, &grant(owner, "wood", 1)).await;
    }
    let snaps = store.load_user(&user).await.expect("load_user");
    let owners: Vec<&OwnerId> = snaps.iter().map(|s| &s.owner).collect();
    let mut expected = vec![&account, &heroes[0], &heroes[1]];
    expected.sort();
    assert_eq!(owners, expected);
    assert!(snaps.iter().all(|s| s.version == Version::new(1)));
}

/// Bad ids, quantities and structures are refused before any store sees them:
/// a store only accepts a `ValidChange`, and none can be built from these.
pub async fn malformed_changes_never_reach_the_store(store: &dyn InventoryStore) {
    let owner = fresh_account("malformed");
    let template = |owner: &str, item: &str, qty: &str| {
        format!(
            r#"{{"id":"{}","ops":[{{"op":"grant","owner":"{owner}","item":"{item}","qty":{qty}}}]}}"#,
            ChangeId::random()
        )
    };
    let o = owner.to_string();
    let bad = [
        template(&o, "a.b", "1"),
        template(&o, "$inc", "1"),
        template(&o, "nul\\u0000", "1"),
        template(&o, &"x".repeat(65), "1"),
        template(&o, "wood", "0"),
        template(&o, "wood", "-1"),
        template(&o, "wood", "1000000001"),
        template(&o, "wood", "1.5"),
        template("a:bad.user", "wood", "1"),
        template("z:alice", "wood", "1"),
        r#"{"id":"nope","ops":[]}"#.to_string(),
    ];
    for json in &bad {
        assert!(
            serde_json::from_str::<ValidChange>(json).is_err(),
            "accepted {json}"
        );
    }
    let same_stack = Change::new(ChangeId::random())
        .grant(owner.clone(), item("wood"), qty(1))
        .grant(owner.clone(), item("wood"), qty(1));
    assert_eq!(
        same_stack.validate().expect_err("dup").code(),
        ErrorCode::DuplicateItem
    );
    let self_trade = Change::trade(
        ChangeId::random(),
        (owner.clone(), &[(item("gold"), qty(1))]),
        (owner.clone(), &[]),
    );
    assert!(self_trade.validate().is_err());
    assert_eq!(version(store, &owner).await, 0);
}

/// The obvious model the property test compares a store against.
#[derive(Default)]
struct Model {
    balances: BTreeMap<(OwnerId, ItemId), u64>,
    versions: BTreeMap<OwnerId, u64>,
    applied: BTreeMap<ChangeId, ValidChange>,
}

impl Model {
    /// Ok(true) if applied now, Ok(false) if already applied, Err(code) if refused.
    fn apply(&mut self, change: &ValidChange) -> Result<bool, ErrorCode> {
        if let Some(recorded) = self.applied.get(&change.id()) {
            return if recorded.same_content(change) {
                Ok(false)
            } else {
                Err(ErrorCode::ChangeConflict)
            };
        }
        let mut next = self.balances.clone();
        for op in change.ops() {
            let key = (op.owner().clone(), op.item().clone());
            let held = next.get(&key).copied().unwrap_or(0) as i64;
            let after = held + op.delta();
            if after < 0 {
                return Err(ErrorCode::InsufficientBalance);
            }
            next.insert(key, after as u64);
        }
        self.balances = next;
        for owner in change.owners() {
            *self.versions.entry(owner.clone()).or_default() += 1;
        }
        self.applied.insert(change.id(), change.clone());
        Ok(true)
    }
}

/// A step of a random run: which change (an index into the run's distinct
/// changes), whether to send it twice at once, and whether to send it under
/// the id of another change of the run (a reuse of an id for other content).
type Step = (usize, bool, Option<usize>);
/// A random change over a small universe: (owner index, item index, signed qty).
type Ops = Vec<(usize, usize, i64)>;

fn run_strategy() -> impl Strategy<Value = (Vec<Ops>, Vec<Step>)> {
    let op = (0usize..4, 0usize..3, prop_oneof![1i64..6, -5i64..0]);
    let change = proptest::collection::vec(op, 1..5);
    proptest::collection::vec(change, 1..12).prop_flat_map(|changes| {
        let n = changes.len();
        let reuse = proptest::option::weighted(0.15, 0..n);
        let steps = proptest::collection::vec((0..n, any::<bool>(), reuse), n..3 * n);
        (Just(changes), steps)
    })
}

fn build_change(owners: &[OwnerId], ops: &Ops) -> Option<ValidChange> {
    let items = ["wood", "ore", "gem"];
    let mut change = Change::new(ChangeId::random()).with_kind(ChangeKind::Adjust);
    let mut seen = BTreeSet::new();
    for &(o, i, q) in ops {
        if !seen.insert((o, i)) {
            continue;
        }
        let owner = owners[o].clone();
        let qty = Quantity::new(q.unsigned_abs()).ok()?;
        change = if q > 0 {
            change.grant(owner, item(items[i]), qty)
        } else {
            change.consume(owner, item(items[i]), qty)
        };
    }
    change.validate().ok()
}

/// Property: any sequence of changes, with random duplicates, concurrent
/// retries of already-applied changes and reuses of a change id for other
/// content, leaves the store exactly where applying each distinct change once
/// to an obvious model leaves it; every outcome (applied, already applied,
/// refused, conflict) matches the model's.
pub async fn random_sequences_with_retries_match_the_model(store: &dyn InventoryStore) {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&run_strategy(), |(changes, steps)| {
            handle.block_on(async {
                let a = fresh_user("propa");
                let b = fresh_user("propb");
                let hero = CharacterId::parse("hero").expect("id");
                let owners = [
                    OwnerId::account(a.clone()),
                    OwnerId::character(a, hero.clone()),
                    OwnerId::account(b.clone()),
                    OwnerId::character(b, hero),
                ];
                let built: Vec<Option<ValidChange>> = changes
                    .iter()
                    .map(|ops| build_change(&owners, ops))
                    .collect();
                let mut model = Model::default();
                for (index, twice, reuse) in steps {
                    let Some(change) = &built[index] else {
                        continue;
                    };
                    let reused = match reuse.map(|other| &built[other]) {
                        Some(Some(other)) => Some(with_id(change, other.id())),
                        _ => None,
                    };
                    let change = reused.as_ref().unwrap_or(change);
                    let expected = model.apply(change);
                    let sends = if twice { 2 } else { 1 };
                    let outcomes = join_all((0..sends).map(|_| store.apply(change))).await;
                    let fresh = outcomes
                        .iter()
                        .filter(|o| matches!(o, Ok(ApplyOutcome::Applied(_))))
                        .count();
                    match expected {
                        Ok(now) => {
                            prop_assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
                            prop_assert_eq!(fresh, usize::from(now));
                        }
                        Err(code) => {
                            for outcome in &outcomes {
                                let got = outcome.as_ref().map(|_| ()).map_err(Error::code);
                                prop_assert_eq!(got, Err(code));
                            }
                        }
                    }
                }
                for owner in &owners {
                    let snap = store.load(owner).await.expect("load");
                    let expected: BTreeMap<ItemId, u64> = model
                        .balances
                        .iter()
                        .filter(|((o, _), n)| o == owner && **n > 0)
                        .map(|((_, i), n)| (i.clone(), *n))
                        .collect();
                    prop_assert_eq!(&snap.items, &expected, "{}", owner);
                    let v = model.versions.get(owner).copied().unwrap_or(0);
                    prop_assert_eq!(snap.version.get(), v, "{}", owner);
                }
                Ok(())
            })
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

async fn journal_of(
    store: &dyn StoreScan,
    ids: &[ChangeId],
) -> BTreeMap<ChangeId, Vec<JournalEntry>> {
    let mut found: BTreeMap<ChangeId, Vec<JournalEntry>> = BTreeMap::new();
    store
        .scan_journal(&mut |entry| {
            if ids.contains(&entry.change.id()) {
                found.entry(entry.change.id()).or_default().push(entry);
            }
        })
        .await
        .expect("scan the journal");
    found
}

/// The journal holds each applied change once with the versions it
/// produced; a retry adds nothing, a refused change leaves no entry.
pub async fn journal_records_each_applied_change_once<S: InventoryStore + StoreScan>(store: &S) {
    let a = fresh_account("journal-a");
    let b = fresh_account("journal-b");
    let hero = OwnerId::character(a.user().clone(), CharacterId::parse("hero").expect("id"));
    let wood = grant(&a, "wood", 5);
    let stone = grant(&b, "stone", 3);
    let refused = consume(&a, "wood", 10);
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("wood"), qty(2))]),
        (b.clone(), &[(item("stone"), qty(1))]),
    )
    .validate()
    .expect("valid trade");
    let both = Change::new(ChangeId::random())
        .with_kind(ChangeKind::Craft)
        .consume(a.clone(), item("wood"), qty(1))
        .grant(hero.clone(), item("axe"), qty(1))
        .validate()
        .expect("valid change");
    let mut produced = BTreeMap::new();
    for change in [&wood, &stone, &trade, &both] {
        produced.insert(change.id(), (change.clone(), applied(store, change).await));
    }
    assert!(matches!(
        store.apply(&wood).await,
        Ok(ApplyOutcome::AlreadyApplied(_))
    ));
    assert!(store.apply(&refused).await.is_err());

    let ids: Vec<ChangeId> = [&wood, &stone, &refused, &trade, &both]
        .iter()
        .map(|c| c.id())
        .collect();
    let found = journal_of(store, &ids).await;
    assert!(
        !found.contains_key(&refused.id()),
        "a refused change is not journaled"
    );
    for (id, (change, versions)) in produced {
        let entries = &found[&id];
        assert_eq!(entries.len(), 1, "{id} journaled once");
        assert_eq!(entries[0].change, change);
        assert_eq!(entries[0].versions, versions);
    }
}

/// The owner scan visits each touched owner once, as a load sees it, and no
/// untouched owner.
pub async fn owner_scan_matches_loads<S: InventoryStore + StoreScan>(store: &S) {
    let a = fresh_account("scan-a");
    let hero = OwnerId::character(a.user().clone(), CharacterId::parse("hero").expect("id"));
    let untouched = fresh_account("scan-untouched");
    applied(store, &grant(&a, "wood", 4)).await;
    applied(store, &grant(&hero, "stone", 2)).await;
    applied(store, &consume(&hero, "stone", 2)).await;
    applied(store, &grant(&hero, "herb", 9)).await;

    let wanted = [a.clone(), hero.clone(), untouched.clone()];
    let mut seen: Vec<OwnerRecord> = Vec::new();
    store
        .scan_owners(&mut |record| {
            if wanted.contains(&record.owner) {
                seen.push(record);
            }
        })
        .await
        .expect("scan the owners");
    seen.sort_by(|x, y| x.owner.cmp(&y.owner));
    let mut expected = Vec::new();
    for owner in [&a, &hero] {
        let snap = store.load(owner).await.expect("load");
        expected.push(OwnerRecord {
            owner: owner.clone(),
            version: snap.version,
            items: snap
                .items
                .into_iter()
                .map(|(item, qty)| (item, i64::try_from(qty).expect("balance")))
                .collect(),
        });
    }
    assert_eq!(seen, expected);
    assert_eq!(expected[1].version, Version::new(3));
    assert_eq!(expected[1].items, BTreeMap::from([(item("herb"), 9)]));
}

/// After a load on `owners` (every change journaled, nothing in flight):
/// each owner's version is the number of journal entries touching it, its
/// balances are the replay of the journal's deltas, and none is negative.
/// Answers how many entries the journal holds.
pub async fn owners_replay_the_journal<S: StoreScan + ?Sized>(
    store: &S,
    owners: &[OwnerId],
) -> u64 {
    let mut entries = 0_u64;
    let mut versions: BTreeMap<OwnerId, u64> = BTreeMap::new();
    let mut balances: BTreeMap<(OwnerId, ItemId), i64> = BTreeMap::new();
    store
        .scan_journal(&mut |entry| {
            entries += 1;
            for (owner, _) in &entry.versions {
                *versions.entry(owner.clone()).or_default() += 1;
            }
            for op in entry.change.ops() {
                *balances
                    .entry((op.owner().clone(), op.item().clone()))
                    .or_default() += op.delta();
            }
        })
        .await
        .expect("scan the journal");
    let mut records = BTreeMap::new();
    store
        .scan_owners(&mut |record| {
            records.insert(record.owner.clone(), record);
        })
        .await
        .expect("scan the owners");
    for owner in owners {
        let record = &records[owner];
        assert_eq!(
            record.version.get(),
            versions.get(owner).copied().unwrap_or(0),
            "{owner}: the version counts the journal's entries"
        );
        for ((_, stack), replayed) in balances.iter().filter(|((of, _), _)| of == owner) {
            let held = record.items.get(stack).copied().unwrap_or(0);
            assert_eq!(
                held, *replayed,
                "{owner} {stack}: the balance is the journal's replay"
            );
        }
        for (stack, held) in &record.items {
            assert!(*held >= 0, "{owner} holds a negative {stack}: {held}");
            assert!(
                balances.contains_key(&(owner.clone(), stack.clone())),
                "{owner} holds {stack} no journaled change touched"
            );
        }
    }
    entries
}

fn outbox_of(store: &dyn InventoryStore) -> &dyn Outbox {
    store.outbox().expect("a store with an outbox")
}

/// Reads the outbox from `after` to its end.
async fn outbox_to_end(
    outbox: &dyn Outbox,
    after: Option<crate::OutboxPosition>,
) -> Vec<OutboxEntry> {
    outbox_until(outbox, after, |_| true).await
}

/// Reads the outbox from `after` to its end, and on until `done` holds of
/// what it read (a change stream may surface a commit some milliseconds
/// late on a loaded machine) or 10 s have passed.
async fn outbox_until(
    outbox: &dyn Outbox,
    mut after: Option<crate::OutboxPosition>,
    done: impl Fn(&[OutboxEntry]) -> bool,
) -> Vec<OutboxEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    loop {
        let page = outbox
            .read_after(after.as_ref(), 3)
            .await
            .expect("read the outbox");
        let Some(last) = page.last() else {
            if done(&all) || tokio::time::Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        after = Some(last.position.clone());
        all.extend(page);
    }
}

/// The outbox lists every applied change once, in the order applied, with
/// its recorded event; retries, refusals and conflicts add nothing.
pub async fn outbox_lists_each_applied_change_once_in_order(store: &dyn InventoryStore) {
    let outbox = outbox_of(store);
    let start = outbox_to_end(outbox, None).await.pop().map(|e| e.position);
    let a = fresh_account("outbox-a");
    let b = fresh_account("outbox-b");
    let mut expected = Vec::new();
    for change in [
        grant(&a, "wood", 5),
        grant(&b, "gold", 3),
        consume(&a, "wood", 2),
    ] {
        expected.push(applied_event(store, &change).await);
        let _ = store.apply(&change).await.expect("retry");
    }
    assert!(store.apply(&consume(&a, "wood", 100)).await.is_err());
    let conflicting = with_id(&grant(&b, "gem", 1), expected[0].change_id);
    assert!(store.apply(&conflicting).await.is_err());
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("wood"), qty(1))]),
        (b.clone(), &[(item("gold"), qty(1))]),
    )
    .validate()
    .expect("valid");
    expected.push(applied_event(store, &trade).await);
    let last = expected[expected.len() - 1].clone();
    let listed: Vec<_> = outbox_until(outbox, start, |read| read.iter().any(|e| e.event == last))
        .await
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.owners.iter().any(|o| o.owner == a || o.owner == b))
        .collect();
    assert_eq!(listed, expected);
}

/// After `mark_published`, reading from the mark starts after it; a mark
/// behind it moves nothing back.
pub async fn outbox_mark_moves_the_start_forward_only(store: &dyn InventoryStore) {
    let outbox = outbox_of(store);
    let a = fresh_account("outbox-mark");
    let first = applied_event(store, &grant(&a, "wood", 1)).await;
    // Between the older mark and the newer one: listed again only if the
    // older mark moved the start back.
    let middle = applied_event(store, &grant(&a, "stone", 1)).await;
    let all = outbox_until(outbox, None, |read| read.iter().any(|e| e.event == middle)).await;
    let first_position = all
        .iter()
        .find(|e| e.event == first)
        .expect("the first change is listed")
        .position
        .clone();
    let end = all.last().expect("not empty").position.clone();
    outbox.mark_published(&end).await.expect("mark");
    let second = applied_event(store, &grant(&a, "wood", 1)).await;
    outbox
        .mark_published(&first_position)
        .await
        .expect("an older mark");
    let from_mark: Vec<ChangeEvent> =
        outbox_until(outbox, None, |read| read.iter().any(|e| e.event == second))
            .await
            .into_iter()
            .map(|e| e.event)
            .collect();
    assert!(!from_mark.contains(&first), "{from_mark:?}");
    assert!(
        !from_mark.contains(&middle),
        "the mark moved back: {from_mark:?}"
    );
    assert!(from_mark.contains(&second), "{from_mark:?}");
}

/// Generates one `#[tokio::test]` per [`SupportStore`](crate::SupportStore)
/// conformance case; `$make` yields a store implementing both
/// [`InventoryStore`] and `SupportStore`.
#[macro_export]
macro_rules! support_conformance_tests {
    ($make:expr) => {
        $crate::support_conformance_tests!(@cases $make;
            history_pages_an_owner_newest_first,
            item_changes_follow_a_crafted_item,
            change_answers_applied_records_only,
            operator_log_pages_newest_first,
            revert_undoes_a_trade_once,
            revert_is_blocked_when_items_are_spent,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = $make;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

fn support_of<S: InventoryStore + SupportStore>(store: S) -> (Arc<S>, Support) {
    let store = Arc::new(store);
    let inventory = Inventory::from_arc(Arc::clone(&store) as Arc<dyn InventoryStore>);
    let support = Support::new(inventory, Arc::clone(&store) as Arc<dyn SupportStore>);
    (store, support)
}

fn versions_of(records: &[JournalRecord], owner: &OwnerId) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| r.entry.versions.iter().find(|(o, _)| o == owner))
        .map(|(_, v)| v.get())
        .collect()
}

/// History pages an owner's changes newest first, by its versions, and
/// names the other owners a change touched.
pub async fn history_pages_an_owner_newest_first<S: InventoryStore + SupportStore>(store: S) {
    let (store, support) = support_of(store);
    let (a, b) = (fresh_account("hist-a"), fresh_account("hist-b"));
    for n in 1..=6 {
        applied(&*store, &grant(&a, "wood", n)).await;
    }
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("wood"), qty(2))]),
        (b.clone(), &[]),
    )
    .validate()
    .expect("valid");
    applied(&*store, &grant(&b, "gold", 1)).await;
    applied(&*store, &trade).await;
    let first = store.history(&a, None, 3).await.expect("history");
    assert_eq!(versions_of(&first, &a), [7, 6, 5]);
    assert_eq!(first[0].entry.change.id(), trade.id());
    let second = store
        .history(&a, Some(Version::new(5)), 3)
        .await
        .expect("history");
    assert_eq!(versions_of(&second, &a), [4, 3, 2]);
    let last = store
        .history(&a, Some(Version::new(2)), 3)
        .await
        .expect("history");
    assert_eq!(versions_of(&last, &a), [1]);
    assert!(
        store
            .history(&a, Some(Version::new(1)), 3)
            .await
            .expect("history")
            .is_empty()
    );
    assert!(
        store
            .history(&fresh_account("hist-none"), None, 3)
            .await
            .expect("history")
            .is_empty()
    );
    let page = support.history(&a, None, 3).await.expect("page");
    assert_eq!(page.next_before, Some(5));
    let top = &page.entries[0];
    assert_eq!(top.kind, ChangeKind::Trade);
    assert_eq!(top.others, std::slice::from_ref(&b));
    assert_eq!(top.deltas[0].change, -2);
    let b_history = support.history(&b, None, 10).await.expect("page");
    assert_eq!(b_history.entries.len(), 2);
    assert_eq!(b_history.next_before, None);
}

/// Every change that moved a crafted item is found, and custody orders them
/// into one chain; a stackable item has no custody.
pub async fn item_changes_follow_a_crafted_item<S: InventoryStore + SupportStore>(store: S) {
    let (store, support) = support_of(store);
    let (a, b) = (fresh_account("cust-a"), fresh_account("cust-b"));
    let craft_id = ChangeId::random();
    let sword = protocol::crafted_item_id(craft_id);
    let craft = Change::new(craft_id)
        .with_kind(ChangeKind::Craft)
        .grant(a.clone(), sword.clone(), qty(1))
        .validate()
        .expect("valid");
    applied(&*store, &craft).await;
    let mut moves = vec![craft.id()];
    for (from, to) in [(&a, &b), (&b, &a), (&a, &b)] {
        let trade = Change::trade(
            ChangeId::random(),
            (from.clone(), &[(sword.clone(), qty(1))]),
            (to.clone(), &[]),
        )
        .validate()
        .expect("valid");
        applied(&*store, &trade).await;
        moves.push(trade.id());
    }
    let burn = Change::new(ChangeId::random())
        .with_kind(ChangeKind::Burn)
        .consume(b.clone(), sword.clone(), qty(1))
        .validate()
        .expect("valid");
    applied(&*store, &burn).await;
    moves.push(burn.id());
    let records = store.item_changes(&sword).await.expect("item changes");
    assert_eq!(records.len(), 5);
    let custody = support
        .custody(&sword)
        .await
        .expect("custody")
        .expect("moved");
    let order: Vec<ChangeId> = custody.steps.iter().map(|s| s.change_id).collect();
    assert_eq!(order, moves);
    assert_eq!(custody.crafted_by.as_ref(), Some(&a));
    assert_eq!(custody.burned_by.as_ref(), Some(&b));
    assert_eq!(custody.holder, None);
    assert_eq!(custody.steps[1].from.as_ref(), Some(&a));
    assert_eq!(custody.steps[1].to.as_ref(), Some(&b));
    applied(&*store, &grant(&a, "wood", 3)).await;
    assert!(
        store
            .item_changes(&item("wood"))
            .await
            .expect("item changes")
            .is_empty()
    );
    assert!(
        support
            .custody(&protocol::crafted_item_id(ChangeId::random()))
            .await
            .expect("custody")
            .is_none()
    );
}

/// `change` answers the record of an applied change, with its time where the
/// store keeps one, and nothing for a refused or unknown id.
pub async fn change_answers_applied_records_only<S: InventoryStore + SupportStore>(store: S) {
    let (store, _) = support_of(store);
    let a = fresh_account("one-change");
    let granted = grant(&a, "wood", 2);
    applied(&*store, &granted).await;
    let record = store
        .change(granted.id())
        .await
        .expect("change")
        .expect("applied");
    assert_eq!(record.entry.change.id(), granted.id());
    assert_eq!(record.entry.versions, [(a.clone(), Version::new(1))]);
    let refused = consume(&a, "wood", 5);
    assert!(store.apply(&refused).await.is_err());
    assert!(store.change(refused.id()).await.expect("change").is_none());
    assert!(
        store
            .change(ChangeId::random())
            .await
            .expect("change")
            .is_none()
    );
}

/// The operator log keeps every action and pages newest first.
pub async fn operator_log_pages_newest_first<S: InventoryStore + SupportStore>(store: S) {
    // Ids far in the future, so that other cases' actions sort below.
    let run = ChangeId::random().to_string();
    let ids: Vec<String> = (0..5).map(|n| format!("99999999999{n:02}-{run}")).collect();
    for id in &ids {
        store
            .record_action(&OperatorAction {
                id: id.clone(),
                at: 1,
                actor: "ana".to_owned(),
                role: "operator".to_owned(),
                action: "POST /v1/changes/{id}/revert".to_owned(),
                owner: Some("a:x".to_owned()),
                target: None,
                outcome: "ok".to_owned(),
            })
            .await
            .expect("record");
    }
    let first = store.actions(None, 3).await.expect("actions");
    let got: Vec<&str> = first.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(got, [&ids[4], &ids[3], &ids[2]]);
    let next = store.actions(Some(&ids[2]), 2).await.expect("actions");
    let got: Vec<&str> = next.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(got, [&ids[1], &ids[0]]);
    assert_eq!(
        next[0],
        OperatorAction {
            id: ids[1].clone(),
            ..first[0].clone()
        }
    );
}

/// A revert undoes a trade on both sides, is journaled with a reference to
/// it, answers a retry of the same request with the same revert, and
/// refuses any other request and reverting the revert.
pub async fn revert_undoes_a_trade_once<S: InventoryStore + SupportStore>(store: S) {
    let (store, support) = support_of(store);
    let (a, b) = (fresh_account("rev-a"), fresh_account("rev-b"));
    applied(&*store, &grant(&a, "sword", 1)).await;
    applied(&*store, &grant(&b, "gold", 50)).await;
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("sword"), qty(1))]),
        (b.clone(), &[(item("gold"), qty(50))]),
    )
    .validate()
    .expect("valid");
    applied(&*store, &trade).await;
    let request = ChangeId::random();
    let preview = support
        .revert(trade.id(), request, RevertMode::Whole, false)
        .await
        .expect("preview");
    assert_eq!(preview.undo.len(), 4);
    assert!(preview.applied.is_none());
    assert_eq!(
        balance(&*store, &a, "gold").await,
        50,
        "a preview writes nothing"
    );
    let done = support
        .revert(trade.id(), request, RevertMode::Whole, true)
        .await
        .expect("revert");
    let event = done.applied.expect("applied");
    assert_eq!(event.kind, ChangeKind::Revert);
    assert_eq!(balance(&*store, &a, "sword").await, 1);
    assert_eq!(balance(&*store, &a, "gold").await, 0);
    assert_eq!(balance(&*store, &b, "gold").await, 50);
    assert_eq!(balance(&*store, &b, "sword").await, 0);
    let again = support
        .revert(trade.id(), request, RevertMode::Whole, true)
        .await
        .expect("retry");
    assert_eq!(again.applied, Some(event.clone()));
    let other = support
        .revert(trade.id(), ChangeId::random(), RevertMode::Whole, true)
        .await
        .expect_err("reverted already");
    assert_eq!(other.code(), ErrorCode::NotRevertible);
    let of_revert = support
        .revert(event.change_id, ChangeId::random(), RevertMode::Whole, true)
        .await
        .expect_err("a revert");
    assert_eq!(of_revert.code(), ErrorCode::NotRevertible);
    let unknown = support
        .revert(
            ChangeId::random(),
            ChangeId::random(),
            RevertMode::Whole,
            true,
        )
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), ErrorCode::UnknownChange);
    let history = support.history(&a, None, 1).await.expect("history");
    let top = &history.entries[0];
    assert_eq!(top.kind, ChangeKind::Revert);
    assert_eq!(top.reverts.map(|r| r.original), Some(trade.id()));
    assert_eq!(
        balance(&*store, &a, "sword").await,
        1,
        "nothing applied twice"
    );
}

/// A revert whose granted items were spent is refused, naming each owner and
/// item short, and writes nothing; a partial revert takes back what is held
/// and gives back only as much (no item is created).
pub async fn revert_is_blocked_when_items_are_spent<S: InventoryStore + SupportStore>(store: S) {
    let (store, support) = support_of(store);
    let (a, b) = (fresh_account("blk-a"), fresh_account("blk-b"));
    applied(&*store, &grant(&a, "gem", 10)).await;
    let trade = Change::trade(
        ChangeId::random(),
        (a.clone(), &[(item("gem"), qty(10))]),
        (b.clone(), &[]),
    )
    .validate()
    .expect("valid");
    applied(&*store, &trade).await;
    applied(&*store, &consume(&b, "gem", 4)).await;
    let before = version(&*store, &b).await;
    let refused = support
        .revert(trade.id(), ChangeId::random(), RevertMode::Whole, true)
        .await
        .expect_err("blocked");
    assert_eq!(refused.code(), ErrorCode::RevertBlocked);
    let Error::RevertBlocked(blocked) = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(blocked.len(), 1);
    assert_eq!((&blocked[0].owner, blocked[0].short), (&b, 4));
    assert!(refused.to_string().contains("4 gem short"), "{refused}");
    assert_eq!(version(&*store, &b).await, before, "nothing written");
    let partial = support
        .revert(trade.id(), ChangeId::random(), RevertMode::Partial, true)
        .await
        .expect("partial");
    assert_eq!(partial.blocked.len(), 1);
    assert!(partial.applied.is_some());
    assert_eq!(balance(&*store, &b, "gem").await, 0);
    assert_eq!(balance(&*store, &a, "gem").await, 6);
    let gift = grant(&a, "apple", 3);
    applied(&*store, &gift).await;
    applied(&*store, &consume(&a, "apple", 3)).await;
    let nothing = support
        .revert(gift.id(), ChangeId::random(), RevertMode::Partial, true)
        .await
        .expect("partial");
    assert!(nothing.applied.is_none() && nothing.undo.is_empty());
}
