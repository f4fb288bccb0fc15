//! The auto-play driver: while a player's toggle is on, the node performs a
//! random demo action for them after a random pause, until the time limit,
//! the toggle going off or the node shutting down. An action the player
//! cannot afford is replaced by a grant, so the inventory keeps moving.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use inventory_service::ApiError;
use protocol::{ErrorCode, UserId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::{Action, Demo, player};

/// The driver's limits (see [`crate::DemoConfig`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub limit: Duration,
    pub pause: (Duration, Duration),
    pub max_runs: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limit: Duration::from_secs(5 * 60),
            pause: (Duration::from_secs(1), Duration::from_secs(2)),
            max_runs: 16,
        }
    }
}

/// The running drivers, one per player at most.
#[derive(Debug, Default)]
pub(crate) struct Runs {
    runs: Mutex<HashMap<UserId, Run>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One driver: dropping `stop` stops it.
#[derive(Debug)]
struct Run {
    id: u64,
    until: Instant,
    _stop: oneshot::Sender<()>,
}

impl Runs {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Run>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time `player`'s driver has left, if one runs.
    fn remaining(&self, player: &UserId) -> Option<Duration> {
        self.lock()
            .get(player)
            .map(|run| run.until.saturating_duration_since(Instant::now()))
    }

    /// Forgets a driver that ended by itself, unless a newer one replaced it.
    fn finished(&self, player: &UserId, id: u64) {
        let mut runs = self.lock();
        if runs.get(player).is_some_and(|run| run.id == id) {
            runs.remove(player);
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToggleRequest {
    player: String,
    on: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Toggled {
    player: UserId,
    running: bool,
    remaining_secs: u64,
}

/// `POST /demo/autoplay {player, on}`: starts (if not running) or stops the
/// player's driver. Starting is idempotent: a running driver keeps its
/// deadline.
pub(crate) async fn toggle(
    State(demo): State<Demo>,
    body: Result<Json<ToggleRequest>, JsonRejection>,
) -> Result<Json<Toggled>, ApiError> {
    let Json(request) = body?;
    let player = player(request.player)?;
    if request.on {
        demo.ensure_player(&player).await?;
        start(&demo, &player)?;
    } else {
        demo.inner.autoplay.lock().remove(&player);
    }
    Ok(Json(toggled(&demo, player)))
}

/// `GET /demo/autoplay/{player}`: whether the player's driver runs.
pub(crate) async fn status(
    State(demo): State<Demo>,
    Path(name): Path<String>,
) -> Result<Json<Toggled>, ApiError> {
    Ok(Json(toggled(&demo, player(name)?)))
}

fn toggled(demo: &Demo, player: UserId) -> Toggled {
    let remaining = demo.inner.autoplay.remaining(&player);
    Toggled {
        player,
        running: remaining.is_some(),
        remaining_secs: remaining.map_or(0, |left| left.as_secs()),
    }
}

fn start(demo: &Demo, player: &UserId) -> Result<(), ApiError> {
    let settings = demo.inner.config.autoplay;
    let mut runs = demo.inner.autoplay.lock();
    if runs.contains_key(player) {
        return Ok(());
    }
    if runs.len() >= settings.max_runs {
        return Err(ApiError::new(
            ErrorCode::Unprocessable,
            format!(
                "at most {} auto-play drivers run at once; try again later",
                settings.max_runs
            ),
        ));
    }
    let id = demo
        .inner
        .autoplay
        .next_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let until = Instant::now() + settings.limit;
    let (stop, stopped) = oneshot::channel();
    runs.insert(
        player.clone(),
        Run {
            id,
            until,
            _stop: stop,
        },
    );
    tracing::info!(%player, limit_secs = settings.limit.as_secs(), "demo auto-play on");
    tokio::spawn(drive(demo.clone(), player.clone(), id, until, stopped));
    Ok(())
}

async fn drive(
    demo: Demo,
    player: UserId,
    id: u64,
    until: Instant,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut shutdown = demo.inner.shutdown.clone();
    loop {
        let (least, most) = demo.inner.config.autoplay.pause;
        let wake = Instant::now() + demo.rng().random_range(least..=most);
        if wake > until {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            _ = &mut stopped => break,
            _ = shutdown.wait_for(|draining| *draining) => break,
        }
        let action = demo.random_action();
        let outcome = match demo.perform(&player, action).await {
            Err(e) if e.code() == ErrorCode::InsufficientBalance => {
                demo.perform(&player, Action::Grant).await
            }
            other => other,
        };
        match outcome {
            Ok(done) => tracing::debug!(%player, summary = done.summary, "demo auto-play"),
            Err(e) => tracing::warn!(%player, error = %e, "demo auto-play action failed"),
        }
    }
    demo.inner.autoplay.finished(&player, id);
    tracing::info!(%player, "demo auto-play off");
}
