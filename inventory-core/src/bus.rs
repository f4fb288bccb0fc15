//! The event bus port: per-player channels carrying [`ChangeEvent`]s between
//! server processes, with its written contract. Adapters: [`LocalBus`]
//! (in-process, the single-node default) and, behind the `redis` feature,
//! `RedisBus` (Redis pub/sub).

use async_trait::async_trait;
use protocol::{ChangeEvent, UserId};
use tokio::sync::mpsc;

use crate::Error;

mod local;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "test-util")]
pub mod conformance;
#[cfg(feature = "test-util")]
mod faulty;

#[cfg(feature = "test-util")]
pub use faulty::{FaultPlan, FaultyBus};
pub use local::{LocalBus, LocalConnection};
#[cfg(feature = "redis")]
pub use redis::{RedisBus, RedisBusConfig};

/// The channel prefix: a player's events travel on `inv:<user>`.
pub const DEFAULT_CHANNEL_PREFIX: &str = "inv:";

/// What a bus connection delivers to the process that owns it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BusMessage {
    /// An event published on `user`'s channel.
    Event {
        /// The channel's player.
        user: UserId,
        /// The event.
        event: ChangeEvent,
    },
    /// The connection was lost and is back, and every channel subscribed
    /// before is subscribed again. Events published in between may be lost:
    /// re-check every cached player against the store.
    Resubscribed,
}

/// The receiving end of a bus connection. Unbounded because the producer is a
/// connection reader that must never block (the `redis` crate's own push
/// channel is unbounded too); a process that falls behind notices it as
/// latency, and its caches stay correct.
pub type BusReceiver = mpsc::UnboundedReceiver<BusMessage>;

/// One process's connection to the propagation fabric.
///
/// # Contract
///
/// Every adapter passes the shared `bus_conformance` suite (feature
/// `test-util`) on a healthy connection; the propagation tests add faults.
///
/// - **Channels.** Each player has one channel. [`publish`](Self::publish)
///   sends an event on one player's channel; a change touching two players
///   (a trade) is published once on each. There are no pattern subscriptions.
/// - **At least once while connected.** An event published after a
///   [`subscribe`](Self::subscribe) returned, while the connection stays up,
///   reaches the connection's [`BusReceiver`] at least once. Duplicates are
///   possible; consumers discard them by version and change id.
/// - **No ordering promise across publishers.** Two processes publishing on one
///   channel may be seen in either order; consumers order by version.
/// - **Loss across disconnects.** Events published while a connection is down
///   are lost for it. The adapter reconnects with backoff, re-subscribes every
///   channel it still holds, then sends [`BusMessage::Resubscribed`]; the
///   consumer re-checks its caches. A `subscribe` or `unsubscribe` made while
///   the connection is down is remembered and applied on reconnection; it
///   answers `Ok` and the `Resubscribed` notice follows.
/// - **Subscriptions are a set.** Subscribing to a channel already held, or
///   unsubscribing from one not held, changes nothing. After `unsubscribe`
///   returns, an event already in flight may still arrive: consumers ignore
///   events for players they no longer hold.
/// - **Errors.** `publish` fails with [`Error::Bus`] when the event could not
///   be handed to the fabric; the event is then lost for every subscriber, who
///   recovers by gap detection or re-hydration.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes `event` on `user`'s channel.
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error>;

    /// Subscribes this connection to `user`'s channel.
    async fn subscribe(&self, user: &UserId) -> Result<(), Error>;

    /// Unsubscribes this connection from `user`'s channel.
    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error>;
}

#[async_trait]
impl<B: EventBus + ?Sized> EventBus for std::sync::Arc<B> {
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error> {
        (**self).publish(user, event).await
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), Error> {
        (**self).subscribe(user).await
    }

    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error> {
        (**self).unsubscribe(user).await
    }
}
