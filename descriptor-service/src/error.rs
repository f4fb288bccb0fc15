//! The crate's one error type and its stable codes (the HTTP adapter turns
//! them into responses).

use protocol::{ErrorBody, ErrorCode, ItemId, MAX_BATCH_IDS};

/// Everything that can go wrong in the descriptor service.
///
/// Cloneable so that one failed store load can be handed to every request
/// waiting on it (the cache's single flight shares errors).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id breaks the id grammar, or a descriptor breaks a rule of the
    /// model or is too large.
    #[error(transparent)]
    Invalid(#[from] protocol::Error),
    /// The body is not the JSON expected (syntax, types, unknown fields).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A well-formed request the service cannot answer as asked: a listing's
    /// filters that contradict each other, a limit out of range, a cursor
    /// that is not this listing's.
    #[error("{0}")]
    Unprocessable(String),
    /// The body is larger than the route allows.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A batch names more ids than allowed.
    #[error("a batch names {0} ids; at most {MAX_BATCH_IDS} are allowed")]
    BatchTooLarge(usize),
    /// No bearer token, or one the service does not know.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A known token that does not grant this operation.
    #[error("this token may not {0}")]
    Forbidden(&'static str),
    /// Nothing was ever stored under the id.
    #[error("descriptor {0} does not exist")]
    NotFound(ItemId),
    /// No route matches the request's path.
    #[error("no such route")]
    NoRoute,
    /// The route exists, but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The id was burned.
    #[error("descriptor {0} was burned")]
    Burned(ItemId),
    /// The id names different content, or the revision is not the next one.
    #[error("descriptor {id}: {reason}")]
    Conflict {
        /// The contested id.
        id: ItemId,
        /// Why.
        reason: String,
    },
    /// A crafted descriptor cannot be revised.
    #[error("descriptor {0} is crafted and immutable")]
    Immutable(ItemId),
    /// The backing store or bus cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt record.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Malformed(_) => ErrorCode::MalformedRequest,
            Self::Unprocessable(_) => ErrorCode::Unprocessable,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::BatchTooLarge(_) => ErrorCode::BatchTooLarge,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) | Self::NoRoute => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::Burned(_) => ErrorCode::Burned,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::Immutable(_) => ErrorCode::DescriptorImmutable,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The wire body for this error.
    #[must_use]
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }

    pub(crate) fn conflict(id: &ItemId, reason: impl Into<String>) -> Self {
        Self::Conflict {
            id: id.clone(),
            reason: reason.into(),
        }
    }
}

/// What a retry may get past (lock contention, I/O trouble; see
/// [`backends::sqlite::is_transient`]) is `unavailable`, anything else a bug
/// or a corrupt file.
#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if backends::sqlite::is_transient(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(format!("sqlite: {e}"))
        }
    }
}

/// The SQLite foundation's and the Redis subscriber's failures: what a retry
/// may get past (a stopped writer, Redis away) is `unavailable`.
#[cfg(any(feature = "sqlite", feature = "redis"))]
impl From<backends::Error> for Error {
    fn from(e: backends::Error) -> Self {
        match e {
            #[cfg(feature = "sqlite")]
            backends::Error::Sqlite(e) => e.into(),
            e if e.is_transient() => Self::Unavailable(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

#[cfg(feature = "mongodb")]
impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        use mongodb::error::ErrorKind;
        if matches!(
            *e.kind,
            ErrorKind::Io(_)
                | ErrorKind::ServerSelection { .. }
                | ErrorKind::ConnectionPoolCleared { .. }
        ) {
            Self::Unavailable(format!("mongodb: {e}"))
        } else {
            Self::Internal(format!("mongodb: {e}"))
        }
    }
}
