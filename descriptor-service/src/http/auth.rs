//! Service tokens: who may read and who may write.

use std::collections::HashSet;
use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::Error;

/// Which bearer tokens grant what. Writes always need a write token; reads
/// are open unless [`AuthConfig::open_reads`] is off, in which case a read or
/// a write token is needed.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Tokens of game servers and crafting services: read and write.
    pub write_tokens: HashSet<String>,
    /// Tokens of tools and clients: read only.
    pub read_tokens: HashSet<String>,
    /// Whether reads need no token at all.
    pub open_reads: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the tokens themselves.
        f.debug_struct("AuthConfig")
            .field("write_tokens", &self.write_tokens.len())
            .field("read_tokens", &self.read_tokens.len())
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

/// What a request is allowed to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    Read,
    Write,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl AuthConfig {
    /// Reads open, writes with `token`.
    #[must_use]
    pub fn with_write_token(mut self, token: impl Into<String>) -> Self {
        self.write_tokens.insert(token.into());
        self
    }

    /// Adds a read-only token.
    #[must_use]
    pub fn with_read_token(mut self, token: impl Into<String>) -> Self {
        self.read_tokens.insert(token.into());
        self
    }

    /// Sets whether reads need a token.
    #[must_use]
    pub fn with_open_reads(mut self, open: bool) -> Self {
        self.open_reads = open;
        self
    }

    /// Checks the request's bearer token for `access`: no or an unknown token
    /// is `unauthorized`, a read token used to write is `forbidden`.
    pub(crate) fn check(&self, headers: &HeaderMap, access: Access) -> Result<(), Error> {
        if access == Access::Read && self.open_reads {
            return Ok(());
        }
        let token = bearer(headers).ok_or(Error::Unauthorized)?;
        if self.write_tokens.contains(token) {
            Ok(())
        } else if self.read_tokens.contains(token) {
            match access {
                Access::Read => Ok(()),
                Access::Write => Err(Error::Forbidden("write descriptors")),
            }
        } else {
            Err(Error::Unauthorized)
        }
    }
}
