//! The one table of stable error codes, and this crate's validation error.
//!
//! Every error a client can see, over HTTP or WebSocket, carries an
//! [`ErrorCode`]: a stable snake_case string that never changes meaning once
//! released, the HTTP status that fits it, and whether trying again may
//! succeed. Services add codes here, never their own, and every caller that
//! retries asks [`ErrorCode::is_retryable`] instead of deciding for itself.

use serde::{Deserialize, Serialize};

use crate::{
    ItemId, MAX_DESCRIPTOR_BYTES, MAX_OPERATIONS, MAX_OWNERS_PER_CHANGE, MAX_QUANTITY, OwnerId,
    UserId,
};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $retryable:literal),)*) => {
        /// A stable, machine-readable error code.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code's stable string, as sent on the wire.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status that fits the code.
            #[must_use]
            pub const fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }

            /// Whether the same request, sent again later (with the same
            /// change id), may succeed. True for the transient failures:
            /// `unavailable` (the outcome is unknown), `rate_limited` and
            /// `internal` (a failing backend may recover; every write is
            /// idempotent by id, so trying again is safe). False for every
            /// refusal: the request is invalid, the balance or the id's state
            /// refuses it, or the credential does not allow it, and it will
            /// be refused again.
            #[must_use]
            pub const fn is_retryable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retryable,)*
                }
            }
        }
    };
}

// Columns: the code's stable string, its HTTP status, whether it is retryable
// (see `ErrorCode::is_retryable`).
error_codes! {
    /// A user, character, item, zone, owner or change id breaks its grammar.
    InvalidId = ("invalid_id", 400, false),
    /// A quantity is zero, negative or above the maximum.
    InvalidQuantity = ("invalid_quantity", 400, false),
    /// A change has no operations.
    EmptyChange = ("empty_change", 400, false),
    /// A change has more operations than allowed.
    TooManyOperations = ("too_many_operations", 400, false),
    /// A change touches more owners than allowed.
    TooManyOwners = ("too_many_owners", 400, false),
    /// A change touches the same stack (owner and item) twice.
    DuplicateItem = ("duplicate_item", 400, false),
    /// A trade names the same user on both sides.
    TradeWithSelf = ("trade_with_self", 400, false),
    /// A trade is not between exactly two users.
    TradeNotBetweenTwoUsers = ("trade_not_between_two_users", 400, false),
    /// A trade does not conserve every item.
    TradeUnbalanced = ("trade_unbalanced", 400, false),
    /// A request body or message is not well-formed, or has unknown fields.
    MalformedRequest = ("malformed_request", 400, false),
    /// A consume asks for more than the owner holds.
    InsufficientBalance = ("insufficient_balance", 409, false),
    /// A grant would take a balance above the maximum.
    BalanceOverflow = ("balance_overflow", 409, false),
    /// The same id already names different content.
    Conflict = ("conflict", 409, false),
    /// A change id that was already applied with other content (another kind,
    /// other operations or other owners): a change id names one change.
    ChangeConflict = ("change_conflict", 409, false),
    /// No or an invalid credential.
    Unauthorized = ("unauthorized", 401, false),
    /// The session token has expired: ask the token provider for a fresh
    /// one and try again (a session closed for it carries the close code
    /// [`CLOSE_TOKEN_EXPIRED`](crate::CLOSE_TOKEN_EXPIRED)).
    TokenExpired = ("token_expired", 401, false),
    /// A valid credential that does not allow this.
    Forbidden = ("forbidden", 403, false),
    /// Nothing exists under that id.
    NotFound = ("not_found", 404, false),
    /// No applied change has that id (never applied, refused, or no longer
    /// journaled).
    UnknownChange = ("unknown_change", 404, false),
    /// The thing existed and was burned.
    Burned = ("burned", 410, false),
    /// A message or body is larger than allowed.
    PayloadTooLarge = ("payload_too_large", 413, false),
    /// A batch names more ids than allowed.
    BatchTooLarge = ("batch_too_large", 413, false),
    /// A descriptor breaks a rule of the model (name, attributes, inputs).
    InvalidDescriptor = ("invalid_descriptor", 422, false),
    /// A crafted descriptor cannot be revised.
    DescriptorImmutable = ("descriptor_immutable", 409, false),
    /// The path exists but not with this HTTP method.
    MethodNotAllowed = ("method_not_allowed", 405, false),
    /// The request is well-formed but cannot be processed as asked.
    Unprocessable = ("unprocessable", 422, false),
    /// A revert would take back items an owner no longer holds; the message
    /// names each owner and item and how many are missing.
    RevertBlocked = ("revert_blocked", 409, false),
    /// The change cannot be reverted: it is a revert, a craft or a burn, or
    /// it was reverted already.
    NotRevertible = ("not_revertible", 409, false),
    /// Too many requests or messages in a short time; retry after a pause.
    RateLimited = ("rate_limited", 429, true),
    /// A backing store or bus is unreachable; retry later with the same id.
    Unavailable = ("unavailable", 503, true),
    /// A bug, a corrupt record or a failing backend; the message says what.
    /// Retryable: a backend failure may pass, and a retry with the same id is
    /// safe.
    Internal = ("internal", 500, true),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read from its stable string by a search of the table (a derived decoder
/// would compile a match of every name twice, for `&str` and for bytes).
impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = ErrorCode;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an error code")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ErrorCode, E> {
                ErrorCode::ALL
                    .iter()
                    .copied()
                    .find(|code| code.as_str() == v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Code)
    }
}

/// The body of every error a client receives: a code and a human message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorBody {
    /// A body with the given code and message.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a value from outside was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id breaks its grammar.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        /// Which kind of id.
        kind: &'static str,
        /// The offending value (truncated).
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A quantity outside `1..=MAX_QUANTITY`.
    #[error("quantity {0} is outside 1..={MAX_QUANTITY}")]
    InvalidQuantity(u64),
    /// A change without operations.
    #[error("a change needs at least one operation")]
    EmptyChange,
    /// A change with too many operations.
    #[error("a change has {0} operations; at most {MAX_OPERATIONS} are allowed")]
    TooManyOperations(usize),
    /// A change touching too many owners.
    #[error("a change touches {0} owners; at most {MAX_OWNERS_PER_CHANGE} are allowed")]
    TooManyOwners(usize),
    /// A stack touched twice in one change.
    #[error("{owner} {item} appears twice in one change; combine the operations")]
    DuplicateItem {
        /// The owner.
        owner: OwnerId,
        /// The item.
        item: ItemId,
    },
    /// A trade whose two sides are the same user.
    #[error("user {0} cannot trade with themself")]
    TradeWithSelf(UserId),
    /// A trade not between exactly two users.
    #[error("a trade must be between exactly two users, not {0}")]
    TradeNotBetweenTwoUsers(usize),
    /// A descriptor breaks a rule of the model; the message says which.
    #[error("invalid descriptor: {0}")]
    InvalidDescriptor(String),
    /// A descriptor larger than [`crate::MAX_DESCRIPTOR_BYTES`].
    #[error("descriptor is {0} bytes; at most {MAX_DESCRIPTOR_BYTES} are allowed")]
    DescriptorTooLarge(usize),
    /// A trade that creates or destroys items.
    #[error("a trade must conserve items, but {item} changes by {net}")]
    TradeUnbalanced {
        /// The item not conserved.
        item: ItemId,
        /// Its net change across the trade.
        net: i64,
    },
    /// A change whose kind is `revert` without naming the change it
    /// reverts (or with another id than the one derived from it), or naming
    /// one with another kind.
    #[error(
        "a change names the change it reverts exactly when its kind is revert, and a revert's id is derived from the original's"
    )]
    RevertReference,
    /// A WebSocket frame that is not exactly one known message.
    #[error("malformed message: {0}")]
    MalformedMessage(String),
    /// A WebSocket frame larger than its direction allows.
    #[error("message is {len} bytes; at most {max} are allowed")]
    MessageTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message that could not be encoded (a bug: every message type encodes).
    #[error("cannot encode message: {0}")]
    Encoding(String),
}

impl Error {
    /// The stable code of this error.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidId { .. } => ErrorCode::InvalidId,
            Self::InvalidQuantity(_) => ErrorCode::InvalidQuantity,
            Self::EmptyChange => ErrorCode::EmptyChange,
            Self::TooManyOperations(_) => ErrorCode::TooManyOperations,
            Self::TooManyOwners(_) => ErrorCode::TooManyOwners,
            Self::DuplicateItem { .. } => ErrorCode::DuplicateItem,
            Self::TradeWithSelf(_) => ErrorCode::TradeWithSelf,
            Self::TradeNotBetweenTwoUsers(_) => ErrorCode::TradeNotBetweenTwoUsers,
            Self::TradeUnbalanced { .. } => ErrorCode::TradeUnbalanced,
            Self::InvalidDescriptor(_) => ErrorCode::InvalidDescriptor,
            Self::DescriptorTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::MalformedMessage(_) | Self::RevertReference => ErrorCode::MalformedRequest,
            Self::MessageTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::Encoding(_) => ErrorCode::Internal,
        }
    }

    /// The wire body for this error.
    #[must_use]
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_serialize_as_their_string() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert_eq!(
                serde_json::to_string(code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_refusals_are_final() {
        let cases = [
            (ErrorCode::Unavailable, true),
            (ErrorCode::RateLimited, true),
            (ErrorCode::Internal, true),
            (ErrorCode::InvalidId, false),
            (ErrorCode::InvalidQuantity, false),
            (ErrorCode::MalformedRequest, false),
            (ErrorCode::InsufficientBalance, false),
            (ErrorCode::BalanceOverflow, false),
            (ErrorCode::Conflict, false),
            (ErrorCode::DescriptorImmutable, false),
            (ErrorCode::Burned, false),
            (ErrorCode::NotFound, false),
            (ErrorCode::Unauthorized, false),
            (ErrorCode::TokenExpired, false),
            (ErrorCode::Forbidden, false),
            (ErrorCode::PayloadTooLarge, false),
            (ErrorCode::BatchTooLarge, false),
        ];
        for (code, retryable) in cases {
            assert_eq!(code.is_retryable(), retryable, "{code}");
        }
        // Across the whole table the column agrees with the status: a server
        // failure or a rate limit may pass, any other client error is final.
        for code in ErrorCode::ALL {
            let status = code.http_status();
            assert_eq!(
                code.is_retryable(),
                status >= 500 || status == 429,
                "{code} ({status})"
            );
        }
    }
}
