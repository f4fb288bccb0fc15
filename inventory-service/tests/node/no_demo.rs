//! The node has no demo (it lives in `inventory-demo`): none of the demo's
//! routes answer, through the router or from the binary, whatever the mode.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use inventory_core::LocalBus;
use inventory_service::{BusChoice, app};
use serde_json::json;
use tower::ServiceExt;

use crate::common::{node_command, state_builder};

#[tokio::test]
async fn nothing_of_the_demo_is_served_without_it() {
    let state = state_builder(
        Arc::new(inventory_core::MemoryStore::new()),
        BusChoice::Local(LocalBus::new()),
        inventory_core::PlayerHubConfig::new(),
    )
    .build()
    .await
    .unwrap();
    for (method, uri) in [
        ("GET", "/"),
        ("GET", "/app.js"),
        ("GET", "/pkg/sdk_wasm.js"),
        ("POST", "/demo/login"),
        ("POST", "/demo/actions"),
        ("POST", "/demo/autoplay"),
    ] {
        let body = (method == "POST").then(|| json!({"player": "ivy"}).to_string());
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {uri}");
    }
}

#[tokio::test]
async fn the_node_binary_has_no_demo_routes_in_any_mode() {
    let dir = tempfile::tempdir().unwrap();
    let descriptors = dir.path().join("descriptors.db");
    let embedded = ["--descriptor-sqlite-path", descriptors.to_str().unwrap()];
    for args in [
        &embedded[..],
        &["--descriptor-url", "http://127.0.0.1:9"][..],
    ] {
        let node = testkit::NodeProcess::spawn(node_command(dir.path(), args));
        let client = reqwest::Client::new();
        for (method, path) in [("GET", "/"), ("POST", "/demo/login")] {
            let mut request =
                client.request(method.parse().unwrap(), format!("{}{path}", node.base()));
            if method == "POST" {
                request = request.json(&json!({"player": "jo"}));
            }
            let status = request.send().await.unwrap().status().as_u16();
            assert_eq!(status, 404, "{args:?}: {method} {path}");
        }
    }
}
