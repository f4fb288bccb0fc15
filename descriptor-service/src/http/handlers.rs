//! The handlers: check the caller's token, decode the request, call
//! [`Descriptors`], encode the answer. Each carries its OpenAPI annotation.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::{
    BatchGetRequest, BatchGetResponse, BurnResponse, Descriptor, DescriptorKind, ErrorBody, ItemId,
    ListResponse, MAX_BATCH_IDS, MAX_DESCRIPTOR_BYTES, UserId,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::auth::{Access, AuthConfig};
use super::request::{decode_batch_request, decode_descriptor};
use crate::cache::{Absence, Lookup};
use crate::store::{Record, ScanFilter, WriteOutcome};
use crate::{Descriptors, Error};

/// The largest batch get body: every id at full length, quoted, plus slack
/// for whitespace.
pub const MAX_BATCH_BODY_BYTES: usize = MAX_BATCH_IDS * (protocol::ID_MAX_LEN + 3) * 2;
/// The largest create or revise body: twice the descriptor limit, so that
/// pretty-printed JSON of an acceptable descriptor still gets in.
pub const MAX_DESCRIPTOR_BODY_BYTES: usize = MAX_DESCRIPTOR_BYTES * 2;

pub(super) const BATCH_ROUTE: &str = "/v1/descriptors/batch";
const BATCH_SEGMENT: &str = "batch";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "public, no-cache";

/// What every handler shares: the domain and the token rules.
#[derive(Clone, Debug)]
pub(super) struct HttpState {
    pub(super) descriptors: Descriptors,
    pub(super) auth: Arc<AuthConfig>,
}

/// A request body as bytes, with a too-large body answered `payload_too_large`.
pub(super) struct Body(Bytes);

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
pub(super) struct ItemPath(ItemId);

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
        (status = 400, description = "malformed body or an id breaking the grammar", body = ErrorBody),
        (status = 401, description = "reads need a token", body = ErrorBody),
        (status = 413, description = "more ids than allowed (batch_too_large) or too large a body (payload_too_large)", body = ErrorBody),
        (status = 503, description = "store unavailable", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(super) async fn batch_get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Read)?;
    let ids = decode_batch_request(&body)?;
    let lookups = state.descriptors.get_many(&ids).await?;
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

/// A page of the listing when `limit` is not given.
const DEFAULT_LIST_LIMIT: usize = 100;

/// The listing's query string; any other parameter is refused.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// `crafted` or `catalog`.
    #[param(value_type = Option<String>)]
    kind: Option<DescriptorKind>,
    /// Only descriptors crafted by this user.
    crafted_by: Option<String>,
    /// Only descriptors created at or after this time (ms since the epoch).
    since: Option<u64>,
    /// Only descriptors created before this time (ms since the epoch).
    until: Option<u64>,
    /// Burned ids too (not with the other filters); default false.
    include_burned: Option<bool>,
    /// Records per page, 1 to 1,000; default 100.
    limit: Option<usize>,
    /// The previous page's `next_cursor`, with the same filters.
    cursor: Option<String>,
    /// Also answer `total`, the number of records the filters select (one
    /// more store query); default false.
    with_total: Option<bool>,
}

#[derive(Serialize)]
struct ListBody<'a> {
    descriptors: Vec<&'a Descriptor>,
    burned: Vec<&'a ItemId>,
    next_cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/descriptors",
    params(ListQuery),
    responses(
        (status = 200, description = "one page in ascending id order; `next_cursor` resumes it, and paging never skips a descriptor that stays live nor repeats one, whatever is created and burned meanwhile; `total` only when asked with `with_total=true`", body = ListResponse),
        (status = 400, description = "an unknown or unparsable parameter (malformed_request), a crafted_by breaking the id grammar", body = ErrorBody),
        (status = 401, description = "reads need a token", body = ErrorBody),
        (status = 422, description = "limit outside 1..=1000, since >= until, include_burned with other filters, or a cursor issued for other filters or not by this service (unprocessable)", body = ErrorBody),
        (status = 503, description = "store unavailable", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<HttpState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Read)?;
    let Query(query) = query.map_err(|rejection| Error::Malformed(rejection.body_text()))?;
    let filter = ScanFilter {
        kind: query.kind,
        crafted_by: query.crafted_by.map(UserId::parse).transpose()?,
        since: query.since,
        until: query.until,
        include_burned: query.include_burned.unwrap_or(false),
    };
    let page = state
        .descriptors
        .list(
            &filter,
            query.cursor.as_deref(),
            query.limit.unwrap_or(DEFAULT_LIST_LIMIT),
        )
        .await?;
    let total = if query.with_total.unwrap_or(false) {
        Some(state.descriptors.count(&filter).await?)
    } else {
        None
    };
    let mut answer = ListBody {
        descriptors: Vec::with_capacity(page.records.len()),
        burned: Vec::new(),
        next_cursor: page.next_cursor.as_deref(),
        total,
    };
    for record in &page.records {
        match record {
            Record::Live(descriptor) => answer.descriptors.push(descriptor),
            Record::Burned(id) => answer.burned.push(id),
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
        (status = 400, description = "an id breaking the grammar", body = ErrorBody),
        (status = 401, description = "reads need a token", body = ErrorBody),
        (status = 404, description = "never existed", body = ErrorBody),
        (status = 410, description = "burned", body = ErrorBody),
        (status = 503, description = "store unavailable", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(super) async fn get_one(
    State(state): State<HttpState>,
    ItemPath(id): ItemPath,
    headers: HeaderMap,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Read)?;
    let found = state.descriptors.get(&id).await?;
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

#[utoipa::path(
    post,
    path = "/v1/descriptors",
    request_body = Descriptor,
    responses(
        (status = 201, description = "created", body = Descriptor),
        (status = 200, description = "the identical descriptor already existed (a retried create)", body = Descriptor),
        (status = 400, description = "malformed body or unknown fields", body = ErrorBody),
        (status = 401, description = "no or an unknown token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 409, description = "the id holds different content", body = ErrorBody),
        (status = 410, description = "the id was burned", body = ErrorBody),
        (status = 413, description = "descriptor or body too large", body = ErrorBody),
        (status = 422, description = "the descriptor breaks a rule of the model", body = ErrorBody),
        (status = 503, description = "store or bus unavailable; retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Error> {
    state.auth.check(&headers, Access::Write)?;
    let descriptor = decode_descriptor(&body)?;
    let outcome = state.descriptors.create(&descriptor).await?;
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
        (status = 400, description = "malformed body or invalid id", body = ErrorBody),
        (status = 401, description = "no or an unknown token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "never existed", body = ErrorBody),
        (status = 409, description = "not the next revision (conflict) or a crafted descriptor (descriptor_immutable)", body = ErrorBody),
        (status = 410, description = "burned", body = ErrorBody),
        (status = 413, description = "descriptor or body too large", body = ErrorBody),
        (status = 422, description = "the descriptor breaks a rule of the model", body = ErrorBody),
        (status = 503, description = "store or bus unavailable; retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(super) async fn revise(
    State(state): State<HttpState>,
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
    state.descriptors.revise(&descriptor).await?;
    Ok((StatusCode::OK, Json(descriptor)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/descriptors/{id}",
    params(("id" = String, Path, description = "the item id")),
    responses(
        (status = 200, description = "burned now or earlier", body = BurnResponse),
        (status = 400, description = "invalid id", body = ErrorBody),
        (status = 401, description = "no or an unknown token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "never existed; nothing written", body = ErrorBody),
        (status = 503, description = "store or bus unavailable; retry", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(super) async fn burn(
    State(state): State<HttpState>,
    ItemPath(id): ItemPath,
    headers: HeaderMap,
) -> Result<Json<BurnResponse>, Error> {
    state.auth.check(&headers, Access::Write)?;
    let outcome = state.descriptors.burn(&id).await?;
    Ok(Json(BurnResponse { id, outcome }))
}

#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "the process is up", body = String))
)]
pub(super) async fn health() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "the store answers", body = String),
        (status = 503, description = "the store does not answer", body = ErrorBody)
    )
)]
pub(super) async fn ready(State(state): State<HttpState>) -> Result<&'static str, Error> {
    state.descriptors.ping().await?;
    Ok("ready")
}

#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.descriptors.metrics().render(),
    )
}
