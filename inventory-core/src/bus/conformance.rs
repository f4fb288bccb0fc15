//! The shared conformance suite of the [`EventBus`] contract: every bus
//! adapter must pass it. Each case is a public async function over a
//! connection factory, and panics on a violation. Generate one test per case
//! with [`bus_conformance_tests!`](crate::bus_conformance_tests):
//!
//! ```ignore
//! inventory_core::bus_conformance_tests!(|| async { my_bus_connection().await });
//! ```
//!
//! The faults the contract allows (loss across disconnects, duplicates) are
//! exercised by the propagation tests; these cases check what must hold on a
//! healthy connection.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use protocol::{
    ChangeEvent, ChangeId, ChangeKind, ItemDelta, ItemId, OwnerDelta, OwnerId, UserId, Version,
};

use super::{BusMessage, BusReceiver, EventBus};
use crate::conformance::fresh_user;

/// How long a case waits for a message that must come.
const ARRIVAL: Duration = Duration::from_secs(5);
/// How long a case waits to be sure a message does not come.
const SILENCE: Duration = Duration::from_millis(150);

/// Generates one `#[tokio::test]` per case; `$connect` is a closure returning
/// a future of `(Arc<dyn EventBus>, BusReceiver)`, a new connection each call.
#[macro_export]
macro_rules! bus_conformance_tests {
    ($connect:expr) => {
        $crate::bus_conformance_tests!(@cases $connect;
            delivers_only_to_subscribers_of_the_channel,
            unsubscribe_stops_delivery,
            subscriptions_are_a_set,
            events_arrive_intact,
            a_trade_reaches_both_players_channels,
            many_channels_on_one_connection,
        );
    };
    (@cases $connect:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::bus_conformance::$case($connect).await;
            }
        )*
    };
}

/// A connection to the bus under test.
pub type Connection = (Arc<dyn EventBus>, BusReceiver);

/// An event that moved `owners` to the given versions.
#[must_use]
pub fn event(kind: ChangeKind, owners: &[(OwnerId, u64, i64)]) -> ChangeEvent {
    ChangeEvent {
        change_id: ChangeId::random(),
        kind,
        owners: owners
            .iter()
            .map(|(owner, version, change)| OwnerDelta {
                owner: owner.clone(),
                version: Version::new(*version),
                deltas: vec![ItemDelta {
                    item: ItemId::parse("wood").expect("valid item"),
                    change: *change,
                }],
            })
            .collect(),
    }
}

fn grant_to(user: &UserId) -> ChangeEvent {
    event(
        ChangeKind::Adjust,
        &[(OwnerId::account(user.clone()), 1, 5)],
    )
}

async fn next(receiver: &mut BusReceiver) -> (UserId, ChangeEvent) {
    match tokio::time::timeout(ARRIVAL, receiver.recv()).await {
        Ok(Some(BusMessage::Event { user, event })) => (user, event),
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn assert_silent(receiver: &mut BusReceiver) {
    tokio::time::sleep(SILENCE).await;
    if let Ok(message) = receiver.try_recv() {
        panic!("expected nothing, got {message:?}");
    }
}

/// Only connections subscribed to a player's channel receive its events.
pub async fn delivers_only_to_subscribers_of_the_channel<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let (b, mut b_rx) = connect().await;
    let (publisher, _) = connect().await;
    let (alice, bob) = (fresh_user("bus"), fresh_user("bus"));
    a.subscribe(&alice).await.unwrap();
    b.subscribe(&bob).await.unwrap();
    let to_alice = grant_to(&alice);
    publisher.publish(&alice, &to_alice).await.unwrap();
    assert_eq!(next(&mut a_rx).await, (alice, to_alice));
    assert_silent(&mut b_rx).await;
    assert_silent(&mut a_rx).await;
}

/// After `unsubscribe` returns, later events do not arrive.
pub async fn unsubscribe_stops_delivery<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let user = fresh_user("bus");
    a.subscribe(&user).await.unwrap();
    let first = grant_to(&user);
    a.publish(&user, &first).await.unwrap();
    assert_eq!(next(&mut a_rx).await.1, first);
    a.unsubscribe(&user).await.unwrap();
    a.publish(&user, &grant_to(&user)).await.unwrap();
    assert_silent(&mut a_rx).await;
}

/// Subscribing twice holds one subscription; a stray unsubscribe is harmless.
pub async fn subscriptions_are_a_set<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let user = fresh_user("bus");
    a.unsubscribe(&user).await.unwrap();
    a.subscribe(&user).await.unwrap();
    a.subscribe(&user).await.unwrap();
    let event = grant_to(&user);
    a.publish(&user, &event).await.unwrap();
    assert_eq!(next(&mut a_rx).await.1, event);
    a.unsubscribe(&user).await.unwrap();
    a.publish(&user, &grant_to(&user)).await.unwrap();
    assert_silent(&mut a_rx).await;
}

/// An event arrives exactly as published: id, kind, owners, versions, deltas.
pub async fn events_arrive_intact<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let user = fresh_user("bus");
    a.subscribe(&user).await.unwrap();
    let hero = OwnerId::character(user.clone(), "hero".parse().unwrap());
    let event = event(
        ChangeKind::Craft,
        &[(OwnerId::account(user.clone()), 7, -3), (hero, 42, 1)],
    );
    a.publish(&user, &event).await.unwrap();
    assert_eq!(next(&mut a_rx).await, (user, event));
}

/// A change touching two players is published on each player's channel and
/// reaches each player's subscribers.
pub async fn a_trade_reaches_both_players_channels<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let (b, mut b_rx) = connect().await;
    let (publisher, _) = connect().await;
    let (alice, bob) = (fresh_user("bus"), fresh_user("bus"));
    a.subscribe(&alice).await.unwrap();
    b.subscribe(&bob).await.unwrap();
    let trade = event(
        ChangeKind::Trade,
        &[
            (OwnerId::account(alice.clone()), 3, -2),
            (OwnerId::account(bob.clone()), 9, 2),
        ],
    );
    for user in [&alice, &bob] {
        publisher.publish(user, &trade).await.unwrap();
    }
    assert_eq!(next(&mut a_rx).await, (alice, trade.clone()));
    assert_eq!(next(&mut b_rx).await, (bob, trade));
}

/// One connection holds many channels and tells their events apart.
pub async fn many_channels_on_one_connection<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Connection>,
{
    let (a, mut a_rx) = connect().await;
    let users: Vec<UserId> = (0..300).map(|_| fresh_user("bus")).collect();
    for user in &users {
        a.subscribe(user).await.unwrap();
    }
    for user in &users {
        a.publish(user, &grant_to(user)).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    while seen.len() < users.len() {
        let (user, event) = next(&mut a_rx).await;
        assert_eq!(
            event.owners[0].owner.user(),
            &user,
            "event on the wrong channel"
        );
        seen.insert(user);
    }
    assert_eq!(seen, users.into_iter().collect());
}
