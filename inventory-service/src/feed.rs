//! Client feeds: one per player with game clients on this node. A feed holds
//! the node's interest in the player while clients are connected (and for a
//! short linger after the last one leaves, so that a reconnecting client can
//! resume), follows the player's cache, keeps a bounded window of recent
//! deltas per owner to answer resumes, and fans every message out to the
//! clients' bounded send queues, encoded once per encoding.
//!
//! # Interest
//!
//! A feed holds the player as a holder of its own, `Holder::Clients(n)` for
//! the feed's incarnation `n` (a variant no game zone name can parse into),
//! and lets go when it closes. So a client connection needs no game server to
//! have called join first, a game server's leave never cuts a connected
//! client off, and a feed closing while a newer one opens for the same player
//! releases only its own interest.
//!
//! # Ordering
//!
//! Applying an update to the feed, fanning it out, and registering a client
//! (computing its welcome, resumed deltas and snapshot) all happen under the
//! feed's one lock: a client registered at some point receives exactly the
//! updates applied after it, on top of a state that covers everything before.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use inventory_core::{CacheUpdate, Holder, PlayerHub};
use protocol::{
    DeltaOutcome, Encoding, ErrorBody, ErrorCode, OwnerId, OwnerSnapshot, ServerMessage, UserId,
    Version,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::Metrics;

/// One message for clients, encoded at most once per encoding however many
/// clients it goes to.
#[derive(Debug)]
pub(crate) struct Outgoing {
    message: ServerMessage,
    json: OnceLock<Utf8Bytes>,
    msgpack: OnceLock<axum::body::Bytes>,
}

impl Outgoing {
    pub(crate) fn new(message: ServerMessage) -> Arc<Self> {
        Arc::new(Self {
            message,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        })
    }

    pub(crate) fn message(&self) -> &ServerMessage {
        &self.message
    }

    /// The frame for `encoding`, and its payload length.
    pub(crate) fn frame(&self, encoding: Encoding) -> (Message, usize) {
        let encode = || {
            protocol::encode_server(encoding, &self.message)
                .expect("every server message encodes (ids and maps of strings)")
        };
        match encoding {
            Encoding::MessagePack => {
                let bytes = self.msgpack.get_or_init(|| encode().into());
                (Message::Binary(bytes.clone()), bytes.len())
            }
            // JSON, and any encoding added later, travels as text.
            _ => {
                let text = self
                    .json
                    .get_or_init(|| String::from_utf8(encode()).expect("JSON is UTF-8").into());
                (Message::Text(text.clone()), text.len())
            }
        }
    }
}

/// How feeds behave.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FeedConfig {
    /// Recent deltas kept per owner to answer resumes.
    pub(crate) resume_window: usize,
    /// How long a feed outlives its last client.
    pub(crate) linger: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Starting,
    Ready,
    Failed(ErrorCode),
    Closed,
}

/// Every feed of one node.
#[derive(Clone, Debug)]
pub(crate) struct Feeds {
    inner: Arc<FeedsInner>,
}

#[derive(Debug)]
struct FeedsInner {
    hub: PlayerHub,
    config: FeedConfig,
    metrics: Metrics,
    map: Mutex<HashMap<UserId, Arc<Feed>>>,
    incarnations: AtomicU64,
    closing: AtomicBool,
    /// Every feed task holds a receiver; `closed()` says they all ended.
    alive: watch::Sender<()>,
}

#[derive(Debug)]
struct Feed {
    user: UserId,
    holder: Holder,
    state: Mutex<FeedState>,
    status: watch::Sender<Status>,
    idle: Notify,
}

#[derive(Debug, Default)]
struct FeedState {
    owners: BTreeMap<OwnerId, OwnerSnapshot>,
    /// Per owner, the latest deltas in version order, the last one being the
    /// owner's current version.
    recent: HashMap<OwnerId, VecDeque<(Version, Arc<Outgoing>)>>,
    clients: HashMap<u64, ClientSlot>,
    attached: usize,
    next_client: u64,
}

#[derive(Debug)]
struct ClientSlot {
    queue: mpsc::Sender<Arc<Outgoing>>,
    slow: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update completes before its guard drops and none panics midway,
    // so a poisoned lock still guards a consistent value.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Feeds {
    pub(crate) fn new(hub: PlayerHub, config: FeedConfig, metrics: Metrics) -> Self {
        Self {
            inner: Arc::new(FeedsInner {
                hub,
                config,
                metrics,
                map: Mutex::new(HashMap::new()),
                incarnations: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                alive: watch::Sender::new(()),
            }),
        }
    }

    /// Attaches a client to `user`'s feed, starting it if needed, and waits
    /// until it is hydrated.
    pub(crate) async fn attach(&self, user: &UserId) -> Result<Lease, ErrorBody> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(ErrorBody::new(
                ErrorCode::Unavailable,
                "the node is shutting down",
            ));
        }
        let (feed, client) = {
            let mut map = lock(&self.inner.map);
            let feed = match map.get(user) {
                Some(feed) => feed.clone(),
                None => {
                    let n = self.inner.incarnations.fetch_add(1, Ordering::Relaxed);
                    let feed = Arc::new(Feed {
                        user: user.clone(),
                        holder: Holder::Clients(n),
                        state: Mutex::new(FeedState::default()),
                        status: watch::Sender::new(Status::Starting),
                        idle: Notify::new(),
                    });
                    map.insert(user.clone(), feed.clone());
                    tokio::spawn(run_feed(
                        self.inner.clone(),
                        feed.clone(),
                        self.inner.alive.subscribe(),
                    ));
                    feed
                }
            };
            let mut state = lock(&feed.state);
            state.attached += 1;
            state.next_client += 1;
            let client = state.next_client;
            drop(state);
            (feed, client)
        };
        let lease = Lease {
            feed,
            client,
            slow: Arc::new(AtomicBool::new(false)),
            metrics: self.inner.metrics.clone(),
        };
        let mut status = lease.feed.status.subscribe();
        let status = status
            .wait_for(|s| *s != Status::Starting)
            .await
            .map(|s| *s)
            .unwrap_or(Status::Closed);
        match status {
            Status::Ready => Ok(lease),
            Status::Failed(code) => Err(ErrorBody::new(
                code,
                "cannot load the player's inventory now; retry",
            )),
            Status::Starting | Status::Closed => Err(ErrorBody::new(
                ErrorCode::Unavailable,
                "the player's feed closed; retry",
            )),
        }
    }

    /// Closes every feed once its clients are gone (with no linger), and
    /// waits up to `timeout` for them to release their interest.
    pub(crate) async fn close(&self, timeout: Duration) {
        self.inner.closing.store(true, Ordering::Release);
        for feed in lock(&self.inner.map).values() {
            feed.idle.notify_one();
        }
        let _ = tokio::time::timeout(timeout, self.inner.alive.closed()).await;
    }
}

impl FeedsInner {
    /// Closes `feed` if no client holds it; false if one came back.
    fn try_close(&self, feed: &Arc<Feed>) -> bool {
        let mut map = lock(&self.map);
        if lock(&feed.state).attached > 0 {
            return false;
        }
        if map.get(&feed.user).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            map.remove(&feed.user);
        }
        true
    }

    /// Removes `feed` from the map (if still there) and ends its clients'
    /// queues.
    fn forget(&self, feed: &Arc<Feed>, status: Status) {
        let mut map = lock(&self.map);
        if map.get(&feed.user).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            map.remove(&feed.user);
        }
        lock(&feed.state).clients.clear();
        feed.status.send_replace(status);
    }
}

async fn run_feed(inner: Arc<FeedsInner>, feed: Arc<Feed>, _alive: watch::Receiver<()>) {
    // Joining and leaving are boxed: their state (a store load, a
    // subscription) would otherwise be part of every idle feed's task.
    if let Err(e) = Box::pin(inner.hub.join(feed.holder.clone(), &feed.user)).await {
        tracing::warn!(user = %feed.user, error = %e, "cannot start a client feed");
        inner.forget(&feed, Status::Failed(e.code()));
        return;
    }
    inner.metrics.player_feeds.inc();
    if let Some(mut follower) = inner.hub.follow(&feed.user) {
        let mut linger: Option<Instant> = None;
        loop {
            tokio::select! {
                update = follower.recv() => match update {
                    Some(update) => feed.apply(update, &inner),
                    None => break,
                },
                () = feed.idle.notified() => {
                    if lock(&feed.state).attached == 0 {
                        let delay = if inner.closing.load(Ordering::Acquire) {
                            Duration::ZERO
                        } else {
                            inner.config.linger
                        };
                        linger = Some(Instant::now() + delay);
                    }
                }
                () = tokio::time::sleep_until(linger.unwrap_or_else(Instant::now)), if linger.is_some() => {
                    if inner.try_close(&feed) {
                        break;
                    }
                    linger = None;
                }
            }
        }
    }
    inner.forget(&feed, Status::Closed);
    inner.metrics.player_feeds.dec();
    if let Err(e) = Box::pin(inner.hub.leave(feed.holder.clone(), &feed.user)).await {
        tracing::warn!(user = %feed.user, error = %e, "releasing a client feed's interest failed");
    }
}

impl Feed {
    fn apply(&self, update: CacheUpdate, inner: &FeedsInner) {
        let mut state = lock(&self.state);
        match update {
            CacheUpdate::Resync(snapshots) => {
                let fresh: BTreeMap<OwnerId, OwnerSnapshot> = snapshots
                    .into_iter()
                    .filter(|s| s.owner.user() == &self.user)
                    .map(|s| (s.owner.clone(), s))
                    .collect();
                // Equal versions mean equal items (the version rule), so
                // only owners whose version moved are resent.
                let changed: Vec<OwnerSnapshot> = fresh
                    .values()
                    .filter(|s| state.owners.get(&s.owner).map(|o| o.version) != Some(s.version))
                    .cloned()
                    .collect();
                for snapshot in &changed {
                    state.recent.remove(&snapshot.owner);
                }
                state.recent.retain(|owner, _| fresh.contains_key(owner));
                state.owners = fresh;
                if *self.status.borrow() == Status::Starting {
                    self.status.send_replace(Status::Ready);
                } else if !changed.is_empty() {
                    let out = Outgoing::new(ServerMessage::Snapshot { owners: changed });
                    state.fan_out(&out, &inner.metrics);
                }
            }
            CacheUpdate::Delta {
                change_id,
                kind,
                owner,
            } => {
                if owner.owner.user() != &self.user {
                    return;
                }
                let snapshot = state
                    .owners
                    .entry(owner.owner.clone())
                    .or_insert_with(|| OwnerSnapshot::empty(owner.owner.clone()));
                match snapshot.apply(&owner) {
                    DeltaOutcome::Applied => {
                        let version = owner.version;
                        let id = owner.owner.clone();
                        let out = Outgoing::new(ServerMessage::Delta {
                            change_id,
                            kind,
                            owner,
                        });
                        let window = inner.config.resume_window;
                        let recent = state.recent.entry(id).or_default();
                        recent.push_back((version, out.clone()));
                        while recent.len() > window {
                            recent.pop_front();
                        }
                        state.fan_out(&out, &inner.metrics);
                    }
                    DeltaOutcome::Duplicate => {}
                    DeltaOutcome::Gap | DeltaOutcome::Inconsistent => {
                        // The node sends deltas in version order after a
                        // resync, so this is a bug; the clients notice the
                        // gap themselves and resume.
                        tracing::error!(owner = %owner.owner, version = %owner.version, "client feed out of order");
                        state.recent.remove(&owner.owner);
                        let out = Outgoing::new(ServerMessage::Delta {
                            change_id,
                            kind,
                            owner,
                        });
                        state.fan_out(&out, &inner.metrics);
                    }
                }
            }
        }
    }
}

impl FeedState {
    /// Queues `out` for every client; a client whose queue is full is
    /// dropped from the feed and flagged slow (its connection then closes).
    fn fan_out(&mut self, out: &Arc<Outgoing>, metrics: &Metrics) {
        self.clients
            .retain(|_, slot| match slot.queue.try_send(out.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.slow.store(true, Ordering::Release);
                    metrics.slow_client_disconnects.inc();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// The answer to a `Hello`: the welcome, then for each owner the missed
    /// deltas (if the window covers them) or a snapshot.
    fn answer(
        &self,
        user: &UserId,
        resume: Option<&BTreeMap<OwnerId, Version>>,
    ) -> (Vec<Arc<Outgoing>>, bool) {
        let mut out = vec![Outgoing::new(ServerMessage::Welcome {
            user: user.clone(),
            owners: self.owners.keys().cloned().collect(),
        })];
        let Some(held) = resume else {
            out.push(Outgoing::new(ServerMessage::Snapshot {
                owners: self.owners.values().cloned().collect(),
            }));
            return (out, false);
        };
        let (mut resumed, mut missed, mut stale) = (Vec::new(), Vec::new(), Vec::new());
        for (owner, snapshot) in &self.owners {
            let recent = self.recent.get(owner);
            match held.get(owner) {
                Some(v) if *v == snapshot.version => resumed.push(owner.clone()),
                Some(v)
                    if *v < snapshot.version
                        && recent
                            .and_then(|r| r.front())
                            .is_some_and(|(first, _)| *first <= v.next())
                        && recent
                            .and_then(|r| r.back())
                            .is_some_and(|(last, _)| *last == snapshot.version) =>
                {
                    resumed.push(owner.clone());
                    missed.extend(
                        recent
                            .into_iter()
                            .flatten()
                            .filter(|(version, _)| version > v)
                            .map(|(_, out)| out.clone()),
                    );
                }
                _ => stale.push(snapshot.clone()),
            }
        }
        let resumed_any = !resumed.is_empty();
        if resumed_any {
            out.push(Outgoing::new(ServerMessage::Resumed { owners: resumed }));
            out.extend(missed);
        }
        if !stale.is_empty() {
            out.push(Outgoing::new(ServerMessage::Snapshot { owners: stale }));
        }
        (out, resumed_any)
    }
}

/// A client's hold on its player's feed; dropping it detaches the client.
#[derive(Debug)]
pub(crate) struct Lease {
    feed: Arc<Feed>,
    client: u64,
    slow: Arc<AtomicBool>,
    metrics: Metrics,
}

impl Lease {
    /// Answers a `Hello` (first or repeated): the messages to send first,
    /// and the queue (of `capacity` messages) of everything after them. A
    /// previous queue of this client is replaced.
    pub(crate) fn hello(
        &self,
        resume: Option<&BTreeMap<OwnerId, Version>>,
        capacity: usize,
    ) -> (Vec<Arc<Outgoing>>, mpsc::Receiver<Arc<Outgoing>>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let mut state = lock(&self.feed.state);
        let (initial, resumed) = state.answer(&self.feed.user, resume);
        if resumed {
            self.metrics.resumes.inc();
        }
        state.clients.insert(
            self.client,
            ClientSlot {
                queue: sender,
                slow: self.slow.clone(),
            },
        );
        (initial, receiver)
    }

    /// True once the client fell behind by a whole queue.
    pub(crate) fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = lock(&self.feed.state);
        state.clients.remove(&self.client);
        state.attached -= 1;
        if state.attached == 0 {
            self.feed.idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::{ChangeId, ChangeKind, OwnerDelta};

    use super::*;

    fn owner(id: &str) -> OwnerId {
        OwnerId::parse(id).unwrap()
    }

    fn delta(of: &str, version: u64) -> (Version, Arc<Outgoing>) {
        let out = Outgoing::new(ServerMessage::Delta {
            change_id: ChangeId::nil(),
            kind: ChangeKind::Adjust,
            owner: OwnerDelta {
                owner: owner(of),
                version: Version::new(version),
                deltas: Vec::new(),
            },
        });
        (Version::new(version), out)
    }

    /// Alice's account at v5 with v3..=v5 in the window; her hero at v2 with
    /// an empty window.
    fn state() -> FeedState {
        let mut state = FeedState::default();
        for (of, version) in [("a:alice", 5), ("c:alice:hero", 2)] {
            let mut snapshot = OwnerSnapshot::empty(owner(of));
            snapshot.version = Version::new(version);
            state.owners.insert(owner(of), snapshot);
        }
        state.recent.insert(
            owner("a:alice"),
            (3..=5).map(|v| delta("a:alice", v)).collect(),
        );
        state
    }

    /// The answer, one short line per message.
    fn check(resume: Option<&[(&str, u64)]>, expected: &[&str]) {
        let resume: Option<BTreeMap<OwnerId, Version>> = resume.map(|r| {
            r.iter()
                .map(|&(o, v)| (owner(o), Version::new(v)))
                .collect()
        });
        let (answer, _) = state().answer(&UserId::parse("alice").unwrap(), resume.as_ref());
        let lines: Vec<String> = answer
            .iter()
            .map(|out| match out.message() {
                ServerMessage::Welcome { owners, .. } => format!("welcome {}", owners.len()),
                ServerMessage::Snapshot { owners } => format!(
                    "snapshot {}",
                    owners
                        .iter()
                        .map(|s| s.owner.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                ServerMessage::Resumed { owners } => format!(
                    "resumed {}",
                    owners
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                ServerMessage::Delta { owner, .. } => {
                    format!("delta {} {}", owner.owner, owner.version)
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_first_hello_gets_every_snapshot() {
        check(None, &["welcome 2", "snapshot a:alice,c:alice:hero"]);
    }

    #[test]
    fn a_resume_inside_the_window_gets_the_missed_deltas() {
        check(
            Some(&[("a:alice", 2), ("c:alice:hero", 2)]),
            &[
                "welcome 2",
                "resumed a:alice,c:alice:hero",
                "delta a:alice v3",
                "delta a:alice v4",
                "delta a:alice v5",
            ],
        );
        check(
            Some(&[("a:alice", 4), ("c:alice:hero", 2)]),
            &[
                "welcome 2",
                "resumed a:alice,c:alice:hero",
                "delta a:alice v5",
            ],
        );
    }

    #[test]
    fn outside_the_window_ahead_or_unknown_gets_a_snapshot() {
        check(
            Some(&[("a:alice", 1)]),
            &["welcome 2", "snapshot a:alice,c:alice:hero"],
        );
        check(
            Some(&[("a:alice", 5), ("c:alice:hero", 9), ("a:bob", 3)]),
            &["welcome 2", "resumed a:alice", "snapshot c:alice:hero"],
        );
    }

    #[test]
    fn a_full_queue_drops_the_client_as_slow() {
        let metrics = Metrics::new(inventory_core::PropagationMetrics::new());
        let mut state = state();
        let (queue, mut receiver) = mpsc::channel(1);
        let slow = Arc::new(AtomicBool::new(false));
        state.clients.insert(
            1,
            ClientSlot {
                queue,
                slow: slow.clone(),
            },
        );
        let (_, out) = delta("a:alice", 6);
        state.fan_out(&out, &metrics);
        assert!(!slow.load(Ordering::Acquire));
        state.fan_out(&out, &metrics);
        assert!(slow.load(Ordering::Acquire));
        assert!(state.clients.is_empty());
        assert_eq!(metrics.slow_client_disconnects.get(), 1);
        assert!(receiver.try_recv().is_ok());
        assert!(receiver.try_recv().is_err());
    }
}
