//! The Redis pub/sub bus: one channel per player (`inv:<user>`), no pattern
//! subscriptions, events as JSON.
//!
//! # Connections and reconnection
//!
//! Each [`RedisBus`] holds two [`ConnectionManager`]s: one publishes, one
//! subscribes over RESP3, whose push messages arrive in the order Redis sent
//! them. The `redis` crate reconnects a manager with exponential backoff when
//! its connection drops and tells us with a `Disconnection` push. It can also
//! re-subscribe by itself, but it does not say when that is done, and a
//! re-check of the caches must start only once the channels are back, or an
//! event published in between would be lost for good. So the bus keeps the set
//! of channels it should hold, and on a disconnection a supervisor task waits
//! for the connection (a `PING` retried with backoff), re-subscribes the whole
//! set, then sends [`BusMessage::Resubscribed`].
//!
//! A `RwLock` keeps that re-subscription pass apart from single
//! subscribes and unsubscribes: otherwise the pass could re-subscribe a channel
//! an unsubscribe just released, and leak it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use protocol::{ChangeEvent, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{Notify, RwLock, mpsc};

use super::{BusMessage, BusReceiver, DEFAULT_CHANNEL_PREFIX, EventBus};
use crate::Error;

/// How many channels one `SUBSCRIBE` names during a re-subscription pass.
const SUBSCRIBE_BATCH: usize = 1000;

/// Where and how a [`RedisBus`] connects.
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    url: String,
    channel_prefix: String,
    min_backoff: Duration,
    max_backoff: Duration,
    response_timeout: Duration,
    publish_timeout: Duration,
}

impl RedisBusConfig {
    /// A bus on the Redis server at `url` (`redis://host:port`), with the
    /// default channel prefix `inv:`, backoff from 50 ms to 2 s, a 5 s
    /// response timeout and a 1 s publish timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            channel_prefix: DEFAULT_CHANNEL_PREFIX.to_owned(),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(1),
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
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Sets how long a command may wait for its answer.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets how long a publish may wait, reconnection included. A publish
    /// comes after the store confirmed a change, so a game server must not
    /// hang on it while Redis is away: past this it fails and is counted, and
    /// caches recover on reconnection.
    #[must_use]
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_min_delay(self.min_backoff)
            .set_max_delay(self.max_backoff)
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.response_timeout))
    }
}

/// An [`EventBus`] over Redis pub/sub. Cloning shares the connections.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel_prefix", &self.inner.config.channel_prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RedisBusConfig,
    publisher: ConnectionManager,
    subscriber: ConnectionManager,
    /// The channels this bus should hold, by player.
    wanted: Mutex<BTreeSet<UserId>>,
    /// Players whose unsubscribe failed: released again on the next pass.
    released: Mutex<BTreeSet<UserId>>,
    /// Single commands take it shared, the re-subscription pass exclusive.
    pass: RwLock<()>,
    resync: Arc<Notify>,
    messages: mpsc::UnboundedSender<BusMessage>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the supervisor so it sees the bus is gone and ends.
        self.resync.notify_one();
    }
}

fn bus_error(context: &str, e: &redis::RedisError) -> Error {
    Error::Bus(format!("{context}: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is a single insert or remove: a poisoned set is consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisBus {
    /// Connects to Redis and returns the bus and the receiver of what it
    /// subscribes to.
    pub async fn connect(config: RedisBusConfig) -> Result<(Self, BusReceiver), Error> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| bus_error("invalid Redis URL", &e))?;
        let info = client.get_connection_info().clone();
        let resp3 = info.clone().set_redis_settings(
            info.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let resp3_client =
            redis::Client::open(resp3).map_err(|e| bus_error("invalid Redis URL", &e))?;

        let (messages, receiver) = mpsc::unbounded_channel();
        let resync = Arc::new(Notify::new());
        let push = {
            let messages = messages.clone();
            let resync = resync.clone();
            let prefix = config.channel_prefix.clone();
            move |info: PushInfo| -> Result<(), ()> {
                on_push(&prefix, info, &messages, &resync);
                Ok(())
            }
        };
        let subscriber = ConnectionManager::new_with_config(
            resp3_client,
            config.manager_config().set_push_sender(push),
        )
        .await
        .map_err(|e| bus_error("cannot connect the subscriber", &e))?;
        let publisher = ConnectionManager::new_with_config(client, config.manager_config())
            .await
            .map_err(|e| bus_error("cannot connect the publisher", &e))?;

        let inner = Arc::new(Inner {
            config,
            publisher,
            subscriber,
            wanted: Mutex::new(BTreeSet::new()),
            released: Mutex::new(BTreeSet::new()),
            pass: RwLock::new(()),
            resync: resync.clone(),
            messages,
        });
        tokio::spawn(supervise(Arc::downgrade(&inner), resync));
        Ok((Self { inner }, receiver))
    }

    fn channel(&self, user: &UserId) -> String {
        format!("{}{user}", self.inner.config.channel_prefix)
    }
}

/// Turns one push of the subscriber connection into a bus message.
fn on_push(
    prefix: &str,
    info: PushInfo,
    messages: &mpsc::UnboundedSender<BusMessage>,
    resync: &Notify,
) {
    match info.kind {
        PushKind::Message => {
            let [Value::BulkString(channel), Value::BulkString(payload)] = info.data.as_slice()
            else {
                tracing::warn!(data = ?info.data, "malformed pub/sub message");
                return;
            };
            let user = std::str::from_utf8(channel)
                .ok()
                .and_then(|c| c.strip_prefix(prefix))
                .and_then(|u| UserId::parse(u).ok());
            let Some(user) = user else {
                tracing::warn!(channel = %String::from_utf8_lossy(channel), "message on a channel that names no player");
                return;
            };
            match serde_json::from_slice::<ChangeEvent>(payload) {
                // The receiver is gone only when the bus owner shuts down.
                Ok(event) => {
                    let _ = messages.send(BusMessage::Event { user, event });
                }
                Err(e) => tracing::warn!(%user, error = %e, "undecodable event"),
            }
        }
        PushKind::Disconnection => {
            tracing::warn!("Redis subscriber connection lost; reconnecting");
            resync.notify_one();
        }
        _ => {}
    }
}

/// Re-subscribes everything after each disconnection, until the bus is dropped.
async fn supervise(bus: Weak<Inner>, resync: Arc<Notify>) {
    loop {
        resync.notified().await;
        let Some(inner) = bus.upgrade() else {
            return;
        };
        inner.resubscribe_all().await;
    }
}

impl Inner {
    /// Waits for the connection, then re-subscribes every wanted channel and
    /// releases every channel an unsubscribe failed to release.
    async fn resubscribe_all(&self) {
        loop {
            let ping = || async {
                redis::cmd("PING")
                    .query_async::<()>(&mut self.subscriber.clone())
                    .await
            };
            // Cannot fail: the backoff has no maximum number of attempts.
            let _ = ping
                .retry(self.config.backoff())
                .notify(|e, wait| tracing::debug!(error = %e, ?wait, "Redis not back yet"))
                .await;
            match self.resubscribe_pass().await {
                Ok(count) => {
                    tracing::info!(channels = count, "Redis subscriptions restored");
                    let _ = self.messages.send(BusMessage::Resubscribed);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "re-subscription failed; retrying"),
            }
        }
    }

    async fn resubscribe_pass(&self) -> Result<usize, redis::RedisError> {
        let _exclusive = self.pass.write().await;
        let prefix = &self.config.channel_prefix;
        let released: Vec<String> = lock(&self.released)
            .iter()
            .map(|u| format!("{prefix}{u}"))
            .collect();
        let mut subscriber = self.subscriber.clone();
        for batch in released.chunks(SUBSCRIBE_BATCH) {
            subscriber.unsubscribe(batch).await?;
        }
        lock(&self.released).clear();
        let wanted: Vec<String> = lock(&self.wanted)
            .iter()
            .map(|u| format!("{prefix}{u}"))
            .collect();
        for batch in wanted.chunks(SUBSCRIBE_BATCH) {
            subscriber.subscribe(batch).await?;
        }
        Ok(wanted.len())
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error> {
        let payload = serde_json::to_vec(event)
            .map_err(|e| Error::Bus(format!("cannot encode the event: {e}")))?;
        let mut publisher = self.inner.publisher.clone();
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.channel(user)).arg(payload);
        match tokio::time::timeout(
            self.inner.config.publish_timeout,
            command.query_async::<i64>(&mut publisher),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(bus_error("PUBLISH failed", &e)),
            Err(_) => Err(Error::Bus("PUBLISH timed out".to_owned())),
        }
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), Error> {
        let _shared = self.inner.pass.read().await;
        lock(&self.inner.wanted).insert(user.clone());
        lock(&self.inner.released).remove(user);
        if let Err(e) = self
            .inner
            .subscriber
            .clone()
            .subscribe(self.channel(user))
            .await
        {
            // Remembered in `wanted`: the pass after the reconnection
            // subscribes it, then announces `Resubscribed`.
            tracing::warn!(%user, error = %e, "SUBSCRIBE failed; will re-subscribe");
            self.inner.resync.notify_one();
        }
        Ok(())
    }

    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error> {
        let _shared = self.inner.pass.read().await;
        lock(&self.inner.wanted).remove(user);
        if let Err(e) = self
            .inner
            .subscriber
            .clone()
            .unsubscribe(self.channel(user))
            .await
        {
            tracing::warn!(%user, error = %e, "UNSUBSCRIBE failed; will release it again");
            lock(&self.inner.released).insert(user.clone());
            self.inner.resync.notify_one();
        }
        Ok(())
    }
}
