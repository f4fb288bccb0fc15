//! Helpers shared by the integration tests: stores in temp dirs, an app with
//! a query-counting store, and one-call HTTP requests without a socket.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use descriptor_service::conformance::CountingStore;
use descriptor_service::{AuthConfig, Descriptors, SqliteStore, app};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

pub const WRITER: &str = "writer-token";
pub const READER: &str = "reader-token";
/// The header of a write token.
pub const AS_WRITER: (&str, &str) = ("authorization", "Bearer writer-token");
/// The header of a read-only token.
pub const AS_READER: (&str, &str) = ("authorization", "Bearer reader-token");

/// A SQLite store in its own temp dir (kept alive by the returned guard).
pub fn sqlite_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("descriptors.db")).expect("open sqlite");
    (dir, store)
}

pub fn auth() -> AuthConfig {
    AuthConfig::default()
        .with_open_reads(true)
        .with_write_token(WRITER)
        .with_read_token(READER)
}

/// An app over a counting SQLite store.
pub struct TestApp {
    pub router: Router,
    pub descriptors: Descriptors,
    pub store: Arc<CountingStore<SqliteStore>>,
    _dir: TempDir,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_auth(auth())
    }

    pub fn with_auth(auth: AuthConfig) -> Self {
        let (dir, store) = sqlite_store();
        let store = Arc::new(CountingStore::new(store));
        let descriptors = Descriptors::builder(store.clone()).build();
        Self {
            router: app(descriptors.clone(), auth),
            descriptors,
            store,
            _dir: dir,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Response {
        send(&self.router, method, path, body, headers).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn batch(&self, ids: &[&str]) -> Response {
        let body = serde_json::json!({ "ids": ids }).to_string();
        self.send(Method::POST, "/v1/descriptors/batch", Some(body), &[])
            .await
    }

    pub async fn create(&self, descriptor: &protocol::Descriptor) -> Response {
        let body = serde_json::to_string(descriptor).expect("json");
        self.send(Method::POST, "/v1/descriptors", Some(body), &[AS_WRITER])
            .await
    }

    pub async fn burn(&self, id: &str) -> Response {
        self.send(
            Method::DELETE,
            &format!("/v1/descriptors/{id}"),
            None,
            &[AS_WRITER],
        )
        .await
    }
}

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Response {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("<no code>")
    }

    pub fn ids(&self, list: &str) -> Vec<String> {
        let values = self.json[list].as_array().expect("a list");
        values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v["id"].as_str().expect("an id").to_owned())
            })
            .collect()
    }
}

pub async fn send(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Response {
        status,
        headers,
        json,
    }
}
