//! The demo of the embedded zone node: the live inventory page, logins that
//! mint a short-lived session token for any player (seeding a starter
//! inventory the first time), and demo actions executed server-side the way
//! a game server would (loot, use, trade with the merchant, craft and burn
//! through [`inventory_core::crafting`]), one at a time or by the auto-play
//! driver. The node itself knows nothing of it: [`app`] merges the demo's
//! routes into the node's router (`inventory_service::app`), and the
//! `inventory-demo` binary serves them over the embedded stack.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `GET /`, `/app.js`, `/style.css`, `/pkg/*` | | the page and the browser SDK (`page.rs`) |
//! | `POST /demo/login` | `{"player"}` | `{"player", "token", "expires_in_secs"}` |
//! | `POST /demo/actions` | `{"player", "action"}` (`grant`, `consume`, `trade`, `craft`, `burn`) | `{"player", "action", "summary", "change_id"}` |
//! | `POST /demo/autoplay` | `{"player", "on"}` | `{"player", "running", "remaining_secs"}` |
//! | `GET /demo/autoplay/{player}` | | the same, without changing anything |
//!
//! A player is a user id (`[A-Za-z0-9_-]{1,64}`, else `invalid_id`); the
//! merchant's id is reserved (`forbidden`). An unknown action or field is
//! `malformed_request`; an action the player cannot afford is
//! `insufficient_balance`; past [`DemoConfig::with_max_players`] new players
//! or [`DemoConfig::with_max_autoplay`] running drivers, `unprocessable`.
//! There is no authentication: anyone who reaches the node can act as any
//! player, which is why the binary runs only the embedded stack (no MongoDB,
//! Redis or remote descriptor service) and the production node binary has
//! none of these routes.
//!
//! ```no_run
//! # async fn demo(state: inventory_service::AppState, descriptors: descriptor_service::Descriptors) -> anyhow::Result<()> {
//! use inventory_demo::{Demo, DemoConfig};
//!
//! inventory_demo::seed_demo_catalog(&descriptors).await?;
//! let demo = Demo::new(DemoConfig::new(descriptors), &state);
//! let router = inventory_demo::app(state.clone(), demo);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! inventory_service::serve(listener, router, state, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

mod actions;
mod autoplay;
mod catalog;
mod page;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use descriptor_service::Lookup;
use inventory_core::crafting;
use inventory_core::{AppliedChange, Inventory};
use inventory_service::registry::InProcessRegistry;
use inventory_service::{ApiError, AppState, ClientTokens, MAX_BODY_BYTES};
use protocol::{
    ChangeId, Descriptor, DescriptorKind, ErrorCode, ItemId, MAX_BATCH_IDS, OwnerId, UserId,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use actions::{Holdings, Planned};
pub use catalog::seed_demo_catalog;

/// How the demo runs. Defaults: tokens valid for 15 minutes, at most
/// 1,000 players a run, auto-play acting every 1 to 2 s for at most 5
/// minutes, at most 16 auto-play drivers at once.
#[derive(Clone, Debug)]
#[must_use]
pub struct DemoConfig {
    descriptors: descriptor_service::Descriptors,
    web_dir: Option<PathBuf>,
    token_ttl: Duration,
    max_players: usize,
    autoplay: autoplay::Settings,
    seed: Option<u64>,
}

impl DemoConfig {
    /// A demo over the node's embedded descriptor service, which holds the
    /// demo's catalog ([`seed_demo_catalog`]) and where crafting creates and
    /// burning removes descriptors.
    pub fn new(descriptors: descriptor_service::Descriptors) -> Self {
        Self {
            descriptors,
            web_dir: None,
            token_ttl: Duration::from_secs(15 * 60),
            max_players: 1_000,
            autoplay: autoplay::Settings::default(),
            seed: None,
        }
    }

    /// The browser SDK's web package, served under `/pkg/`.
    pub fn with_web_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.web_dir = Some(dir.into());
        self
    }

    /// How long a demo session token is valid.
    pub fn with_token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = ttl;
        self
    }

    /// How many distinct players may log in while the node runs (the merchant
    /// counts as one).
    pub fn with_max_players(mut self, max: usize) -> Self {
        self.max_players = max;
        self
    }

    /// How long an auto-play driver runs, and the range of its pauses.
    pub fn with_autoplay(mut self, limit: Duration, pause: (Duration, Duration)) -> Self {
        self.autoplay.limit = limit;
        self.autoplay.pause = (pause.0.min(pause.1), pause.0.max(pause.1));
        self
    }

    /// How many auto-play drivers may run at once.
    pub fn with_max_autoplay(mut self, max: usize) -> Self {
        self.autoplay.max_runs = max;
        self
    }

    /// A fixed seed for the demo's random choices (default: from the OS).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// The running demo: shared by its handlers and auto-play drivers. Cloning
/// is cheap.
#[derive(Clone, Debug)]
pub struct Demo {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: DemoConfig,
    inventory: Inventory,
    tokens: ClientTokens,
    /// The players known in this run; its lock also serializes seeding.
    players: tokio::sync::Mutex<BTreeSet<UserId>>,
    rng: Mutex<StdRng>,
    autoplay: autoplay::Runs,
    shutdown: watch::Receiver<bool>,
}

/// A demo action, executed by the node as a game server would.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    /// Loot: grant a random find.
    Grant,
    /// Use one potion or torch the hero carries.
    Consume,
    /// Trade with the merchant.
    Trade,
    /// Craft a unique item from the bank's materials.
    Craft,
    /// Burn a crafted item, recovering half its materials.
    Burn,
}

impl Action {
    /// The auto-play driver's choices, each with its weight.
    const WEIGHTED: &[(Action, u32)] = &[
        (Action::Grant, 3),
        (Action::Consume, 2),
        (Action::Trade, 2),
        (Action::Craft, 2),
        (Action::Burn, 1),
    ];
}

/// What a performed action did.
#[derive(Debug, Serialize)]
struct Performed {
    player: UserId,
    action: Action,
    summary: String,
    change_id: ChangeId,
}

impl Demo {
    /// A demo acting through `node`'s inventory, issuing `node`'s client
    /// tokens, its auto-play drivers ended by `node`'s drain.
    #[must_use]
    pub fn new(config: DemoConfig, node: &AppState) -> Self {
        Self::start(
            config,
            node.inventory().clone(),
            node.client_tokens().clone(),
            node.shutdown_signal(),
        )
    }

    fn start(
        config: DemoConfig,
        inventory: Inventory,
        tokens: ClientTokens,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let rng = config
            .seed
            .map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64);
        Self {
            inner: Arc::new(Inner {
                config,
                inventory,
                tokens,
                players: tokio::sync::Mutex::new(BTreeSet::new()),
                rng: Mutex::new(rng),
                autoplay: autoplay::Runs::default(),
                shutdown,
            }),
        }
    }

    fn rng(&self) -> MutexGuard<'_, StdRng> {
        self.inner
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure `player` is known, giving them the starter inventory if the
    /// store has never seen them.
    async fn ensure_player(&self, player: &UserId) -> Result<(), ApiError> {
        let mut players = self.inner.players.lock().await;
        if players.contains(player) {
            return Ok(());
        }
        if players.len() >= self.inner.config.max_players {
            return Err(ApiError::new(
                ErrorCode::Unprocessable,
                format!(
                    "the demo serves at most {} players per run",
                    self.inner.config.max_players
                ),
            ));
        }
        if self.inner.inventory.load_user(player).await?.is_empty() {
            let applied = self
                .inner
                .inventory
                .apply(catalog::starter_change(player))
                .await?;
            tracing::info!(%player, change = %applied.event.change_id, "demo player seeded");
        }
        players.insert(player.clone());
        Ok(())
    }

    async fn holdings(&self, player: &UserId) -> Result<Holdings, ApiError> {
        Ok(Holdings::new(self.inner.inventory.load_user(player).await?))
    }

    /// Decides and carries out one action for `player`.
    async fn perform(&self, player: &UserId, action: Action) -> Result<Performed, ApiError> {
        self.ensure_player(player).await?;
        let inventory = &self.inner.inventory;
        let registry = &InProcessRegistry(self.inner.config.descriptors.clone());
        let (summary, applied) = match action {
            Action::Grant => {
                let planned = actions::grant(player, &mut *self.rng());
                self.apply(planned).await?
            }
            Action::Consume => {
                let holdings = self.holdings(player).await?;
                let planned = actions::consume(player, &holdings, &mut *self.rng())?;
                self.apply(planned).await?
            }
            Action::Trade => {
                self.ensure_player(&catalog::merchant()).await?;
                let holdings = self.holdings(player).await?;
                let planned = actions::trade(player, &holdings, &mut *self.rng())?;
                self.apply(planned).await?
            }
            Action::Craft => {
                let holdings = self.holdings(player).await?;
                let now = crafting::unix_millis();
                let planned = actions::craft(player, &holdings, &mut *self.rng(), now)?;
                let applied = crafting::craft(inventory, registry, &planned.order).await?;
                (planned.summary, applied)
            }
            Action::Burn => {
                let holdings = self.holdings(player).await?;
                let crafted = self.crafted(&holdings).await?;
                let planned = actions::burn(&crafted, &mut *self.rng())?;
                let applied = crafting::burn(inventory, registry, &planned.order).await?;
                (planned.summary, applied)
            }
        };
        Ok(Performed {
            player: player.clone(),
            action,
            summary,
            change_id: applied.event.change_id,
        })
    }

    async fn apply(&self, planned: Planned) -> Result<(String, AppliedChange), ApiError> {
        let applied = self.inner.inventory.apply(planned.change).await?;
        Ok((planned.summary, applied))
    }

    /// The crafted items among `holdings`, with their descriptors.
    async fn crafted(&self, holdings: &Holdings) -> Result<Vec<(OwnerId, Descriptor)>, ApiError> {
        let mut uniques = holdings.uniques();
        uniques.truncate(MAX_BATCH_IDS);
        let ids: Vec<ItemId> = uniques.iter().map(|(_, item)| item.clone()).collect();
        let lookups = self.inner.config.descriptors.get_many(&ids).await?;
        let mut crafted = Vec::new();
        for ((owner, _), lookup) in uniques.into_iter().zip(lookups) {
            if let Lookup::Found(found) = lookup {
                let descriptor: Descriptor = serde_json::from_str(found.json().get())
                    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
                if descriptor.kind == DescriptorKind::Crafted {
                    crafted.push((owner, descriptor));
                }
            }
        }
        Ok(crafted)
    }

    /// A random action for the auto-play driver.
    fn random_action(&self) -> Action {
        Action::WEIGHTED
            .choose_weighted(&mut *self.rng(), |(_, weight)| *weight)
            .map_or(Action::Grant, |(action, _)| *action)
    }
}

/// The node's router ([`inventory_service::app`]) with the demo's routes
/// merged in.
pub fn app(node: AppState, demo: Demo) -> Router {
    inventory_service::app(node).merge(routes(demo))
}

/// The demo's routes over its own state, with the node's body limit.
pub fn routes(demo: Demo) -> Router {
    let page = page::routes(demo.inner.config.web_dir.as_deref());
    Router::new()
        .route("/demo/login", post(login))
        .route("/demo/actions", post(act))
        .route("/demo/autoplay", post(autoplay::toggle))
        .route("/demo/autoplay/{player}", get(autoplay::status))
        .with_state(demo)
        .merge(page)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// A player named in a request: a valid user id, not the merchant.
fn player(name: String) -> Result<UserId, ApiError> {
    let player = UserId::parse(name)?;
    if player == catalog::merchant() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{player} is the demo's merchant; pick another name"),
        ));
    }
    Ok(player)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    player: String,
}

#[derive(Debug, Serialize)]
struct Login {
    player: UserId,
    token: String,
    expires_in_secs: u64,
}

async fn login(
    State(demo): State<Demo>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<Login>, ApiError> {
    let Json(request) = body?;
    let player = player(request.player)?;
    demo.ensure_player(&player).await?;
    let ttl = demo.inner.config.token_ttl.as_secs();
    let token = demo
        .inner
        .tokens
        .issue(&player, i64::try_from(ttl).unwrap_or(i64::MAX))?;
    Ok(Json(Login {
        player,
        token,
        expires_in_secs: ttl,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    player: String,
    action: Action,
}

async fn act(
    State(demo): State<Demo>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Result<Json<Performed>, ApiError> {
    let Json(request) = body?;
    let player = player(request.player)?;
    Ok(Json(demo.perform(&player, request.action).await?))
}
