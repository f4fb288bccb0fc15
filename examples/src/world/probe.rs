//! Latency probes. Both clocks start just before a game server applies a
//! change: propagation latency ends when the change's event arrives on a bus
//! connection of its own (the raw fabric), client latency when the player's
//! SDK client shows the version the change produced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use inventory_core::{BusMessage, BusReceiver};
use protocol::{ChangeId, OwnerId};
use testkit::bench::LatencyRecorder;

/// A shared latency histogram.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latencies(Arc<Mutex<LatencyRecorder>>);

impl Latencies {
    fn record(&self, since: Instant) {
        lock(&self.0).record(since.elapsed());
    }

    pub(crate) fn snapshot(&self) -> LatencyRecorder {
        let mut copy = LatencyRecorder::new();
        copy.merge(&lock(&self.0));
        copy
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps and histograms: a panic cannot leave them inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Changes in flight towards the bus probe, by change id.
#[derive(Debug, Default)]
pub(crate) struct PropagationProbe {
    in_flight: Mutex<HashMap<ChangeId, Instant>>,
    pub(crate) latencies: Latencies,
}

impl PropagationProbe {
    /// A change is about to be applied.
    pub(crate) fn start(&self, id: ChangeId, at: Instant) {
        lock(&self.in_flight).insert(id, at);
    }

    /// The change failed: nothing will arrive.
    pub(crate) fn forget(&self, id: &ChangeId) {
        lock(&self.in_flight).remove(id);
    }

    /// Reads the probe's bus connection until it closes.
    pub(crate) async fn listen(self: Arc<Self>, mut receiver: BusReceiver) {
        while let Some(message) = receiver.recv().await {
            if let BusMessage::Event { event, .. } = message {
                let started = lock(&self.in_flight).remove(&event.change_id);
                if let Some(at) = started {
                    self.latencies.record(at);
                }
            }
        }
    }
}

/// One player's client: versions the game servers produced and versions the
/// client showed, matched whichever comes first.
#[derive(Debug)]
pub(crate) struct ClientProbe {
    state: Mutex<ProbeState>,
    latencies: Latencies,
}

#[derive(Debug, Default)]
struct ProbeState {
    shown: HashMap<OwnerId, u64>,
    started: HashMap<(OwnerId, u64), Instant>,
    shown_first: HashMap<(OwnerId, u64), Instant>,
}

/// A resync may jump far ahead; versions further back than this are not
/// matched one by one.
const MAX_JUMP: u64 = 256;

impl ClientProbe {
    pub(crate) fn new(latencies: Latencies) -> Self {
        Self {
            state: Mutex::new(ProbeState::default()),
            latencies,
        }
    }

    /// A new client connection: what it shows first is its snapshot.
    pub(crate) fn reset(&self) {
        *lock(&self.state) = ProbeState::default();
    }

    /// A game server's change produced `version` of `owner`; it started at `at`.
    pub(crate) fn produced(&self, owner: &OwnerId, version: u64, at: Instant) {
        let mut state = lock(&self.state);
        let key = (owner.clone(), version);
        if let Some(shown) = state.shown_first.remove(&key) {
            let mut recorder = lock(&self.latencies.0);
            recorder.record(shown.saturating_duration_since(at));
        } else if state.shown.get(owner).is_some_and(|v| *v >= version) {
            // Shown by the client's first snapshot: no latency to measure.
        } else {
            state.started.insert(key, at);
        }
    }

    /// The client now shows `version` of `owner`.
    pub(crate) fn shown(&self, owner: &OwnerId, version: u64) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let Some(last) = state.shown.get(owner).copied() else {
            state.shown.insert(owner.clone(), version);
            return;
        };
        if version <= last {
            return;
        }
        state.shown.insert(owner.clone(), version);
        for v in version.saturating_sub(MAX_JUMP).max(last + 1)..=version {
            let key = (owner.clone(), v);
            match state.started.remove(&key) {
                Some(at) => self.latencies.record(at),
                None => {
                    state.shown_first.insert(key, now);
                }
            }
        }
    }
}
