//! The OpenAPI schema of the error body, shared by the handlers'
//! annotations and the document.

// utoipa's derive expands schema names into qualified paths.
#![allow(unused_qualifications)]

use protocol::ErrorCode;
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// The schema of `protocol::ErrorBody`: `code` is one of the stable codes of
/// the table in `protocol`, listed from `ErrorCode::ALL`.
pub(super) struct ErrorBodySchema;

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
