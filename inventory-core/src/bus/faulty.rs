//! A wrapper bus that loses, duplicates and delays (so reorders) published
//! events on purpose, with a seeded random source so a failing run replays.
//! For chaos tests: caches must converge whatever it does.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use protocol::{ChangeEvent, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::EventBus;
use crate::Error;

/// What a [`FaultyBus`] does to each publish, as probabilities in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultPlan {
    /// The event is silently lost.
    pub drop: f64,
    /// The event is published twice.
    pub duplicate: f64,
    /// The event is published later, after up to `max_delay`, so events
    /// published after it may overtake it.
    pub delay: f64,
    /// The longest delay.
    pub max_delay: Duration,
    /// The seed of the random source.
    pub seed: u64,
}

impl FaultPlan {
    /// No faults at all.
    #[must_use]
    pub fn none(seed: u64) -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            max_delay: Duration::ZERO,
            seed,
        }
    }

    /// Sets the loss probability.
    #[must_use]
    pub fn with_drop(mut self, p: f64) -> Self {
        self.drop = p;
        self
    }

    /// Sets the duplication probability.
    #[must_use]
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the delay probability and the longest delay.
    #[must_use]
    pub fn with_delay(mut self, p: f64, max_delay: Duration) -> Self {
        self.delay = p;
        self.max_delay = max_delay;
        self
    }
}

/// An [`EventBus`] that applies a [`FaultPlan`] to the publishes of another.
/// Subscriptions pass through untouched. Cloning shares the random source.
#[derive(Clone, Debug)]
pub struct FaultyBus<B> {
    inner: Arc<B>,
    plan: FaultPlan,
    rng: Arc<Mutex<StdRng>>,
}

/// What to do with one publish.
struct Fate {
    lost: bool,
    copies: usize,
    delay: Option<Duration>,
}

impl<B: EventBus> FaultyBus<B> {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: B, plan: FaultPlan) -> Self {
        Self {
            inner: Arc::new(inner),
            plan,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(plan.seed))),
        }
    }

    fn fate(&self) -> Fate {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let lost = rng.random_bool(self.plan.drop);
        let copies = if rng.random_bool(self.plan.duplicate) {
            2
        } else {
            1
        };
        let delay = rng
            .random_bool(self.plan.delay)
            .then(|| self.plan.max_delay.mul_f64(rng.random::<f64>()));
        Fate {
            lost,
            copies,
            delay,
        }
    }
}

#[async_trait]
impl<B: EventBus> EventBus for FaultyBus<B> {
    async fn publish(&self, user: &UserId, event: &ChangeEvent) -> Result<(), Error> {
        let fate = self.fate();
        if fate.lost {
            return Ok(());
        }
        match fate.delay {
            Some(delay) => {
                let (inner, user, event) = (self.inner.clone(), user.clone(), event.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    for _ in 0..fate.copies {
                        // A delayed publish has no caller left to tell.
                        let _ = inner.publish(&user, &event).await;
                    }
                });
                Ok(())
            }
            None => {
                for _ in 0..fate.copies {
                    self.inner.publish(user, event).await?;
                }
                Ok(())
            }
        }
    }

    async fn subscribe(&self, user: &UserId) -> Result<(), Error> {
        self.inner.subscribe(user).await
    }

    async fn unsubscribe(&self, user: &UserId) -> Result<(), Error> {
        self.inner.unsubscribe(user).await
    }
}
