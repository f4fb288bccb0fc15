use std::collections::BTreeMap;

use protocol::{
    Change, ChangeEvent, ChangeId, ChangeKind, ErrorCode, ItemId, OwnerId, OwnerSnapshot, Quantity,
    UserId, Version, crafted_item_id,
};

use super::{JournalRecord, RevertMode, custody, history_entry, plan_revert};
use crate::JournalEntry;

fn owner(name: &str) -> OwnerId {
    OwnerId::account(UserId::parse(name).unwrap())
}

fn item(name: &str) -> ItemId {
    ItemId::parse(name).unwrap()
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn record(change: Change, versions: &[(&OwnerId, u64)], at: u64) -> JournalRecord {
    JournalRecord {
        entry: JournalEntry {
            change: change.validate().unwrap(),
            versions: versions
                .iter()
                .map(|(o, v)| ((*o).clone(), Version::new(*v)))
                .collect(),
        },
        applied_at: Some(at),
    }
}

fn holding(owner: &OwnerId, items: &[(&str, u64)]) -> OwnerSnapshot {
    OwnerSnapshot {
        owner: owner.clone(),
        version: Version::new(9),
        items: items
            .iter()
            .map(|(i, q)| (item(i), *q))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn event_of(record: &JournalRecord) -> ChangeEvent {
    record.entry.event()
}

#[test]
fn custody_is_a_chain_whatever_the_order_and_the_clocks() {
    let (a, b, c) = (owner("a"), owner("b"), owner("c"));
    let craft_id = ChangeId::random();
    let relic = crafted_item_id(craft_id);
    let give = |from: &OwnerId, to: &OwnerId| {
        Change::trade(
            ChangeId::random(),
            (from.clone(), &[(relic.clone(), qty(1))]),
            (to.clone(), &[]),
        )
    };
    let craft = record(
        Change::new(craft_id)
            .with_kind(ChangeKind::Craft)
            .grant(a.clone(), relic.clone(), qty(1)),
        &[(&a, 1)],
        500,
    );
    // Clocks that disagree with the order the item moved in.
    let ab = record(give(&a, &b), &[(&a, 2), (&b, 1)], 400);
    let ba = record(give(&b, &a), &[(&a, 3), (&b, 2)], 300);
    let ac = record(give(&a, &c), &[(&a, 4), (&c, 1)], 200);
    let records = [ac.clone(), ba.clone(), craft.clone(), ab.clone()];
    let chain = custody(&relic, &records);
    let order: Vec<ChangeId> = chain.steps.iter().map(|s| s.change_id).collect();
    let expected: Vec<ChangeId> = [&craft, &ab, &ba, &ac]
        .iter()
        .map(|r| r.entry.change.id())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(chain.crafted_by, Some(a.clone()));
    assert_eq!(chain.holder, Some(c));
    assert_eq!(chain.burned_by, None);
}

#[test]
fn history_entries_show_this_owners_deltas_and_the_others() {
    let (a, b) = (owner("a"), owner("b"));
    let trade = record(
        Change::trade(
            ChangeId::random(),
            (a.clone(), &[(item("wood"), qty(2))]),
            (b.clone(), &[(item("gold"), qty(5))]),
        ),
        &[(&a, 7), (&b, 3)],
        1,
    );
    let entry = history_entry(&trade, &b).unwrap();
    assert_eq!(entry.version, Version::new(3));
    assert_eq!(entry.others, std::slice::from_ref(&a));
    assert_eq!(entry.deltas.len(), 2);
    assert!(history_entry(&trade, &owner("c")).is_none());
}

#[test]
fn a_partial_revert_never_gives_back_more_than_it_took_back() {
    let (a, b) = (owner("a"), owner("b"));
    let trade = record(
        Change::trade(
            ChangeId::random(),
            (a.clone(), &[(item("gem"), qty(10))]),
            (b.clone(), &[(item("gold"), qty(3))]),
        ),
        &[(&a, 2), (&b, 2)],
        1,
    );
    let holdings = [holding(&a, &[("gold", 3)]), holding(&b, &[("gem", 4)])];
    let whole = plan_revert(
        &event_of(&trade),
        ChangeId::random(),
        &holdings,
        RevertMode::Whole,
    )
    .unwrap_err();
    assert_eq!(whole.code(), ErrorCode::RevertBlocked);
    let plan = plan_revert(
        &event_of(&trade),
        ChangeId::random(),
        &holdings,
        RevertMode::Partial,
    )
    .unwrap();
    let change = plan.change.unwrap();
    let mut net: BTreeMap<&ItemId, i64> = BTreeMap::new();
    for op in change.ops() {
        *net.entry(op.item()).or_default() += op.delta();
    }
    assert!(net.values().all(|n| *n == 0), "conserved: {net:?}");
    assert_eq!(plan.blocked.len(), 1);
    assert_eq!(plan.blocked[0].short, 6);
    assert_eq!(change.kind(), ChangeKind::Revert);
    assert_eq!(
        change.reverts().map(|r| r.original),
        Some(trade.entry.change.id())
    );
}

#[test]
fn crafts_burns_and_reverts_are_not_revertible() {
    let a = owner("a");
    for kind in [ChangeKind::Craft, ChangeKind::Burn] {
        let id = ChangeId::random();
        let change = Change::new(id)
            .with_kind(kind)
            .grant(a.clone(), crafted_item_id(id), qty(1));
        let event = event_of(&record(change, &[(&a, 1)], 1));
        let error = plan_revert(&event, ChangeId::random(), &[], RevertMode::Whole).unwrap_err();
        assert_eq!(error.code(), ErrorCode::NotRevertible);
    }
}
