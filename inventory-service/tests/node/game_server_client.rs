//! The SDK's `GameServerClient` against a real node on SQLite: every call,
//! local validation, refusals, and the retry of an unknown outcome with the
//! same change id through a proxy that swallows the first answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use inventory_core::LocalBus;
use inventory_service::BusChoice;
use protocol::{Change, ChangeId, ErrorCode, Quantity, UserId, ZoneId};
use sdk::GameServerClient;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Node, SERVICE_TOKEN, SharedStore, item, owner};

async fn node() -> (SharedStore, Node) {
    let store = SharedStore::new();
    let node = Node::start(&store, BusChoice::Local(LocalBus::new())).await;
    (store, node)
}

fn client_of(url: &str) -> GameServerClient {
    GameServerClient::builder(url, SERVICE_TOKEN)
        .with_retries(3, Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .expect("client")
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

#[tokio::test]
async fn the_client_applies_reads_and_moves_players() {
    let (_store, node) = node().await;
    let client = client_of(&node.http(""));
    let alice = owner("a:alice");
    let loot = Change::new(ChangeId::random()).grant(alice.clone(), item("gold"), qty(25));
    let applied = client.apply(&loot).await.expect("apply");
    assert!(!applied.already_applied);
    assert_eq!(applied.event.change_id, loot.id);
    let again = client.apply(&loot).await.expect("retry");
    assert!(again.already_applied, "the same change id is applied once");

    let recorded = client.lookup(loot.id).await.expect("lookup");
    assert_eq!(recorded, Some(applied.event));
    assert_eq!(
        client.lookup(ChangeId::random()).await.expect("lookup"),
        None
    );

    let snapshot = client.load(&alice).await.expect("load");
    assert_eq!(snapshot.items.get(&item("gold")).copied(), Some(25));
    let user = UserId::parse("alice").unwrap();
    let owners = client.load_user(&user).await.expect("load_user");
    assert!(owners.iter().any(|o| o.owner == alice));

    let forest = ZoneId::parse("forest").unwrap();
    let zones = client.join(&forest, &user).await.expect("join");
    assert_eq!(zones.zones, std::slice::from_ref(&forest));
    let zones = client.leave(&forest, &user).await.expect("leave");
    assert!(zones.zones.is_empty());
    node.stop().await;
}

#[tokio::test]
async fn refusals_are_final_and_invalid_changes_are_never_sent() {
    let (_store, node) = node().await;
    let client = client_of(&node.http(""));
    let alice = owner("a:alice");

    let empty = Change::new(ChangeId::random());
    let refused = client.apply(&empty).await.expect_err("no operations");
    assert_eq!(refused.code(), ErrorCode::EmptyChange);
    assert!(!refused.is_retryable());
    assert_eq!(
        client.lookup(empty.id).await.expect("lookup"),
        None,
        "never sent"
    );

    let overdraw = Change::new(ChangeId::random()).consume(alice, item("gold"), qty(1));
    let refused = client
        .apply(&overdraw)
        .await
        .expect_err("nothing to consume");
    assert_eq!(refused.code(), ErrorCode::InsufficientBalance);
    assert!(!refused.is_retryable());

    let wrong_token = GameServerClient::builder(node.http(""), "not-the-service-token")
        .build()
        .unwrap();
    let loot = Change::new(ChangeId::random()).grant(owner("a:bob"), item("gold"), qty(1));
    let refused = wrong_token.apply(&loot).await.expect_err("bad token");
    assert_eq!(refused.code(), ErrorCode::Unauthorized);

    let down = client_of("http://127.0.0.1:9");
    let unknown = down.apply(&loot).await.expect_err("nothing listens");
    assert!(unknown.is_retryable(), "{unknown}");
    node.stop().await;
}

/// A proxy to `upstream` that forwards the first connection's request but
/// closes it before any answer comes back (an unknown outcome: the change
/// was applied), and relays every later connection whole.
async fn swallowing_proxy(upstream: std::net::SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut downstream, _)) = listener.accept().await {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            tokio::spawn(async move {
                let mut upstream = TcpStream::connect(upstream).await.unwrap();
                if first {
                    let mut request = vec![0; 64 * 1024];
                    let n = downstream.read(&mut request).await.unwrap();
                    tokio::io::AsyncWriteExt::write_all(&mut upstream, &request[..n])
                        .await
                        .unwrap();
                    // Wait for the node's answer, then drop it and both ends.
                    let mut answer = [0; 1];
                    let _ = upstream.read(&mut answer).await;
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
                }
            });
        }
    });
    (url, connections)
}

#[tokio::test]
async fn an_unknown_outcome_is_retried_with_the_same_change_and_applied_once() {
    let (store, node) = node().await;
    let (url, connections) = swallowing_proxy(node.addr).await;
    let client = client_of(&url);
    let alice = owner("a:alice");
    let loot = Change::new(ChangeId::random()).grant(alice, item("gold"), qty(7));
    let applied = client.apply(&loot).await.expect("applied after a retry");
    assert!(
        applied.already_applied,
        "the first attempt went through; the retry found it"
    );
    assert!(connections.load(Ordering::SeqCst) >= 2);
    let truth = store.truth("alice").await;
    assert_eq!(
        truth[0].items.get(&item("gold")).copied(),
        Some(7),
        "granted once"
    );

    let without_retries = GameServerClient::builder(&url, SERVICE_TOKEN)
        .with_retries(0, Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let lookup = without_retries.lookup(loot.id).await.expect("lookup");
    assert_eq!(lookup.map(|event| event.change_id), Some(loot.id));
    node.stop().await;
}
