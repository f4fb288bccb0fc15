//! Two zone nodes sharing one Redis and one store, SDK clients on each:
//! propagation, resume, node and Redis restarts.

use std::time::Duration;

use inventory_core::RedisBusConfig;
use inventory_service::{BusChoice, EdgeConfig};
use sdk::DescriptorState;

use crate::common::{
    Node, Proxy, SharedStore, Watched, consume, converges, descriptor, descriptor_service,
    eventually, grant, item, owner,
};

fn redis(url: &str) -> BusChoice {
    BusChoice::Redis(
        RedisBusConfig::new(url)
            .with_channel_prefix(testkit::unique_name("inv"))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    )
}

#[tokio::test]
async fn a_change_on_node_a_reaches_clients_on_both_nodes_once_in_order() {
    let url = testkit::redis_url();
    let prefix = testkit::unique_name("inv");
    let bus =
        || BusChoice::Redis(RedisBusConfig::new(url.clone()).with_channel_prefix(prefix.clone()));
    let store = SharedStore::new();
    let a = Node::start(&store, bus()).await;
    let b = Node::start(&store, bus()).await;
    let descriptors = descriptor_service().await;
    a.apply(grant("a:alice", "wood", 10)).await;
    // Mid-handover: the same player on both nodes.
    let on_a = Watched::connect(&a.ws_url(), "alice", Some(&descriptors)).await;
    let on_b = Watched::connect(&b.ws_url(), "alice", Some(&descriptors)).await;
    a.apply(grant("a:alice", "wood", 5)).await;
    a.apply(consume("a:alice", "wood", 3)).await;
    a.apply(grant("c:alice:hero", "sword-1", 1)).await;
    a.apply(grant("a:alice", "wood", 1)).await;
    let (bank, wood, hero, sword) = (
        owner("a:alice"),
        item("wood"),
        owner("c:alice:hero"),
        item("sword-1"),
    );
    for client in [&on_a, &on_b] {
        converges(client, &store, "alice").await;
        // Each change exactly once, in order, after the snapshot's 10.
        assert_eq!(
            client.transitions(&bank, &wood),
            [(0, 10), (10, 15), (15, 12), (12, 13)]
        );
        assert_eq!(client.transitions(&hero, &sword), [(0, 1)]);
        eventually("the sword's descriptor", || async {
            client
                .client
                .view()
                .item(&hero, &sword)
                .map(|i| i.descriptor.clone())
                == Some(DescriptorState::Ready(descriptor(&sword).into()))
        })
        .await;
    }
    assert!(a.metric("inventory_deltas_sent_total").await >= 4.0);
    assert!(b.metric("inventory_deltas_sent_total").await >= 4.0);
    on_a.client.close().await;
    on_b.client.close().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_killed_connection_resumes_with_the_missed_deltas() {
    let url = testkit::redis_url();
    let store = SharedStore::new();
    // No periodic version check: one racing an event in flight would
    // re-hydrate the cache, and the resync would empty the resume window.
    let a = Node::start_configured(
        &store,
        redis(&url),
        EdgeConfig::new(),
        inventory_core::PlayerHubConfig::new().with_version_check_interval(None),
        "127.0.0.1:0".parse().unwrap(),
        axum::Router::new(),
    )
    .await;
    let proxy = Proxy::start(a.addr).await;
    a.apply(grant("a:alice", "wood", 1)).await;
    let client = Watched::connect(&proxy.ws_url(), "alice", None).await;
    let http = reqwest::Client::new();
    let send = |n: u64| {
        let (http, base) = (http.clone(), a.http("/v1/changes"));
        async move {
            for _ in 0..n {
                let sent = http
                    .post(&base)
                    .bearer_auth(crate::common::SERVICE_TOKEN)
                    .json(&grant("a:alice", "wood", 1))
                    .send()
                    .await
                    .unwrap();
                assert!(sent.status().is_success());
            }
        }
    };
    let shows = |expected: u64| {
        let client = &client;
        async move {
            let last = client
                .transitions(&owner("a:alice"), &item("wood"))
                .last()
                .map(|t| t.1);
            last == Some(expected)
        }
    };
    // Each round: the client sees deltas live, its connection is cut, changes
    // are made while it is (or may be) away, and it catches up. Cutting only
    // once it holds versions makes every reconnection a resume.
    let mut expected = 1;
    for _ in 0..3 {
        send(5).await;
        expected += 5;
        eventually("the live deltas", || shows(expected)).await;
        proxy.cut();
        send(8).await;
        expected += 8;
        eventually("the missed deltas after the resume", || shows(expected)).await;
    }
    converges(&client, &store, "alice").await;
    // Each unit arrived once: the transitions climb by one with no repeat.
    let transitions = client.transitions(&owner("a:alice"), &item("wood"));
    let last = transitions.last().unwrap().1;
    assert_eq!(last, expected);
    assert!(a.metric("inventory_resumes_total").await >= 3.0);
    client.client.close().await;
    a.stop().await;
}

#[tokio::test]
async fn a_restarted_node_serves_the_store_truth() {
    let url = testkit::redis_url();
    let store = SharedStore::new();
    let a = Node::start(&store, redis(&url)).await;
    let b = Node::start(&store, redis(&url)).await;
    let addr = a.addr;
    b.apply(grant("a:alice", "wood", 1)).await;
    let client = Watched::connect(&a.ws_url(), "alice", None).await;
    a.stop().await;
    for _ in 0..5 {
        b.apply(grant("a:alice", "wood", 2)).await;
    }
    let a = Node::start_with(&store, redis(&url), EdgeConfig::new(), addr).await;
    converges(&client, &store, "alice").await;
    a.apply(consume("a:alice", "wood", 4)).await;
    converges(&client, &store, "alice").await;
    client.client.close().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_restarted_redis_converges_every_client() {
    let mut redis_server = testkit::RedisServer::start();
    let url = redis_server.url();
    let store = SharedStore::new();
    let a = Node::start(&store, redis(&url)).await;
    let b = Node::start(&store, redis(&url)).await;
    a.apply(grant("a:alice", "wood", 1)).await;
    let client = Watched::connect(&b.ws_url(), "alice", None).await;
    redis_server.kill();
    // Applied in the store; the publish is lost with Redis.
    a.apply(grant("a:alice", "wood", 5)).await;
    a.apply(grant("a:alice", "stone", 2)).await;
    redis_server.restart();
    converges(&client, &store, "alice").await;
    a.apply(grant("a:alice", "wood", 1)).await;
    converges(&client, &store, "alice").await;
    client.client.close().await;
    a.stop().await;
    b.stop().await;
}
