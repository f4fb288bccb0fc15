//! The one error type of the HTTP edge, rendered as `protocol::ErrorBody` JSON
//! with the status from the shared error-code table.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, ErrorCode};

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
        (status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}
