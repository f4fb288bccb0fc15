//! OpenAPI pieces every service's document shares (feature `openapi`): the
//! error body's schema, whose `code` lists the stable codes of the table,
//! and the bearer-token security scheme.

// utoipa's builders take qualified paths.
#![allow(unused_qualifications)]

use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ObjectBuilder, RefOr, Schema, Type};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::{ErrorBody, ErrorCode};

impl PartialSchema for ErrorBody {
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

impl ToSchema for ErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorBody".into()
    }
}

/// Adds the `bearer` security scheme (`Authorization: Bearer <token>`) that
/// the paths' `security(("bearer" = []))` name.
#[derive(Debug)]
pub struct BearerToken;

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
