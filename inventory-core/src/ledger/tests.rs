use protocol::{Change, ErrorCode, ItemId, Quantity};

use super::*;

fn owner(name: &str) -> OwnerId {
    OwnerId::account(UserId::parse(name).unwrap())
}
fn item(name: &str) -> ItemId {
    ItemId::parse(name).unwrap()
}
fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}
fn id(n: u8) -> ChangeId {
    ChangeId::from_bytes([n; 16])
}

/// Applies `changes` in order and checks each outcome's code (None = success)
/// and alice's final wood balance and version.
fn check(changes: Vec<Change>, outcomes: &[Option<ErrorCode>], wood: u64, version: u64) {
    let mut ledger = Ledger::default();
    for (change, expected) in changes.into_iter().zip(outcomes) {
        let got = ledger
            .apply(&change.validate().unwrap())
            .err()
            .map(|e| e.code());
        assert_eq!(got, *expected);
    }
    let snap = ledger.snapshot(&owner("alice"));
    assert_eq!(snap.items.get(&item("wood")).copied().unwrap_or(0), wood);
    assert_eq!(snap.version.get(), version);
}

#[test]
fn guards_versions_and_idempotency() {
    let a = owner("alice");
    let grant = |n, q| Change::new(id(n)).grant(a.clone(), item("wood"), qty(q));
    let consume = |n, q| Change::new(id(n)).consume(a.clone(), item("wood"), qty(q));
    check(vec![grant(1, 5)], &[None], 5, 1);
    check(
        vec![grant(1, 5), consume(2, 6)],
        &[None, Some(ErrorCode::InsufficientBalance)],
        5,
        1,
    );
    check(vec![grant(1, 5), consume(2, 5)], &[None, None], 0, 2);
    check(vec![grant(1, 5), grant(1, 5)], &[None, None], 5, 1);
    check(
        vec![grant(1, 5), consume(2, 9), grant(3, 4), consume(2, 9)],
        &[None, Some(ErrorCode::InsufficientBalance), None, None],
        0,
        3,
    );
}

#[test]
fn a_failing_operation_leaves_every_owner_untouched() {
    let mut ledger = Ledger::default();
    let change = Change::new(id(1))
        .grant(owner("bob"), item("wood"), qty(3))
        .consume(owner("alice"), item("wood"), qty(1))
        .validate()
        .unwrap();
    assert!(ledger.apply(&change).is_err());
    assert_eq!(ledger.snapshot(&owner("bob")).version, Version::ZERO);
    assert!(ledger.snapshot(&owner("bob")).items.is_empty());
}

#[test]
fn balance_cannot_exceed_the_maximum() {
    let held = MAX_BALANCE - 1;
    let op = Operation::Grant {
        owner: owner("alice"),
        item: item("gold"),
        qty: qty(1),
    };
    assert_eq!(next_balance(&op, held).unwrap(), MAX_BALANCE);
    assert_eq!(
        next_balance(&op, MAX_BALANCE).unwrap_err().code(),
        ErrorCode::BalanceOverflow
    );
}

#[test]
fn a_change_id_is_remembered_for_good() {
    let mut ledger = Ledger::default();
    let a = owner("alice");
    let first = Change::new(ChangeId::from_bytes([0xff; 16]))
        .grant(a.clone(), item("wood"), qty(1))
        .validate()
        .unwrap();
    let _ = ledger.apply(&first).unwrap();
    for n in 0..2 * crate::IDEMPOTENCY_WINDOW as u128 {
        let change = Change::new(ChangeId::from_bytes(n.to_be_bytes()))
            .grant(a.clone(), item("wood"), qty(1))
            .validate()
            .unwrap();
        let _ = ledger.apply(&change).unwrap();
    }
    assert!(matches!(
        ledger.apply(&first).unwrap(),
        ApplyOutcome::AlreadyApplied(_)
    ));
}

#[test]
fn a_reused_change_id_is_a_conflict_whatever_it_names() {
    let a = owner("alice");
    let b = owner("bob");
    let wood = |o: &OwnerId| Change::new(id(1)).grant(o.clone(), item("wood"), qty(1));
    // The original, then each reuse of its id.
    check(vec![wood(&a), wood(&a)], &[None, None], 1, 1);
    let conflict = Some(ErrorCode::ChangeConflict);
    check(vec![wood(&a), wood(&b)], &[None, conflict], 1, 1);
    check(
        vec![
            wood(&a),
            Change::new(id(1)).grant(a.clone(), item("wood"), qty(999)),
        ],
        &[None, conflict],
        1,
        1,
    );
    check(
        vec![wood(&a), wood(&a).with_kind(protocol::ChangeKind::Craft)],
        &[None, conflict],
        1,
        1,
    );
    check(
        vec![wood(&a), wood(&a).grant(b.clone(), item("wood"), qty(1))],
        &[None, conflict],
        1,
        1,
    );
    let mut ledger = Ledger::default();
    let _ = ledger.apply(&wood(&a).validate().unwrap()).unwrap();
    assert!(ledger.apply(&wood(&b).validate().unwrap()).is_err());
    assert_eq!(ledger.snapshot(&b).version, Version::ZERO);
    assert_eq!(ledger.journal().len(), 1);
}

#[test]
fn a_retry_answers_the_recorded_event() {
    let mut ledger = Ledger::default();
    let (a, b) = (owner("alice"), owner("bob"));
    let original = Change::new(id(1))
        .grant(a.clone(), item("wood"), qty(2))
        .grant(b.clone(), item("ore"), qty(3))
        .grant(a.clone(), item("gem"), qty(1));
    let reordered = Change::new(id(1))
        .grant(a.clone(), item("gem"), qty(1))
        .grant(b.clone(), item("ore"), qty(3))
        .grant(a.clone(), item("wood"), qty(2));
    let applied = ledger.apply(&original.validate().unwrap()).unwrap();
    let retried = ledger.apply(&reordered.validate().unwrap()).unwrap();
    assert!(matches!(retried, ApplyOutcome::AlreadyApplied(_)));
    assert_eq!(retried.event(), applied.event());
    assert_eq!(ledger.lookup(id(1)).as_ref(), Some(applied.event()));
    assert_eq!(ledger.lookup(id(2)), None);
}
