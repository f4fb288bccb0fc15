//! The capacity instrument's smoke run: two node processes over one MongoDB
//! replica set and one Redis, a few hundred `loadgen` sessions spread over
//! both, game-server traffic to both; afterwards every session holds the
//! store's version of each of its owners, and the journal replays to every
//! stored balance and version, none negative.

use std::collections::BTreeMap;
use std::time::Duration;

use inventory_core::conformance::owners_replay_the_journal;
use inventory_core::{MongoConfig, MongoStore, StoreScan};
use loadgen::clients::{self, ClientsConfig};
use loadgen::traffic::{self, TrafficConfig};
use protocol::OwnerId;

use crate::common::{JWT_SECRET, SERVICE_TOKEN, node_command};

const PLAYERS: u64 = 300;
const TRAFFIC: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_under_loadgen_agree_with_the_store_and_pass_the_audit() {
    let redis = testkit::RedisServer::start();
    let database = testkit::unique_name("loadgen");
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            let mut command = node_command(dir.path(), &[]);
            command
                .env("REDIS_URL", redis.url())
                .env("MONGODB_URI", testkit::mongodb_uri())
                .env("MONGODB_DATABASE", &database);
            testkit::NodeProcess::spawn(command)
        })
        .collect();
    let secret = String::from_utf8(JWT_SECRET.to_vec()).unwrap();
    let half = PLAYERS / 2;
    let traffic = |node: usize, first: u64| TrafficConfig {
        url: nodes[node].base().to_owned(),
        service_token: SERVICE_TOKEN.to_owned(),
        prefix: "lg".to_owned(),
        first,
        players: half,
        rate: 60.0,
        duration: TRAFFIC,
        concurrency: 16,
        seed: node as u64 + 1,
    };
    for (node, first) in [(0, 0), (1, half)] {
        traffic::seed(&traffic(node, first)).await.expect("seed");
    }

    // Each node holds the sessions of half the players; each node's traffic
    // changes the other half, so every delta crosses Redis.
    let sessions: Vec<_> = [(0, 0), (1, half)]
        .into_iter()
        .map(|(node, first)| {
            let config = ClientsConfig {
                url: format!("{}/v1/ws", nodes[node].base().replacen("http", "ws", 1)),
                jwt_secret: secret.clone(),
                prefix: "lg".to_owned(),
                first,
                players: half,
                sessions_per_player: 1,
                connect_rate: 500,
                ramp_timeout: Duration::from_secs(60),
                hold: TRAFFIC + Duration::from_secs(4),
                keep_versions: true,
            };
            tokio::spawn(clients::run(config, |_| {}))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loads: Vec<_> = [(1, 0), (0, half)]
        .into_iter()
        .map(|(node, first)| tokio::spawn(traffic::run(traffic(node, first))))
        .collect();
    let mut sent = loadgen::Report::default();
    for load in loads {
        sent.merge(&load.await.unwrap().expect("traffic"));
    }
    let mut held = loadgen::Report::default();
    for session in sessions {
        held.merge(&session.await.unwrap().expect("sessions"));
    }
    assert!(sent.errors.is_empty(), "traffic errors: {:?}", sent.errors);
    assert!(sent.applied > 100, "{} changes applied", sent.applied);
    assert!(held.errors.is_empty(), "session errors: {:?}", held.errors);
    assert_eq!(held.sessions, PLAYERS);
    assert!(held.deltas > 0 && held.delta_latency.count() > 0);

    let store =
        MongoStore::connect(MongoConfig::new(testkit::mongodb_uri()).with_database(&database))
            .await
            .expect("connect");
    let owners: Vec<OwnerId> = held
        .versions
        .keys()
        .map(|owner| OwnerId::parse(owner).unwrap())
        .collect();
    assert!(
        owners.len() as u64 >= PLAYERS,
        "{} owners held",
        owners.len()
    );
    owners_replay_the_journal(&store, &owners).await;
    let mut stored = BTreeMap::new();
    store
        .scan_owners(&mut |record| {
            stored.insert(record.owner.to_string(), record.version.get());
        })
        .await
        .expect("scan the owners");
    for (owner, version) in &held.versions {
        assert_eq!(
            stored.get(owner).copied().unwrap_or(0),
            *version,
            "the version of {owner} a session holds"
        );
    }
}
