//! The client WebSocket: the messages a game client and its zone node exchange,
//! their two encodings, and the limits a node enforces on what it reads.
//!
//! # Session
//!
//! 1. The client opens a WebSocket to its zone node, offering one of the
//!    subprotocols [`Encoding::Json`] (`inv.v1.json`, the default when none is
//!    offered) or [`Encoding::MessagePack`] (`inv.v1.msgpack`). JSON travels in
//!    text frames, MessagePack in binary frames.
//! 2. Its first message is [`ClientMessage::Hello`] with a signed token (a JWT
//!    whose `sub` is the player's account), because browsers cannot set
//!    headers on a WebSocket. Optionally it carries `resume`: the version the
//!    client holds of each owner.
//! 3. The node answers [`ServerMessage::Welcome`] (the user and every owner the
//!    session covers), then, for each owner, either the deltas the client
//!    missed (listed first in [`ServerMessage::Resumed`]) or a fresh
//!    [`ServerMessage::Snapshot`], then live [`ServerMessage::Delta`]s in version
//!    order.
//! 4. A client that detects a gap sends another `Hello` with its versions on the
//!    same socket; the node answers it exactly as a first `Hello` (it is a
//!    legitimate message, subject to the node's rate limit, not an offence).
//!
//! A client only ever receives its own player's owners: a delta carries one
//! [`OwnerDelta`], never the whole [`ChangeEvent`](crate::ChangeEvent), so a
//! trade partner's side of a trade is never sent. A change that touches two of
//! the player's own owners (account and character) arrives as two `Delta`
//! messages with the same `change_id`.
//!
//! The client can change nothing: `Hello` and `Ping` are the only messages that
//! exist, so anything else fails to decode and the node answers an
//! [`ErrorCode::MalformedRequest`] error (and closes after repeated offences).
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | one client frame | [`MAX_CLIENT_FRAME_BYTES`] (4 KiB): a JWT plus the versions of a player's owners fit easily |
//! | one server frame | [`MAX_SERVER_FRAME_BYTES`] (16 MiB): the largest snapshot a client accepts |
//!
//! Rates, idle timeouts and send-queue bounds are the node's configuration, not
//! part of the wire contract; breaking them is answered with
//! [`ErrorCode::RateLimited`] or a close.
//!
//! ```
//! use protocol::{ClientMessage, Encoding, ErrorCode};
//!
//! let hello = ClientMessage::Hello { token: "eyJ...".into(), resume: None };
//! let frame = protocol::encode_client(Encoding::Json, &hello)?;
//! assert_eq!(frame, br#"{"type":"hello","token":"eyJ..."}"#);
//! assert_eq!(protocol::decode_client(Encoding::Json, &frame)?, hello);
//!
//! let mutation = br#"{"type":"grant","item":"gold","qty":1000}"#;
//! let refused = protocol::decode_client(Encoding::Json, mutation).unwrap_err();
//! assert_eq!(refused.code(), ErrorCode::MalformedRequest);
//! # Ok::<(), protocol::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ChangeId, ChangeKind, Error, ErrorBody, OwnerDelta, OwnerId, OwnerSnapshot, UserId};
use crate::{ErrorCode, Version};

/// The largest frame a node reads from a client, in bytes. Bigger frames are
/// refused with [`ErrorCode::PayloadTooLarge`] before any parsing.
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 * 1024;

/// The largest frame a client reads from a node, in bytes: it bounds the size
/// of a snapshot.
pub const MAX_SERVER_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The WebSocket close code with which a node ends a session whose token
/// has expired (and answers a `Hello` with an expired token): the client
/// gets a fresh token and reconnects at once, resuming from its versions.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// A message from a game client to its zone node. Nothing here changes state.
///
/// Its `Debug` form hides the token, so that logging a message leaks no
/// credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Opens (or, on an open session, resumes) the session.
    Hello {
        /// The signed session token (a JWT; `sub` is the player's account).
        token: String,
        /// The version the client holds of each owner, when it has state to
        /// resume from; the node sends what is missing after those versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<BTreeMap<OwnerId, Version>>,
    },
    /// Keeps the connection alive; answered by [`ServerMessage::Pong`].
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
    },
}

impl std::fmt::Debug for ClientMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hello { token, resume } => f
                .debug_struct("Hello")
                .field("token", &format_args!("<{} bytes>", token.len()))
                .field("resume", resume)
                .finish(),
            Self::Ping { nonce } => f.debug_struct("Ping").field("nonce", nonce).finish(),
        }
    }
}

/// A message from a zone node to one game client.
///
/// On the wire a map whose first key is `type`. Decoding reads the type
/// first and then each field straight into its place, without buffering the
/// message (serde's internally tagged enums buffer every message whole,
/// which costs the browser bundle size and time); a message whose `type` is
/// not its first key is refused.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to an accepted `Hello`.
    Welcome {
        /// The authenticated player.
        user: UserId,
        /// Every owner this session covers: the player's account and
        /// characters. A client drops any owner it holds that is not listed.
        owners: Vec<OwnerId>,
    },
    /// Whole inventories. Each listed owner's state is replaced by the one
    /// given; the node sends this after `Welcome` and whenever it must resync
    /// an owner.
    Snapshot {
        /// One entry per owner, in ascending owner order.
        owners: Vec<OwnerSnapshot>,
    },
    /// The owners whose missed deltas follow, in answer to a `Hello` with
    /// `resume`; owners not listed get a `Snapshot` instead.
    Resumed {
        /// The resumed owners.
        owners: Vec<OwnerId>,
    },
    /// What one applied change did to one of the player's own owners.
    Delta {
        /// The change (the same for every owner the change touched).
        change_id: ChangeId,
        /// What the change meant.
        #[serde(default)]
        kind: ChangeKind,
        /// The owner, its new version and the stacks that moved.
        owner: OwnerDelta,
    },
    /// The answer to a `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// A refused message or a session-level failure; `unauthorized` and
    /// `forbidden` are followed by a close.
    Error(ErrorBody),
}

/// The `type` of a server message.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServerType {
    Welcome,
    Snapshot,
    Resumed,
    Delta,
    Pong,
    Error,
}

/// Every field name a server message has.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServerField {
    Type,
    User,
    Owners,
    ChangeId,
    Kind,
    Owner,
    Nonce,
    Code,
    Message,
    #[serde(other)]
    Unknown,
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ServerVisitor)
    }
}

struct ServerVisitor;

impl<'de> serde::de::Visitor<'de> for ServerVisitor {
    type Value = ServerMessage;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a server message: a map whose first key is `type`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        if !matches!(map.next_key::<ServerField>()?, Some(ServerField::Type)) {
            return Err(A::Error::custom("a server message starts with its `type`"));
        }
        let kind: ServerType = map.next_value()?;
        let (mut user, mut owners, mut snapshots) = (None, None, None);
        let (mut change_id, mut change_kind, mut owner) = (None, None, None);
        let (mut nonce, mut code, mut message) = (None, None, None);
        while let Some(field) = map.next_key::<ServerField>()? {
            match (field, kind) {
                (ServerField::User, ServerType::Welcome) => user = Some(map.next_value()?),
                (ServerField::Owners, ServerType::Welcome | ServerType::Resumed) => {
                    owners = Some(map.next_value()?);
                }
                (ServerField::Owners, ServerType::Snapshot) => snapshots = Some(map.next_value()?),
                (ServerField::ChangeId, ServerType::Delta) => change_id = Some(map.next_value()?),
                (ServerField::Kind, ServerType::Delta) => change_kind = Some(map.next_value()?),
                (ServerField::Owner, ServerType::Delta) => owner = Some(map.next_value()?),
                (ServerField::Nonce, ServerType::Pong) => nonce = Some(map.next_value()?),
                (ServerField::Code, ServerType::Error) => code = Some(map.next_value()?),
                (ServerField::Message, ServerType::Error) => message = Some(map.next_value()?),
                (ServerField::Type, _) => return Err(A::Error::duplicate_field("type")),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = A::Error::missing_field;
        Ok(match kind {
            ServerType::Welcome => ServerMessage::Welcome {
                user: user.ok_or_else(|| missing("user"))?,
                owners: owners.ok_or_else(|| missing("owners"))?,
            },
            ServerType::Snapshot => ServerMessage::Snapshot {
                owners: snapshots.ok_or_else(|| missing("owners"))?,
            },
            ServerType::Resumed => ServerMessage::Resumed {
                owners: owners.ok_or_else(|| missing("owners"))?,
            },
            ServerType::Delta => ServerMessage::Delta {
                change_id: change_id.ok_or_else(|| missing("change_id"))?,
                kind: change_kind.unwrap_or_default(),
                owner: owner.ok_or_else(|| missing("owner"))?,
            },
            ServerType::Pong => ServerMessage::Pong {
                nonce: nonce.ok_or_else(|| missing("nonce"))?,
            },
            ServerType::Error => ServerMessage::Error(ErrorBody {
                code: code.ok_or_else(|| missing("code"))?,
                message: message.ok_or_else(|| missing("message"))?,
            }),
        })
    }
}

/// How messages are encoded on one connection, negotiated through the
/// WebSocket subprotocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Encoding {
    /// Compact JSON in text frames: the default.
    #[default]
    Json,
    /// MessagePack in binary frames, with the same shape as the JSON: structs
    /// as maps with the same field names, ids and change ids as strings, so
    /// that generic MessagePack decoders (JavaScript ones included) read it.
    MessagePack,
}

impl Encoding {
    /// Every encoding, in order of preference.
    pub const ALL: [Self; 2] = [Self::Json, Self::MessagePack];

    /// Whether this build can encode and decode it (MessagePack needs the
    /// `msgpack` feature).
    #[must_use]
    pub const fn is_built_in(self) -> bool {
        match self {
            Self::Json => true,
            Self::MessagePack => cfg!(feature = "msgpack"),
        }
    }

    /// The WebSocket subprotocol name.
    #[must_use]
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => "inv.v1.json",
            Self::MessagePack => "inv.v1.msgpack",
        }
    }

    /// The encoding a subprotocol name stands for, if any.
    #[must_use]
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.subprotocol() == name)
    }

    /// Whether frames are text (JSON) rather than binary.
    #[must_use]
    pub const fn is_text(self) -> bool {
        matches!(self, Self::Json)
    }

    fn encode<T: Serialize>(self, message: &T) -> Result<Vec<u8>, Error> {
        match self {
            Self::Json => serde_json::to_vec(message).map_err(|e| Error::Encoding(e.to_string())),
            #[cfg(not(feature = "msgpack"))]
            Self::MessagePack => Err(Error::Encoding(NO_MSGPACK.into())),
            #[cfg(feature = "msgpack")]
            Self::MessagePack => {
                let mut out = Vec::new();
                let mut serializer = rmp_serde::Serializer::new(&mut out)
                    .with_struct_map()
                    .with_human_readable();
                message
                    .serialize(&mut serializer)
                    .map_err(|e| Error::Encoding(e.to_string()))?;
                Ok(out)
            }
        }
    }

    fn decode<T: DeserializeOwned>(self, frame: &[u8], max: usize) -> Result<T, Error> {
        if frame.len() > max {
            return Err(Error::MessageTooLarge {
                len: frame.len(),
                max,
            });
        }
        match self {
            Self::Json => {
                serde_json::from_slice(frame).map_err(|e| Error::MalformedMessage(e.to_string()))
            }
            #[cfg(not(feature = "msgpack"))]
            Self::MessagePack => Err(Error::MalformedMessage(NO_MSGPACK.into())),
            #[cfg(feature = "msgpack")]
            Self::MessagePack => {
                // A reader over a shrinking slice, so that what is left after
                // the message can be checked; it reads strings through a
                // bounded `take`, never preallocating a declared length.
                let mut rest = frame;
                let message = T::deserialize(
                    &mut rmp_serde::Deserializer::new(&mut rest).with_human_readable(),
                )
                .map_err(|e| Error::MalformedMessage(e.to_string()))?;
                if rest.is_empty() {
                    Ok(message)
                } else {
                    Err(Error::MalformedMessage(
                        "trailing bytes after the message".into(),
                    ))
                }
            }
        }
    }
}

/// What a build without the `msgpack` feature answers for MessagePack.
#[cfg(not(feature = "msgpack"))]
const NO_MSGPACK: &str =
    "this build has no MessagePack support (the protocol crate's `msgpack` feature)";

/// Encodes a message for the client to send.
pub fn encode_client(encoding: Encoding, message: &ClientMessage) -> Result<Vec<u8>, Error> {
    encoding.encode(message)
}

/// Decodes a client frame on the node, refusing frames over
/// [`MAX_CLIENT_FRAME_BYTES`] ([`ErrorCode::PayloadTooLarge`]) and anything that
/// is not exactly a [`ClientMessage`] ([`ErrorCode::MalformedRequest`]).
pub fn decode_client(encoding: Encoding, frame: &[u8]) -> Result<ClientMessage, Error> {
    encoding.decode(frame, MAX_CLIENT_FRAME_BYTES)
}

/// Encodes a message for the node to send.
pub fn encode_server(encoding: Encoding, message: &ServerMessage) -> Result<Vec<u8>, Error> {
    encoding.encode(message)
}

/// Decodes a node frame on the client, refusing frames over
/// [`MAX_SERVER_FRAME_BYTES`].
pub fn decode_server(encoding: Encoding, frame: &[u8]) -> Result<ServerMessage, Error> {
    encoding.decode(frame, MAX_SERVER_FRAME_BYTES)
}

impl From<&Error> for ServerMessage {
    fn from(error: &Error) -> Self {
        Self::Error(error.to_body())
    }
}

impl ServerMessage {
    /// An error message with the given code.
    #[must_use]
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error(ErrorBody::new(code, message))
    }
}

#[cfg(test)]
mod tests;
