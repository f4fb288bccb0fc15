//! Cross-replica invalidation: two service replicas over one store, Redis
//! between their caches.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use descriptor_service::conformance::{catalog, crafted};
use descriptor_service::{Descriptors, SqliteStore, app};
use tempfile::TempDir;

use testkit::{RedisServer, redis_url, unique_name};

use crate::common::{AS_WRITER, Response, auth, send};

struct Replicas {
    a: axum::Router,
    b: axum::Router,
    _dir: TempDir,
}

async fn replicas() -> Replicas {
    replicas_over(&redis_url()).await
}

async fn replicas_over(redis: &str) -> Replicas {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("descriptors.db");
    let channel = unique_name("invalidations");
    let mut routers = Vec::new();
    for _ in 0..2 {
        let store = SqliteStore::open(&path).expect("open");
        let descriptors = Descriptors::builder(Arc::new(store))
            .build_with_redis(redis, &channel)
            .await
            .expect("redis");
        routers.push(app(descriptors, auth()));
    }
    let b = routers.pop().expect("b");
    let a = routers.pop().expect("a");
    Replicas { a, b, _dir: dir }
}

async fn get(router: &axum::Router, id: &str) -> Response {
    send(
        router,
        axum::http::Method::GET,
        &format!("/v1/descriptors/{id}"),
        None,
        &[],
    )
    .await
}

/// Polls `router` until `check` holds, for at most two seconds.
async fn eventually(router: &axum::Router, id: &str, check: impl Fn(&Response) -> bool) {
    for _ in 0..200 {
        if check(&get(router, id).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never converged: {:?}", get(router, id).await);
}

async fn write(
    router: &axum::Router,
    method: axum::http::Method,
    path: &str,
    body: Option<String>,
) -> Response {
    send(router, method, path, body, &[AS_WRITER]).await
}

#[tokio::test]
async fn a_burn_on_one_replica_reaches_the_others_cache() {
    let r = replicas().await;
    let body = serde_json::to_string(&crafted("sword-1")).unwrap();
    let created = write(
        &r.a,
        axum::http::Method::POST,
        "/v1/descriptors",
        Some(body),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(get(&r.b, "sword-1").await.status, StatusCode::OK);
    let burned = write(
        &r.a,
        axum::http::Method::DELETE,
        "/v1/descriptors/sword-1",
        None,
    )
    .await;
    assert_eq!(burned.status, StatusCode::OK);
    eventually(&r.b, "sword-1", |got| got.status == StatusCode::GONE).await;
}

#[tokio::test]
async fn a_revision_and_a_create_reach_the_others_cache() {
    let r = replicas().await;
    let first = serde_json::to_string(&catalog("iron-sword", 1)).unwrap();
    write(
        &r.a,
        axum::http::Method::POST,
        "/v1/descriptors",
        Some(first),
    )
    .await;
    assert_eq!(get(&r.b, "iron-sword").await.json["revision"], 1);
    let next = serde_json::to_string(&catalog("iron-sword", 2)).unwrap();
    let revised = write(
        &r.a,
        axum::http::Method::PUT,
        "/v1/descriptors/iron-sword",
        Some(next),
    )
    .await;
    assert_eq!(revised.status, StatusCode::OK);
    eventually(&r.b, "iron-sword", |got| got.json["revision"] == 2).await;

    // B learns that "later" is missing, then A creates it.
    assert_eq!(get(&r.b, "later").await.status, StatusCode::NOT_FOUND);
    let later = serde_json::to_string(&crafted("later")).unwrap();
    write(
        &r.a,
        axum::http::Method::POST,
        "/v1/descriptors",
        Some(later),
    )
    .await;
    eventually(&r.b, "later", |got| got.status == StatusCode::OK).await;
}

#[tokio::test]
async fn invalidation_survives_a_redis_restart() {
    let mut redis = RedisServer::start();
    let r = replicas_over(&redis.url()).await;
    for id in ["before", "after"] {
        let body = serde_json::to_string(&crafted(id)).unwrap();
        write(
            &r.a,
            axum::http::Method::POST,
            "/v1/descriptors",
            Some(body),
        )
        .await;
        assert_eq!(get(&r.b, id).await.status, StatusCode::OK);
    }
    redis.kill();
    // Burned while Redis is down: A cannot tell B, so the burn fails and is
    // retried; B flushed its cache when it lost the subscription.
    let burned = write(
        &r.a,
        axum::http::Method::DELETE,
        "/v1/descriptors/before",
        None,
    )
    .await;
    assert_eq!(
        (burned.status, burned.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    eventually(&r.b, "before", |got| got.status == StatusCode::GONE).await;
    redis.restart();
    // Once both replicas are resubscribed, burns propagate again.
    let mut delivered = false;
    for _ in 0..100 {
        let retried = write(
            &r.a,
            axum::http::Method::DELETE,
            "/v1/descriptors/before",
            None,
        )
        .await;
        if retried.status == StatusCode::OK {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "burn never republished after the restart");
    assert_eq!(get(&r.b, "after").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    write(
        &r.a,
        axum::http::Method::DELETE,
        "/v1/descriptors/after",
        None,
    )
    .await;
    eventually(&r.b, "after", |got| got.status == StatusCode::GONE).await;
}
