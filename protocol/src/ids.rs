//! Identifiers and their grammar.
//!
//! # Grammar
//!
//! [`UserId`], [`CharacterId`], [`ItemId`] and [`ZoneId`] share one grammar: **1 to
//! [`ID_MAX_LEN`] (64) ASCII characters from `A-Z a-z 0-9 _ -`**. The grammar is
//! deliberately narrow so that an id is safe everywhere it is used verbatim: as a
//! MongoDB field name (no `.`, no leading `$`, no NUL), as a Redis channel
//! suffix (no glob characters `* ? [ ]`, no spaces), in a SQLite key, in a URL
//! path segment and in the owner-id string form below (no `:`).
//!
//! An [`OwnerId`] names one inventory: a user's **account** scope, or one of the
//! user's **characters**. Its string form is `a:<user>` or `c:<user>:<character>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The maximum length, in bytes, of a user, character, item or zone id.
pub const ID_MAX_LEN: usize = 64;

fn check_grammar(kind: &'static str, value: &str) -> Result<(), Error> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.len() > ID_MAX_LEN {
        "is longer than 64 bytes"
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "may only contain A-Z a-z 0-9 _ -"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId {
        kind,
        value: value.chars().take(ID_MAX_LEN + 8).collect(),
        reason,
    })
}

macro_rules! grammar_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an id, checking the grammar described in the module docs.
            pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                check_grammar($kind, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self, Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

grammar_id!(
    /// A player's account: the user every owner belongs to, and the key of the
    /// player's propagation channel.
    UserId,
    "user id"
);
grammar_id!(
    /// One character of a user's account.
    CharacterId,
    "character id"
);
grammar_id!(
    /// An item: a stackable resource (`wood`) or one unique crafted item whose
    /// descriptor lives in the descriptor service.
    ItemId,
    "item id"
);
grammar_id!(
    /// A game zone a zone node hosts (a map instance, a crafting or trading
    /// service: anything that needs a player's inventory while the player is
    /// there), as named in `/v1/zones/{zone}/players/{user}`.
    ZoneId,
    "zone id"
);

/// One inventory: a user's account scope or one of the user's characters.
///
/// Serialized as its string form, `a:<user>` or `c:<user>:<character>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum OwnerId {
    /// The account-wide inventory of a user (a bank or stash).
    Account(UserId),
    /// The inventory of one character of a user.
    Character(UserId, CharacterId),
}

impl OwnerId {
    /// The account scope of `user`.
    #[must_use]
    pub fn account(user: UserId) -> Self {
        Self::Account(user)
    }

    /// The inventory of `character` of `user`.
    #[must_use]
    pub fn character(user: UserId, character: CharacterId) -> Self {
        Self::Character(user, character)
    }

    /// The user (account) this inventory belongs to.
    #[must_use]
    pub fn user(&self) -> &UserId {
        match self {
            Self::Account(user) | Self::Character(user, _) => user,
        }
    }

    /// Parses the string form `a:<user>` or `c:<user>:<character>`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidId {
            kind: "owner id",
            value: value.chars().take(2 * ID_MAX_LEN + 8).collect(),
            reason: "must be a:<user> or c:<user>:<character>",
        };
        let mut parts = value.split(':');
        let owner = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("a"), Some(user), None, None) => Self::Account(UserId::parse(user)?),
            (Some("c"), Some(user), Some(character), None) => {
                Self::Character(UserId::parse(user)?, CharacterId::parse(character)?)
            }
            _ => return Err(invalid()),
        };
        Ok(owner)
    }
}

impl TryFrom<String> for OwnerId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::parse(&value)
    }
}

impl FromStr for OwnerId {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl From<OwnerId> for String {
    fn from(owner: OwnerId) -> String {
        owner.to_string()
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account(user) => write!(f, "a:{user}"),
            Self::Character(user, character) => write!(f, "c:{user}:{character}"),
        }
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({self})")
    }
}

/// The unique id of one change, chosen by the caller (a UUID).
///
/// A retried change must reuse its id: stores and caches use it to apply each
/// change exactly once.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeId(uuid::Uuid);

impl ChangeId {
    /// A new random (v4) change id.
    #[cfg(feature = "random")]
    #[must_use]
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// The all-zero id, for examples and tests.
    #[must_use]
    pub const fn nil() -> Self {
        Self(uuid::Uuid::nil())
    }

    /// Wraps an existing UUID.
    #[must_use]
    pub const fn from_uuid(uuid: uuid::Uuid) -> Self {
        Self(uuid)
    }

    /// A change id from 16 raw bytes (deterministic ids in simulations).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }

    /// The underlying UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    /// Parses the hyphenated UUID form.
    pub fn parse(value: &str) -> Result<Self, Error> {
        uuid::Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| Error::InvalidId {
                kind: "change id",
                value: value.chars().take(48).collect(),
                reason: "must be a UUID",
            })
    }
}

impl FromStr for ChangeId {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChangeId({})", self.0)
    }
}

#[cfg(test)]
mod tests;
