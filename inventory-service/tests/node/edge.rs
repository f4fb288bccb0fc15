//! The client WebSocket on one node: the session, security, limits and
//! decoding of hostile input.

use std::time::Duration;

use inventory_core::LocalBus;
use inventory_service::{BusChoice, ClientTokens, EdgeConfig};
use proptest::prelude::*;
use protocol::{Encoding, ErrorCode, ServerMessage, UserId};

use crate::common::{Node, RawClient, SharedStore, Watched, converges, grant, item, owner, token};

async fn node(store: &SharedStore) -> Node {
    Node::start(store, BusChoice::Local(LocalBus::new())).await
}

fn error_code(message: &ServerMessage) -> Option<ErrorCode> {
    match message {
        ServerMessage::Error(body) => Some(body.code),
        _ => None,
    }
}

#[tokio::test]
async fn hello_gets_welcome_snapshot_then_deltas() {
    let store = SharedStore::new();
    let node = node(&store).await;
    node.apply(grant("a:alice", "wood", 5)).await;
    node.apply(grant("c:alice:hero", "sword", 1)).await;
    let mut raw = RawClient::connect(&node).await;
    raw.hello(&token("alice")).await;
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(
        raw.recv().await,
        Some(ServerMessage::Welcome {
            user: alice,
            owners: vec![owner("a:alice"), owner("c:alice:hero")],
        })
    );
    let Some(ServerMessage::Snapshot { owners }) = raw.recv().await else {
        panic!("a snapshot after the welcome");
    };
    assert_eq!(owners, store.truth("alice").await);
    node.apply(grant("a:alice", "wood", 2)).await;
    let Some(ServerMessage::Delta { owner: delta, .. }) = raw.recv().await else {
        panic!("a delta");
    };
    assert_eq!((delta.owner, delta.version.get()), (owner("a:alice"), 2));
    node.stop().await;
}

#[tokio::test]
async fn messagepack_is_negotiated_by_subprotocol() {
    let store = SharedStore::new();
    let node = node(&store).await;
    node.apply(grant("a:alice", "wood", 5)).await;
    let mut raw = RawClient::connect_with(&node, Encoding::MessagePack).await;
    raw.hello(&token("alice")).await;
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Snapshot { .. })
    ));
    let client = Watched::connect_with(&node.ws_url(), "alice", None, Encoding::MessagePack).await;
    node.apply(grant("a:alice", "stone", 3)).await;
    converges(&client, &store, "alice").await;
    client.client.close().await;
    node.stop().await;
}

#[tokio::test]
async fn a_client_sees_only_its_own_player() {
    let store = SharedStore::new();
    let node = node(&store).await;
    let bob = Watched::connect(&node.ws_url(), "bob", None).await;
    let mut raw_bob = RawClient::connect(&node).await;
    raw_bob.hello(&token("bob")).await;
    node.apply(grant("a:alice", "gold", 100)).await;
    node.apply(grant("a:bob", "wood", 1)).await;
    // A trade: bob's client sees bob's side only.
    let trade = serde_json::json!({
        "id": protocol::ChangeId::random(),
        "kind": "trade",
        "ops": [
            {"op": "consume", "owner": "a:alice", "item": "gold", "qty": 10},
            {"op": "grant", "owner": "a:bob", "item": "gold", "qty": 10},
        ]
    });
    node.apply(trade).await;
    converges(&bob, &store, "bob").await;
    assert!(
        bob.holdings()
            .iter()
            .all(|o| o.owner.user().as_str() == "bob")
    );
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(raw_bob.recv().await.unwrap());
    }
    for message in &seen {
        let owners: Vec<String> = match message {
            ServerMessage::Welcome { user, owners } => {
                assert_eq!(user.as_str(), "bob");
                owners.iter().map(ToString::to_string).collect()
            }
            ServerMessage::Snapshot { owners } => {
                owners.iter().map(|s| s.owner.to_string()).collect()
            }
            ServerMessage::Delta { owner, .. } => vec![owner.owner.to_string()],
            other => panic!("unexpected {other:?}"),
        };
        assert!(owners.iter().all(|o| o == "a:bob"), "{message:?}");
    }
    bob.client.close().await;
    node.stop().await;
}

#[tokio::test]
async fn expired_forged_and_garbage_tokens_are_refused() {
    let store = SharedStore::new();
    let node = node(&store).await;
    let alice = UserId::parse("alice").unwrap();
    let expired = crate::common::tokens().issue(&alice, -3600).unwrap();
    let forged = ClientTokens::hs256(b"another-secret-0123456789")
        .unwrap()
        .issue(&alice, 3600)
        .unwrap();
    for (refused, code) in [
        (expired, ErrorCode::TokenExpired),
        (forged, ErrorCode::Unauthorized),
        ("not-a-jwt".to_string(), ErrorCode::Unauthorized),
        (String::new(), ErrorCode::Unauthorized),
    ] {
        let mut raw = RawClient::connect(&node).await;
        raw.hello(&refused).await;
        let messages = raw.until_closed().await;
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(error_code(&messages[0]), Some(code));
        let expected_close = if code == ErrorCode::TokenExpired {
            protocol::CLOSE_TOKEN_EXPIRED
        } else {
            1008
        };
        assert_eq!(raw.close_code, Some(expected_close), "{code}");
    }
    // The SDK reports the refusal as a failed connect.
    let refused = sdk::InventoryClient::builder(node.ws_url(), "forged")
        .connect()
        .await;
    assert!(refused.is_err());
    node.stop().await;
}

#[tokio::test]
async fn a_mutation_attempt_is_refused_then_closed_and_changes_nothing() {
    let store = SharedStore::new();
    let node = node(&store).await;
    node.apply(grant("a:alice", "gold", 1)).await;
    let mut raw = RawClient::connect(&node).await;
    raw.hello(&token("alice")).await;
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Snapshot { .. })
    ));
    let attempts = [
        r#"{"type":"grant","owner":"a:alice","item":"gold","qty":1000}"#,
        r#"{"type":"change","id":"00000000-0000-0000-0000-000000000001","ops":[{"op":"grant","owner":"a:alice","item":"gold","qty":5}]}"#,
        r#"{"type":"hello","token":"x","resume":null,"grant":{"item":"gold"}}"#,
    ];
    for attempt in attempts {
        raw.send_text(attempt).await;
    }
    let messages = raw.until_closed().await;
    let codes: Vec<_> = messages.iter().filter_map(error_code).collect();
    assert_eq!(codes, [ErrorCode::MalformedRequest; 3], "{messages:?}");
    let truth = store.truth("alice").await;
    assert_eq!(truth[0].items[&item("gold")], 1);
    assert_eq!(truth[0].version.get(), 1);
    node.stop().await;
}

#[tokio::test]
async fn oversized_frames_and_floods_hit_the_limits() {
    let store = SharedStore::new();
    let node = Node::start_with(
        &store,
        BusChoice::Local(LocalBus::new()),
        EdgeConfig::new()
            .with_rate_limit(0.5, 5)
            .with_max_offences(3),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    // Over the protocol's 4 KiB: refused with a code, then closed after three.
    let mut raw = RawClient::connect(&node).await;
    let big = format!(
        r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    for _ in 0..3 {
        raw.send_text(&big).await;
    }
    let codes: Vec<_> = raw
        .until_closed()
        .await
        .iter()
        .filter_map(error_code)
        .collect();
    assert_eq!(codes, [ErrorCode::PayloadTooLarge; 3]);
    // Over the socket's read limit: dropped without reading it.
    let mut raw = RawClient::connect(&node).await;
    raw.send_bytes(vec![0; 64 * 1024]).await;
    assert!(raw.until_closed().await.is_empty());
    // A flood of pings: answered up to the burst, then refused and closed.
    let mut raw = RawClient::connect(&node).await;
    for nonce in 0..50 {
        raw.send_text(&format!(r#"{{"type":"ping","nonce":{nonce}}}"#))
            .await;
    }
    let messages = raw.until_closed().await;
    let pongs = messages
        .iter()
        .filter(|m| matches!(m, ServerMessage::Pong { .. }))
        .count();
    let limited = messages
        .iter()
        .filter(|m| error_code(m) == Some(ErrorCode::RateLimited))
        .count();
    assert!((5..=8).contains(&pongs), "{messages:?}");
    assert_eq!(limited, 3, "{messages:?}");
    assert!(
        node.metric("inventory_client_errors_total{code=\"rate_limited\"}")
            .await
            >= 3.0
    );
    node.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let store = SharedStore::new();
    let node = Node::start_with(
        &store,
        BusChoice::Local(LocalBus::new()),
        EdgeConfig::new().with_hello_timeout(Duration::from_millis(200)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let mut raw = RawClient::connect(&node).await;
    let started = std::time::Instant::now();
    assert!(raw.until_closed().await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(4));
    node.stop().await;
}

#[tokio::test]
async fn shutdown_closes_clients_and_releases_their_players() {
    let store = SharedStore::new();
    let node = node(&store).await;
    let mut raw = RawClient::connect(&node).await;
    raw.hello(&token("alice")).await;
    assert!(matches!(
        raw.recv().await,
        Some(ServerMessage::Welcome { .. })
    ));
    let state = node.state.clone();
    assert_eq!(state.hub().players().len(), 1);
    assert_eq!(node.metric("inventory_clients_connected").await, 1.0);
    node.stop().await;
    let rest = raw.until_closed().await;
    assert!(
        rest.iter()
            .all(|m| matches!(m, ServerMessage::Snapshot { .. })),
        "{rest:?}"
    );
    assert!(state.hub().players().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the bytes, decoding answers a message or a coded error.
    #[test]
    fn decoding_any_frame_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..6000)) {
        for encoding in Encoding::ALL {
            if let Err(e) = protocol::decode_client(encoding, &frame) {
                prop_assert!(matches!(e.code(), ErrorCode::MalformedRequest | ErrorCode::PayloadTooLarge));
            }
        }
    }

    /// JSON-looking input near the message shapes, too.
    #[test]
    fn decoding_near_misses_never_panics(text in r#"\{"type":"(hello|ping|grant)"(,"[a-z]{1,6}":("[ -~]{0,20}"|[0-9]{1,20}|\{\}|null))*\}"#) {
        let _ = protocol::decode_client(Encoding::Json, text.as_bytes());
    }
}

#[tokio::test]
async fn random_frames_through_the_socket_never_take_the_node_down() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let store = SharedStore::new();
    let node = Node::start_with(
        &store,
        BusChoice::Local(LocalBus::new()),
        EdgeConfig::new()
            .with_rate_limit(1000.0, 1000)
            .with_max_offences(1000),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let mut runner = TestRunner::deterministic();
    let frames = proptest::collection::vec(any::<u8>(), 0..5000);
    for encoding in Encoding::ALL {
        let mut raw = RawClient::connect_with(&node, encoding).await;
        for _ in 0..100 {
            let frame = frames.new_tree(&mut runner).unwrap().current();
            assert!(raw.send_bytes(frame).await);
            let answer = raw.recv().await.expect("an answer, not a close");
            assert!(error_code(&answer).is_some() || matches!(answer, ServerMessage::Pong { .. }));
        }
    }
    let client = Watched::connect(&node.ws_url(), "alice", None).await;
    node.apply(grant("a:alice", "wood", 1)).await;
    converges(&client, &store, "alice").await;
    client.client.close().await;
    node.stop().await;
}

#[tokio::test]
async fn the_embedded_mode_serves_the_descriptor_api_on_the_same_listener() {
    let store = SharedStore::new();
    let dir = tempfile::tempdir().unwrap();
    let descriptors =
        descriptor_service::SqliteStore::open(dir.path().join("descriptors.db")).unwrap();
    let auth = descriptor_service::AuthConfig::default()
        .with_write_token(crate::common::SERVICE_TOKEN)
        .with_open_reads(true);
    let descriptor_app = descriptor_service::app(
        descriptor_service::Descriptors::builder(std::sync::Arc::new(descriptors)).build(),
        auth,
    );
    let node = Node::start_configured(
        &store,
        BusChoice::Local(LocalBus::new()),
        EdgeConfig::new(),
        inventory_core::PlayerHubConfig::new(),
        "127.0.0.1:0".parse().unwrap(),
        descriptor_app,
    )
    .await;
    let sword = item("sword-of-dawn");
    let mut descriptor = crate::common::descriptor(&sword);
    descriptor.name = "Sword of Dawn".into();
    let (status, body) = crate::common::api(
        &node,
        "POST",
        "/v1/descriptors",
        Some(crate::common::SERVICE_TOKEN),
        Some(serde_json::to_value(&descriptor).unwrap()),
    )
    .await;
    assert!(status.is_success(), "{status}: {body}");
    // Writes need the service token; the node's own routes still answer.
    let (status, _) = crate::common::api(
        &node,
        "POST",
        "/v1/descriptors",
        None,
        Some(serde_json::to_value(&descriptor).unwrap()),
    )
    .await;
    assert_eq!(status.as_u16(), 401);
    // The listing is served by the embedded service too, reads open.
    let (status, listing) =
        crate::common::api(&node, "GET", "/v1/descriptors?limit=10", None, None).await;
    assert!(status.is_success(), "{status}: {listing}");
    assert_eq!(
        listing["descriptors"][0]["id"], "sword-of-dawn",
        "{listing}"
    );
    let client = Watched::connect(&node.ws_url(), "alice", Some(&node.http(""))).await;
    node.apply(grant("c:alice:hero", "sword-of-dawn", 1)).await;
    let hero = owner("c:alice:hero");
    crate::common::eventually("the descriptor merged in", || async {
        client
            .client
            .view()
            .item(&hero, &sword)
            .and_then(|i| i.descriptor.descriptor().map(|d| d.name.clone()))
            == Some("Sword of Dawn".to_owned())
    })
    .await;
    client.client.close().await;
    node.stop().await;
}
