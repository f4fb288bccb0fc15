//! Session tokens that expire during a session: the node closes the session
//! at expiry with `CLOSE_TOKEN_EXPIRED` unless a `Hello` with a fresher
//! token moved the deadline, and the SDK's token provider carries a client
//! across several expiries without losing, repeating or re-snapshotting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use inventory_core::LocalBus;
use inventory_service::BusChoice;
use protocol::{ServerMessage, UserId};

use crate::common::{Node, RawClient, SharedStore, Watched, converges, grant, tokens};

async fn node(store: &SharedStore) -> Node {
    Node::start(store, BusChoice::Local(LocalBus::new())).await
}

fn alice() -> UserId {
    UserId::parse("tokens-alice").unwrap()
}

#[tokio::test]
async fn the_node_closes_a_session_when_its_token_expires() {
    let store = SharedStore::new();
    let node = node(&store).await;
    let started = Instant::now();
    let mut raw = RawClient::connect(&node).await;
    raw.hello(&tokens().issue(&alice(), 2).unwrap()).await;
    let messages = raw.until_closed().await;
    assert!(
        matches!(messages.first(), Some(ServerMessage::Welcome { .. })),
        "{messages:?}"
    );
    assert_eq!(raw.close_code, Some(protocol::CLOSE_TOKEN_EXPIRED));
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_secs(4),
        "closed after {lived:?}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_hello_with_a_fresher_token_moves_the_deadline() {
    let store = SharedStore::new();
    let node = node(&store).await;
    let started = Instant::now();
    let mut raw = RawClient::connect(&node).await;
    raw.hello(&tokens().issue(&alice(), 2).unwrap()).await;
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    raw.hello_resuming(&tokens().issue(&alice(), 4).unwrap(), Some([].into()))
        .await;
    let _ = raw.until_closed().await;
    assert_eq!(raw.close_code, Some(protocol::CLOSE_TOKEN_EXPIRED));
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(3_900),
        "the second token's deadline: closed after {lived:?}"
    );
    node.stop().await;
}

/// Writes a grant to alice's account every 50 ms for `duration`.
async fn keep_changing(node: &Node, duration: Duration) -> u32 {
    let until = Instant::now() + duration;
    let mut n = 0;
    while Instant::now() < until {
        node.apply(grant("a:tokens-alice", "wood", 1)).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    n
}

/// Tokens of 2 s from a provider, changes flowing for 7 s: the client
/// refreshes before each expiry and re-authenticates its open session, so it
/// keeps one socket and receives one snapshot.
#[tokio::test]
async fn a_provider_carries_a_client_across_expiries_on_one_socket() {
    let store = SharedStore::new();
    let node = node(&store).await;
    node.apply(grant("a:tokens-alice", "wood", 1)).await;
    let issued = Arc::new(AtomicU32::new(0));
    let count = issued.clone();
    let client = Watched::connect_provided(&node.ws_url(), move || {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok(tokens().issue(&alice(), 2).unwrap()) }
    })
    .await;
    let changes = keep_changing(&node, Duration::from_secs(7)).await;
    converges(&client, &store, "tokens-alice").await;
    let stats = client.client.stats();
    assert!(issued.load(Ordering::SeqCst) >= 4, "{stats:?}");
    assert_eq!(stats.sockets, 1, "never reconnected: {stats:?}");
    assert_eq!(stats.snapshots, 1, "{stats:?}");
    assert!(stats.deltas >= u64::from(changes), "{stats:?}");
    client.client.close().await;
    node.stop().await;
}

/// The provider answers every other call too late (after the token it
/// replaces has expired), so the node closes the session at expiry: the
/// client reconnects as soon as the token arrives and resumes, without a
/// snapshot and without losing or repeating a delta.
#[tokio::test]
async fn an_expiry_close_is_survived_by_reconnecting_with_a_fresh_token() {
    let store = SharedStore::new();
    let node = node(&store).await;
    node.apply(grant("a:tokens-alice", "wood", 1)).await;
    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    let client = Watched::connect_provided(&node.ws_url(), move || {
        let call = count.fetch_add(1, Ordering::SeqCst);
        async move {
            if call % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            }
            Ok(tokens().issue(&alice(), 2).unwrap())
        }
    })
    .await;
    keep_changing(&node, Duration::from_secs(7)).await;
    converges(&client, &store, "tokens-alice").await;
    let stats = client.client.stats();
    assert!(stats.sockets >= 2, "reconnected after expiries: {stats:?}");
    assert_eq!(
        stats.snapshots, 1,
        "resumed, never re-snapshotted: {stats:?}"
    );
    let wood = crate::common::item("wood");
    let owner = crate::common::owner("a:tokens-alice");
    // Every delta applied once: the quantities only ever grew by one.
    for (from, to) in client.transitions(&owner, &wood) {
        assert!(to == from + 1 || from == 0, "{from} -> {to}");
    }
    client.client.close().await;
    node.stop().await;
}
