//! Credentials: the service token of the gameplay API, the named tokens of
//! each role, and the signed session tokens (JWTs) of game clients.

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
}

/// What a credential may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A game server: apply changes, craft and burn, read, join and leave.
    GameServer,
    /// Support staff: read, history, custody.
    Support,
    /// An operator: what support does, plus reverts, grants (any change) and
    /// the operator audit log.
    Operator,
}

impl Role {
    /// The role's name, as written in the tokens file and the audit log.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GameServer => "game_server",
            Self::Support => "support",
            Self::Operator => "operator",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::GameServer, Self::Support, Self::Operator]
            .into_iter()
            .find(|role| role.as_str() == name)
    }

    /// Whether this role may do `permission`.
    #[must_use]
    pub const fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Apply => matches!(self, Self::GameServer | Self::Operator),
            Permission::Presence => matches!(self, Self::GameServer),
            Permission::Support => matches!(self, Self::Support | Self::Operator),
            Permission::Operate => matches!(self, Self::Operator),
        }
    }
}

/// What a route needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Permission {
    /// Read inventories and changes.
    Read,
    /// Apply changes, craft and burn.
    Apply,
    /// Join a player into a zone, or leave it.
    Presence,
    /// History and custody.
    Support,
    /// Reverts and the operator audit log.
    Operate,
}

/// Who called: the name of the credential and its role.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Caller {
    /// The credential's name (`service` for the service token).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// One named credential.
#[derive(Clone)]
struct Named {
    caller: Caller,
    secret: String,
}

/// Every credential of the HTTP API: the service token (role `game_server`,
/// name `service`) and the named tokens of a tokens file.
///
/// The tokens file has one credential per line, `<role> <name> <secret>`
/// (role `game_server`, `support` or `operator`; name 1 to 64 of `A-Z a-z
/// 0-9 _ -`; secret at least [`MIN_TOKEN_LEN`] bytes, no spaces); blank
/// lines and lines starting with `#` are skipped. Names and secrets are
/// unique.
#[derive(Clone, Default)]
pub struct Credentials {
    named: Vec<Named>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.named.iter().map(|n| &n.caller))
            .finish()
    }
}

impl Credentials {
    /// Parses a tokens file's text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut credentials = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::WeakSecret(format!("tokens file line {}: {why}", n + 1));
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [role, name, secret] = fields[..] else {
                return Err(bad("expected `<role> <name> <secret>`"));
            };
            let role = Role::parse(role)
                .ok_or_else(|| bad("the role is game_server, support or operator"))?;
            if protocol::ZoneId::parse(name).is_err() {
                return Err(bad("a name is 1 to 64 of A-Z a-z 0-9 _ -"));
            }
            if secret.len() < MIN_TOKEN_LEN {
                return Err(bad(&format!(
                    "a secret needs at least {MIN_TOKEN_LEN} bytes"
                )));
            }
            if credentials
                .named
                .iter()
                .any(|c| c.caller.name == name || c.secret == secret)
            {
                return Err(bad("names and secrets are unique"));
            }
            credentials.add(role, name, secret);
        }
        Ok(credentials)
    }

    /// Adds a credential.
    #[must_use]
    pub fn with(mut self, role: Role, name: &str, secret: &str) -> Self {
        self.add(role, name, secret);
        self
    }

    fn add(&mut self, role: Role, name: &str, secret: &str) {
        self.named.push(Named {
            caller: Caller {
                name: name.to_owned(),
                role,
            },
            secret: secret.to_owned(),
        });
    }

    /// The caller whose secret the request presents, comparing with every
    /// credential in constant time; `None` for no or an unknown token.
    fn identify(&self, service: &ServiceToken, presented: &str) -> Option<Caller> {
        let mut found = None;
        if bool::from(presented.as_bytes().ct_eq(service.0.as_bytes())) {
            found = Some(Caller {
                name: "service".to_owned(),
                role: Role::GameServer,
            });
        }
        for named in &self.named {
            if bool::from(presented.as_bytes().ct_eq(named.secret.as_bytes())) {
                found = Some(named.caller.clone());
            }
        }
        found
    }

    /// The caller the request's bearer token names, if any.
    pub(crate) fn identify_headers(
        &self,
        service: &ServiceToken,
        headers: &HeaderMap,
    ) -> Option<Caller> {
        bearer(headers).and_then(|presented| self.identify(service, presented))
    }

    /// Authenticates the request's bearer token and checks that its role
    /// allows `permission`: `unauthorized` for no or an unknown token,
    /// `forbidden` (with the caller, so that the attempt can be recorded)
    /// for a role that does not allow it.
    pub fn authorize(
        &self,
        service: &ServiceToken,
        headers: &HeaderMap,
        permission: Permission,
    ) -> Result<Caller, Denied> {
        let presented = bearer(headers).ok_or_else(|| {
            Denied::Unknown(ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>`",
            ))
        })?;
        let caller = self.identify(service, presented).ok_or_else(|| {
            Denied::Unknown(ApiError::new(
                ErrorCode::Unauthorized,
                "the token is not valid",
            ))
        })?;
        if caller.role.allows(permission) {
            Ok(caller)
        } else {
            let error = ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "a {} credential cannot do this ({permission:?})",
                    caller.role.as_str()
                ),
            );
            Err(Denied::Forbidden(caller, error))
        }
    }
}

/// Why a request was not authorized.
#[derive(Debug)]
pub enum Denied {
    /// No or an unknown token.
    Unknown(ApiError),
    /// A known caller whose role does not allow it.
    Forbidden(Caller, ApiError),
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unknown(e) | Denied::Forbidden(_, e) => e,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
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
        self.verify_session(token).map(|(user, _)| user)
    }

    /// The player a token names and how long from now a session may run on
    /// it (until its `exp` plus the leeway). An expired token is refused
    /// with [`ErrorCode::TokenExpired`].
    pub fn verify_session(
        &self,
        token: &str,
    ) -> Result<(protocol::UserId, std::time::Duration), ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::new(ErrorCode::TokenExpired, "the token has expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => ApiError::new(
                    ErrorCode::Unauthorized,
                    "the token's signature is not valid",
                ),
                _ => ApiError::new(
                    ErrorCode::Unauthorized,
                    "the token is not a valid session token",
                ),
            })?;
        let user = protocol::UserId::parse(data.claims.sub).map_err(|_| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "the token's subject is not a valid user id",
            )
        })?;
        let until = data.claims.exp.saturating_add(self.validation.leeway);
        let left = until.saturating_sub(jsonwebtoken::get_current_timestamp());
        Ok((user, std::time::Duration::from_secs(left)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn a_tokens_file_names_roles_and_refuses_bad_lines_by_number() {
        let credentials = Credentials::parse(
            "# comment\n\nsupport sam sam-secret-0123456789\noperator olga olga-secret-012345678\n",
        )
        .unwrap();
        let service = ServiceToken::new("service-token-0123456789").unwrap();
        let sam = credentials
            .authorize(
                &service,
                &headers("sam-secret-0123456789"),
                Permission::Support,
            )
            .unwrap();
        assert_eq!((sam.name.as_str(), sam.role), ("sam", Role::Support));
        let game = credentials
            .authorize(
                &service,
                &headers("service-token-0123456789"),
                Permission::Apply,
            )
            .unwrap();
        assert_eq!(game.role, Role::GameServer);
        for (text, why) in [
            ("support sam short", "16 bytes"),
            (
                "admin sam sam-secret-0123456789",
                "game_server, support or operator",
            ),
            ("support s@m sam-secret-0123456789", "a name"),
            ("support sam", "expected"),
            (
                "support sam sam-secret-0123456789\noperator sam other-secret-0123456",
                "unique",
            ),
        ] {
            let error = Credentials::parse(text).unwrap_err().to_string();
            assert!(
                error.contains(why) && error.contains("line"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn each_role_may_do_what_its_table_says_and_nothing_else() {
        use Permission::{Apply, Operate, Presence, Read, Support};
        let table = [
            (Role::GameServer, [true, true, true, false, false]),
            (Role::Support, [true, false, false, true, false]),
            (Role::Operator, [true, true, false, true, true]),
        ];
        for (role, allowed) in table {
            for (permission, allow) in [Read, Apply, Presence, Support, Operate]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.allows(permission), allow, "{role:?} {permission:?}");
            }
        }
        let credentials =
            Credentials::default().with(Role::Support, "sam", "sam-secret-0123456789");
        let service = ServiceToken::new("service-token-0123456789").unwrap();
        let denied = credentials
            .authorize(&service, &headers("sam-secret-0123456789"), Operate)
            .unwrap_err();
        assert!(matches!(denied, Denied::Forbidden(ref caller, _) if caller.name == "sam"));
        let unknown = credentials
            .authorize(&service, &headers("forged-0123456789abcdef"), Read)
            .unwrap_err();
        assert!(matches!(unknown, Denied::Unknown(_)));
    }
}
