//! The one error type of the HTTP edge, rendered as `protocol::ErrorBody` JSON
//! with the status from the shared error-code table.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

/// An error answered to an HTTP caller.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with a code and a message for people.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The answer to a path no route serves.
    #[must_use]
    pub fn no_route() -> Self {
        Self::new(ErrorCode::NotFound, "no route serves this path")
    }

    /// Decodes a request body read within the size limit (a body past it is
    /// `payload_too_large`), as [`decode_json`](Self::decode_json) does.
    pub fn decode_body<T: DeserializeOwned>(
        body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    ) -> Result<T, Self> {
        let body =
            body.map_err(|rejection| Self::new(ErrorCode::PayloadTooLarge, rejection.body_text()))?;
        Self::decode_json(&body)
    }

    /// Decodes a JSON request body, telling a bad field apart from a body
    /// that is not the expected shape: a quantity that is not in
    /// `1..=MAX_QUANTITY` is `invalid_quantity`, an id that breaks its
    /// grammar `invalid_id` (by the field's name, the last step of the path
    /// the decoder was at), anything else `malformed_request`.
    pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Self> {
        let deserializer = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let field = match err.path().iter().next_back() {
                Some(serde_path_to_error::Segment::Map { key }) => key.as_str(),
                _ => "",
            };
            let code = match (err.inner().classify(), field) {
                (serde_json::error::Category::Data, "qty") => ErrorCode::InvalidQuantity,
                (
                    serde_json::error::Category::Data,
                    "id" | "owner" | "item" | "user" | "character" | "zone",
                ) => ErrorCode::InvalidId,
                _ => ErrorCode::MalformedRequest,
            };
            Self::new(code, format!("{}: {}", err.path(), err.inner()))
        })
    }
}

impl From<inventory_core::Error> for ApiError {
    fn from(err: inventory_core::Error) -> Self {
        if err.code() == ErrorCode::Internal {
            tracing::error!(error = %err, "store failure");
        }
        Self::new(err.code(), err.to_string())
    }
}

impl From<descriptor_service::Error> for ApiError {
    fn from(err: descriptor_service::Error) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<protocol::Error> for ApiError {
    fn from(err: protocol::Error) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            JsonRejection::BytesRejection(_) => ErrorCode::PayloadTooLarge,
            _ => ErrorCode::MalformedRequest,
        };
        Self::new(code, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(ErrorBody::new(self.code, self.message))).into_response();
        // For the operator audit log, which records the code answered.
        response.extensions_mut().insert(self.code);
        response
    }
}
