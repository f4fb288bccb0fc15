//! The OpenAPI document of the node's HTTP API, generated from the handlers'
//! annotations and the protocol's schemas (utoipa), served at
//! `/v1/openapi.json`. A node embedding the descriptor service adds its
//! `/v1/descriptors…` paths, served on the same listener.

// utoipa's derive expands schema names into qualified paths.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use protocol::ErrorBody;
use protocol::openapi::BearerToken;
use utoipa::OpenApi;

use crate::{AppState, console, edge, gameplay, support};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zone node",
        description = "The gameplay API game servers call (changes, crafts and burns, \
            inventories, zones; bearer service token) and the client WebSocket. Every write is \
            idempotent by its change id: retry an unknown outcome (503, a timeout) with the same \
            id. Limits: 64 KiB per request body, 256 operations and 8 owners per change."
    ),
    paths(
        gameplay::apply_change,
        gameplay::lookup_change,
        gameplay::craft,
        gameplay::burn,
        gameplay::load_owner,
        gameplay::load_user,
        gameplay::join_zone,
        gameplay::leave_zone,
        support::history,
        support::custody,
        support::revert,
        support::audit_log,
        console::session,
        console::me,
        edge::upgrade,
        health,
        ready,
        metrics,
        openapi_document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken)
)]
struct ApiDoc;

#[utoipa::path(
    get,
    path = "/healthz",
    responses((status = 200, description = "the process is up", body = String, content_type = "text/plain"))
)]
pub(crate) async fn health() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "serving", body = String, content_type = "text/plain"),
        (status = 503, description = "draining before shutdown", body = String, content_type = "text/plain")
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_draining() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (axum::http::StatusCode::OK, "ready")
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json"))
)]
pub(crate) async fn openapi_document(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        state.openapi_json().to_owned(),
    )
}

/// The node's document; with `embedded_descriptors`, the descriptor
/// service's `/v1/descriptors…` paths and schemas too.
pub(crate) fn document(embedded_descriptors: bool) -> String {
    let mut doc = ApiDoc::openapi();
    if embedded_descriptors {
        let mut descriptors = descriptor_service::openapi();
        descriptors
            .paths
            .paths
            .retain(|path, _| path.starts_with("/v1/descriptors"));
        doc.merge(descriptors);
    }
    doc.to_json()
        .expect("an OpenAPI document always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_gameplay_path() {
        let doc: serde_json::Value = serde_json::from_str(&document(false)).expect("JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/v1/changes",
            "/v1/changes/{id}",
            "/v1/crafts",
            "/v1/burns",
            "/v1/owners/{owner}",
            "/v1/users/{user}",
            "/v1/zones/{zone}/players/{user}",
            "/v1/ws",
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/openapi.json",
        ] {
            assert!(paths.contains_key(path), "{path} is missing");
        }
        assert!(!paths.keys().any(|p| p.starts_with("/v1/descriptors")));
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        let codes = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the error codes");
        assert_eq!(codes.len(), protocol::ErrorCode::ALL.len());
    }

    #[test]
    fn an_embedded_descriptor_service_adds_its_paths_but_not_its_probes() {
        let doc: serde_json::Value = serde_json::from_str(&document(true)).expect("JSON");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/v1/descriptors/batch"));
        assert!(paths.contains_key("/v1/descriptors/{id}"));
        assert_eq!(
            doc["info"]["title"], "Zone node",
            "the node's document, with the descriptor paths merged in"
        );
    }
}
