//! Configuration is honoured or refused: the node binary never runs on
//! something else than what it was told.

use std::process::Command;

use crate::common::node_command;

fn node(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = node_command(dir, &[]);
    command.envs(env.iter().copied());
    command
}

/// With `MONGODB_URI` set (the documented variable), the default build runs
/// on MongoDB; it used to log `store: SQLite` and keep a private file.
#[test]
fn mongodb_uri_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let uri = testkit::mongodb_uri();
    let mut node = testkit::NodeProcess::spawn(node(
        dir.path(),
        &[
            ("MONGODB_URI", uri.as_str()),
            ("INVENTORY_DESCRIPTOR_SQLITE_PATH", "unused.db"),
        ],
    ));
    let log = node.log().join("\n");
    assert!(log.contains("store: MongoDB"), "{log}");
    assert!(!log.contains("store: SQLite"), "{log}");
    node.kill();
    assert!(!dir.path().join("inventory.db").exists());
}

/// What the binary cannot honour stops it at startup with one clear line
/// naming the setting, and a non-zero exit.
#[test]
fn what_cannot_be_honoured_is_refused_at_startup() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("MONGODB_URI", "postgres://127.0.0.1:5432")],
            "MONGODB_URI",
        ),
        (&[("REDIS_URL", "127.0.0.1:6379")], "REDIS_URL"),
        (
            &[("INVENTORY_DESCRIPTOR_URL", "descriptors:8090")],
            "INVENTORY_DESCRIPTOR_URL",
        ),
        (
            &[
                ("INVENTORY_DESCRIPTOR_URL", "http://127.0.0.1:9"),
                ("INVENTORY_DESCRIPTOR_SQLITE_PATH", "descriptors.db"),
            ],
            "INVENTORY_DESCRIPTOR_SQLITE_PATH",
        ),
    ];
    for (env, setting) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (status, stderr) = testkit::NodeProcess::refused(node(dir.path(), env));
        assert!(!status.success(), "{env:?}");
        assert!(stderr.contains(setting), "{env:?}: {stderr}");
        assert!(!dir.path().join("inventory.db").exists(), "{env:?}");
    }
}

/// The node serves its OpenAPI document, with the embedded descriptor
/// service's paths, and every route it answers is in it.
#[tokio::test]
async fn the_node_serves_an_openapi_document_of_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = testkit::NodeProcess::spawn(node_command(dir.path(), &[]));
    let base = node.base().to_owned();
    let doc: serde_json::Value = reqwest::get(format!("{base}/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    // Every route of the node's router and of the embedded descriptor API,
    // with the methods it serves.
    let served = [
        ("/v1/changes", "post"),
        ("/v1/changes/{id}", "get"),
        ("/v1/crafts", "post"),
        ("/v1/burns", "post"),
        ("/v1/owners/{owner}", "get"),
        ("/v1/users/{user}", "get"),
        ("/v1/zones/{zone}/players/{user}", "post"),
        ("/v1/zones/{zone}/players/{user}", "delete"),
        ("/v1/owners/{owner}/history", "get"),
        ("/v1/items/{item}/custody", "get"),
        ("/v1/changes/{id}/revert", "post"),
        ("/v1/audit-log", "get"),
        ("/v1/console/sessions", "post"),
        ("/v1/console/me", "get"),
        ("/v1/ws", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/descriptors", "get"),
        ("/v1/descriptors", "post"),
        ("/v1/descriptors/batch", "post"),
        ("/v1/descriptors/{id}", "get"),
        ("/v1/descriptors/{id}", "put"),
        ("/v1/descriptors/{id}", "delete"),
    ];
    for (path, method) in served {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, served.len(), "every documented route is served");
}

/// The builder says what a node lacks, and weak secrets are refused, with
/// the crate's error type.
#[tokio::test]
async fn a_node_builder_names_what_is_missing() {
    use inventory_service::{ClientTokens, Error, Node, ServiceToken};
    let tokens = || {
        (
            ServiceToken::new("a-service-token-of-16+").unwrap(),
            ClientTokens::hs256(b"a-jwt-secret-of-16-bytes+").unwrap(),
        )
    };
    let no_tokens = Node::builder().build().await.expect_err("no tokens");
    assert!(matches!(no_tokens, Error::Missing(_)), "{no_tokens}");
    let (service, clients) = tokens();
    let no_store = Node::builder()
        .tokens(service, clients)
        .build()
        .await
        .expect_err("no store");
    assert!(no_store.to_string().contains("a store"), "{no_store}");
    assert!(matches!(
        ServiceToken::new("short"),
        Err(Error::WeakSecret(_))
    ));
    assert!(matches!(
        ClientTokens::hs256(b"short"),
        Err(Error::WeakSecret(_))
    ));
}
