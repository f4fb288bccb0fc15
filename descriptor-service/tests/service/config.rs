//! The binary's configuration: parsed by clap, wired into working descriptors and tokens.

use axum::http::{Method, StatusCode};
use clap::Parser;
use descriptor_service::conformance::crafted;
use descriptor_service::{Config, StoreKind, app};

use crate::common::send;

#[tokio::test]
async fn a_parsed_config_serves_with_its_store_and_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("descriptors.db");
    let config = Config::try_parse_from([
        "descriptor-service",
        "--sqlite-path",
        path.to_str().expect("utf-8 path"),
        "--write-tokens",
        "w1,w2",
        "--open-reads",
        "false",
        "--read-tokens",
        "r1",
        "--cache-mib",
        "8",
    ])
    .expect("parse");
    assert_eq!(config.store, StoreKind::Sqlite);
    assert_eq!(config.cache().max_bytes, 8 * 1024 * 1024);
    let descriptors = config.open_descriptors().await.expect("descriptors");
    let router = app(descriptors, config.auth());
    let body = serde_json::to_string(&crafted("cfg-1")).expect("json");
    let created = send(
        &router,
        Method::POST,
        "/v1/descriptors",
        Some(body),
        &[("authorization", "Bearer w2")],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let anonymous = send(&router, Method::GET, "/v1/descriptors/cfg-1", None, &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let reader = send(
        &router,
        Method::GET,
        "/v1/descriptors/cfg-1",
        None,
        &[("authorization", "Bearer r1")],
    )
    .await;
    assert_eq!(reader.status, StatusCode::OK);
}

#[test]
fn the_mongodb_store_needs_a_uri() {
    let mut config =
        Config::try_parse_from(["descriptor-service", "--store", "mongodb"]).expect("parse");
    // The test harness exports MONGODB_URI, which clap would pick up as the
    // flag's environment fallback; the case under test is "no URI at all".
    config.mongodb_uri = None;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let error = runtime
        .block_on(config.open_descriptors())
        .expect_err("no uri");
    assert_eq!(error.code(), protocol::ErrorCode::Unavailable);
}
