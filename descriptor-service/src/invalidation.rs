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
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::{AsyncCommands, PushInfo, PushKind};
    use tokio::sync::mpsc;

    use super::{Invalidation, InvalidationBus, async_trait};
    use crate::{DescriptorCache, Error, Metrics};

    const HEARTBEAT: Duration = Duration::from_secs(1);

    /// Invalidations over one Redis pub/sub channel (RESP3, with the
    /// connection manager's reconnection and automatic resubscription).
    #[derive(Clone)]
    pub struct RedisInvalidation {
        connection: ConnectionManager,
        channel: String,
        origin: String,
        // The heartbeat task runs while a clone of this lives.
        _heartbeat: Arc<()>,
    }

    impl std::fmt::Debug for RedisInvalidation {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisInvalidation")
                .field("channel", &self.channel)
                .field("origin", &self.origin)
                .finish_non_exhaustive()
        }
    }

    fn unavailable(e: &redis::RedisError) -> Error {
        Error::Unavailable(format!("redis: {e}"))
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
            let url = if url.contains("protocol=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&protocol=resp3")
            } else {
                format!("{url}?protocol=resp3")
            };
            let client = redis::Client::open(url).map_err(|e| unavailable(&e))?;
            let (sender, receiver) = mpsc::unbounded_channel::<PushInfo>();
            // Fail a publish fast, so that the write answers `unavailable`
            // and is retried, rather than hanging while Redis is down.
            let config = ConnectionManagerConfig::new()
                .set_push_sender(sender)
                .set_automatic_resubscription()
                .set_number_of_retries(2)
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1)));
            let mut connection = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| unavailable(&e))?;
            tokio::spawn(receive(receiver, origin.to_owned(), cache, metrics));
            connection
                .subscribe(channel)
                .await
                .map_err(|e| unavailable(&e))?;
            let alive = Arc::new(());
            tokio::spawn(heartbeat(connection.clone(), Arc::downgrade(&alive)));
            Ok(Self {
                connection,
                channel: channel.to_owned(),
                origin: origin.to_owned(),
                _heartbeat: alive,
            })
        }
    }

    /// Pings once a second. The connection manager reconnects (and
    /// resubscribes) only when a command fails or a few retries after a
    /// disconnection; a subscriber that sends nothing would otherwise stay
    /// deaf after an outage longer than those retries.
    async fn heartbeat(mut connection: ConnectionManager, alive: Weak<()>) {
        let mut interval = tokio::time::interval(HEARTBEAT);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while alive.strong_count() > 0 {
            interval.tick().await;
            if let Err(e) = redis::cmd("PING").query_async::<()>(&mut connection).await {
                tracing::debug!(error = %e, "invalidation heartbeat failed");
            }
        }
    }

    async fn receive(
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
        origin: String,
        cache: DescriptorCache,
        metrics: Metrics,
    ) {
        while let Some(push) = pushes.recv().await {
            match push.kind {
                PushKind::Message => {
                    let Some(payload) = push.data.get(1) else {
                        continue;
                    };
                    let message = redis::from_redis_value_ref::<Vec<u8>>(payload)
                        .ok()
                        .and_then(|bytes| serde_json::from_slice::<Invalidation>(&bytes).ok());
                    match message {
                        Some(message) if message.origin != origin => {
                            metrics.invalidations.with_label_values(&["remote"]).inc();
                            message.apply(&cache).await;
                        }
                        Some(_) => {}
                        None => tracing::warn!("ignoring a malformed invalidation message"),
                    }
                }
                PushKind::Subscribe | PushKind::Disconnection => {
                    tracing::info!(kind = ?push.kind, "invalidation subscription changed; flushing the cache");
                    cache.invalidate_all();
                }
                _ => {}
            }
        }
    }

    #[async_trait]
    impl InvalidationBus for RedisInvalidation {
        async fn publish(&self, invalidation: &Invalidation) -> Result<(), Error> {
            let payload =
                serde_json::to_vec(invalidation).map_err(|e| Error::Internal(e.to_string()))?;
            let mut connection = self.connection.clone();
            let _receivers: i64 = connection
                .publish(&self.channel, payload)
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(())
        }
    }
}
