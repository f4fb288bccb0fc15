//! The OpenAPI document of the HTTP API, generated from the handlers'
//! annotations and the wire types' schemas (utoipa), served at
//! `/v1/openapi.json`.

// utoipa's derive expands schema names into qualified paths.
#![allow(unused_qualifications)]

use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use protocol::openapi::BearerToken;
use protocol::{BatchGetResponse, Descriptor, ErrorBody, ListResponse};
use utoipa::OpenApi;

use super::handlers;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Descriptor service",
        description = "Item descriptors fetched in batches, created by crafting, removed by burning. \
            Limits: at most 1,000 ids per batch, 1,000 records per listing page, 16 KiB per \
            descriptor (compact JSON)."
    ),
    paths(
        handlers::batch_get,
        handlers::list,
        handlers::get_one,
        handlers::create,
        handlers::revise,
        handlers::burn,
        handlers::health,
        handlers::ready,
        handlers::metrics,
    ),
    components(schemas(ErrorBody, Descriptor, BatchGetResponse, ListResponse)),
    modifiers(&BearerToken)
)]
struct ApiDoc;

/// The document, for services that serve these routes among their own
/// (a zone node embedding the descriptor service merges it into its own).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document, as JSON.
#[must_use]
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("an OpenAPI document always serializes")
    })
}

pub(super) async fn serve() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        openapi_json(),
    )
}
