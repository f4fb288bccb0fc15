use std::sync::Arc;

use protocol::{ChangeId, ChangeKind, ErrorCode, ItemDelta};

use super::*;
use crate::DescriptorState;
use crate::fixtures::{batch, descriptor, item, owner, user};

fn welcome(owners: &[&str]) -> ServerMessage {
    ServerMessage::Welcome {
        user: user("alice"),
        owners: owners.iter().map(|o| owner(o)).collect(),
    }
}

fn snapshot(of: &str, version: u64, items: &[(&str, u64)]) -> ServerMessage {
    ServerMessage::Snapshot {
        owners: vec![OwnerSnapshot {
            owner: owner(of),
            version: Version::new(version),
            items: items.iter().map(|&(i, q)| (item(i), q)).collect(),
        }],
    }
}

fn delta(of: &str, version: u64, deltas: &[(&str, i64)]) -> ServerMessage {
    ServerMessage::Delta {
        change_id: ChangeId::nil(),
        kind: ChangeKind::Adjust,
        owner: OwnerDelta {
            owner: owner(of),
            version: Version::new(version),
            deltas: deltas
                .iter()
                .map(|&(i, change)| ItemDelta {
                    item: item(i),
                    change,
                })
                .collect(),
        },
    }
}

/// A compact, comparable rendering of a change.
fn show(change: &ViewChange) -> String {
    let state = |d: &DescriptorState| match d {
        DescriptorState::Loading => "loading".to_string(),
        DescriptorState::Ready(d) => d.name.clone(),
        DescriptorState::NotFound => "not-found".to_string(),
        DescriptorState::Burned => "burned".to_string(),
    };
    match change {
        ViewChange::ItemAdded {
            owner,
            item,
            qty,
            descriptor,
        } => format!("+ {owner} {item} {qty} ({})", state(descriptor)),
        ViewChange::ItemRemoved { owner, item, qty } => format!("- {owner} {item} {qty}"),
        ViewChange::QuantityChanged {
            owner,
            item,
            from,
            to,
        } => format!("~ {owner} {item} {from}->{to}"),
        ViewChange::DescriptorArrived {
            owner,
            item,
            descriptor,
        } => format!("d {owner} {item} {}", state(descriptor)),
        ViewChange::Resynced { owner, version } => format!("resync {owner} {version}"),
        ViewChange::OwnerRemoved { owner } => format!("gone {owner}"),
    }
}

/// Feeds `messages` to a fresh state; checks the changes of the last one, and
/// the resulting view as `owner vN: item=qty ...` lines.
fn check(messages: Vec<ServerMessage>, changes: &[&str], view: &[&str]) -> ClientState {
    let mut state = ClientState::default();
    let mut last = Vec::new();
    for message in messages {
        last = state.handle(message);
    }
    let got: Vec<String> = last.iter().map(show).collect();
    assert_eq!(got, changes, "changes");
    let rendered: Vec<String> = state
        .view()
        .owners
        .iter()
        .map(|o| {
            let items: Vec<String> = o
                .items
                .iter()
                .map(|i| format!("{}={}", i.item, i.qty))
                .collect();
            format!("{} {}: {}", o.owner, o.version, items.join(" "))
        })
        .collect();
    assert_eq!(rendered, view, "view");
    state
}

#[test]
fn snapshots_replace_an_owner_and_say_exactly_what_changed() {
    check(
        vec![
            welcome(&["a:alice"]),
            snapshot("a:alice", 3, &[("wood", 10), ("axe", 1)]),
        ],
        &[
            "resync a:alice v3",
            "+ a:alice axe 1 (loading)",
            "+ a:alice wood 10 (loading)",
        ],
        &["a:alice v3: axe=1 wood=10"],
    );
    check(
        vec![
            welcome(&["a:alice"]),
            snapshot("a:alice", 3, &[("wood", 10), ("axe", 1)]),
            snapshot("a:alice", 9, &[("wood", 4), ("gem", 2)]),
        ],
        &[
            "resync a:alice v9",
            "- a:alice axe 1",
            "+ a:alice gem 2 (loading)",
            "~ a:alice wood 10->4",
        ],
        &["a:alice v9: gem=2 wood=4"],
    );
}

#[test]
fn deltas_apply_by_version() {
    let base = || {
        vec![
            welcome(&["a:alice"]),
            snapshot("a:alice", 3, &[("wood", 10), ("axe", 1)]),
        ]
    };
    let with = |extra: Vec<ServerMessage>| base().into_iter().chain(extra).collect::<Vec<_>>();

    check(
        with(vec![delta(
            "a:alice",
            4,
            &[("wood", -10), ("axe", 2), ("gem", 5)],
        )]),
        &[
            "- a:alice wood 10",
            "~ a:alice axe 1->3",
            "+ a:alice gem 5 (loading)",
        ],
        &["a:alice v4: axe=3 gem=5"],
    );
    // A duplicate is ignored.
    let state = check(
        with(vec![
            delta("a:alice", 4, &[("wood", -1)]),
            delta("a:alice", 4, &[("wood", -1)]),
        ]),
        &[],
        &["a:alice v4: axe=1 wood=9"],
    );
    assert!(!state.needs_resume());
    // An old version is a duplicate too.
    check(
        with(vec![delta("a:alice", 2, &[("wood", 5)])]),
        &[],
        &["a:alice v3: axe=1 wood=10"],
    );
}

#[test]
fn a_gap_asks_for_one_resume_until_the_node_welcomes_again() {
    let mut state = check(
        vec![
            welcome(&["a:alice"]),
            snapshot("a:alice", 3, &[("wood", 10)]),
            delta("a:alice", 5, &[("wood", -1)]),
        ],
        &[],
        &["a:alice v3: wood=10"],
    );
    assert!(state.needs_resume());
    let versions = state.take_resume_request().unwrap();
    assert_eq!(versions, [(owner("a:alice"), Version::new(3))].into());
    assert_eq!(state.take_resume_request(), None, "one request per gap");
    assert!(
        state
            .handle(delta("a:alice", 6, &[("wood", -1)]))
            .is_empty()
    );
    assert_eq!(state.take_resume_request(), None);
    assert_eq!(
        state.hello("t"),
        ClientMessage::Hello {
            token: "t".into(),
            resume: Some(versions)
        }
    );

    state.handle(welcome(&["a:alice"]));
    state.handle(ServerMessage::Resumed {
        owners: vec![owner("a:alice")],
    });
    assert!(!state.needs_resume());
    for v in 4..=6 {
        state.handle(delta("a:alice", v, &[("wood", -1)]));
    }
    assert_eq!(
        state
            .view()
            .item(&owner("a:alice"), &item("wood"))
            .unwrap()
            .qty,
        7
    );
}

#[test]
fn an_inconsistent_delta_asks_for_a_resume_and_changes_nothing() {
    let mut state = check(
        vec![
            welcome(&["a:alice"]),
            snapshot("a:alice", 3, &[("wood", 1)]),
            delta("a:alice", 4, &[("wood", -2)]),
        ],
        &[],
        &["a:alice v3: wood=1"],
    );
    assert!(state.take_resume_request().is_some());
}

#[test]
fn a_first_hello_has_nothing_to_resume() {
    assert_eq!(
        ClientState::default().hello("t"),
        ClientMessage::Hello {
            token: "t".into(),
            resume: None
        }
    );
}

#[test]
fn owners_of_other_players_are_never_shown() {
    check(
        vec![
            welcome(&["a:alice"]),
            snapshot("a:bob", 3, &[("gold", 100)]),
            delta("a:bob", 4, &[("gold", 1)]),
        ],
        &[],
        &[],
    );
    // Before any welcome, nothing is trusted.
    check(vec![snapshot("a:alice", 1, &[("gold", 1)])], &[], &[]);
}

#[test]
fn a_welcome_drops_owners_the_session_no_longer_covers() {
    check(
        vec![
            welcome(&["a:alice", "c:alice:hero"]),
            snapshot("a:alice", 1, &[("wood", 1)]),
            snapshot("c:alice:hero", 2, &[("axe", 1), ("gem", 3)]),
            welcome(&["a:alice"]),
        ],
        &[
            "- c:alice:hero axe 1",
            "- c:alice:hero gem 3",
            "gone c:alice:hero",
        ],
        &["a:alice v1: wood=1"],
    );
}

#[test]
fn a_new_owner_can_start_from_its_first_delta() {
    check(
        vec![
            welcome(&["a:alice", "c:alice:alt"]),
            delta("c:alice:alt", 1, &[("wood", 2)]),
        ],
        &["+ c:alice:alt wood 2 (loading)"],
        &["c:alice:alt v1: wood=2"],
    );
    let state = check(
        vec![
            welcome(&["a:alice", "c:alice:alt"]),
            delta("c:alice:alt", 2, &[("wood", 2)]),
        ],
        &[],
        &[],
    );
    assert!(state.needs_resume());
}

#[test]
fn descriptors_are_fetched_once_and_merged_into_the_view() {
    let mut state = check(
        vec![
            welcome(&["a:alice", "c:alice:hero"]),
            snapshot("a:alice", 1, &[("wood", 1), ("gone", 1)]),
            snapshot("c:alice:hero", 1, &[("wood", 2), ("ghost", 1)]),
        ],
        &[
            "resync c:alice:hero v1",
            "+ c:alice:hero ghost 1 (loading)",
            "+ c:alice:hero wood 2 (loading)",
        ],
        &[
            "a:alice v1: gone=1 wood=1",
            "c:alice:hero v1: ghost=1 wood=2",
        ],
    );
    assert_eq!(
        state.descriptors_to_fetch(),
        [item("ghost"), item("gone"), item("wood")]
    );
    assert!(state.descriptors_to_fetch().is_empty(), "in flight");

    let changes: Vec<String> = state
        .apply_descriptors(&batch(&["wood"], &["ghost"], &["gone"]))
        .iter()
        .map(show)
        .collect();
    assert_eq!(
        changes,
        [
            "d a:alice gone burned",
            "d a:alice wood The wood",
            "d c:alice:hero ghost not-found",
            "d c:alice:hero wood The wood",
        ]
    );
    assert_eq!(
        state
            .view()
            .item(&owner("a:alice"), &item("wood"))
            .unwrap()
            .descriptor,
        DescriptorState::Ready(Arc::new(descriptor("wood")))
    );
    assert!(state.descriptors_to_fetch().is_empty(), "all answered");

    // An item that appears is fetched; a failed fetch is offered again.
    let changes: Vec<String> = state
        .handle(delta("a:alice", 2, &[("wood", -1), ("axe", 1)]))
        .iter()
        .map(show)
        .collect();
    assert_eq!(changes, ["- a:alice wood 1", "+ a:alice axe 1 (loading)"]);
    assert_eq!(state.descriptors_to_fetch(), [item("axe")]);
    state.descriptor_fetch_failed(&[item("axe")]);
    assert_eq!(
        state.descriptors_to_fetch(),
        [item("axe")],
        "offered again after a failure"
    );
    state.handle(delta("c:alice:hero", 2, &[("axe", 1)]));
    assert!(state.descriptors_to_fetch().is_empty(), "still in flight");
    assert_eq!(state.apply_descriptors(&batch(&["axe"], &[], &[])).len(), 2);
}

#[test]
fn pongs_errors_and_resumed_change_nothing() {
    let mut state = ClientState::default();
    assert!(state.handle(ServerMessage::Pong { nonce: 1 }).is_empty());
    assert!(
        state
            .handle(ServerMessage::error(ErrorCode::RateLimited, "slow down"))
            .is_empty()
    );
    assert!(
        state
            .handle(ServerMessage::Resumed { owners: vec![] })
            .is_empty()
    );
}

/// Applies notifications to a plain map, the way a UI would.
fn mirror(into: &mut BTreeMap<(OwnerId, ItemId), u64>, changes: &[ViewChange]) {
    for change in changes {
        match change {
            ViewChange::ItemAdded {
                owner, item, qty, ..
            } => {
                assert!(into.insert((owner.clone(), item.clone()), *qty).is_none());
            }
            ViewChange::ItemRemoved { owner, item, qty } => {
                assert_eq!(into.remove(&(owner.clone(), item.clone())), Some(*qty));
            }
            ViewChange::QuantityChanged {
                owner,
                item,
                from,
                to,
            } => {
                let held = into.get_mut(&(owner.clone(), item.clone())).unwrap();
                assert_eq!(*held, *from);
                *held = *to;
            }
            _ => {}
        }
    }
}

proptest::proptest! {
    /// Whatever the delivery (duplicates, losses, reordering), a client that
    /// resumes when asked converges to the node's state, and its notifications
    /// describe every transition exactly.
    #[test]
    fn any_delivery_converges_and_notifications_are_exact(
        grants in proptest::collection::vec((0..4usize, 1..5i64, proptest::bool::ANY), 1..24),
        delivery in proptest::collection::vec(0..24usize, 0..60),
    ) {
        let items = ["wood", "stone", "gem", "axe"];
        let mut model: BTreeMap<&str, i64> = BTreeMap::new();
        let mut deltas = Vec::new();
        for (v, &(i, amount, consume)) in grants.iter().enumerate() {
            let held = model.entry(items[i]).or_default();
            let change = if consume && *held >= amount { -amount } else { amount };
            *held += change;
            deltas.push(delta("a:alice", v as u64 + 1, &[(items[i], change)]));
        }
        let node_version = |versions: &BTreeMap<OwnerId, Version>| {
            versions.get(&owner("a:alice")).map_or(0, |v| v.get() as usize)
        };

        let mut state = ClientState::default();
        let mut ui = BTreeMap::new();
        mirror(&mut ui, &state.handle(welcome(&["a:alice"])));
        mirror(&mut ui, &state.handle(snapshot("a:alice", 0, &[])));
        for &index in delivery.iter().filter(|&&i| i < deltas.len()) {
            mirror(&mut ui, &state.handle(deltas[index].clone()));
            if let Some(versions) = state.take_resume_request() {
                mirror(&mut ui, &state.handle(welcome(&["a:alice"])));
                for replay in &deltas[node_version(&versions)..=index] {
                    mirror(&mut ui, &state.handle(replay.clone()));
                }
            }
        }
        for live in &deltas {
            mirror(&mut ui, &state.handle(live.clone()));
        }

        proptest::prop_assert!(!state.needs_resume());
        let expected: BTreeMap<(OwnerId, ItemId), u64> = model
            .iter()
            .filter(|&(_, &q)| q > 0)
            .map(|(&i, &q)| ((owner("a:alice"), item(i)), q as u64))
            .collect();
        let view: BTreeMap<(OwnerId, ItemId), u64> = state
            .view()
            .owners
            .iter()
            .flat_map(|o| o.items.iter().map(|i| ((o.owner.clone(), i.item.clone()), i.qty)))
            .collect();
        proptest::prop_assert_eq!(&view, &expected);
        proptest::prop_assert_eq!(&ui, &expected);
    }
}
