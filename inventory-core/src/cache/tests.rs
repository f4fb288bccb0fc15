use std::collections::BTreeMap;

use protocol::{ChangeKind, ItemDelta, ItemId};

use super::*;

fn user() -> UserId {
    UserId::parse("alice").unwrap()
}

fn owner(s: &str) -> OwnerId {
    OwnerId::parse(s).unwrap()
}

/// An event with id `id` giving each owner `+change` wood at `version`.
fn event(id: u8, owners: &[(&str, u64, i64)]) -> ChangeEvent {
    ChangeEvent {
        change_id: ChangeId::from_bytes([id; 16]),
        kind: ChangeKind::Adjust,
        owners: owners
            .iter()
            .map(|(o, version, change)| OwnerDelta {
                owner: owner(o),
                version: Version::new(*version),
                deltas: vec![ItemDelta {
                    item: ItemId::parse("wood").unwrap(),
                    change: *change,
                }],
            })
            .collect(),
    }
}

fn snapshot(o: &str, version: u64, wood: u64) -> OwnerSnapshot {
    let mut items = BTreeMap::new();
    if wood > 0 {
        items.insert(ItemId::parse("wood").unwrap(), wood);
    }
    OwnerSnapshot {
        owner: owner(o),
        version: Version::new(version),
        items,
    }
}

/// The short form of an outcome, for tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Got {
    Buffered,
    Duplicate,
    Applied(usize),
    Gap,
}

fn short(outcome: &EventOutcome) -> Got {
    match outcome {
        EventOutcome::Buffered => Got::Buffered,
        EventOutcome::Duplicate => Got::Duplicate,
        EventOutcome::Applied(deltas) => Got::Applied(deltas.len()),
        EventOutcome::Gap(_) => Got::Gap,
    }
}

/// A ready cache holding `a:alice` at v2 with 10 wood.
fn ready() -> PlayerCache {
    let mut cache = PlayerCache::new(user());
    let outcome = cache.finish_hydration(1, vec![snapshot("a:alice", 2, 10)]);
    assert_eq!(
        outcome,
        HydrationOutcome::Ready {
            applied: 0,
            duplicates: 0
        }
    );
    cache
}

/// Feeds events to a ready cache and checks each outcome and the final state.
fn check(events: &[(ChangeEvent, Got)], expected: &[OwnerSnapshot], ready_after: bool) {
    let mut cache = ready();
    for (i, (event, want)) in events.iter().enumerate() {
        let got = cache.on_event(event.clone());
        assert_eq!(short(&got), *want, "event {i}");
    }
    assert_eq!(cache.is_ready(), ready_after);
    assert_eq!(cache.snapshots(), expected);
}

#[test]
fn next_version_applies() {
    check(
        &[
            (event(1, &[("a:alice", 3, 5)]), Got::Applied(1)),
            (event(2, &[("a:alice", 4, -15)]), Got::Applied(1)),
        ],
        &[snapshot("a:alice", 4, 0)],
        true,
    );
}

#[test]
fn old_version_is_a_duplicate() {
    check(
        &[
            (event(1, &[("a:alice", 2, 5)]), Got::Duplicate),
            (event(2, &[("a:alice", 1, 5)]), Got::Duplicate),
        ],
        &[snapshot("a:alice", 2, 10)],
        true,
    );
}

#[test]
fn repeated_change_id_is_a_duplicate() {
    check(
        &[
            (event(1, &[("a:alice", 3, 5)]), Got::Applied(1)),
            (event(1, &[("a:alice", 3, 5)]), Got::Duplicate),
        ],
        &[snapshot("a:alice", 3, 15)],
        true,
    );
}

#[test]
fn skipped_version_is_a_gap_and_buffers() {
    check(
        &[
            (event(1, &[("a:alice", 4, 5)]), Got::Gap),
            (event(2, &[("a:alice", 3, 5)]), Got::Buffered),
        ],
        &[snapshot("a:alice", 2, 10)],
        false,
    );
}

#[test]
fn negative_balance_is_treated_as_a_gap() {
    check(
        &[(event(1, &[("a:alice", 3, -11)]), Got::Gap)],
        &[snapshot("a:alice", 2, 10)],
        false,
    );
}

#[test]
fn new_owner_starts_at_version_zero() {
    check(
        &[(event(1, &[("c:alice:hero", 1, 7)]), Got::Applied(1))],
        &[snapshot("a:alice", 2, 10), snapshot("c:alice:hero", 1, 7)],
        true,
    );
}

#[test]
fn other_players_owners_are_ignored() {
    check(
        &[(
            event(1, &[("a:alice", 3, -4), ("a:bob", 9, 4)]),
            Got::Applied(1),
        )],
        &[snapshot("a:alice", 3, 6)],
        true,
    );
}

#[test]
fn hydration_replays_only_events_above_the_load() {
    let mut cache = PlayerCache::new(user());
    for (id, version) in [(1, 2), (2, 3), (3, 4)] {
        assert_eq!(
            cache.on_event(event(id, &[("a:alice", version, 1)])),
            EventOutcome::Buffered
        );
    }
    // The load saw v3: v2 and v3 are covered by it, v4 applies on top.
    let outcome = cache.finish_hydration(1, vec![snapshot("a:alice", 3, 10)]);
    assert_eq!(
        outcome,
        HydrationOutcome::Ready {
            applied: 1,
            duplicates: 2
        }
    );
    assert_eq!(cache.snapshots(), vec![snapshot("a:alice", 4, 11)]);
    assert!(cache.is_ready());
}

#[test]
fn hole_in_the_buffer_asks_for_another_load_and_keeps_the_rest() {
    let mut cache = PlayerCache::new(user());
    for (id, version) in [(1, 5), (2, 6)] {
        let _ = cache.on_event(event(id, &[("a:alice", version, 1)]));
    }
    let outcome = cache.finish_hydration(1, vec![snapshot("a:alice", 3, 10)]);
    let HydrationOutcome::Gap(generation) = outcome else {
        panic!("expected a gap, got {outcome:?}");
    };
    assert!(!cache.is_ready());
    // The second load sees v4; the kept v5 and v6 then apply.
    let outcome = cache.finish_hydration(generation, vec![snapshot("a:alice", 4, 10)]);
    assert_eq!(
        outcome,
        HydrationOutcome::Ready {
            applied: 2,
            duplicates: 0
        }
    );
    assert_eq!(cache.snapshots(), vec![snapshot("a:alice", 6, 12)]);
}

#[test]
fn stale_load_is_ignored() {
    let mut cache = ready();
    let first = cache.begin_hydration();
    let second = cache.begin_hydration();
    assert_eq!(
        cache.finish_hydration(first, vec![snapshot("a:alice", 5, 1)]),
        HydrationOutcome::Stale
    );
    assert!(!cache.is_ready());
    assert!(matches!(
        cache.finish_hydration(second, vec![snapshot("a:alice", 6, 2)]),
        HydrationOutcome::Ready { .. }
    ));
    assert_eq!(cache.snapshots(), vec![snapshot("a:alice", 6, 2)]);
    assert_eq!(
        cache.finish_hydration(second, vec![snapshot("a:alice", 1, 1)]),
        HydrationOutcome::Stale
    );
}

#[test]
fn seen_ids_are_bounded() {
    let mut seen = SeenIds::default();
    for i in 0..(SEEN_WINDOW as u32 + 10) {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        seen.insert(ChangeId::from_bytes(bytes));
    }
    assert_eq!(seen.ids.len(), SEEN_WINDOW);
    assert!(!seen.contains(&ChangeId::from_bytes([0; 16])));
}
