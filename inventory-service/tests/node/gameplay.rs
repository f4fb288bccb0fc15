//! The gameplay API through the router (no socket) and over a real socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use inventory_core::{LocalBus, MemoryStore};
use inventory_service::{AppState, BusChoice, Node, ServiceToken, app};
use protocol::{ChangeId, ErrorBody, ErrorCode, UserId, ZoneId};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{SERVICE_TOKEN as TOKEN, tokens};

async fn state() -> AppState {
    Node::builder()
        .store(Arc::new(MemoryStore::new()))
        .bus(BusChoice::Local(LocalBus::new()))
        .tokens(ServiceToken::new(TOKEN).unwrap(), tokens())
        .zones(["forest", "town"].map(|z| ZoneId::parse(z).unwrap()))
        .build()
        .await
        .unwrap()
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn grant(id: ChangeId, owner: &str, item: &str, qty: i64) -> String {
    json!({"id": id, "ops": [{"op": "grant", "owner": owner, "item": item, "qty": qty}]})
        .to_string()
}

fn error_code(value: &Value) -> ErrorCode {
    serde_json::from_value::<ErrorBody>(value.clone())
        .unwrap_or_else(|_| panic!("not an error body: {value}"))
        .code
}

#[tokio::test]
async fn apply_then_read_and_retry_is_idempotent() {
    let state = state().await;
    let id = ChangeId::random();
    let body = grant(id, "a:alice", "wood", 5);
    let (status, applied) = call(
        &state,
        "POST",
        "/v1/changes",
        Some(TOKEN),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{applied}");
    assert_eq!(applied["event"]["owners"][0]["version"], 1);
    let (status, again) = call(&state, "POST", "/v1/changes", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_applied"], true);
    let (status, snap) = call(&state, "GET", "/v1/owners/a:alice", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(snap["items"]["wood"], 5);
    assert_eq!(snap["version"], 1);
    let (_, all) = call(&state, "GET", "/v1/users/alice", Some(TOKEN), None).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_writes_nothing() {
    let state = state().await;
    let id = ChangeId::random();
    let consume =
        json!({"id": id, "ops": [{"op": "consume", "owner": "a:bob", "item": "gold", "qty": 1}]})
            .to_string();
    let cases = [
        (
            "{not json".to_string(),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
        (
            grant(id, "a:bob", "go.ld", 1),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
        (
            grant(id, "a:bob", "gold", 0),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            json!({"id": id, "ops": []}).to_string(),
            StatusCode::BAD_REQUEST,
            ErrorCode::EmptyChange,
        ),
        (
            consume,
            StatusCode::CONFLICT,
            ErrorCode::InsufficientBalance,
        ),
        (
            "x".repeat(inventory_service::MAX_BODY_BYTES + 1),
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
        ),
    ];
    for (body, status, code) in cases {
        let (got, value) = call(&state, "POST", "/v1/changes", Some(TOKEN), Some(body)).await;
        assert_eq!((got, error_code(&value)), (status, code), "{value}");
    }
    let (status, value) = call(&state, "GET", "/v1/owners/x:bob", Some(TOKEN), None).await;
    assert_eq!(
        (status, error_code(&value)),
        (StatusCode::BAD_REQUEST, ErrorCode::InvalidId)
    );
    let (_, snap) = call(&state, "GET", "/v1/owners/a:bob", Some(TOKEN), None).await;
    assert_eq!(snap["version"], 0);
}

#[tokio::test]
async fn the_gameplay_api_requires_the_service_token() {
    let state = state().await;
    for token in [None, Some("wrong-token-wrong-token")] {
        let (status, value) = call(
            &state,
            "POST",
            "/v1/changes",
            token,
            Some(grant(ChangeId::random(), "a:eve", "gold", 1)),
        )
        .await;
        assert_eq!(
            (status, error_code(&value)),
            (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
        );
        let (status, _) = call(&state, "GET", "/v1/owners/a:eve", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (_, snap) = call(&state, "GET", "/v1/owners/a:eve", Some(TOKEN), None).await;
    assert_eq!(snap["version"], 0);
    assert!(ServiceToken::new("short").is_err());
}

#[tokio::test]
async fn serves_over_a_real_socket_and_shuts_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(inventory_service::run(listener, state().await, async {
        stopped.await.ok();
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn join_and_leave_zones_hold_the_player_on_the_node() {
    let state = state().await;
    let alice = UserId::parse("alice").unwrap();
    let (status, zones) = call(
        &state,
        "POST",
        "/v1/zones/forest/players/alice",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{zones}");
    assert_eq!(zones["zones"], json!(["forest"]));
    assert!(state.hub().snapshot(&alice).is_some());
    let (_, zones) = call(
        &state,
        "POST",
        "/v1/zones/town/players/alice",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(zones["zones"], json!(["forest", "town"]));
    let (_, zones) = call(
        &state,
        "DELETE",
        "/v1/zones/forest/players/alice",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(zones["zones"], json!(["town"]));
    let (_, zones) = call(
        &state,
        "DELETE",
        "/v1/zones/town/players/alice",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(zones["zones"], json!([]));
    assert!(state.hub().snapshot(&alice).is_none());
    for (uri, status, code) in [
        (
            "/v1/zones/cave/players/alice",
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
        ),
        (
            "/v1/zones/@clients%230/players/alice",
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
        (
            "/v1/zones/forest/players/al.ice",
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
    ] {
        let (got, value) = call(&state, "POST", uri, Some(TOKEN), None).await;
        assert_eq!((got, error_code(&value)), (status, code), "{uri}: {value}");
    }
    let (status, _) = call(&state, "POST", "/v1/zones/forest/players/alice", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(state.hub().snapshot(&alice).is_none());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let state = state().await;
    let (status, _) = call(&state, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for metric in [
        "inventory_clients_connected",
        "inventory_deltas_sent_total",
        "inventory_client_bytes_sent_total",
        "inventory_resumes_total",
        "inventory_snapshots_sent_total",
        "inventory_slow_client_disconnects_total",
        "inventory_events_published_total",
    ] {
        assert!(text.contains(metric), "{metric} missing from\n{text}");
    }
    state.drain(std::time::Duration::from_secs(1)).await;
    let (status, _) = call(&state, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

/// A change id names one change: the same id granting something else, to
/// the same owner or to another one, is refused with `change_conflict` and
/// writes nothing (it used to answer `201` and give bob 999 diamonds, or
/// `200 already_applied` with phantom deltas).
#[tokio::test]
async fn a_reused_change_id_with_other_content_is_a_conflict() {
    let state = state().await;
    let id = ChangeId::random();
    let (status, first) = call(
        &state,
        "POST",
        "/v1/changes",
        Some(TOKEN),
        Some(grant(id, "a:alice", "wood", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    for (owner, item, qty) in [("a:bob", "diamond", 999), ("a:alice", "diamond", 999)] {
        let (status, body) = call(
            &state,
            "POST",
            "/v1/changes",
            Some(TOKEN),
            Some(grant(id, owner, item, qty)),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(error_code(&body), ErrorCode::ChangeConflict);
    }
    let (_, bob) = call(&state, "GET", "/v1/owners/a:bob", Some(TOKEN), None).await;
    assert_eq!(bob["version"], 0, "{bob}");
    let (_, alice) = call(&state, "GET", "/v1/owners/a:alice", Some(TOKEN), None).await;
    assert_eq!(alice["items"], json!({"wood": 1}), "{alice}");
    let (status, retry) = call(
        &state,
        "POST",
        "/v1/changes",
        Some(TOKEN),
        Some(grant(id, "a:alice", "wood", 1)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry["already_applied"], true);
    assert_eq!(retry["event"], first["event"]);
}

/// `GET /v1/changes/{id}` answers the recorded event of an applied change,
/// `unknown_change` for an id never applied or refused, `invalid_id` for a
/// malformed id, and needs the service token.
#[tokio::test]
async fn a_change_can_be_looked_up_by_id() {
    let state = state().await;
    let id = ChangeId::random();
    let (_, applied) = call(
        &state,
        "POST",
        "/v1/changes",
        Some(TOKEN),
        Some(grant(id, "a:carol", "wood", 3)),
    )
    .await;
    let (status, found) = call(
        &state,
        "GET",
        &format!("/v1/changes/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        found,
        json!({"state": "applied", "event": applied["event"]})
    );

    let refused = ChangeId::random();
    let consume = json!({"id": refused, "ops": [{"op": "consume", "owner": "a:carol", "item": "gem", "qty": 1}]});
    let (status, _) = call(
        &state,
        "POST",
        "/v1/changes",
        Some(TOKEN),
        Some(consume.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for unknown in [refused, ChangeId::random()] {
        let (status, body) = call(
            &state,
            "GET",
            &format!("/v1/changes/{unknown}"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_code(&body), ErrorCode::UnknownChange);
    }
    let (status, body) = call(&state, "GET", "/v1/changes/not-a-uuid", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), ErrorCode::InvalidId);
    let (status, body) = call(&state, "GET", &format!("/v1/changes/{id}"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// Every error has a code: an unknown route, a wrong method, and a body whose
/// quantity or id is bad answer the JSON error body with the code that says
/// so (bad quantities and ids inside bodies used to be `malformed_request`).
#[tokio::test]
async fn every_error_answers_a_coded_body() {
    let state = state().await;
    let change = |op: Value| json!({"id": ChangeId::random(), "ops": [op]}).to_string();
    let grant = |owner: &str, item: &str, qty: Value| {
        change(json!({"op": "grant", "owner": owner, "item": item, "qty": qty}))
    };
    let cases = [
        (
            "GET",
            "/no/such/route",
            None,
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
        ),
        (
            "DELETE",
            "/v1/changes",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
        ),
        (
            "PUT",
            "/v1/owners/a:alice",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "wood", json!(0))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "wood", json!(-1))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "wood", json!(1.5))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "wood", json!(1_000_000_001u64))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "wood", json!("5"))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuantity,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:bad.user", "wood", json!(1))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
        (
            "POST",
            "/v1/changes",
            Some(grant("a:alice", "$inc", json!(1))),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
        (
            "POST",
            "/v1/changes",
            Some(json!({"id": "nope", "ops": []}).to_string()),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
        ),
        (
            "POST",
            "/v1/changes",
            Some(change(
                json!({"op": "steal", "owner": "a:alice", "item": "wood", "qty": 1}),
            )),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
        (
            "POST",
            "/v1/changes",
            Some("{not json".to_owned()),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
        (
            "POST",
            "/v1/changes",
            Some(json!({"id": ChangeId::random(), "ops": [], "extra": 1}).to_string()),
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedRequest,
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let (got, value) = call(&state, method, uri, Some(TOKEN), body.clone()).await;
        assert_eq!(
            (got, error_code(&value)),
            (status, code),
            "{method} {uri} {body:?}: {value}"
        );
    }
    let (_, alice) = call(&state, "GET", "/v1/owners/a:alice", Some(TOKEN), None).await;
    assert_eq!(alice["version"], 0, "nothing was written: {alice}");
}
