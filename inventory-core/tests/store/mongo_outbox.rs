//! The MongoDB outbox across store instances (one per node) sharing one
//! deployment: exactly one of them publishes the changes all of them apply,
//! and when that node dies another takes over once its lease has run out,
//! publishing from the mark, so that no applied change's event is lost.

use std::collections::BTreeMap;
use std::time::Duration;

use inventory_core::conformance::{fresh_user, item, qty};
use inventory_core::{BusMessage, BusReceiver, EventBus, Inventory, LocalBus, MongoStore};
use protocol::{Change, ChangeId, OwnerId, UserId};

use crate::mongo_common;

const LEASE: Duration = Duration::from_millis(800);

async fn node(collection: &str) -> MongoStore {
    MongoStore::connect(
        mongo_common::config(testkit::mongodb_uri())
            .with_collection(collection)
            .with_relay_lease(LEASE),
    )
    .await
    .expect("connect to the replica set")
}

fn grant(user: &UserId) -> Change {
    Change::new(ChangeId::random()).grant(OwnerId::account(user.clone()), item("wood"), qty(1))
}

/// Events received on `user`'s channel until `count` distinct change ids
/// arrived (or the deadline passed): how many times each arrived.
async fn receive(
    receiver: &mut BusReceiver,
    count: usize,
    within: Duration,
) -> BTreeMap<ChangeId, usize> {
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(BusMessage::Event { event, .. })) => {
                *seen.entry(event.change_id).or_insert(0) += 1;
            }
            Ok(Some(BusMessage::Resubscribed)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_publishes_what_every_node_applies_and_another_takes_over_when_it_dies() {
    let collection = testkit::unique_name("owners");
    let bus = LocalBus::new();
    let (watcher, mut receiver) = bus.connect();
    let user = fresh_user("outbox-lease");
    watcher.subscribe(&user).await.expect("subscribe");

    let a = Inventory::new(node(&collection).await).with_bus(bus.connect().0);
    let first = a.apply(grant(&user)).await.expect("apply on a");
    let seen = receive(&mut receiver, 1, Duration::from_secs(10)).await;
    assert_eq!(seen.get(&first.event.change_id), Some(&1), "{seen:?}");

    // A second node: it applies, the first publishes; nobody publishes twice.
    let b = Inventory::new(node(&collection).await).with_bus(bus.connect().0);
    let mut ids = Vec::new();
    for inventory in [&a, &b, &a, &b] {
        ids.push(
            inventory
                .apply(grant(&user))
                .await
                .expect("apply")
                .event
                .change_id,
        );
    }
    let seen = receive(&mut receiver, ids.len(), Duration::from_secs(10)).await;
    for id in &ids {
        assert_eq!(seen.get(id), Some(&1), "each change once: {seen:?}");
    }
    // Settle, then check that no late duplicate follows.
    let late = receive(&mut receiver, 1, Duration::from_millis(500)).await;
    assert!(late.is_empty(), "published twice: {late:?}");

    // The first node dies without a word (its lease stays behind).
    drop(a);
    let mut after = Vec::new();
    for _ in 0..3 {
        after.push(
            b.apply(grant(&user))
                .await
                .expect("apply on b")
                .event
                .change_id,
        );
    }
    let seen = receive(&mut receiver, after.len(), Duration::from_secs(10)).await;
    for id in &after {
        assert!(
            seen.contains_key(id),
            "published after the takeover: {seen:?}"
        );
    }
}
