//! The SDK's one error type.

use std::sync::Arc;

use protocol::{ErrorBody, ErrorCode};

/// Everything that can go wrong in the SDK.
///
/// Errors are cheap to clone (sources are shared) so that one failed batch
/// request can be reported to every caller waiting on it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL the SDK was given cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The network failed: connection refused or reset, timeout, TLS. The
    /// cause is shown in the message rather than chained as a source, so
    /// that logging the error once says everything.
    #[error("transport failed: {0}")]
    Transport(Arc<dyn std::error::Error + Send + Sync>),
    /// A server answered with an error body carrying a stable code.
    #[error("server refused: {} ({})", .0.message, .0.code)]
    Server(ErrorBody),
    /// An HTTP server answered a status without a readable error body.
    #[error("unexpected HTTP status {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// A message or body that breaks the wire contract.
    #[error(transparent)]
    Protocol(#[from] protocol::Error),
    /// The client was closed, or its background task has stopped.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// Wraps a transport failure (also for transports outside this crate,
    /// such as the browser ones).
    pub fn transport(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(Arc::new(error))
    }

    /// The stable code the server gave, or the code that fits a local failure.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidUrl { .. } => ErrorCode::MalformedRequest,
            Self::Transport(_) | Self::Closed => ErrorCode::Unavailable,
            Self::Server(body) => body.code,
            Self::HttpStatus { status } => match status {
                401 => ErrorCode::Unauthorized,
                403 => ErrorCode::Forbidden,
                404 => ErrorCode::NotFound,
                413 => ErrorCode::PayloadTooLarge,
                429 => ErrorCode::RateLimited,
                400..=499 => ErrorCode::MalformedRequest,
                _ => ErrorCode::Unavailable,
            },
            Self::Protocol(error) => error.code(),
        }
    }

    /// Whether trying again later may succeed, as the code table says
    /// ([`ErrorCode::is_retryable`] of [`Error::code`]): network failures,
    /// server failures and rate limiting. Refusals (bad token, bad request)
    /// are final, and so is a closed client, whose code tells callers the
    /// service is gone but which will not come back by itself.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Closed) && self.code().is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_the_code_table_except_for_a_closed_client() {
        let server = |code| Error::Server(ErrorBody::new(code, "refused"));
        let cases = [
            (
                Error::transport(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                true,
            ),
            (Error::HttpStatus { status: 503 }, true),
            (Error::HttpStatus { status: 500 }, true),
            (Error::HttpStatus { status: 429 }, true),
            (Error::HttpStatus { status: 404 }, false),
            (Error::HttpStatus { status: 400 }, false),
            (server(ErrorCode::Unavailable), true),
            (server(ErrorCode::Internal), true),
            (server(ErrorCode::Unauthorized), false),
            (server(ErrorCode::InsufficientBalance), false),
            (
                Error::Protocol(protocol::Error::MalformedMessage("?".into())),
                false,
            ),
            (
                Error::InvalidUrl {
                    url: "x".into(),
                    reason: "no scheme".into(),
                },
                false,
            ),
            (Error::Closed, false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }
}
