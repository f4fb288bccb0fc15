use super::*;
use crate::{Change, Quantity, UserId};

fn owner() -> OwnerId {
    OwnerId::account(UserId::parse("alice").unwrap())
}
fn delta(version: u64, item: &str, change: i64) -> OwnerDelta {
    OwnerDelta {
        owner: owner(),
        version: Version::new(version),
        deltas: vec![ItemDelta {
            item: ItemId::parse(item).unwrap(),
            change,
        }],
    }
}

fn check(
    start: &[(u64, &str, i64)],
    next: OwnerDelta,
    expected: DeltaOutcome,
    items: &[(&str, u64)],
) {
    let mut snap = OwnerSnapshot::empty(owner());
    for &(v, item, change) in start {
        assert_eq!(snap.apply(&delta(v, item, change)), DeltaOutcome::Applied);
    }
    assert_eq!(snap.apply(&next), expected);
    let got: Vec<(&str, u64)> = snap.items.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, items);
}

#[test]
fn version_rule() {
    check(
        &[],
        delta(1, "wood", 5),
        DeltaOutcome::Applied,
        &[("wood", 5)],
    );
    check(
        &[(1, "wood", 5)],
        delta(1, "wood", 5),
        DeltaOutcome::Duplicate,
        &[("wood", 5)],
    );
    check(
        &[(1, "wood", 5)],
        delta(3, "wood", 5),
        DeltaOutcome::Gap,
        &[("wood", 5)],
    );
    check(
        &[(1, "wood", 5)],
        delta(2, "wood", -5),
        DeltaOutcome::Applied,
        &[],
    );
    check(
        &[(1, "wood", 5)],
        delta(2, "wood", -6),
        DeltaOutcome::Inconsistent,
        &[("wood", 5)],
    );
}

#[test]
fn event_from_applied_change() {
    let bob = OwnerId::account(UserId::parse("bob").unwrap());
    let change = Change::trade(
        ChangeId::nil(),
        (
            owner(),
            &[(ItemId::parse("gold").unwrap(), Quantity::new(3).unwrap())],
        ),
        (bob.clone(), &[]),
    )
    .validate()
    .unwrap();
    let event = ChangeEvent::from_applied(
        &change,
        &[(owner(), Version::new(4)), (bob.clone(), Version::new(1))],
    );
    assert_eq!(event.owners[0].deltas[0].change, -3);
    assert_eq!(event.owners[1].owner, bob);
    assert_eq!(event.owners[1].deltas[0].change, 3);
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<ChangeEvent>(&json).unwrap(), event);
}
