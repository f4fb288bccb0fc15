//! The one table of stable error codes, and this crate's validation error.
//!
//! Every error a client can see, over HTTP or WebSocket, carries an
//! [`ErrorCode`]: a stable snake_case string that never changes meaning once
//! released, and the HTTP status that fits it. Services add codes here, never
//! their own.

use serde::{Deserialize, Serialize};

use crate::{
    ItemId, MAX_DESCRIPTOR_BYTES, MAX_OPERATIONS, MAX_OWNERS_PER_CHANGE, MAX_QUANTITY, OwnerId,
    UserId,
};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal),)*) => {
        /// A stable, machine-readable error code.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
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
        }
    };
}

error_codes! {
    /// A user, character, item, zone, owner or change id breaks its grammar.
    InvalidId = ("invalid_id", 400),
    /// A quantity is zero, negative or above the maximum.
    InvalidQuantity = ("invalid_quantity", 400),
    /// A change has no operations.
    EmptyChange = ("empty_change", 400),
    /// A change has more operations than allowed.
    TooManyOperations = ("too_many_operations", 400),
    /// A change touches more owners than allowed.
    TooManyOwners = ("too_many_owners", 400),
    /// A change touches the same stack (owner and item) twice.
    DuplicateItem = ("duplicate_item", 400),
    /// A trade names the same user on both sides.
    TradeWithSelf = ("trade_with_self", 400),
    /// A trade is not between exactly two users.
    TradeNotBetweenTwoUsers = ("trade_not_between_two_users", 400),
    /// A trade does not conserve every item.
    TradeUnbalanced = ("trade_unbalanced", 400),
    /// A request body or message is not well-formed, or has unknown fields.
    MalformedRequest = ("malformed_request", 400),
    /// A consume asks for more than the owner holds.
    InsufficientBalance = ("insufficient_balance", 409),
    /// A grant would take a balance above the maximum.
    BalanceOverflow = ("balance_overflow", 409),
    /// The same id already names different content.
    Conflict = ("conflict", 409),
    /// No or an invalid credential.
    Unauthorized = ("unauthorized", 401),
    /// A valid credential that does not allow this.
    Forbidden = ("forbidden", 403),
    /// Nothing exists under that id.
    NotFound = ("not_found", 404),
    /// The thing existed and was burned.
    Burned = ("burned", 410),
    /// A message or body is larger than allowed.
    PayloadTooLarge = ("payload_too_large", 413),
    /// A batch names more ids than allowed.
    BatchTooLarge = ("batch_too_large", 413),
    /// A descriptor breaks a rule of the model (name, attributes, inputs).
    InvalidDescriptor = ("invalid_descriptor", 422),
    /// A crafted descriptor cannot be revised.
    DescriptorImmutable = ("descriptor_immutable", 409),
    /// The path exists but not with this HTTP method.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// The request is well-formed but cannot be processed as asked.
    Unprocessable = ("unprocessable", 422),
    /// Too many requests or messages in a short time.
    RateLimited = ("rate_limited", 429),
    /// A backing store or bus is unreachable; retry later with the same id.
    Unavailable = ("unavailable", 503),
    /// A bug or a corrupt record; the message says what.
    Internal = ("internal", 500),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
            Self::MalformedMessage(_) => ErrorCode::MalformedRequest,
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
}
