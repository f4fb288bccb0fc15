//! The in-process bus: channels are a map from player to the connections
//! subscribed, and publishing is a channel send. It never disconnects, loses
//! or duplicates anything, so it is the single-node default.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use protocol::{ChangeEvent, UserId};
use tokio::sync::mpsc;

use super::{BusMessage, BusReceiver, EventBus};
use crate::Error;

/// An in-process bus shared by every [`LocalConnection`] made from it.
/// Cloning shares the same channels.
#[derive(Clone, Debug, Default)]
pub struct LocalBus {
    hub: Arc<Hub>,
}

#[derive(Debug, Default)]
struct Hub {
    next_id: AtomicU64,
    // A std Mutex: sections are short and never await.
    channels: Mutex<HashMap<UserId, HashMap<u64, mpsc::UnboundedSender<BusMessage>>>>,
}

impl Hub {
    fn channels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<UserId, HashMap<u64, mpsc::UnboundedSender<BusMessage>>>>
    {
        // Every update is a single insert or remove, so a poisoned map is
        // still consistent.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LocalBus {
    /// An empty bus.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A new connection to this bus and the receiver of what it subscribes to.
    #[must_use]
    pub fn connect(&self) -> (LocalConnection, BusReceiver) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = LocalConnection {
            inner: Arc::new(Connection {
                hub: self.hub.clone(),
                id,
                sender,
            }),
        };
        (connection, receiver)
    }

    /// How many connections are subscribed to `user`'s channel (Redis's
    /// `PUBSUB NUMSUB`).
    #[must_use]
    pub fn subscriber_count(&self, user: &UserId) -> usize {
        self.hub.channels().get(user).map_or(0, HashMap::len)
    }

    /// The players whose channel has at least one subscriber (Redis's
    /// `PUBSUB CHANNELS`).
    #[must_use]
    pub fn channels(&self) -> BTreeSet<UserId> {
        self.hub.channels().keys().cloned().collect()
    }
}

/// One process's connection to a [`LocalBus`]. Dropping the last clone drops
/// its subscriptions.
#[derive(Clone, Debug)]
pub struct LocalConnection {
    inner: Arc<Connection>,
}

#[derive(Debug)]
struct Connection {
    hub: Arc<Hub>,
    id: u64,
    sender: mpsc::UnboundedSender<BusMessage>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.hub.channels().retain(|_, subscribers| {
            subscribers.remove(&self.id);
            !subscribers.is_empty()
        });
    }
}

#[async_trait]
impl EventBus for LocalConnection {
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error> {
        let channels = self.inner.hub.channels();
        for subscriber in channels.get(user).into_iter().flat_map(HashMap::values) {
            // A receiver dropped without unsubscribing is a process shutting
            // down: nothing to deliver to.
            let _ = subscriber.send(BusMessage::Event {
                user: user.clone(),
                event: event.clone(),
            });
        }
        Ok(())
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), Error> {
        self.inner
            .hub
            .channels()
            .entry(user.clone())
            .or_default()
            .insert(self.inner.id, self.inner.sender.clone());
        Ok(())
    }

    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error> {
        let mut channels = self.inner.hub.channels();
        if let Some(subscribers) = channels.get_mut(user) {
            subscribers.remove(&self.inner.id);
            if subscribers.is_empty() {
                channels.remove(user);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use protocol::{ChangeId, ChangeKind};

    use super::*;

    fn event() -> ChangeEvent {
        ChangeEvent {
            change_id: ChangeId::nil(),
            kind: ChangeKind::Adjust,
            owners: Vec::new(),
        }
    }

    #[tokio::test]
    async fn delivers_to_subscribers_of_the_channel_only() {
        let bus = LocalBus::new();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let (a, mut a_rx) = bus.connect();
        let (b, mut b_rx) = bus.connect();
        a.subscribe(&alice).await.unwrap();
        b.subscribe(&bob).await.unwrap();
        b.publish(&alice, &event()).await.unwrap();
        assert_eq!(
            a_rx.recv().await,
            Some(BusMessage::Event {
                user: alice.clone(),
                event: event()
            })
        );
        assert!(b_rx.try_recv().is_err());
        assert_eq!(bus.subscriber_count(&alice), 1);
        a.unsubscribe(&alice).await.unwrap();
        assert_eq!(bus.subscriber_count(&alice), 0);
        assert_eq!(bus.channels(), BTreeSet::from([bob.clone()]));
        drop(b);
        assert!(bus.channels().is_empty());
    }
}
