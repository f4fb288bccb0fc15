//! The native transports against tiny in-test servers.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use protocol::{Encoding, ErrorCode, Version};
use sdk::{
    ClientHandle, ConnectionState, DescriptorClient, DescriptorState, InventoryClient, ViewChange,
};

/// A node that sends a v1 snapshot of the account to a fresh client, and
/// resumes a client that holds v1 with the deltas it missed up to v3.
async fn resuming_node() -> TestNode {
    TestNode::start(|resume| match resume {
        Some(versions) if versions.get(&owner("a:alice")) == Some(&Version::new(1)) => vec![
            protocol::ServerMessage::Resumed {
                owners: vec![owner("a:alice")],
            },
            delta("a:alice", 2, &[("wood", 5)]),
            delta("a:alice", 3, &[("stone", 1)]),
        ],
        _ => vec![snapshot("a:alice", 1, &[("wood", 10)])],
    })
    .await
}

fn recorder() -> (
    Arc<Mutex<Vec<ViewChange>>>,
    impl FnMut(&ViewChange) + Send + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |change: &ViewChange| {
        sink.lock().unwrap().push(change.clone())
    })
}

fn qty(client: &InventoryClient, of: &str, id: &str) -> Option<u64> {
    client.view().item(&owner(of), &item(id)).map(|i| i.qty)
}

#[tokio::test]
async fn applies_the_snapshot_and_live_deltas_in_both_encodings() {
    for encoding in Encoding::ALL {
        let node = resuming_node().await;
        let (seen, on_change) = recorder();
        let client = InventoryClient::builder(&node.url, "good")
            .with_encoding(encoding)
            .on_change(on_change)
            .connect()
            .await
            .unwrap();
        assert_eq!(client.user(), Some(user()));
        assert_eq!(client.connection_state(), ConnectionState::Connected);
        eventually("the snapshot", || {
            qty(&client, "a:alice", "wood") == Some(10)
        })
        .await;

        node.push(delta("a:alice", 2, &[("wood", -4)]));
        node.push(delta("a:alice", 2, &[("wood", -4)]));
        node.push(delta("a:alice", 3, &[("wood", -6)]));
        eventually("the deltas", || qty(&client, "a:alice", "wood").is_none()).await;
        let changes = seen.lock().unwrap().clone();
        assert_eq!(
            changes.last().unwrap(),
            &ViewChange::ItemRemoved {
                owner: owner("a:alice"),
                item: item("wood"),
                qty: 6
            }
        );
        assert!(changes.contains(&ViewChange::QuantityChanged {
            owner: owner("a:alice"),
            item: item("wood"),
            from: 10,
            to: 6
        }));
        assert_eq!(
            changes.len(),
            4,
            "resync, added, changed once (duplicate ignored), removed: {changes:?}"
        );
        assert_eq!(node.encodings(), [encoding]);
        client.close().await;
    }
}

#[tokio::test]
async fn reconnects_and_resumes_after_the_node_drops_the_socket() {
    let node = resuming_node().await;
    let states = Arc::new(Mutex::new(Vec::new()));
    let sink = states.clone();
    let client = InventoryClient::builder(&node.url, "good")
        .with_reconnect_delay(Duration::from_millis(10), Duration::from_millis(50))
        .on_connection(move |state| sink.lock().unwrap().push(state))
        .connect()
        .await
        .unwrap();
    eventually("the snapshot", || {
        qty(&client, "a:alice", "wood") == Some(10)
    })
    .await;

    node.drop_connection();
    eventually("the resumed deltas", || {
        qty(&client, "a:alice", "stone") == Some(1)
    })
    .await;
    assert_eq!(qty(&client, "a:alice", "wood"), Some(15));
    assert_eq!(node.connections(), 2);
    assert_eq!(
        node.hellos(),
        [None, Some([(owner("a:alice"), Version::new(1))].into())]
    );
    assert!(
        states
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, ConnectionState::Reconnecting { attempt: 1, .. }))
    );
    assert_eq!(client.connection_state(), ConnectionState::Connected);
    client.close().await;
    assert_eq!(
        states.lock().unwrap().last(),
        Some(&ConnectionState::Closed)
    );
}

#[tokio::test]
async fn a_gap_asks_for_a_resume_on_the_same_socket() {
    let node = resuming_node().await;
    let client = InventoryClient::builder(&node.url, "good")
        .connect()
        .await
        .unwrap();
    eventually("the snapshot", || {
        qty(&client, "a:alice", "wood") == Some(10)
    })
    .await;

    node.push(delta("a:alice", 3, &[("stone", 1)]));
    eventually("the resume", || qty(&client, "a:alice", "stone") == Some(1)).await;
    assert_eq!(qty(&client, "a:alice", "wood"), Some(15));
    assert_eq!(node.connections(), 1);
    assert_eq!(node.hellos().len(), 2);
    client.close().await;
}

#[tokio::test]
async fn a_refused_token_fails_connect_for_good() {
    let node = resuming_node().await;
    let error = InventoryClient::builder(&node.url, "bad")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unauthorized);
    assert!(!error.is_retryable());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node.connections(), 1, "no reconnect after a refusal");
}

#[tokio::test]
async fn a_node_that_never_welcomes_fails_connect_after_the_timeout() {
    let node = resuming_node().await;
    let error = InventoryClient::builder(&node.url, "silent")
        .with_connect_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn an_unreachable_node_fails_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    drop(listener);
    let error = InventoryClient::builder(url, "good")
        .connect()
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    let error = InventoryClient::builder("not a url", "good")
        .connect()
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::MalformedRequest);
}

#[tokio::test]
async fn descriptors_arrive_in_the_view() {
    let node = TestNode::start(|_| {
        vec![
            snapshot("a:alice", 1, &[("wood", 10), ("missing-1", 1)]),
            snapshot("c:alice:hero", 4, &[("wood", 1), ("burned-1", 1)]),
        ]
    })
    .await;
    let service = TestDescriptorService::start().await;
    let (seen, on_change) = recorder();
    let client = InventoryClient::builder(&node.url, "good")
        .with_descriptor_url(&service.url)
        .on_change(on_change)
        .connect()
        .await
        .unwrap();
    eventually("the descriptors", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|c| matches!(c, ViewChange::DescriptorArrived { .. }))
            .count()
            == 4
    })
    .await;
    let view = client.view();
    let state = |of: &str, id: &str| view.item(&owner(of), &item(id)).unwrap().descriptor.clone();
    assert_eq!(
        state("a:alice", "wood").descriptor().unwrap().name,
        "The wood"
    );
    assert_eq!(
        state("c:alice:hero", "wood").descriptor().unwrap().name,
        "The wood"
    );
    assert_eq!(state("a:alice", "missing-1"), DescriptorState::NotFound);
    assert_eq!(state("c:alice:hero", "burned-1"), DescriptorState::Burned);
    let requested: usize = service.batches().iter().map(Vec::len).sum();
    assert_eq!(requested, 3, "each id once: {:?}", service.batches());

    node.push(delta("a:alice", 2, &[("axe", 1)]));
    eventually("the new descriptor", || {
        client
            .view()
            .item(&owner("a:alice"), &item("axe"))
            .is_some_and(|i| !i.descriptor.is_loading())
    })
    .await;
    client.close().await;
}

#[tokio::test]
async fn callbacks_may_use_the_client_and_their_requests_are_queued() {
    let node = resuming_node().await;
    let handle: Arc<OnceLock<ClientHandle>> = Arc::new(OnceLock::new());
    let in_callback = handle.clone();
    let views = Arc::new(Mutex::new(Vec::new()));
    let sink = views.clone();
    let client = InventoryClient::builder(&node.url, "good")
        .with_reconnect_delay(Duration::from_millis(10), Duration::from_millis(50))
        .on_change(move |change| {
            if let Some(handle) = in_callback.get() {
                // Reading the view from a callback does not deadlock, and a
                // reconnect asked here happens after the callback returns.
                sink.lock().unwrap().push(handle.view().owners.len());
                if matches!(change, ViewChange::QuantityChanged { .. }) {
                    handle.reconnect();
                }
            }
        })
        .connect()
        .await
        .unwrap();
    handle.set(client.handle()).unwrap();
    eventually("the snapshot", || {
        qty(&client, "a:alice", "wood") == Some(10)
    })
    .await;
    node.push(delta("a:alice", 2, &[("wood", 1)]));
    // Every reconnect brings changes that ask for another: at least one.
    eventually("the reconnect", || node.connections() >= 2).await;
    assert!(!views.lock().unwrap().is_empty());
    client.close().await;
}

#[tokio::test]
async fn descriptor_ids_requested_close_together_share_one_batch() {
    let service = TestDescriptorService::start().await;
    let client = DescriptorClient::builder(&service.url)
        .with_batch_window(Duration::from_millis(30))
        .build()
        .unwrap();
    let gets = (0..20).map(|i| client.get(item(&format!("item-{i}"))));
    let answers = futures::future::join_all(gets).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            answer.unwrap().descriptor().unwrap().name,
            format!("The item-{i}")
        );
    }
    assert_eq!(service.batches().len(), 1);
    assert_eq!(service.batches()[0].len(), 20);
}

/// `get` batches ids across callers and does not ask again for an id in
/// flight (`get_many` and `stream_many` post their own chunks).
#[tokio::test]
async fn concurrent_requests_for_the_same_ids_are_coalesced() {
    let service = TestDescriptorService::start().await;
    service.set_delay(Duration::from_millis(600));
    let client = DescriptorClient::builder(&service.url)
        .with_batch_window(Duration::from_millis(1))
        .build()
        .unwrap();
    let get_all =
        |ids: &[&str]| futures::future::join_all(ids.iter().map(|id| client.get(item(id))));
    let first = get_all(&["a", "b", "missing-x"]);
    let second = async {
        // Well after the first batch left (window 1 ms), well before it is
        // answered (600 ms).
        tokio::time::sleep(Duration::from_millis(200)).await;
        get_all(&["b", "c", "b", "burned-y"]).await
    };
    let (first, second) = tokio::join!(first, second);
    let states = |answers: Vec<Result<DescriptorState, sdk::Error>>| {
        answers
            .into_iter()
            .map(|answer| match answer.unwrap() {
                DescriptorState::Ready(d) => d.id.to_string(),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(states(first), ["a", "b", "NotFound"]);
    assert_eq!(states(second), ["b", "c", "b", "Burned"]);
    assert_eq!(
        service.batches(),
        [
            vec![item("a"), item("b"), item("missing-x")],
            vec![item("c"), item("burned-y")]
        ],
        "b was in flight and not asked again"
    );
}

#[tokio::test]
async fn large_requests_are_chunked_to_the_batch_limit() {
    let service = TestDescriptorService::start().await;
    let client = DescriptorClient::new(&service.url).unwrap();
    let ids: Vec<_> = (0..2_500).map(|i| item(&format!("i{i}"))).collect();
    let answer = client.get_many(ids.clone()).await.unwrap();
    let got: Vec<_> = answer.descriptors.iter().map(|d| d.id.clone()).collect();
    assert_eq!(got, ids);
    let mut sizes: Vec<usize> = service.batches().iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        [500, protocol::MAX_BATCH_IDS, protocol::MAX_BATCH_IDS]
    );
}

#[tokio::test]
async fn unavailable_is_retried_and_a_refusal_is_not() {
    let service = TestDescriptorService::start().await;
    let client = DescriptorClient::builder(&service.url)
        .with_retries(3, Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .unwrap();
    service.fail_first(2);
    let answer = client.get(item("wood")).await.unwrap();
    assert!(answer.descriptor().is_some());
    assert_eq!(service.batches().len(), 3);

    let error = client.get(item("refuse")).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::MalformedRequest);
    assert_eq!(service.batches().len(), 4);

    service.fail_first(10);
    let error = client.get(item("stone")).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Unavailable);
    assert_eq!(service.batches().len(), 8, "one try and three retries");
}

#[tokio::test]
async fn a_bad_descriptor_url_is_refused() {
    let error = DescriptorClient::new("::nope").unwrap_err();
    assert_eq!(error.code(), ErrorCode::MalformedRequest);
}

#[tokio::test]
async fn a_connection_that_stops_answering_pings_is_replaced() {
    let node = resuming_node().await;
    let client = InventoryClient::builder(&node.url, "deaf")
        .with_ping_interval(Duration::from_millis(100))
        .with_reconnect_delay(Duration::from_millis(5), Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    // On a loaded machine a connection may be declared dead before its
    // snapshot arrived, so any reconnect (not necessarily the first) carries
    // the version once the snapshot is applied.
    let resumed = Some([(owner("a:alice"), Version::new(1))].into());
    eventually("a reconnect resuming from v1", || {
        node.hellos().iter().skip(1).any(|hello| *hello == resumed)
    })
    .await;
    client.close().await;
}

#[tokio::test]
async fn dropping_the_client_closes_the_connection() {
    let node = resuming_node().await;
    let client = InventoryClient::builder(&node.url, "good")
        .connect()
        .await
        .unwrap();
    assert_eq!(node.closed(), 0);
    drop(client);
    eventually("the close", || node.closed() == 1).await;
}

#[tokio::test]
async fn a_failed_chunk_of_stream_many_fails_only_its_ids() {
    let service = TestDescriptorService::start().await;
    service.fail_first(1);
    let client = DescriptorClient::builder(&service.url)
        .with_max_batch(2)
        .with_max_in_flight(1)
        .with_retries(0, Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let ids = (0..6).map(|i| item(&format!("item-{i}")));
    let answers: Vec<_> = futures::StreamExt::collect(client.stream_many(ids)).await;
    let failed: Vec<bool> = answers.iter().map(Result::is_err).collect();
    assert_eq!(failed, [true, true, false, false, false, false]);
    assert_eq!(service.batches().len(), 3);
}

#[tokio::test]
async fn stream_many_retries_a_chunk_that_failed_for_a_while() {
    let service = TestDescriptorService::start().await;
    service.fail_first(2);
    let client = DescriptorClient::builder(&service.url)
        .with_max_batch(3)
        .with_retries(4, Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let ids = (0..9).map(|i| item(&format!("item-{i}")));
    let answers: Vec<_> = futures::StreamExt::collect(client.stream_many(ids)).await;
    assert_eq!(answers.len(), 9);
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
}
