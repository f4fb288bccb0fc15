//! The Redis pub/sub bus: one channel per player (`inv:<user>`), no pattern
//! subscriptions, events as JSON.
//!
//! The connections, the RESP3 pushes and the reconnection are the shared
//! [`backends::redis`] subscriber's and publisher's: after a disconnection the
//! subscriber re-subscribes every channel the bus still holds and only then
//! reports `Resubscribed`, which the bus passes on as
//! [`BusMessage::Resubscribed`] so that caches are re-checked once no event
//! can be missed any more. What is the bus's own: channel names and the
//! events' encoding.

use std::time::Duration;

use async_trait::async_trait;
use backends::{Publisher, RedisConfig, Subscriber, SubscriberEvent};
use protocol::{ChangeEvent, UserId};
use tokio::sync::mpsc;

use super::{BusMessage, BusReceiver, DEFAULT_CHANNEL_PREFIX, EventBus};
use crate::Error;

/// Where and how a [`RedisBus`] connects.
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    redis: RedisConfig,
    channel_prefix: String,
}

impl RedisBusConfig {
    /// A bus on the Redis server at `url` (`redis://host:port`), with the
    /// default channel prefix `inv:`, backoff from 50 ms to 2 s, a 5 s
    /// response timeout and a 1 s publish timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            redis: RedisConfig::new(url),
            channel_prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
        }
    }

    /// Sets the channel prefix (several deployments can share one Redis).
    #[must_use]
    pub fn with_channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.channel_prefix = prefix.into();
        self
    }

    /// Sets the reconnection backoff bounds.
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.redis = self.redis.with_backoff(min, max);
        self
    }

    /// Sets how long a command may wait for its answer.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.redis = self.redis.with_response_timeout(timeout);
        self
    }

    /// Sets how long a publish may wait, reconnection included. A publish
    /// comes after the store confirmed a change, so a game server must not
    /// hang on it while Redis is away: past this it fails and is counted, and
    /// caches recover on reconnection.
    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.redis = self.redis.with_publish_timeout(timeout);
        self
    }
}

/// An [`EventBus`] over Redis pub/sub. Cloning shares the connections.
#[derive(Clone, Debug)]
pub struct RedisBus {
    channel_prefix: String,
    publisher: Publisher,
    subscriber: Subscriber,
}

fn bus_error(e: &backends::Error) -> Error {
    Error::Bus(e.to_string())
}

impl RedisBus {
    /// Connects to Redis and returns the bus and the receiver of what it
    /// subscribes to.
    pub async fn connect(config: RedisBusConfig) -> Result<(Self, BusReceiver), Error> {
        let (messages, receiver) = mpsc::unbounded_channel();
        let prefix = config.channel_prefix.clone();
        let subscriber = Subscriber::connect(&config.redis, move |event| {
            on_event(&prefix, event, &messages);
        })
        .await
        .map_err(|e| bus_error(&e))?;
        let publisher = Publisher::connect(&config.redis)
            .await
            .map_err(|e| bus_error(&e))?;
        Ok((
            Self {
                channel_prefix: config.channel_prefix,
                publisher,
                subscriber,
            },
            receiver,
        ))
    }

    fn channel(&self, user: &UserId) -> String {
        format!("{}{user}", self.channel_prefix)
    }
}

/// Turns one report of the subscriber into a bus message.
fn on_event(prefix: &str, event: SubscriberEvent, messages: &mpsc::UnboundedSender<BusMessage>) {
    let message = match event {
        SubscriberEvent::Message { channel, payload } => {
            let Some(user) = channel
                .strip_prefix(prefix)
                .and_then(|u| UserId::parse(u).ok())
            else {
                tracing::warn!(%channel, "message on a channel that names no player");
                return;
            };
            match serde_json::from_slice::<ChangeEvent>(&payload) {
                Ok(event) => BusMessage::Event { user, event },
                Err(e) => {
                    tracing::warn!(%user, error = %e, "undecodable event");
                    return;
                }
            }
        }
        // Caches are re-checked once the channels are back, not before.
        SubscriberEvent::Disconnected => return,
        SubscriberEvent::Resubscribed => BusMessage::Resubscribed,
    };
    // The receiver is gone only when the bus owner shuts down.
    let _ = messages.send(message);
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| Error::Bus(format!("cannot encode the event: {e}")))?;
        self.publisher
            .publish(&self.channel(user), &payload)
            .await
            .map(drop)
            .map_err(|e| bus_error(&e))
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), Error> {
        self.subscriber.subscribe(&self.channel(user)).await;
        Ok(())
    }

    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error> {
        self.subscriber.unsubscribe(&self.channel(user)).await;
        Ok(())
    }
}
