//! Two zone nodes sharing one Redis and one store, SDK clients on each:
//! propagation, resume, node and Redis restarts.

use std::time::Duration;

use inventory_core::RedisBusConfig;
use inventory_service::{BusChoice, EdgeConfig};
use sdk::DescriptorState;

use crate::common::{
    Node, Proxy, SharedStore, Watched, consume, converges, descriptor, descriptor_service, grant,
    item, owner,
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
        crate::common::eventually("the sword's descriptor", || async {
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
        inventory_core::ZoneNodeConfig::new().with_version_check_interval(None),
        "127.0.0.1:0".parse().unwrap(),
        axum::Router::new(),
    )
    .await;
    let proxy = Proxy::start(a.addr).await;
    a.apply(grant("a:alice", "wood", 1)).await;
    let client = Watched::connect(&proxy.ws_url(), "alice", None).await;
    let writer = {
        let apply = |n: i64| grant("a:alice", "wood", n);
        let changes: Vec<_> = (0..40).map(|_| apply(1)).collect();
        let base = a.http("/v1/changes");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for change in changes {
                let sent = http
                    .post(&base)
                    .bearer_auth(crate::common::SERVICE_TOKEN)
                    .json(&change)
                    .send()
                    .await
                    .unwrap();
                assert!(sent.status().is_success());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.cut();
    }
    writer.await.unwrap();
    converges(&client, &store, "alice").await;
    // Each unit arrived once: the transitions climb by one with no repeat.
    let transitions = client.transitions(&owner("a:alice"), &item("wood"));
    let last = transitions.last().unwrap().1;
    assert_eq!(last, 41);
    assert!(a.metric("inventory_resumes_total").await >= 1.0);
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
