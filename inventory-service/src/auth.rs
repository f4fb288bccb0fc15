//! Credentials: the service token of the gameplay API, and the signed session
//! tokens (JWTs) of game clients.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use protocol::ErrorCode;
use subtle::ConstantTimeEq;

use crate::{ApiError, Error};

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
    pub fn new(secret: impl Into<String>) -> Result<Self, Error> {
        let secret = secret.into();
        if secret.len() < MIN_TOKEN_LEN {
            return Err(Error::WeakSecret(format!(
                "a service token needs at least {MIN_TOKEN_LEN} bytes"
            )));
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

/// The claims of a client session token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    /// The player's account.
    sub: String,
    /// Expiry, in seconds since the Unix epoch.
    exp: u64,
}

/// Verifies (and, for tools and tests, issues) the signed tokens game clients
/// present in `Hello`: HS256 JWTs whose `sub` is the player's account, with a
/// mandatory `exp`.
#[derive(Clone)]
pub struct ClientTokens {
    decoding: jsonwebtoken::DecodingKey,
    encoding: jsonwebtoken::EncodingKey,
    validation: jsonwebtoken::Validation,
}

impl std::fmt::Debug for ClientTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTokens")
            .field("leeway_secs", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl ClientTokens {
    /// The default clock-skew allowance on `exp`, in seconds.
    pub const DEFAULT_LEEWAY_SECS: u64 = 30;

    /// Tokens signed with HS256 under `secret` (at least [`MIN_TOKEN_LEN`]
    /// bytes), with [`Self::DEFAULT_LEEWAY_SECS`] of leeway.
    pub fn hs256(secret: &[u8]) -> Result<Self, Error> {
        if secret.len() < MIN_TOKEN_LEN {
            return Err(Error::WeakSecret(format!(
                "a JWT secret needs at least {MIN_TOKEN_LEN} bytes"
            )));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = Self::DEFAULT_LEEWAY_SECS;
        Ok(Self {
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            validation,
        })
    }

    /// A random secret, for a node started without one (clients of such a
    /// node can only get tokens from [`Self::issue`] in the same process).
    #[must_use]
    pub fn random() -> Self {
        let secret = format!(
            "{}{}",
            protocol::ChangeId::random().as_uuid().simple(),
            protocol::ChangeId::random().as_uuid().simple()
        );
        Self::hs256(secret.as_bytes()).unwrap_or_else(|_| unreachable!("64 bytes"))
    }

    /// How far past `exp` a token is still accepted (clock skew).
    #[must_use]
    pub fn with_leeway(mut self, leeway: std::time::Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// The player a token names, if its signature, algorithm and expiry hold.
    pub fn verify(&self, token: &str) -> Result<protocol::UserId, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                let reason = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is not valid"
                    }
                    _ => "the token is not a valid session token",
                };
                ApiError::new(ErrorCode::Unauthorized, reason)
            })?;
        protocol::UserId::parse(data.claims.sub).map_err(|_| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "the token's subject is not a valid user id",
            )
        })
    }

    /// A token for `user` expiring `ttl` from now (negative in the past, for
    /// tests), signed with this secret.
    pub fn issue(&self, user: &protocol::UserId, ttl_secs: i64) -> Result<String, ApiError> {
        let exp = jsonwebtoken::get_current_timestamp().saturating_add_signed(ttl_secs);
        let claims = Claims {
            sub: user.as_str().to_owned(),
            exp,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot sign a token: {e}")))
    }
}
