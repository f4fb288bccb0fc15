//! The outbox: publishing applied changes from the store's durable record of
//! them, behind the write path, so that a write never waits on the bus and no
//! applied change's event is ever lost.
//!
//! A store that keeps its journal in the same atomic step as each change
//! (SQLite, memory) offers it as an [`Outbox`]: the applied changes in the
//! order they were applied, each with an opaque [`OutboxPosition`], and a
//! durable mark of how far they were published. One [`OutboxRelay`] per store
//! reads after the mark, publishes each event on its players' channels in
//! that order, retrying a failed publish (Redis down) with backoff without
//! moving on, and moves the mark forward now and then. After a crash the
//! relay starts again from the mark: the changes published since are
//! published a second time, which caches discard by version. So every
//! applied change is published at least once, in order per player, whatever
//! happens to the bus or the process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::join_all;
use protocol::{ChangeEvent, UserId};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::{Error, EventBus, InventoryStore, PropagationMetrics};

/// Where an applied change stands in a store's outbox: opaque bytes, ordered
/// only by the store that made them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct OutboxPosition(Box<[u8]>);

impl OutboxPosition {
    /// A position from a store's own encoding.
    #[must_use]
    pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The store's encoding.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A position that is a sequence number (SQLite's journal, memory).
    #[must_use]
    pub fn from_seq(seq: u64) -> Self {
        Self::from_bytes(seq.to_be_bytes())
    }

    /// The sequence number of a position made by [`from_seq`](Self::from_seq).
    #[must_use]
    pub fn seq(&self) -> Option<u64> {
        Some(u64::from_be_bytes(self.0.as_ref().try_into().ok()?))
    }
}

/// One applied change in an outbox.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OutboxEntry {
    /// Where it stands.
    pub position: OutboxPosition,
    /// Its event, as recorded when it was applied.
    pub event: ChangeEvent,
}

/// A store's durable record of applied changes, read in order to publish them.
///
/// # Contract
///
/// - **Everything applied, once, in order.** [`read_after`](Self::read_after)
///   lists the applied changes after a position in the order they were
///   applied, so that per owner the versions ascend; each change appears
///   exactly once, as soon as its `apply` returned.
/// - **A durable mark.** [`mark_published`](Self::mark_published) records
///   that everything up to a position was published; it survives a crash and
///   a reopening of the store, and `read_after(None)` starts after it. Before
///   any mark, `read_after(None)` starts after the changes the store held
///   when its outbox was created (nothing older is published again).
/// - **A wake-up.** [`signal`](Self::signal) is notified (`notify_waiters`)
///   after changes were applied through this store instance, so a relay need
///   not poll; a relay still polls now and then for writers elsewhere.
/// - **Waiting for news** (optional): an outbox shared by several processes
///   that learns of their changes only by reading (MongoDB's change stream)
///   says so with [`waits_for_news`](Self::waits_for_news); its reads then
///   wait a short, bounded time for changes when none is pending, and a
///   relay reads again at once instead of waiting for a signal.
/// - **One relay per store.** Two relays over one store each publish every
///   change (harmless: consumers discard repeats) and race on the mark.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` applied changes after `after` (`None`: after the mark),
    /// in the order they were applied.
    async fn read_after(
        &self,
        after: Option<&OutboxPosition>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error>;

    /// Records durably that every change up to `position` was published.
    async fn mark_published(&self, position: &OutboxPosition) -> Result<(), Error>;

    /// Notified after changes were applied through this store instance.
    fn signal(&self) -> Arc<Notify>;

    /// Whether [`read_after`](Self::read_after) itself waits briefly for
    /// changes when none is pending (default: no).
    fn waits_for_news(&self) -> bool {
        false
    }
}

/// How a relay reads, retries and marks.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct RelayConfig {
    batch: usize,
    poll: Duration,
    mark_every: Duration,
    min_retry_delay: Duration,
    max_retry_delay: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 512,
            poll: Duration::from_secs(1),
            mark_every: Duration::from_millis(250),
            min_retry_delay: Duration::from_millis(20),
            max_retry_delay: Duration::from_secs(2),
        }
    }
}

impl RelayConfig {
    /// The defaults: batches of 512, a poll every second, the mark moved at
    /// most every 250 ms, publish retries 20 ms to 2 s apart.
    pub fn new() -> Self {
        Self::default()
    }

    /// How often the relay looks for changes nobody signalled (default 1 s).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How often the relay moves the durable mark at most (default 250 ms):
    /// what a crash may publish twice.
    pub fn with_mark_every(mut self, every: Duration) -> Self {
        self.mark_every = every;
        self
    }

    /// The delays between publish retries: exponential from `min` to `max`,
    /// with jitter (default 20 ms to 2 s).
    pub fn with_retry_delays(mut self, min: Duration, max: Duration) -> Self {
        self.min_retry_delay = min;
        self.max_retry_delay = max.max(min);
        self
    }
}

/// Publishes a store's applied changes from its [`Outbox`], in order, behind
/// the write path. Dropping the relay stops it; [`close`](Self::close) first
/// publishes what is pending (bounded) and moves the mark.
#[derive(Debug)]
pub struct OutboxRelay {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl OutboxRelay {
    /// Starts relaying `store`'s outbox to `bus`, counting in `metrics`;
    /// `None` if the store has no outbox (its changes are then published by
    /// [`Inventory`](crate::Inventory) itself). Needs a Tokio runtime.
    #[must_use]
    pub fn start(
        store: Arc<dyn InventoryStore>,
        bus: Arc<dyn EventBus>,
        metrics: PropagationMetrics,
        config: RelayConfig,
    ) -> Option<Self> {
        store.outbox()?;
        let (stop, stopped) = watch::channel(false);
        let relay = Relay {
            store,
            bus,
            metrics,
            config,
            stopped,
        };
        Some(Self {
            stop,
            task: Some(tokio::spawn(relay.run())),
        })
    }

    /// Publishes what is pending, moves the mark, and stops; waits at most
    /// `timeout`.
    pub async fn close(mut self, timeout: Duration) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take()
            && tokio::time::timeout(timeout, task).await.is_err()
        {
            tracing::warn!(
                "the outbox relay did not finish in time; the next start publishes the rest"
            );
        }
    }
}

impl Drop for OutboxRelay {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Relay {
    store: Arc<dyn InventoryStore>,
    bus: Arc<dyn EventBus>,
    metrics: PropagationMetrics,
    config: RelayConfig,
    stopped: watch::Receiver<bool>,
}

impl Relay {
    async fn run(mut self) {
        let store = Arc::clone(&self.store);
        let Some(outbox) = store.outbox() else {
            return;
        };
        let signal = outbox.signal();
        let mut cursor: Option<OutboxPosition> = None;
        let mut unmarked: Option<OutboxPosition> = None;
        let mut last_mark = Instant::now();
        let mut read_failures = 0u32;
        loop {
            // Registered before the read, so that a change applied during the
            // read still ends the wait below.
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let entries = match outbox.read_after(cursor.as_ref(), self.config.batch).await {
                Ok(entries) => {
                    read_failures = 0;
                    entries
                }
                Err(e) => {
                    read_failures = read_failures.saturating_add(1);
                    tracing::warn!(error = %e, "cannot read the outbox; trying again");
                    let delay = self.retry_delay(read_failures);
                    if pause(&mut self.stopped, delay).await {
                        continue;
                    }
                    break;
                }
            };
            let caught_up = entries.len() < self.config.batch;
            // A batch interrupted by the stop counts as not published at all:
            // the next start publishes it again (consumers discard repeats).
            let interrupted = !self.publish_batch(&entries).await;
            if !interrupted && let Some(last) = entries.last() {
                cursor = Some(last.position.clone());
                unmarked = Some(last.position.clone());
            }
            let stopping = interrupted || (*self.stopped.borrow() && caught_up);
            if let Some(position) = &unmarked
                && (stopping || last_mark.elapsed() >= self.config.mark_every)
            {
                match outbox.mark_published(position).await {
                    Ok(()) => {
                        unmarked = None;
                        last_mark = Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot move the outbox mark"),
                }
            }
            if stopping {
                break;
            }
            if caught_up && !outbox.waits_for_news() {
                // Nothing left to read: wait for news, for the mark's turn if
                // it is late, or for the poll.
                let wait = if unmarked.is_some() {
                    self.config.mark_every
                } else {
                    self.config.poll
                };
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = self.stopped.changed() => {}
                }
            }
        }
    }

    /// Publishes a batch: each player's events in commit order, the players'
    /// queues side by side, so that publishes pipeline on the connection and
    /// a channel that fails holds up only its own player. Each publish is
    /// retried with backoff until it goes through, before that player's later
    /// events; `false` if the relay was stopped before all went through.
    async fn publish_batch(&self, entries: &[OutboxEntry]) -> bool {
        let mut queues: BTreeMap<&UserId, Vec<&ChangeEvent>> = BTreeMap::new();
        for entry in entries {
            let users: BTreeSet<&UserId> =
                entry.event.owners.iter().map(|o| o.owner.user()).collect();
            for user in users {
                queues.entry(user).or_default().push(&entry.event);
            }
        }
        join_all(
            queues
                .into_iter()
                .map(|(user, events)| self.publish_in_order(user, events)),
        )
        .await
        .into_iter()
        .all(|published| published)
    }

    /// Publishes `events` on `user`'s channel one after the other, each
    /// retried until it goes through; `false` if the relay was stopped first.
    async fn publish_in_order(&self, user: &UserId, events: Vec<&ChangeEvent>) -> bool {
        let mut stopped = self.stopped.clone();
        for event in events {
            let mut failures = 0u32;
            loop {
                match self.bus.publish(user, event).await {
                    Ok(()) => {
                        self.metrics.add_published(1);
                        break;
                    }
                    Err(error) => {
                        self.metrics.add_publish_failures(1);
                        failures = failures.saturating_add(1);
                        tracing::warn!(change = %event.change_id, %user, %error, failures, "publish failed; the relay retries it before this player's later changes");
                        if !pause(&mut stopped, self.retry_delay(failures)).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// The delay before retry number `n`: exponential with jitter, capped.
    fn retry_delay(&self, n: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.config.min_retry_delay)
            .with_max_delay(self.config.max_retry_delay)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(n.saturating_sub(1) as usize)
            .unwrap_or(self.config.max_retry_delay)
    }
}

/// Sleeps `delay`; `false` if the relay is stopped meanwhile.
async fn pause(stopped: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => !*stopped.borrow(),
        _ = stopped.changed() => false,
    }
}
