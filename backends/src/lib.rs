//! The foundations the stores and buses of the workspace share, so that each
//! adapter keeps only what is its own (its schema and SQL, its channel names
//! and payloads).
//!
//! - [`sqlite`] (feature `sqlite`): one SQLite file in WAL mode with one
//!   durability setting ([`Synchronous`], `FULL` unless the operator lowers
//!   it), migrations keyed by `user_version`, ONE writer thread that commits
//!   every queued request in one transaction (group commit: a batch limit and
//!   a linger) and answers only after the commit, and a pool of read-only
//!   connections.
//! - [`redis`] (feature `redis`): a pub/sub [`Subscriber`] over RESP3 that
//!   remembers its channels, re-subscribes all of them after a reconnect and
//!   only then signals [`SubscriberEvent::Resubscribed`], and a [`Publisher`]
//!   whose publish fails fast while Redis is away.

mod error;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::Error;
#[cfg(feature = "redis")]
pub use redis::{Publisher, RedisConfig, Subscriber, SubscriberEvent};
#[cfg(feature = "sqlite")]
pub use sqlite::{BatchWriter, Database, SqliteConfig, SqliteStats, Synchronous};
