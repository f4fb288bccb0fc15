//! Service-token authentication for the gameplay API.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use protocol::ErrorCode;
use subtle::ConstantTimeEq;

use crate::ApiError;

/// The shortest service token accepted, so a typo'd empty or trivial secret
/// cannot open the gameplay API.
pub const MIN_TOKEN_LEN: usize = 16;

/// The shared secret game servers present as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct ServiceToken(String);

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken(..)")
    }
}

impl ServiceToken {
    /// Wraps a secret of at least [`MIN_TOKEN_LEN`] bytes.
    pub fn new(secret: impl Into<String>) -> Result<Self, ApiError> {
        let secret = secret.into();
        if secret.len() < MIN_TOKEN_LEN {
            return Err(ApiError::new(
                ErrorCode::Unprocessable,
                format!("a service token needs at least {MIN_TOKEN_LEN} bytes"),
            ));
        }
        Ok(Self(secret))
    }

    /// A random token, for a node started without one.
    #[must_use]
    pub fn random() -> Self {
        Self(protocol::ChangeId::random().as_uuid().simple().to_string())
    }

    /// The secret, to show to the operator who started the node.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Checks the request's bearer token, in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing `Authorization: Bearer <service token>`",
                )
            })?;
        if bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the service token is not valid",
            ))
        }
    }
}
