//! The game server example plays its ticks against a node on SQLite.

use std::sync::Arc;

use inventory_core::{LocalBus, SqliteConfig, SqliteStore};
use inventory_service::{BusChoice, ClientTokens, Node, ServiceToken};

const SERVICE_TOKEN: &str = "example-service-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_game_server_example_plays_against_a_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(SqliteConfig::new(dir.path().join("inventory.db"))).expect("store");
    let descriptors = descriptor_service::Descriptors::builder(Arc::new(
        descriptor_service::SqliteStore::open(dir.path().join("descriptors.db"))
            .expect("descriptors"),
    ))
    .build();
    let state = Node::builder()
        .store(Arc::new(store))
        .embedded_descriptors(
            descriptors,
            descriptor_service::AuthConfig::default()
                .with_write_token(SERVICE_TOKEN)
                .with_open_reads(true),
        )
        .bus(BusChoice::Local(LocalBus::new()))
        .tokens(
            ServiceToken::new(SERVICE_TOKEN).expect("token"),
            ClientTokens::hs256(b"example-jwt-secret-0123456").expect("secret"),
        )
        .build()
        .await
        .expect("node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(inventory_service::run(
        listener,
        state,
        std::future::pending(),
    ));

    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_game_server"))
            .args([
                "--url",
                &url,
                "--token",
                SERVICE_TOKEN,
                "--ticks",
                "3",
                "--tick-ms",
                "0",
            ])
            .output()
            .expect("the example runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches("alice drinks a potion").count(),
        3,
        "{stdout}"
    );
    assert_eq!(stdout.matches("alice crafts x-").count(), 3, "{stdout}");
    // Three ticks of loot (3 wood, 2 iron to bob), trades (2 wood for 1
    // iron) and crafts (1 wood): alice holds 3 iron and her 3 shields, bob 6
    // wood and 3 iron.
    assert!(
        stdout.contains("alice at version 12: iron 3, x-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bob at version 6: iron 3, wood 6"),
        "{stdout}"
    );
}
