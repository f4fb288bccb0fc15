//! Unit tests of the pure document rules: the exact filter and update each
//! change sends, and how stored documents are read back.

use mongodb::bson::{Bson, Document, doc};
use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId, ValidChange, Version};

use super::*;

fn alice() -> OwnerId {
    OwnerId::account(UserId::parse("alice").expect("id"))
}

fn item(name: &str) -> ItemId {
    ItemId::parse(name).expect("id")
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).expect("qty")
}

fn id(n: u8) -> ChangeId {
    ChangeId::from_bytes([n; 16])
}

fn craft() -> ValidChange {
    Change::new(id(1))
        .consume(alice(), item("wood"), qty(4))
        .grant(alice(), item("plank"), qty(2))
        .validate()
        .expect("valid")
}

/// A stored document at version `v` whose window holds `ids`, oldest first.
fn stored(v: i64, items: Document, ids: &[u8]) -> Document {
    let recent: Vec<Bson> = ids.iter().map(|n| applied_entry(id(*n))).collect();
    doc! { "_id": "a:alice", "u": "alice", "v": v, "items": items, "recent": recent }
}

#[test]
fn the_update_carries_guards_increments_and_the_change_id() {
    let update = owner_update(&alice(), &craft());
    let entry = applied_entry(id(1));
    assert_eq!(
        update.filter,
        doc! {
            "_id": "a:alice",
            "u": "alice",
            "b": { "$exists": false },
            "recent": { "$ne": entry.clone() },
            "items.wood": { "$gte": 4_i64 },
            "items.plank": { "$not": { "$gt": 999_999_999_998_i64 } },
        }
    );
    assert_eq!(
        update.update,
        doc! {
            "$inc": { "items.wood": -4_i64, "items.plank": 2_i64, "v": 1_i64 },
            "$push": { "recent": { "$each": [entry], "$slice": -64 } },
        }
    );
    assert_eq!(update.projection, doc! { "_id": 0, "items": 1, "v": 1 });
}

#[test]
fn an_entry_version_is_its_position() {
    let doc = stored(10, doc! {}, &[7, 8, 9]);
    let check = |n: u8, expected: Option<u64>| {
        assert_eq!(
            applied_version(&alice(), &doc, id(n)).expect("valid"),
            expected.map(Version::new),
            "id {n}"
        );
    };
    check(9, Some(10));
    check(8, Some(9));
    check(7, Some(8));
    check(1, None);
}

#[test]
fn a_window_longer_than_the_version_is_corrupt() {
    let doc = stored(1, doc! {}, &[7, 8]);
    assert!(matches!(
        applied_version(&alice(), &doc, id(7)),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn diagnosis_prefers_already_applied_then_the_failing_guard() {
    let owner = alice();
    let change = craft();
    let applied = stored(3, doc! { "wood": 0_i64 }, &[5, 1, 6]);
    assert!(matches!(
        diagnose(&owner, &change, Some(&applied)),
        Ok(Diagnosis::AlreadyApplied(v)) if v == Version::new(2)
    ));
    let short = stored(3, doc! { "wood": 3_i64 }, &[5, 6, 7]);
    match diagnose(&owner, &change, Some(&short)) {
        Ok(Diagnosis::Refused(Error::Insufficient {
            held, requested, ..
        })) => {
            assert_eq!((held, requested), (3, 4));
        }
        other => panic!("expected Insufficient, got {other:?}"),
    }
    let enough = stored(3, doc! { "wood": 9_i64 }, &[5, 6, 7]);
    assert!(matches!(
        diagnose(&owner, &change, Some(&enough)),
        Ok(Diagnosis::Raced)
    ));
    assert!(matches!(
        diagnose(&owner, &change, None),
        Ok(Diagnosis::Refused(Error::Insufficient { held: 0, .. }))
    ));
    let grant_only = Change::new(id(2))
        .grant(alice(), item("gem"), qty(1))
        .validate()
        .expect("valid");
    assert!(matches!(
        diagnose(&owner, &grant_only, None),
        Ok(Diagnosis::Missing)
    ));
}

#[test]
fn an_undo_retracts_the_entry_in_place_and_bumps_the_version() {
    let owner = alice();
    let change = craft();
    let doc = stored(5, doc! { "wood": 6_i64, "plank": 2_i64 }, &[7, 1, 8]);
    let undo = undo_update(&owner, &change, Some(&doc))
        .expect("valid")
        .expect("something to undo");
    assert_eq!(
        undo.filter,
        doc! { "_id": "a:alice", "u": "alice", "v": 5_i64 }
    );
    let retracted = retracted_entry(id(1));
    assert_eq!(
        undo.update,
        doc! {
            "$inc": { "items.wood": 4_i64, "items.plank": -2_i64, "v": 1_i64 },
            "$set": { "recent": [applied_entry(id(7)), retracted.clone(), applied_entry(id(8)), retracted] },
        }
    );
    assert_eq!(undo.emptied, vec![item("plank")]);
}

#[test]
fn an_undo_is_a_no_op_once_done_and_waits_for_spent_items() {
    let owner = alice();
    let change = craft();
    let undone = doc! {
        "_id": "a:alice", "v": 6_i64, "items": { "wood": 10_i64 },
        "recent": [retracted_entry(id(1)), retracted_entry(id(1))],
    };
    assert!(
        undo_update(&owner, &change, Some(&undone))
            .expect("valid")
            .is_none()
    );
    assert!(undo_update(&owner, &change, None).expect("valid").is_none());
    let spent = stored(5, doc! { "wood": 6_i64, "plank": 1_i64 }, &[1]);
    assert!(matches!(
        undo_update(&owner, &change, Some(&spent)),
        Err(Error::Insufficient { held: 1, .. })
    ));
}

#[test]
fn snapshots_hide_zero_stacks_and_report_malformed_documents() {
    let owner = alice();
    let snap = snapshot(
        &owner,
        &stored(4, doc! { "wood": 0_i64, "gem": 3_i32 }, &[]),
    )
    .expect("valid");
    assert_eq!(snap.version, Version::new(4));
    assert_eq!(
        snap.items.into_iter().collect::<Vec<_>>(),
        vec![(item("gem"), 3)]
    );
    let bad = [
        doc! { "_id": "a:alice", "v": "four" },
        doc! { "_id": "a:alice", "v": -1_i64 },
        doc! { "_id": "a:alice", "v": 1_i64, "items": [] },
        doc! { "_id": "a:alice", "v": 1_i64, "items": { "wood": -1_i64 } },
        doc! { "_id": "a:alice", "v": 1_i64, "items": { "wood": 1.0 } },
        doc! { "_id": "a:alice", "v": 1_i64, "items": { "no way": 1_i64 } },
    ];
    for doc in bad {
        match snapshot(&owner, &doc) {
            Err(Error::Corrupt { owner: o, .. }) => assert_eq!(o, owner),
            other => panic!("expected Corrupt for {doc}, got {other:?}"),
        }
    }
}

#[test]
fn listed_documents_must_name_an_owner_of_the_user() {
    let user = UserId::parse("alice").expect("id");
    let ok = doc! { "_id": "c:alice:hero" };
    assert_eq!(
        owner_of(&user, &ok).expect("valid").to_string(),
        "c:alice:hero"
    );
    for bad in [
        doc! { "_id": "a:bob" },
        doc! { "_id": "x" },
        doc! { "_id": 7 },
    ] {
        assert!(matches!(owner_of(&user, &bad), Err(Error::Corrupt { .. })));
    }
}

#[test]
fn zero_cleanup_only_matches_a_zero_stack_and_keeps_the_version() {
    let (filter, update) = zero_cleanup(&alice(), &item("wood"), Layout::Head);
    assert_eq!(
        filter,
        doc! { "_id": "a:alice", "u": "alice", "items.wood": 0_i64 }
    );
    assert_eq!(update, doc! { "$unset": { "items.wood": "" } });
}

#[test]
fn emptied_items_come_from_the_post_image() {
    let change = craft();
    let owner = alice();
    let post = doc! { "v": 2_i64, "items": { "wood": 0_i64 } };
    assert_eq!(
        emptied_items(&owner, &change, &post).collect::<Vec<_>>(),
        vec![&item("wood")]
    );
    let post = doc! { "v": 2_i64, "items": { "wood": 1_i64 } };
    assert_eq!(emptied_items(&owner, &change, &post).count(), 0);
}
