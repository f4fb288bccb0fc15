//! The HTTP adapter over [`Descriptors`] (feature `http`): the router
//! `app(descriptors, auth)`, serving it with [`run`], bearer tokens, request
//! decoding, error bodies and the OpenAPI document.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/descriptors/batch` | batch get, body `{"ids": [...]}` (the item whose id is `batch` is still served by the other methods on that path) |
//! | `GET /v1/descriptors?kind=&crafted_by=&since=&until=&include_burned=&limit=&cursor=&with_total=` | one page of the listing in id order (limit 1..=1,000, default 100), with `next_cursor`, and `total` when asked |
//! | `GET /v1/descriptors/{id}` | one descriptor, with `ETag` and `Cache-Control` |
//! | `POST /v1/descriptors` | create (crafting), idempotent by id and content |
//! | `PUT /v1/descriptors/{id}` | next revision of a catalog descriptor |
//! | `DELETE /v1/descriptors/{id}` | burn, idempotent |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness (store ping) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/openapi.json` | this API as an OpenAPI 3.1 document |
//!
//! Every error is a `protocol::ErrorBody` with a stable code.
//!
//! The modules run one way: this one routes to `handlers` and `openapi`;
//! `openapi` names the handlers' paths; `handlers` and `openapi` share the
//! error body's `schema`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::{Descriptors, Error};

mod auth;
mod handlers;
mod openapi;
mod request;

pub use auth::AuthConfig;
pub use handlers::{MAX_BATCH_BODY_BYTES, MAX_DESCRIPTOR_BODY_BYTES};
pub use openapi::{openapi, openapi_json};
pub use request::{decode_batch_request, decode_descriptor};

use handlers::HttpState;

/// The service's router: `descriptors` behind the tokens of `auth`.
pub fn app(descriptors: Descriptors, auth: AuthConfig) -> Router {
    let state = HttpState {
        descriptors,
        auth: Arc::new(auth),
    };
    Router::new()
        .route(
            handlers::BATCH_ROUTE,
            post(handlers::batch_get)
                .get(handlers::get_one)
                .put(handlers::revise)
                .delete(handlers::burn)
                .layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
        .route(
            "/v1/descriptors",
            post(handlers::create)
                .get(handlers::list)
                .layer(DefaultBodyLimit::max(MAX_DESCRIPTOR_BODY_BYTES)),
        )
        .route(
            "/v1/descriptors/{id}",
            get(handlers::get_one)
                .put(handlers::revise)
                .delete(handlers::burn)
                .layer(DefaultBodyLimit::max(MAX_DESCRIPTOR_BODY_BYTES)),
        )
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(handlers::health))
        .route("/readyz", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .fallback(|| async { Error::NoRoute })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn run(
    listener: TcpListener,
    descriptors: Descriptors,
    auth: AuthConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr()?, "descriptor service listening");
    axum::serve(listener, app(descriptors, auth))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn observe(
    State(state): State<HttpState>,
    path: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let route = path.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .descriptors
        .metrics()
        .request_seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        if code.http_status() >= 500 {
            tracing::error!(error = %self, "request failed");
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.to_body())).into_response()
    }
}
