//! Redis pub/sub: a [`Subscriber`] that keeps its channels across reconnects
//! and a [`Publisher`] that fails fast while Redis is away.
//!
//! # Connections and reconnection
//!
//! Each side holds its own [`ConnectionManager`]; the subscriber's speaks
//! RESP3, whose push messages arrive in the order Redis sent them. The `redis`
//! crate reconnects a manager with exponential backoff when its connection
//! drops and tells us with a `Disconnection` push. It can also re-subscribe by
//! itself, but it does not say when that is done, and a consumer that must
//! re-check what it may have missed can start only once the channels are
//! back, or a message published in between would be lost for good. So the
//! subscriber keeps the set of channels it should hold, and on a disconnection
//! (reported as [`SubscriberEvent::Disconnected`]) a supervisor task waits for
//! the connection (a `PING` retried with backoff, which also makes the manager
//! reconnect however long the outage), re-subscribes the whole set, then
//! reports [`SubscriberEvent::Resubscribed`].
//!
//! A `RwLock` keeps that re-subscription pass apart from single subscribes
//! and unsubscribes: otherwise the pass could re-subscribe a channel an
//! unsubscribe just released, and leak it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::{Notify, RwLock};

use crate::Error;

/// How many channels one `SUBSCRIBE` names during a re-subscription pass.
const SUBSCRIBE_BATCH: usize = 1000;

/// Where and how to connect to Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    url: String,
    min_backoff: Duration,
    max_backoff: Duration,
    response_timeout: Duration,
    publish_timeout: Duration,
}

impl RedisConfig {
    /// The Redis server at `url` (`redis://host:port`), with backoff from
    /// 50 ms to 2 s, a 5 s response timeout and a 1 s publish timeout.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(1),
        }
    }

    /// Sets the reconnection backoff bounds.
    #[must_use]
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max;
        self
    }

    /// Sets how long a command (and a connection attempt) may wait for its
    /// answer.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets how long a publish may wait, reconnection included: past this it
    /// fails, so that a caller never hangs while Redis is away.
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

    fn client(&self, protocol: ProtocolVersion) -> Result<redis::Client, Error> {
        let invalid = |source| Error::Redis {
            context: "invalid Redis URL",
            source,
        };
        let info = redis::Client::open(self.url.as_str())
            .map_err(invalid)?
            .get_connection_info()
            .clone();
        let settings = info.redis_settings().clone().set_protocol(protocol);
        redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)
    }
}

/// What a [`Subscriber`] reports to its owner, in the order it happened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SubscriberEvent {
    /// A message published on a subscribed channel.
    Message {
        /// The channel.
        channel: String,
        /// The message as published.
        payload: Vec<u8>,
    },
    /// The connection was lost; the subscriber is reconnecting. Messages
    /// published from now until [`Resubscribed`](Self::Resubscribed) are lost.
    Disconnected,
    /// The connection is back and every channel held before is subscribed
    /// again. Messages published in between may have been lost: re-check
    /// whatever they would have told.
    Resubscribed,
}

type OnEvent = dyn Fn(SubscriberEvent) + Send + Sync;

/// A pub/sub subscriber on its own RESP3 connection. Cloning shares the
/// connection and its channels; dropping the last clone ends its supervisor.
///
/// # Contract
///
/// - A message published on a channel after [`subscribe`](Self::subscribe)
///   returned, while the connection stays up, is reported at least once.
/// - Subscriptions are a set: subscribing twice or unsubscribing a channel
///   not held changes nothing. After `unsubscribe` returns, a message already
///   in flight may still be reported.
/// - A `subscribe` or `unsubscribe` that fails (Redis is away) is remembered
///   and applied on reconnection, before `Resubscribed` is reported.
/// - After every disconnection: `Disconnected`, then, once every channel it
///   still holds is subscribed again, `Resubscribed`.
#[derive(Clone)]
pub struct Subscriber {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("channels", &lock(&self.inner.wanted).len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RedisConfig,
    connection: ConnectionManager,
    /// The channels this subscriber should hold.
    wanted: Mutex<BTreeSet<String>>,
    /// Channels whose unsubscribe failed: released again on the next pass.
    released: Mutex<BTreeSet<String>>,
    /// Single commands take it shared, the re-subscription pass exclusive.
    pass: RwLock<()>,
    resync: Arc<Notify>,
    on_event: Arc<OnEvent>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the supervisor so it sees the subscriber is gone and ends.
        self.resync.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is a single insert or remove: a poisoned set is consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Subscriber {
    /// Connects to Redis. `on_event` hears every [`SubscriberEvent`]; it runs
    /// on the connection's reader (or the supervisor) and must not block:
    /// hand the event to a channel or apply it at once.
    pub async fn connect(
        config: &RedisConfig,
        on_event: impl Fn(SubscriberEvent) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let on_event: Arc<OnEvent> = Arc::new(on_event);
        let resync = Arc::new(Notify::new());
        let push = {
            let on_event = Arc::clone(&on_event);
            let resync = Arc::clone(&resync);
            move |info: PushInfo| -> Result<(), ()> {
                on_push(info, &*on_event, &resync);
                Ok(())
            }
        };
        let connection = ConnectionManager::new_with_config(
            config.client(ProtocolVersion::RESP3)?,
            config.manager_config().set_push_sender(push),
        )
        .await
        .map_err(|source| Error::Redis {
            context: "cannot connect the subscriber",
            source,
        })?;
        let inner = Arc::new(Inner {
            config: config.clone(),
            connection,
            wanted: Mutex::new(BTreeSet::new()),
            released: Mutex::new(BTreeSet::new()),
            pass: RwLock::new(()),
            resync: Arc::clone(&resync),
            on_event,
        });
        tokio::spawn(supervise(Arc::downgrade(&inner), resync));
        Ok(Self { inner })
    }

    /// Subscribes to `channel`. While Redis is away the channel is
    /// remembered and subscribed on reconnection.
    pub async fn subscribe(&self, channel: &str) {
        let _shared = self.inner.pass.read().await;
        lock(&self.inner.wanted).insert(channel.to_owned());
        lock(&self.inner.released).remove(channel);
        if let Err(e) = self.inner.connection.clone().subscribe(channel).await {
            // Remembered in `wanted`: the pass after the reconnection
            // subscribes it, then reports `Resubscribed`.
            tracing::warn!(channel, error = %e, "SUBSCRIBE failed; will re-subscribe");
            self.inner.resync.notify_one();
        }
    }

    /// Unsubscribes from `channel`. While Redis is away the channel is
    /// remembered and released on reconnection.
    pub async fn unsubscribe(&self, channel: &str) {
        let _shared = self.inner.pass.read().await;
        lock(&self.inner.wanted).remove(channel);
        if let Err(e) = self.inner.connection.clone().unsubscribe(channel).await {
            tracing::warn!(channel, error = %e, "UNSUBSCRIBE failed; will release it again");
            lock(&self.inner.released).insert(channel.to_owned());
            self.inner.resync.notify_one();
        }
    }
}

/// Reports one push of the subscriber connection.
fn on_push(info: PushInfo, on_event: &OnEvent, resync: &Notify) {
    match info.kind {
        PushKind::Message => {
            let mut data = info.data.into_iter();
            let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload)), None) =
                (data.next(), data.next(), data.next())
            else {
                tracing::warn!("malformed pub/sub message");
                return;
            };
            match String::from_utf8(channel) {
                Ok(channel) => on_event(SubscriberEvent::Message { channel, payload }),
                Err(e) => tracing::warn!(error = %e, "message on a channel that is not UTF-8"),
            }
        }
        PushKind::Disconnection => {
            tracing::warn!("Redis subscriber connection lost; reconnecting");
            on_event(SubscriberEvent::Disconnected);
            resync.notify_one();
        }
        _ => {}
    }
}

/// Re-subscribes everything after each disconnection, until the subscriber
/// is dropped.
async fn supervise(subscriber: Weak<Inner>, resync: Arc<Notify>) {
    loop {
        resync.notified().await;
        let Some(inner) = subscriber.upgrade() else {
            return;
        };
        inner.resubscribe_all().await;
    }
}

impl Inner {
    /// Waits for the connection, then re-subscribes every wanted channel,
    /// releases every channel an unsubscribe failed to release, and reports
    /// `Resubscribed`.
    async fn resubscribe_all(&self) {
        loop {
            let ping = || async {
                redis::cmd("PING")
                    .query_async::<()>(&mut self.connection.clone())
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
                    (self.on_event)(SubscriberEvent::Resubscribed);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "re-subscription failed; retrying"),
            }
        }
    }

    async fn resubscribe_pass(&self) -> Result<usize, redis::RedisError> {
        let _exclusive = self.pass.write().await;
        let released: Vec<String> = lock(&self.released).iter().cloned().collect();
        let mut connection = self.connection.clone();
        for batch in released.chunks(SUBSCRIBE_BATCH) {
            connection.unsubscribe(batch).await?;
        }
        lock(&self.released).clear();
        let wanted: Vec<String> = lock(&self.wanted).iter().cloned().collect();
        for batch in wanted.chunks(SUBSCRIBE_BATCH) {
            connection.subscribe(batch).await?;
        }
        Ok(wanted.len())
    }
}

/// Publishes on its own connection, with a timeout on each publish.
#[derive(Clone)]
pub struct Publisher {
    connection: ConnectionManager,
    timeout: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Connects to Redis.
    pub async fn connect(config: &RedisConfig) -> Result<Self, Error> {
        let connection = ConnectionManager::new_with_config(
            config.client(ProtocolVersion::RESP2)?,
            config.manager_config(),
        )
        .await
        .map_err(|source| Error::Redis {
            context: "cannot connect the publisher",
            source,
        })?;
        Ok(Self {
            connection,
            timeout: config.publish_timeout,
        })
    }

    /// Publishes `payload` on `channel` and answers how many subscribers
    /// Redis handed it to. Fails once the publish timeout has passed
    /// (reconnection included): the message is then lost for every
    /// subscriber.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        match tokio::time::timeout(self.timeout, command.query_async::<u64>(&mut connection)).await
        {
            Ok(Ok(receivers)) => Ok(receivers),
            Ok(Err(source)) => Err(Error::Redis {
                context: "PUBLISH failed",
                source,
            }),
            Err(_) => Err(Error::PublishTimeout),
        }
    }
}
