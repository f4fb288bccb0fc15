//! The HTTP API: `app(state) -> Router` and its handlers.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/descriptors/batch` | batch get, body `{"ids": [...]}` (the item whose id is `batch` is still served by the other methods on that path) |
//! | `GET /v1/descriptors/{id}` | one descriptor, with `ETag` and `Cache-Control` |
//! | `POST /v1/descriptors` | create (crafting), idempotent by id and content |
//! | `PUT /v1/descriptors/{id}` | next revision of a catalog descriptor |
//! | `DELETE /v1/descriptors/{id}` | burn, idempotent |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness (store ping) |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/openapi.json` | this API as an OpenAPI 3.1 document |
//!
//! Every error is a `protocol::ErrorBody` with a stable code.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request, State,
};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::{
    BatchGetRequest, BatchGetResponse, BurnResponse, Descriptor, DescriptorKind, ItemId,
    MAX_BATCH_IDS, MAX_DESCRIPTOR_BYTES,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Access;
use crate::cache::{Absence, Lookup};
use crate::invalidation::{Invalidation, InvalidationKind};
use crate::request::{decode_batch_request, decode_descriptor};
use crate::store::WriteOutcome;
use crate::{AppState, Error};

/// The largest batch get body: every id at full length, quoted, plus slack
/// for whitespace.
pub const MAX_BATCH_BODY_BYTES: usize = MAX_BATCH_IDS * (protocol::ID_MAX_LEN + 3) * 2;
/// The largest create or revise body: twice the descriptor limit, so that
/// pretty-printed JSON of an acceptable descriptor still gets in.
pub const MAX_DESCRIPTOR_BODY_BYTES: usize = MAX_DESCRIPTOR_BYTES * 2;

const BATCH_ROUTE: &str = "/v1/descriptors/batch";
const BATCH_SEGMENT: &str = "batch";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, no-cache";

/// The service's router over `state`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            BATCH_ROUTE,
            post(batch_get)
                .get(get_one)
                .put(revise)
                .delete(burn)
                .layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
        .route(
            "/v1/descriptors",
            post(create).layer(DefaultBodyLimit::max(MAX_DESCRIPTOR_BODY_BYTES)),
        )
        .route(
            "/v1/descriptors/{id}",
            get(get_one)
                .put(revise)
                .delete(burn)
                .layer(DefaultBodyLimit::max(MAX_DESCRIPTOR_BODY_BYTES)),
        )
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { Error::NoRoute })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let route = path.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .request_seconds
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A request body as bytes, with a too-large body answered `payload_too_large`.
pub(crate) struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::PayloadTooLarge(MAX_DESCRIPTOR_BODY_BYTES.max(MAX_BATCH_BODY_BYTES))
                } else {
                    Error::Malformed(rejection.body_text())
                }
            })
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// The id of a `/v1/descriptors/{id}` route. `/v1/descriptors/batch` is both
/// the batch route and the path of the item whose id is `batch`: that route
/// has no path parameter and serves the item's other methods with this id.
pub(crate) struct ItemPath(ItemId);

impl<S: Send + Sync> FromRequestParts<S> for ItemPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let on_batch_route = parts
            .extensions
            .get::<MatchedPath>()
            .is_some_and(|path| path.as_str() == BATCH_ROUTE);
        if on_batch_route {
            return Ok(Self(ItemId::parse(BATCH_SEGMENT)?));
        }
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection: PathRejection| Error::Malformed(rejection.body_text()))?;
        Ok(Self(ItemId::parse(raw)?))
    }
}

#[derive(Serialize)]
struct BatchBody<'a> {
    descriptors: Vec<&'a RawValue>,
    missing: Vec<&'a ItemId>,
    burned: Vec<&'a ItemId>,
}

#[utoipa::path(
    post,
    path = "/v1/descriptors/batch",
    request_body = BatchGetRequest,
    responses(
        (status = 200, description = "every distinct id in exactly one list", body = BatchGetResponse),
        (status = 400, description = "malformed body or an id breaking the grammar", body = crate::openapi::ErrorBodySchema),
        (status = 401, description = "reads need a token", body = crate::openapi::ErrorBodySchema),
        (status = 413, description = "more ids than allowed (batch_too_large) or too large a body (payload_too_large)", body = crate::openapi::ErrorBodySchema),
        (status = 503, description = "store unavailable", body = crate::openapi::ErrorBodySchema)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn batch_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Read)?;
    let ids = decode_batch_request(&body)?;
    state.metrics.batch_size.observe(ids.len() as f64);
    let lookups = state.cache.get_many(&ids).await?;
    let mut answer = BatchBody {
        descriptors: Vec::with_capacity(ids.len()),
        missing: Vec::new(),
        burned: Vec::new(),
    };
    for (id, lookup) in ids.iter().zip(&lookups) {
        match lookup {
            Lookup::Found(found) => answer.descriptors.push(found.json()),
            Lookup::Absent(Absence::Missing) => answer.missing.push(id),
            Lookup::Absent(Absence::Burned) => answer.burned.push(id),
        }
    }
    let body = serde_json::to_vec(&answer).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

#[utoipa::path(
    get,
    path = "/v1/descriptors/{id}",
    params(("id" = String, Path, description = "the item id")),
    responses(
        (status = 200, description = "the descriptor; `ETag` is its revision, crafted descriptors are `immutable`", body = Descriptor),
        (status = 304, description = "`If-None-Match` matched the current revision"),
        (status = 400, description = "an id breaking the grammar", body = crate::openapi::ErrorBodySchema),
        (status = 401, description = "reads need a token", body = crate::openapi::ErrorBodySchema),
        (status = 404, description = "never existed", body = crate::openapi::ErrorBodySchema),
        (status = 410, description = "burned", body = crate::openapi::ErrorBodySchema),
        (status = 503, description = "store unavailable", body = crate::openapi::ErrorBodySchema)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    ItemPath(id): ItemPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Read)?;
    let lookup = state
        .cache
        .get_many(std::slice::from_ref(&id))
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("empty lookup".into()))?;
    let found = match lookup {
        Lookup::Found(found) => found,
        Lookup::Absent(Absence::Missing) => return Err(Error::NotFound(id)),
        Lookup::Absent(Absence::Burned) => return Err(Error::Burned(id)),
    };
    // The URL names one descriptor, so its revision identifies the content.
    let etag = format!("\"r{}\"", found.revision());
    let cache_control = match found.kind() {
        DescriptorKind::Crafted => IMMUTABLE,
        DescriptorKind::Catalog => REVALIDATE,
    };
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| Error::Internal(e.to_string()))?;
    let headers_out = [
        (ETAG, etag_value),
        (CACHE_CONTROL, HeaderValue::from_static(cache_control)),
    ];
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, headers_out).into_response());
    }
    let mut response = json_response(StatusCode::OK, found.json().get().as_bytes().to_vec());
    response.headers_mut().extend(headers_out);
    Ok(response)
}

pub(crate) async fn publish(
    state: &AppState,
    id: &ItemId,
    kind: InvalidationKind,
) -> Result<(), Error> {
    state
        .metrics
        .invalidations
        .with_label_values(&["local"])
        .inc();
    state
        .bus
        .publish(&Invalidation {
            origin: state.origin.clone(),
            id: id.clone(),
            kind,
        })
        .await
}

pub(crate) fn count_write(state: &AppState, op: &str) {
    state.metrics.store_queries.with_label_values(&[op]).inc();
}

#[utoipa::path(
    post,
    path = "/v1/descriptors",
    request_body = Descriptor,
    responses(
        (status = 201, description = "created", body = Descriptor),
        (status = 200, description = "the identical descriptor already existed (a retried create)", body = Descriptor),
        (status = 400, description = "malformed body or unknown fields", body = crate::openapi::ErrorBodySchema),
        (status = 401, description = "no or an unknown token", body = crate::openapi::ErrorBodySchema),
        (status = 403, description = "a read-only token", body = crate::openapi::ErrorBodySchema),
        (status = 409, description = "the id holds different content", body = crate::openapi::ErrorBodySchema),
        (status = 410, description = "the id was burned", body = crate::openapi::ErrorBodySchema),
        (status = 413, description = "descriptor or body too large", body = crate::openapi::ErrorBodySchema),
        (status = 422, description = "the descriptor breaks a rule of the model", body = crate::openapi::ErrorBodySchema),
        (status = 503, description = "store or bus unavailable; retry", body = crate::openapi::ErrorBodySchema)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Write)?;
    let descriptor = decode_descriptor(&body)?;
    if descriptor.revision != 1 {
        return Err(protocol::Error::InvalidDescriptor(
            "a new descriptor has revision 1; later revisions are PUT".into(),
        )
        .into());
    }
    let outcome = state.create(&descriptor).await?;
    let status = match outcome {
        WriteOutcome::Applied => StatusCode::CREATED,
        WriteOutcome::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(descriptor)).into_response())
}

#[utoipa::path(
    put,
    path = "/v1/descriptors/{id}",
    params(("id" = String, Path, description = "the catalog descriptor's id")),
    request_body = Descriptor,
    responses(
        (status = 200, description = "revised, or this revision was already stored", body = Descriptor),
        (status = 400, description = "malformed body or invalid id", body = crate::openapi::ErrorBodySchema),
        (status = 401, description = "no or an unknown token", body = crate::openapi::ErrorBodySchema),
        (status = 403, description = "a read-only token", body = crate::openapi::ErrorBodySchema),
        (status = 404, description = "never existed", body = crate::openapi::ErrorBodySchema),
        (status = 409, description = "not the next revision (conflict) or a crafted descriptor (descriptor_immutable)", body = crate::openapi::ErrorBodySchema),
        (status = 410, description = "burned", body = crate::openapi::ErrorBodySchema),
        (status = 413, description = "descriptor or body too large", body = crate::openapi::ErrorBodySchema),
        (status = 422, description = "the descriptor breaks a rule of the model", body = crate::openapi::ErrorBodySchema),
        (status = 503, description = "store or bus unavailable; retry", body = crate::openapi::ErrorBodySchema)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revise(
    State(state): State<AppState>,
    ItemPath(id): ItemPath,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Write)?;
    let descriptor: Descriptor = decode_descriptor(&body)?;
    if descriptor.id != id {
        return Err(protocol::Error::InvalidDescriptor(format!(
            "the body names {} but the path names {id}",
            descriptor.id
        ))
        .into());
    }
    if descriptor.kind != DescriptorKind::Catalog || descriptor.revision < 2 {
        return Err(protocol::Error::InvalidDescriptor(
            "a revision is a catalog descriptor with revision 2 or more".into(),
        )
        .into());
    }
    count_write(&state, "revise");
    state.store.revise(&descriptor).await?;
    state.cache.invalidate(&id).await;
    publish(&state, &id, InvalidationKind::Revised).await?;
    Ok((StatusCode::OK, Json(descriptor)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/descriptors/{id}",
    params(("id" = String, Path, description = "the item id")),
    responses(
        (status = 200, description = "burned now or earlier", body = BurnResponse),
        (status = 400, description = "invalid id", body = crate::openapi::ErrorBodySchema),
        (status = 401, description = "no or an unknown token", body = crate::openapi::ErrorBodySchema),
        (status = 403, description = "a read-only token", body = crate::openapi::ErrorBodySchema),
        (status = 404, description = "never existed; nothing written", body = crate::openapi::ErrorBodySchema),
        (status = 503, description = "store or bus unavailable; retry", body = crate::openapi::ErrorBodySchema)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn burn(
    State(state): State<AppState>,
    ItemPath(id): ItemPath,
    headers: HeaderMap,
) -> Result<Json<BurnResponse>, Error> {
    state.auth.check(&headers, Access::Write)?;
    let outcome = state.burn(&id).await?;
    Ok(Json(BurnResponse { id, outcome }))
}

#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "the process is up", body = String))
)]
pub(crate) async fn health() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "the store answers", body = String),
        (status = 503, description = "the store does not answer", body = crate::openapi::ErrorBodySchema)
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<&'static str, Error> {
    state.store.ping().await?;
    Ok("ready")
}

#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
}
