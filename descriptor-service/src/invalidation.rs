//! Cross-replica cache invalidation: what one replica tells the others after
//! a create, a revision or a burn, and the Redis pub/sub transport.
//!
//! Delivery is at-least-once while connected and lossy across reconnects, so
//! a subscriber flushes its whole cache whenever its subscription is
//! (re-)established or lost: a flushed cache is slow for a moment, never
//! wrong. A replica that cannot publish fails the write with `unavailable`;
//! writes are idempotent and republish when retried.

use std::fmt;

use async_trait::async_trait;
use protocol::ItemId;
use serde::{Deserialize, Serialize};

use crate::{DescriptorCache, Error};

/// What happened to one descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationKind {
    /// Created: other replicas forget that the id was missing.
    Created,
    /// A catalog revision: other replicas drop the old revision.
    Revised,
    /// Burned: other replicas evict it.
    Burned,
}

/// One invalidation message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalidation {
    /// The replica that made the change (it does not re-apply its own).
    pub origin: String,
    /// The descriptor.
    pub id: ItemId,
    /// What happened.
    pub kind: InvalidationKind,
}

impl Invalidation {
    /// Applies a message from another replica to the local cache.
    pub async fn apply(&self, cache: &DescriptorCache) {
        match self.kind {
            InvalidationKind::Created => cache.created(&self.id, None).await,
            InvalidationKind::Revised | InvalidationKind::Burned => {
                cache.invalidate(&self.id).await
            }
        }
    }
}

/// Tells other replicas about a change.
///
/// # Contract
///
/// `publish` returns once the message is handed to the transport; an error
/// means other replicas may not hear of it (the caller fails the write so it
/// is retried). Replicas apply messages with [`Invalidation::apply`],
/// ignoring their own.
#[async_trait]
pub trait InvalidationBus: Send + Sync + fmt::Debug + 'static {
    /// Publishes one message.
    async fn publish(&self, invalidation: &Invalidation) -> Result<(), Error>;
}

/// A single replica: nobody to tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInvalidation;

#[async_trait]
impl InvalidationBus for NoInvalidation {
    async fn publish(&self, _: &Invalidation) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(feature = "redis")]
pub use self::redis_bus::RedisInvalidation;

#[cfg(feature = "redis")]
mod redis_bus {
    use std::time::Duration;

    use backends::{Publisher, RedisConfig, Subscriber, SubscriberEvent};
    use tokio::sync::mpsc;

    use super::{Invalidation, InvalidationBus, async_trait};
    use crate::{DescriptorCache, Error, Metrics};

    /// How long a publish (or any command) may wait. Short, so that a write
    /// whose invalidation cannot be sent answers `unavailable` and is
    /// retried, rather than hanging while Redis is down.
    const TIMEOUT: Duration = Duration::from_secs(1);

    /// Invalidations over one Redis pub/sub channel, on the shared
    /// [`backends::redis`] subscriber (which re-subscribes after a reconnect
    /// and then reports it) and publisher.
    #[derive(Clone, Debug)]
    pub struct RedisInvalidation {
        publisher: Publisher,
        // Holds the subscription: messages are applied while a clone lives.
        _subscriber: Subscriber,
        channel: String,
    }

    impl RedisInvalidation {
        /// Connects to `url`, subscribes to `channel`, and applies every
        /// message from other replicas to `cache` until dropped.
        pub async fn connect(
            url: &str,
            channel: &str,
            origin: &str,
            cache: DescriptorCache,
            metrics: Metrics,
        ) -> Result<Self, Error> {
            let config = RedisConfig::new(url)
                .with_response_timeout(TIMEOUT)
                .with_publish_timeout(TIMEOUT);
            let (events, receiver) = mpsc::unbounded_channel();
            let subscriber = Subscriber::connect(&config, move |event| {
                // The receiver ends only with the service.
                let _ = events.send(event);
            })
            .await?;
            tokio::spawn(receive(receiver, origin.to_owned(), cache, metrics));
            subscriber.subscribe(channel).await;
            Ok(Self {
                publisher: Publisher::connect(&config).await?,
                _subscriber: subscriber,
                channel: channel.to_owned(),
            })
        }
    }

    async fn receive(
        mut events: mpsc::UnboundedReceiver<SubscriberEvent>,
        origin: String,
        cache: DescriptorCache,
        metrics: Metrics,
    ) {
        while let Some(event) = events.recv().await {
            match event {
                SubscriberEvent::Message { payload, .. } => {
                    match serde_json::from_slice::<Invalidation>(&payload) {
                        Ok(message) if message.origin != origin => {
                            metrics.invalidations.with_label_values(&["remote"]).inc();
                            message.apply(&cache).await;
                        }
                        Ok(_) => {}
                        Err(_) => tracing::warn!("ignoring a malformed invalidation message"),
                    }
                }
                // Lost: invalidations from now on are missed. Resubscribed:
                // some may have been missed while the connection was down.
                SubscriberEvent::Disconnected | SubscriberEvent::Resubscribed => {
                    tracing::info!(
                        ?event,
                        "invalidation subscription changed; flushing the cache"
                    );
                    cache.invalidate_all();
                }
            }
        }
    }

    #[async_trait]
    impl InvalidationBus for RedisInvalidation {
        async fn publish(&self, invalidation: &Invalidation) -> Result<(), Error> {
            let payload =
                serde_json::to_vec(invalidation).map_err(|e| Error::Internal(e.to_string()))?;
            self.publisher.publish(&self.channel, &payload).await?;
            Ok(())
        }
    }
}
