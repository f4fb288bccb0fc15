//! Unit tests of the bucket layout: where a stack lives, what a change on a
//! split owner sends, and how a split places every stack.

use mongodb::bson::{Document, doc};
use protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId, ValidChange};

use super::*;

fn alice() -> OwnerId {
    OwnerId::account(UserId::parse("alice").expect("id"))
}

fn item(name: &str) -> ItemId {
    ItemId::parse(name).expect("id")
}

fn craft() -> ValidChange {
    Change::new(ChangeId::from_bytes([1; 16]))
        .consume(alice(), item("wood"), Quantity::new(4).expect("qty"))
        .grant(alice(), item("plank"), Quantity::new(2).expect("qty"))
        .validate()
        .expect("valid")
}

#[test]
fn a_stack_has_one_stable_bucket() {
    // FNV-1a 64 of "wood" is 0x707e16f6368787a8, forever: stored layouts
    // depend on it.
    assert_eq!(bucket_of(&item("wood"), 1 << 31), 0x3687_87a8);
    assert_eq!(bucket_of(&item("wood"), 1), 0);
    for n in [2, 16, 4096] {
        assert!(bucket_of(&item("plank"), n) < n);
    }
}

#[test]
fn a_change_on_a_split_owner_updates_the_head_and_its_buckets() {
    let (head, parts) = bucketed_updates(&alice(), &craft(), 8);
    assert_eq!(head.filter.get_i64(BUCKETS), Ok(8));
    assert_eq!(head.filter.get_str(USER), Ok("alice"));
    assert!(
        head.update
            .get_document("$inc")
            .expect("inc")
            .contains_key(VERSION)
    );
    assert!(head.update.contains_key("$push"));
    let wood = bucket_id(&alice(), bucket_of(&item("wood"), 8));
    let plank = bucket_id(&alice(), bucket_of(&item("plank"), 8));
    let mut ids: Vec<&str> = parts
        .iter()
        .map(|p| p.filter.get_str(ID).expect("_id"))
        .collect();
    ids.sort_unstable();
    let mut expected = vec![wood.as_str(), plank.as_str()];
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(ids, expected);
    for part in &parts {
        assert_eq!(part.filter.get_str(USER), Ok("alice"));
        assert!(
            !part
                .update
                .get_document("$inc")
                .expect("inc")
                .contains_key(VERSION)
        );
    }
    let guards: usize = parts
        .iter()
        .map(|p| p.filter.keys().filter(|k| k.starts_with("items.")).count())
        .sum();
    assert_eq!(guards, 2);
}

#[test]
fn a_split_places_every_stack_in_its_bucket_and_compares_the_head() {
    let mut items = Document::new();
    for i in 0..100_i64 {
        items.insert(format!("item-{i:03}"), i + 1);
    }
    items.insert("gone", 0_i64);
    let head = doc! { "_id": "a:alice", "u": "alice", "v": 7_i64, "items": items };
    let first = split(&alice(), &head, &[], 64)
        .expect("valid")
        .expect("splits");
    // 100 stacks at 16 a bucket: 7 buckets, rounded up to a power of two.
    assert_eq!(first.count, 8);
    assert_eq!(first.buckets.len(), 8);
    let mut placed = 0;
    for (k, bucket) in (0..).zip(&first.buckets) {
        assert_eq!(bucket.get_str(ID), Ok(bucket_id(&alice(), k).as_str()));
        assert_eq!(bucket.get_str(OWNER), Ok("a:alice"));
        for (key, _) in bucket.get_document(ITEMS).expect("items") {
            assert_eq!(bucket_of(&item(key), 8), k);
            placed += 1;
        }
    }
    assert_eq!(placed, 100, "zero stacks are left behind");
    assert_eq!(
        first.filter,
        doc! { "_id": "a:alice", "u": "alice", "v": 7_i64, "b": { "$exists": false } }
    );

    // No bucket holds more than 64: nothing to do.
    let mut head = head.clone();
    head.insert(BUCKETS, 8_i64);
    head.remove(ITEMS);
    assert!(
        split(&alice(), &head, &first.buckets, 64)
            .expect("valid")
            .is_none()
    );
    // Past 8 a bucket: re-split for 2 a bucket, reading the stacks from the
    // buckets.
    let again = split(&alice(), &head, &first.buckets, 8)
        .expect("valid")
        .expect("splits");
    assert_eq!(again.count, 64);
    assert_eq!(again.filter.get_i64(BUCKETS), Ok(8));
    let stacks: usize = again
        .buckets
        .iter()
        .map(|b| b.get_document(ITEMS).expect("items").len())
        .sum();
    assert_eq!(stacks, 100);
}

#[test]
fn no_split_past_the_most_buckets() {
    let head = doc! { "_id": "a:alice", "u": "alice", "v": 1_i64, "b": i64::from(MAX_BUCKETS) };
    let crowded = doc! { "items": { "a": 1_i64, "b": 1_i64, "c": 1_i64 } };
    assert!(
        split(&alice(), &head, &[crowded], 2)
            .expect("valid")
            .is_none()
    );
}

#[test]
fn merged_buckets_read_as_one_document() {
    let mut head = doc! { "v": 3_i64, "b": 2_i64 };
    merge_items(&mut head, &doc! { "items": { "wood": 4_i64 } });
    merge_items(&mut head, &doc! { "items": { "plank": 1_i64 } });
    assert_eq!(stacks_in(&head), 2);
    assert_eq!(
        layout_of(&alice(), &head).expect("valid"),
        Layout::Buckets(2)
    );
    assert!(layout_of(&alice(), &doc! { "b": "x" }).is_err());
    assert_eq!(layout_of(&alice(), &doc! {}).expect("valid"), Layout::Head);
}
