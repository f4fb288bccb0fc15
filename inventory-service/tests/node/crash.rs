//! The node binary SIGKILLed right after acknowledged commits made while
//! Redis was down: after a restart on the same store (and Redis back), every
//! acknowledged change's event reaches a Redis subscriber (the outbox
//! publishes what the killed node could not): on
//! SQLite (the journal) and on a MongoDB replica set (the journal's change
//! stream, the publishing lease taken over by the restarted node).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::{ChangeEvent, ChangeId};
use serde_json::json;

use crate::common::{SERVICE_TOKEN, node_command};

const CALLERS: usize = 8;
const CHANGES_PER_CALLER: usize = 30;

/// The `inventory-service` binary over `dir/inventory.db`, publishing on
/// `redis_url`.
fn node(dir: &Path, redis_url: &str) -> Command {
    let mut command = node_command(dir, &[]);
    command.env("REDIS_URL", redis_url);
    command
}

/// The same over a database of its own on the test MongoDB replica set.
fn mongo_node(dir: &Path, redis_url: &str, database: &str) -> Command {
    let mut command = node(dir, redis_url);
    command
        .env("MONGODB_URI", testkit::mongodb_uri())
        .env("MONGODB_DATABASE", database);
    command
}

/// Every event published on `inv:*`, by change id, from now on.
async fn subscribe(redis_url: &str) -> Arc<Mutex<HashMap<ChangeId, Vec<ChangeEvent>>>> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.psubscribe("inv:*").await.unwrap();
    let seen = Arc::new(Mutex::new(HashMap::<ChangeId, Vec<ChangeEvent>>::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let event: ChangeEvent = serde_json::from_slice(message.get_payload_bytes()).unwrap();
            record
                .lock()
                .unwrap()
                .entry(event.change_id)
                .or_default()
                .push(event);
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_change_is_published_after_a_sigkill() {
    sigkill_after_commits(node).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_change_is_published_after_a_sigkill_on_mongodb() {
    let database = testkit::unique_name("crash");
    sigkill_after_commits(|dir, url| mongo_node(dir, url, &database)).await;
}

/// Acknowledged changes from several callers, a SIGKILL right after the last
/// acknowledgement, a node started again by `node` on the same store.
async fn sigkill_after_commits(node: impl Fn(&Path, &str) -> Command) {
    let redis_server = testkit::RedisServer::start();
    let url = redis_server.url();
    let dir = tempfile::tempdir().unwrap();
    let mut first = testkit::NodeProcess::spawn(node(dir.path(), &url));
    // Redis is down while the first node writes: none of its changes can be
    // published before the kill, so every event must come from the
    // restarted node's outbox.
    let mut redis_server = tokio::task::spawn_blocking(move || {
        let mut server = redis_server;
        server.kill();
        server
    })
    .await
    .unwrap();
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let base = first.base().to_owned();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut acknowledged = Vec::new();
                for n in 0..CHANGES_PER_CALLER {
                    let body = json!({"id": ChangeId::random(), "ops": [
                        {"op": "grant", "owner": format!("a:p{caller}-{}", n % 3), "item": "wood", "qty": 1}
                    ]});
                    let response = http
                        .post(format!("{base}/v1/changes"))
                        .bearer_auth(SERVICE_TOKEN)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
                    let answer: serde_json::Value = response.json().await.unwrap();
                    acknowledged
                        .push(serde_json::from_value::<ChangeEvent>(answer["event"].clone()).unwrap());
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for caller in callers {
        acknowledged.extend(caller.await.unwrap());
    }
    // Right after the last acknowledgement: no drain, no shutdown.
    first.kill();
    let _redis_server = tokio::task::spawn_blocking(move || {
        redis_server.restart();
        redis_server
    })
    .await
    .unwrap();
    let seen = subscribe(&url).await;
    let _second = testkit::NodeProcess::spawn(node(dir.path(), &url));
    let missing = || {
        let seen = seen.lock().unwrap();
        acknowledged
            .iter()
            .filter(|event| {
                !seen
                    .get(&event.change_id)
                    .is_some_and(|e| e.contains(event))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while missing() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        missing(),
        0,
        "of {} acknowledged changes, {} never reached the subscriber with their event",
        acknowledged.len(),
        missing()
    );
    // Repeats after the restart are allowed (caches discard them by version),
    // but never an event with other content.
    let seen = seen.lock().unwrap();
    for event in &acknowledged {
        assert!(seen[&event.change_id].iter().all(|e| e == event));
    }
}
