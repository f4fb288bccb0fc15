//! The OpenAPI document of the HTTP API, generated from the handlers'
//! annotations and the wire types' schemas (utoipa), served at
//! `/v1/openapi.json`.

// utoipa's derive expands schema names into qualified paths.
#![allow(unused_qualifications)]

use std::sync::OnceLock;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use protocol::{BatchGetResponse, Descriptor, ErrorCode};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ObjectBuilder, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::http;

/// The schema of `protocol::ErrorBody`: `code` is one of the stable codes of
/// the table in `protocol`, listed from `ErrorCode::ALL`.
pub(crate) struct ErrorBodySchema;

impl PartialSchema for ErrorBodySchema {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        ObjectBuilder::new()
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes))
                    .description(Some("the stable error code")),
            )
            .required("code")
            .property(
                "message",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("what went wrong, for people")),
            )
            .required("message")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for ErrorBodySchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorBody".into()
    }
}

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(|| ComponentsBuilder::new().build());
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Descriptor service",
        description = "Item descriptors fetched in batches, created by crafting, removed by burning. \
            Limits: at most 1,000 ids per batch, 16 KiB per descriptor (compact JSON)."
    ),
    paths(
        http::batch_get,
        http::get_one,
        http::create,
        http::revise,
        http::burn,
        http::health,
        http::ready,
        http::metrics,
    ),
    components(schemas(ErrorBodySchema, Descriptor, BatchGetResponse)),
    modifiers(&BearerToken)
)]
struct ApiDoc;

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

pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        openapi_json(),
    )
}
