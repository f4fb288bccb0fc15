use super::*;
use crate::fixtures::{batch, descriptor, item};

fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|id| item(id)).collect()
}

fn cache(capacity: usize) -> DescriptorCache {
    DescriptorCache::new(NonZeroUsize::new(capacity).unwrap())
}

#[test]
fn to_fetch_reports_each_unknown_id_once_until_answered_or_failed() {
    let mut cache = cache(8);
    assert_eq!(cache.to_fetch(&ids(&["a", "b", "a"])), ids(&["a", "b"]));
    assert_eq!(cache.to_fetch(&ids(&["a", "b", "c"])), ids(&["c"]));
    assert_eq!(
        cache.insert_batch(&batch(&["a"], &["b"], &[])),
        ids(&["a", "b"])
    );
    cache.fetch_failed(&ids(&["c"]));
    assert_eq!(cache.to_fetch(&ids(&["a", "b", "c"])), ids(&["c"]));
}

#[test]
fn answers_positive_and_negative_are_cached() {
    let mut cache = cache(8);
    cache.insert_batch(&batch(&["a"], &["b"], &["c"]));
    let check = |id: &str, expected: DescriptorState| assert_eq!(cache.peek(&item(id)), expected);
    check("a", DescriptorState::Ready(Arc::new(descriptor("a"))));
    check("b", DescriptorState::NotFound);
    check("c", DescriptorState::Burned);
    check("d", DescriptorState::Loading);
}

#[test]
fn an_unchanged_answer_is_not_reported_as_a_change() {
    let mut cache = cache(8);
    cache.insert_batch(&batch(&["a"], &["b"], &[]));
    assert_eq!(cache.insert_batch(&batch(&["a"], &[], &["b"])), ids(&["b"]));
}

#[test]
fn the_least_recently_used_answer_is_evicted_and_fetched_again() {
    let mut cache = cache(2);
    cache.insert_batch(&batch(&["a", "b"], &[], &[]));
    assert!(cache.to_fetch(&ids(&["a"])).is_empty());
    cache.insert_batch(&batch(&["c"], &[], &[]));
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.to_fetch(&ids(&["a", "b", "c"])), ids(&["b"]));
    cache.forget(&item("a"));
    assert_eq!(cache.to_fetch(&ids(&["a"])), ids(&["a"]));
}
