//! The world simulation: zone nodes, a descriptor service, a shared store and
//! bus in this process, and thousands of simulated players, each connected
//! through the SDK's WebSocket client to the node of the zone it stands in.
//!
//! Each player runs one task with its own seeded random source (so the
//! sequence of decisions replays for a given seed; timings do not). Acting as
//! the zone's game server, it changes inventories through the zone node's
//! in-process [`Inventory`](inventory_core::Inventory), as game servers use
//! the core library: it gathers (grants), trades with another player, and
//! moves to another zone (the new zone joins the player and its client
//! connects there before the old zone lets go, so both hold the player for a
//! moment). It crafts unique items from gathered resources and burns them
//! back into a resource through [`inventory_core::crafting`] (the
//! descriptor service in this process is the registry), retrying an unknown
//! outcome with the same order; crafted items are traded too. Some changes
//! are retried on purpose with the same change id, and the retry must answer
//! "already applied" with the same versions.
//!
//! Chaos (optional): Redis killed and restarted, zone nodes killed (their
//! players move elsewhere) and restarted, events dropped, duplicated and
//! delayed by the publishers, slow clients.
//!
//! At the end: every node restarted, the clients given time to converge, then
//! the [`audit`](crate::audit) over the store, the descriptors, the
//! acknowledged changes and the clients' final views.

mod cluster;
mod economy;
mod probe;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use inventory_core::crafting::{self, BurnOrder, CraftOrder};
use inventory_core::{AppliedChange, Inventory};
use inventory_service::AppState;
use inventory_service::registry::InProcessRegistry;
use protocol::{
    AttributeValue, Change, ChangeId, CharacterId, Descriptor, ErrorCode, ItemId, OwnerId,
    Quantity, UserId, Version, ZoneId,
};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sdk::{ConnectionState, InventoryClient};

pub use economy::{EconomyConfig, EconomyReport, run as run_economy};
pub use report::{Quantiles, WorldReport};

use crate::audit::{self, Evidence};
use cluster::{Backend, Bus, ZoneServer};
use probe::{ClientProbe, Latencies, PropagationProbe};

/// The gatherable resources (catalog descriptors, stackable).
pub const RESOURCES: [&str; 4] = ["ore", "wood", "herb", "hide"];

/// How a world runs.
#[derive(Clone, Debug, clap::Args)]
pub struct WorldConfig {
    /// Simulated players, each with an SDK client.
    #[arg(long, default_value_t = 200)]
    pub players: usize,
    /// Zones, one node each.
    #[arg(long, default_value_t = 4)]
    pub zones: usize,
    /// Seconds of play.
    #[arg(long, value_parser = parse_secs, default_value = "30")]
    pub duration: Duration,
    /// The seed of every random decision.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Actions per player per second, on average.
    #[arg(long, default_value_t = 0.5)]
    pub rate: f64,
    /// Relative weight of gathering.
    #[arg(long, default_value_t = 50)]
    pub gather: u32,
    /// Relative weight of trading.
    #[arg(long, default_value_t = 25)]
    pub trade: u32,
    /// Relative weight of moving to another zone.
    #[arg(long = "move", default_value_t = 10)]
    pub moves: u32,
    /// Relative weight of crafting a unique item from gathered resources.
    #[arg(long, default_value_t = 8)]
    pub craft: u32,
    /// Relative weight of burning a crafted item back into a resource.
    #[arg(long, default_value_t = 4)]
    pub burn: u32,
    /// Probability that an applied change is sent again with the same id.
    #[arg(long, default_value_t = 0.05)]
    pub retry: f64,
    /// Use this MongoDB deployment as the store (default: SQLite files).
    #[arg(long)]
    pub mongodb_uri: Option<String>,
    /// Use this Redis as the bus (default: in-process, or a redis-server the
    /// world starts when chaos kills Redis).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Keep the SQLite files here (default: a temp dir, deleted).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How often each node checks its caches against the store.
    #[arg(long, value_parser = parse_secs, default_value = "3")]
    pub version_check: Duration,
    /// How long clients get to converge after play stops.
    #[arg(long, value_parser = parse_secs, default_value = "30")]
    pub settle: Duration,
    /// Faults to inject.
    #[command(flatten)]
    pub chaos: Chaos,
    /// Draw a progress bar.
    #[arg(skip = false)]
    pub progress: bool,
}

/// Faults to inject while the world runs.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Chaos {
    /// Everything below at its usual level: Redis kills, node kills, 1% of
    /// events dropped, duplicated and delayed, 2% slow clients.
    #[arg(long = "chaos")]
    pub all: bool,
    /// Kill and restart Redis (the world starts its own redis-server).
    #[arg(long)]
    pub redis_kill: bool,
    /// Kill zone nodes (their players move) and restart them.
    #[arg(long)]
    pub node_kill: bool,
    /// Probability that a published event is lost.
    #[arg(long, default_value_t = 0.0)]
    pub drop: f64,
    /// Probability that a published event is sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// Probability that a published event is delayed (reordered).
    #[arg(long, default_value_t = 0.0)]
    pub delay: f64,
    /// Fraction of players whose client is slow.
    #[arg(long, default_value_t = 0.0)]
    pub slow_clients: f64,
    /// Seconds between chaos events.
    #[arg(long, value_parser = parse_secs, default_value = "5")]
    pub chaos_every: Duration,
}

impl Chaos {
    fn normalized(mut self) -> Self {
        if self.all {
            self.redis_kill = true;
            self.node_kill = true;
            self.drop = self.drop.max(0.01);
            self.duplicate = self.duplicate.max(0.01);
            self.delay = self.delay.max(0.01);
            self.slow_clients = self.slow_clients.max(0.02);
        }
        self
    }

    pub(crate) fn faulty(&self) -> bool {
        self.drop > 0.0 || self.duplicate > 0.0 || self.delay > 0.0
    }
}

impl WorldConfig {
    /// The configuration the command line `args` (flags only, no program
    /// name) describe.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            world: WorldConfig,
        }
        let line: Vec<std::ffi::OsString> = std::iter::once("world".into())
            .chain(args.into_iter().map(Into::into))
            .collect();
        <Line as clap::Parser>::try_parse_from(line).map(|l| l.world)
    }
}

/// Parses seconds (`30`, `0.5`).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// What a player task counts.
#[derive(Debug, Default)]
struct Counters {
    gathers: AtomicU64,
    trades: AtomicU64,
    moves: AtomicU64,
    crafts: AtomicU64,
    burns: AtomicU64,
    refused: AtomicU64,
    retries_on_purpose: AtomicU64,
    retries_after_error: AtomicU64,
    failed_moves: AtomicU64,
    redis_kills: AtomicU64,
    node_kills: AtomicU64,
}

/// One zone as players see it: its node's state while it is up.
struct ZoneSlot {
    name: ZoneId,
    ws_url: String,
    http_url: String,
    state: RwLock<Option<AppState>>,
    /// Bumped at every restart: a player joined to an older incarnation must
    /// join again.
    incarnation: AtomicU64,
}

impl ZoneSlot {
    fn state(&self) -> Option<AppState> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What every player task shares.
struct World {
    config: WorldConfig,
    zones: Vec<ZoneSlot>,
    users: Vec<UserId>,
    probes: Vec<Arc<ClientProbe>>,
    /// Every client's latency marks, behind [`World::probes`].
    client_latencies: Latencies,
    propagation: Arc<PropagationProbe>,
    acknowledged: Mutex<HashMap<ChangeId, Vec<(OwnerId, Version)>>>,
    /// Where crafted descriptors are created and burned.
    registry: InProcessRegistry,
    /// The descriptor of every craft order placed, applied or not.
    crafted: Mutex<Vec<ItemId>>,
    retry_mismatches: Mutex<Vec<String>>,
    counters: Counters,
    tokens: inventory_service::ClientTokens,
    stop: AtomicBool,
    /// Sessions the SDK clients re-established by themselves.
    client_reconnects: Arc<AtomicU64>,
    /// The runtime of the slow clients, if any.
    slow_clients: Option<tokio::runtime::Handle>,
    /// One connection pool for every client's descriptor fetches (each
    /// client keeps its own batcher and cache): thousands of idle keep-alive
    /// connections would otherwise hold thousands of file descriptors on
    /// both ends in this one process.
    http: reqwest::Client,
    /// The players' choice of action, by `WorldConfig`'s weights, in the
    /// order of [`Action`].
    actions: WeightedIndex<u32>,
}

/// What a player does next.
#[derive(Clone, Copy, Debug)]
enum Action {
    Gather,
    Trade,
    Move,
    Craft,
    Burn,
}

impl Action {
    const ALL: [Action; 5] = [
        Action::Gather,
        Action::Trade,
        Action::Move,
        Action::Craft,
        Action::Burn,
    ];
}

/// One simulated player.
struct Player {
    index: usize,
    user: UserId,
    hero: OwnerId,
    zone: usize,
    incarnation: u64,
    client: Option<InventoryClient>,
    slow: bool,
    rng: StdRng,
}

/// Runs a world and audits it: starts the cluster, spawns the players, lets
/// them play under chaos for the configured duration, settles, shuts down,
/// then audits what the store holds.
pub async fn run(config: WorldConfig) -> anyhow::Result<WorldReport> {
    let (config, actions) = checked(config)?;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (backend, servers) = start_cluster(&config).await?;
    let slow_runtime = slow_client_runtime(&config)?;
    let world = Arc::new(World::new(
        config,
        actions,
        &backend,
        &servers,
        slow_runtime.as_ref().map(|r| r.handle().clone()),
    )?);
    let listener = listen_for_propagation(&world, &backend).await?;

    let progress = progress_bar(
        world.config.progress,
        world.config.duration.as_secs(),
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} s  {msg}",
    );
    progress.set_message("connecting players");
    let players = spawn_players(&world).await?;
    progress.set_message("playing");
    let Played {
        mut players,
        mut servers,
        backend,
        seconds,
    } = play(&world, players, servers, backend, &progress).await?;
    progress.set_message("settling");
    let views = recover_and_settle(&world, &mut servers, &backend, &mut players).await?;
    progress.finish_and_clear();

    let totals = shut_down(players, &mut servers).await;
    listener.abort();
    if let Some(runtime) = slow_runtime {
        runtime.shutdown_background();
    }
    let (changes, audit) = audit_world(&world, &backend, views).await?;
    Ok(report(&world, &backend, &totals, seconds, changes, audit))
}

/// The configuration with its chaos levels filled in, and the players'
/// choice of action by its weights; refuses a world that cannot run.
fn checked(mut config: WorldConfig) -> anyhow::Result<(WorldConfig, WeightedIndex<u32>)> {
    config.chaos = config.chaos.normalized();
    anyhow::ensure!(config.players >= 2, "a world needs at least 2 players");
    anyhow::ensure!(config.zones >= 1, "a world needs at least 1 zone");
    let weights = [
        config.gather,
        config.trade,
        config.moves,
        config.craft,
        config.burn,
    ];
    let actions = WeightedIndex::new(weights).map_err(|_| {
        anyhow::anyhow!(
            "at least one of --gather, --trade, --move, --craft and --burn must be above 0"
        )
    })?;
    Ok((config, actions))
}

/// The stores, the bus and the descriptor catalog, then one zone node per
/// zone.
async fn start_cluster(config: &WorldConfig) -> anyhow::Result<(Backend, Vec<ZoneServer>)> {
    let backend = Backend::start(config).await?;
    create_catalog(&backend).await?;
    let mut servers = Vec::with_capacity(config.zones);
    for z in 0..config.zones {
        let name = ZoneId::parse(format!("zone-{z}"))?;
        servers.push(ZoneServer::start(name, &backend, config).await?);
    }
    Ok((backend, servers))
}

/// The runtime the slow clients share, if the chaos has slow clients.
fn slow_client_runtime(config: &WorldConfig) -> anyhow::Result<Option<tokio::runtime::Runtime>> {
    Ok((config.chaos.slow_clients > 0.0)
        .then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("slow-clients")
                .enable_all()
                .build()
        })
        .transpose()?)
}

impl World {
    fn new(
        config: WorldConfig,
        actions: WeightedIndex<u32>,
        backend: &Backend,
        servers: &[ZoneServer],
        slow_clients: Option<tokio::runtime::Handle>,
    ) -> anyhow::Result<Self> {
        let zones = servers
            .iter()
            .map(|s| ZoneSlot {
                name: s.name.clone(),
                ws_url: s.ws_url(),
                http_url: s.http_url(),
                state: RwLock::new(s.state().cloned()),
                incarnation: AtomicU64::new(0),
            })
            .collect();
        let users: Vec<UserId> = (0..config.players)
            .map(|i| UserId::parse(format!("p{i:06}")))
            .collect::<Result<_, _>>()?;
        let client_latencies = Latencies::default();
        Ok(Self {
            actions,
            probes: users
                .iter()
                .map(|_| Arc::new(ClientProbe::new(client_latencies.clone())))
                .collect(),
            client_latencies,
            users,
            zones,
            propagation: Arc::new(PropagationProbe::default()),
            acknowledged: Mutex::new(HashMap::new()),
            registry: InProcessRegistry(backend.registry.clone()),
            crafted: Mutex::new(Vec::new()),
            retry_mismatches: Mutex::new(Vec::new()),
            counters: Counters::default(),
            tokens: backend.tokens.clone(),
            stop: AtomicBool::new(false),
            client_reconnects: Arc::default(),
            slow_clients,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            config,
        })
    }
}

/// Subscribes a bus connection of the world's own to every player's channel
/// and feeds what arrives to the propagation probe until aborted.
async fn listen_for_propagation(
    world: &Arc<World>,
    backend: &Backend,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (probe_bus, probe_receiver) = backend.connect().await?;
    for user in &world.users {
        probe_bus.subscribe(user).await?;
    }
    Ok(tokio::spawn(
        world.propagation.clone().listen(probe_receiver),
    ))
}

/// Every player, each with a random source seeded from the world's seed and
/// a zone of its own, entered in its zone (joined and connected).
async fn spawn_players(world: &World) -> anyhow::Result<Vec<Player>> {
    let config = &world.config;
    let mut players = Vec::with_capacity(config.players);
    let mut root = StdRng::seed_from_u64(config.seed);
    for index in 0..config.players {
        let mut rng = StdRng::seed_from_u64(root.random());
        let zone = rng.random_range(0..config.zones);
        let slow = rng.random_bool(config.chaos.slow_clients.clamp(0.0, 1.0));
        let user = world.users[index].clone();
        let hero = OwnerId::character(user.clone(), CharacterId::parse("hero")?);
        players.push(Player {
            index,
            user,
            hero,
            zone,
            incarnation: 0,
            client: None,
            slow,
            rng,
        });
    }
    let connecting = futures::future::join_all(
        players
            .iter_mut()
            .map(|player| enter(world, player, player.zone)),
    )
    .await;
    for result in connecting {
        result.context("a player could not enter the world")?;
    }
    Ok(players)
}

/// What the play hands back: the players, the cluster the chaos loop held,
/// and how long play lasted.
struct Played {
    players: Vec<Player>,
    servers: Vec<ZoneServer>,
    backend: Backend,
    seconds: f64,
}

/// Lets every player play, and the chaos loop kill and restart, for the
/// configured duration; then stops them all and takes everything back.
async fn play(
    world: &Arc<World>,
    players: Vec<Player>,
    mut servers: Vec<ZoneServer>,
    mut backend: Backend,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Played> {
    let started = Instant::now();
    let tasks: Vec<_> = players
        .into_iter()
        .map(|player| tokio::spawn(play_as(world.clone(), player)))
        .collect();
    let chaos_world = world.clone();
    let chaos = tokio::spawn(async move {
        chaos_loop(&chaos_world, &mut servers, &mut backend).await;
        (servers, backend)
    });
    show_progress(world, started, progress).await;
    world.stop.store(true, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let mut players = Vec::with_capacity(tasks.len());
    for task in tasks {
        players.push(task.await?);
    }
    let (servers, backend) = chaos.await?;
    Ok(Played {
        players,
        servers,
        backend,
        seconds,
    })
}

/// Shows the acknowledged changes and their rate until the play time is up.
async fn show_progress(world: &World, started: Instant, progress: &indicatif::ProgressBar) {
    while started.elapsed() < world.config.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let changes = world
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        progress.set_position(started.elapsed().as_secs());
        progress.set_message(format!(
            "{changes} changes, {:.0}/s",
            changes as f64 / started.elapsed().as_secs_f64()
        ));
    }
}

/// Restarts every node the chaos left down, puts every player whose node
/// went away back in its zone, and waits for the clients to converge;
/// returns their views.
async fn recover_and_settle(
    world: &World,
    servers: &mut [ZoneServer],
    backend: &Backend,
    players: &mut [Player],
) -> anyhow::Result<Vec<protocol::OwnerSnapshot>> {
    for server in servers.iter_mut() {
        if server.state().is_none() {
            server.restart(backend, &world.config).await?;
        }
    }
    refresh_slots(world, servers);
    for player in players.iter_mut() {
        if player.incarnation != world.zones[player.zone].incarnation.load(Ordering::SeqCst)
            || player.client.is_none()
        {
            let zone = player.zone;
            enter(world, player, zone).await?;
        }
    }
    settle(world, backend, players).await
}

/// Closes every client and stops every node; returns what each node
/// counted over its lives.
async fn shut_down(players: Vec<Player>, servers: &mut [ZoneServer]) -> Vec<cluster::Retired> {
    for player in players {
        if let Some(client) = player.client {
            client.close().await;
        }
    }
    let totals = servers.iter().map(ZoneServer::totals).collect::<Vec<_>>();
    for server in servers.iter_mut() {
        server.kill().await;
    }
    totals
}

/// The audit of the store and the descriptors, given the acknowledged
/// changes, the crafts ordered and the clients' final views, plus a
/// violation for every retry on purpose that answered differently. Returns
/// the number of acknowledged changes too.
async fn audit_world(
    world: &World,
    backend: &Backend,
    views: Vec<protocol::OwnerSnapshot>,
) -> anyhow::Result<(u64, audit::AuditReport)> {
    let acknowledged = std::mem::take(
        &mut *world
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let changes = acknowledged.len() as u64;
    let crafted =
        std::mem::take(&mut *world.crafted.lock().unwrap_or_else(PoisonError::into_inner));
    let mut audit = audit::audit(
        &*backend.scan,
        &*backend.descriptors,
        Evidence {
            acknowledged: Some(acknowledged),
            client_views: Some(views),
            crafted: Some(crafted),
        },
    )
    .await?;
    for mismatch in world
        .retry_mismatches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        audit.violations.push(audit::Violation::RetryDiffered {
            detail: mismatch.clone(),
        });
    }
    Ok((changes, audit))
}

/// The world's report: what the players did, what the nodes counted, the
/// latencies and the audit.
fn report(
    world: &World,
    backend: &Backend,
    totals: &[cluster::Retired],
    seconds: f64,
    changes: u64,
    audit: audit::AuditReport,
) -> WorldReport {
    let config = &world.config;
    let c = &world.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let sum = |f: fn(&cluster::Retired) -> u64| totals.iter().map(f).sum::<u64>();
    WorldReport {
        players: config.players,
        zones: config.zones,
        backend: match (&config.mongodb_uri, &backend.bus) {
            (Some(_), Bus::Redis(_)) => "MongoDB + Redis",
            (Some(_), Bus::Local(_)) => "MongoDB + in-process bus",
            (None, Bus::Redis(_)) => "SQLite + Redis",
            (None, Bus::Local(_)) => "SQLite + in-process bus",
        }
        .to_owned(),
        seconds,
        changes,
        changes_per_second: changes as f64 / seconds,
        actions: BTreeMap::from([
            ("gather".to_owned(), get(&c.gathers)),
            ("trade".to_owned(), get(&c.trades)),
            ("move".to_owned(), get(&c.moves)),
            ("craft".to_owned(), get(&c.crafts)),
            ("burn".to_owned(), get(&c.burns)),
            ("refused".to_owned(), get(&c.refused)),
            ("failed_move".to_owned(), get(&c.failed_moves)),
            ("retry_on_purpose".to_owned(), get(&c.retries_on_purpose)),
            ("retry_after_error".to_owned(), get(&c.retries_after_error)),
        ]),
        crafted_descriptors: get(&c.crafts),
        burned_descriptors: get(&c.burns),
        propagation_latency: Quantiles::of(&world.propagation.latencies.snapshot()),
        client_latency: Quantiles::of(&world.client_latencies.snapshot()),
        duplicates_discarded: sum(|r| r.propagation.duplicates),
        gaps: sum(|r| r.propagation.gaps),
        rehydrations: sum(|r| r.propagation.rehydrations),
        resumes: sum(|r| r.resumes),
        client_reconnects: world.client_reconnects.load(Ordering::Relaxed),
        slow_client_disconnects: sum(|r| r.slow_disconnects),
        publish_failures: sum(|r| r.propagation.publish_failures)
            + backend.publishing.snapshot().publish_failures,
        chaos: BTreeMap::from([
            ("redis_kills".to_owned(), get(&c.redis_kills)),
            ("node_kills".to_owned(), get(&c.node_kills)),
        ]),
        rss_mib: testkit::bench::rss_bytes().map_or(0.0, |b| b as f64 / (1 << 20) as f64),
        audit,
    }
}

/// A progress bar of `len` steps drawn with `template` (indicatif's
/// syntax), or a hidden one when progress is off.
pub(crate) fn progress_bar(shown: bool, len: u64, template: &str) -> indicatif::ProgressBar {
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The catalog descriptors of the gatherable resources.
async fn create_catalog(backend: &Backend) -> anyhow::Result<()> {
    for name in RESOURCES {
        let descriptor = Descriptor::catalog(ItemId::parse(name)?, name);
        backend.descriptors.create(&descriptor).await?;
    }
    Ok(())
}

fn refresh_slots(world: &World, servers: &[ZoneServer]) {
    for (slot, server) in world.zones.iter().zip(servers) {
        let mut state = slot.state.write().unwrap_or_else(PoisonError::into_inner);
        let up = server.state().cloned();
        if state.is_none() && up.is_some() {
            slot.incarnation.fetch_add(1, Ordering::SeqCst);
        }
        *state = up;
    }
}

/// Puts `player` in `zone`: the zone's node joins it, its client connects
/// there, then the old zone (if another) lets go.
async fn enter(world: &World, player: &mut Player, zone: usize) -> anyhow::Result<()> {
    let slot = &world.zones[zone];
    let state = slot.state().context("the zone is down")?;
    let incarnation = slot.incarnation.load(Ordering::SeqCst);
    state.hub().join(&slot.name, &player.user).await?;
    let client = connect(world, player, zone).await?;
    let old = player.client.replace(client);
    let from = player.zone;
    player.zone = zone;
    player.incarnation = incarnation;
    if let Some(old) = old {
        old.close().await;
    }
    if from != zone
        && let Some(state) = world.zones[from].state()
    {
        state
            .hub()
            .leave(&world.zones[from].name, &player.user)
            .await?;
    }
    Ok(())
}

/// A new SDK client for `player` on `zone`'s node.
async fn connect(world: &World, player: &Player, zone: usize) -> anyhow::Result<InventoryClient> {
    let slot = &world.zones[zone];
    let token = world.tokens.issue(&player.user, 24 * 3600)?;
    let probe = world.probes[player.index].clone();
    probe.reset();
    let handle_cell: Arc<std::sync::OnceLock<sdk::ClientHandle>> = Arc::default();
    let cell = handle_cell.clone();
    let slow = player.slow;
    let reconnects = world.client_reconnects.clone();
    let descriptors = sdk::DescriptorClient::builder(slot.http_url.clone())
        .with_http_client(world.http.clone())
        .build()?;
    let builder = InventoryClient::builder(slot.ws_url.clone(), token)
        .with_descriptor_client(descriptors)
        .with_reconnect_delay(Duration::from_millis(50), Duration::from_secs(1))
        .on_change(move |change| {
            if let Some(handle) = cell.get() {
                let owner = change.owner();
                if let Some(view) = handle.view().owner(owner) {
                    probe.shown(owner, view.version.get());
                }
            }
            if slow {
                // The slow clients' pumps share one thread of their own:
                // blocking here is what makes them slow readers.
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .on_connection({
            let reconnects = reconnects.clone();
            let mut sessions = 0u64;
            move |state| {
                if state == ConnectionState::Connected {
                    sessions += 1;
                    if sessions > 1 {
                        reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    let client = match (&world.slow_clients, slow) {
        (Some(runtime), true) => runtime.spawn(builder.connect()).await??,
        _ => builder.connect().await?,
    };
    let _ = handle_cell.set(client.handle());
    Ok(client)
}

/// One player's play until the world stops.
async fn play_as(world: Arc<World>, mut player: Player) -> Player {
    while !world.stop.load(Ordering::SeqCst) {
        let wait = -(1.0 - player.rng.random::<f64>()).ln() / world.config.rate.max(1e-6);
        tokio::time::sleep(Duration::from_secs_f64(wait.min(60.0))).await;
        if world.stop.load(Ordering::SeqCst) {
            break;
        }
        let slot = &world.zones[player.zone];
        let state = match slot.state() {
            Some(state) if slot.incarnation.load(Ordering::SeqCst) == player.incarnation => state,
            _ => {
                relocate(&world, &mut player).await;
                continue;
            }
        };
        match Action::ALL[world.actions.sample(&mut player.rng)] {
            Action::Gather => gather(&world, &mut player, state.inventory()).await,
            Action::Trade => trade(&world, &mut player, &state).await,
            Action::Move => relocate(&world, &mut player).await,
            Action::Craft => craft(&world, &mut player, &state).await,
            Action::Burn => burn(&world, &mut player, &state).await,
        }
    }
    player
}

/// Moves the player to another zone that is up (or re-enters its own after a
/// restart).
async fn relocate(world: &World, player: &mut Player) {
    let zones = world.zones.len();
    let start = player.rng.random_range(0..zones);
    let target = (0..zones).map(|k| (start + k) % zones).find(|z| {
        (*z != player.zone
            || zones == 1
            || world.zones[player.zone].state().is_none()
            || world.zones[*z].incarnation.load(Ordering::SeqCst) != player.incarnation)
            && world.zones[*z].state().is_some()
    });
    let Some(target) = target else {
        world.counters.failed_moves.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match enter(world, player, target).await {
        Ok(()) => {
            world.counters.moves.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::debug!(user = %player.user, error = %e, "move failed");
            world.counters.failed_moves.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn gather(world: &World, player: &mut Player, inventory: &Inventory) {
    let item = RESOURCES[player.rng.random_range(0..RESOURCES.len())];
    let qty = player.rng.random_range(1..=5);
    let owner = if player.rng.random_bool(0.8) {
        player.hero.clone()
    } else {
        OwnerId::account(player.user.clone())
    };
    let change = Change::new(ChangeId::from_bytes(player.rng.random())).grant(
        owner,
        ItemId::parse(item).expect("resource ids are valid"),
        Quantity::new(qty).expect("1..=5"),
    );
    if apply(world, player, inventory, change).await {
        world.counters.gathers.fetch_add(1, Ordering::Relaxed);
    }
}

async fn trade(world: &World, player: &mut Player, state: &AppState) {
    let mut partner = player.rng.random_range(0..world.users.len() - 1);
    if partner >= player.index {
        partner += 1;
    }
    let partner_hero = OwnerId::character(
        world.users[partner].clone(),
        CharacterId::parse("hero").expect("valid"),
    );
    let mut gives = resource(player.rng.random_range(0..RESOURCES.len()));
    let takes = resource(player.rng.random_range(0..RESOURCES.len()));
    let (mut give_qty, take_qty) = (
        player.rng.random_range(1..=3),
        player.rng.random_range(1..=3),
    );
    let id = ChangeId::from_bytes(player.rng.random());
    let held = hero_items(state, player);
    let uniques = crafted_items(&held);
    if !uniques.is_empty() && player.rng.random_bool(0.3) {
        // A crafted item for resources.
        gives = uniques[player.rng.random_range(0..uniques.len())].clone();
        give_qty = 1;
    }
    if gives == takes {
        // One item for itself: not a trade worth a change.
        return;
    }
    if held.get(&gives).copied().unwrap_or(0) < give_qty {
        world.counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let q = |n: u64| Quantity::new(n).expect("1..=3");
    let change = Change::trade(
        id,
        (player.hero.clone(), &[(gives, q(give_qty))]),
        (partner_hero, &[(takes, q(take_qty))]),
    );
    if apply(world, player, state.inventory(), change).await {
        world.counters.trades.fetch_add(1, Ordering::Relaxed);
    }
}

/// The resource at `index` in [`RESOURCES`].
fn resource(index: usize) -> ItemId {
    ItemId::parse(RESOURCES[index]).expect("resource ids are valid")
}

/// What the player's hero holds, as its zone node's cache shows it.
fn hero_items(state: &AppState, player: &Player) -> BTreeMap<ItemId, u64> {
    state
        .hub()
        .snapshot(&player.user)
        .and_then(|owners| owners.into_iter().find(|o| o.owner == player.hero))
        .map(|o| o.items)
        .unwrap_or_default()
}

/// The crafted (unique) items among `held`.
fn crafted_items(held: &BTreeMap<ItemId, u64>) -> Vec<ItemId> {
    held.iter()
        .filter(|(item, qty)| **qty > 0 && item.as_str().starts_with("x-"))
        .map(|(item, _)| item.clone())
        .collect()
}

/// Crafts a unique item from two gathered resources the hero holds
/// (sometimes without checking, so that refused crafts happen too: their
/// descriptors must end up burned).
async fn craft(world: &World, player: &mut Player, state: &AppState) {
    let held = hero_items(state, player);
    let first = player.rng.random_range(0..RESOURCES.len());
    let second = (first + player.rng.random_range(1..RESOURCES.len())) % RESOURCES.len();
    let inputs: Vec<(ItemId, Quantity)> = [first, second]
        .into_iter()
        .map(|r| {
            let qty = Quantity::new(player.rng.random_range(1..=2)).expect("1..=2");
            (resource(r), qty)
        })
        .collect();
    let enough = inputs
        .iter()
        .all(|(item, qty)| held.get(item).copied().unwrap_or(0) >= qty.get());
    if !enough && !player.rng.random_bool(0.1) {
        world.counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let change = ChangeId::from_bytes(player.rng.random());
    let name = format!("{} and {} charm", RESOURCES[first], RESOURCES[second]);
    let order = CraftOrder::new(
        change,
        player.hero.clone(),
        name,
        inputs,
        crafting::unix_millis(),
    )
    .with_attribute(
        "power",
        AttributeValue::Int(player.rng.random_range(1..=100)),
    );
    world
        .crafted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(order.descriptor.id.clone());
    let applied = apply_with(world, player, change, || {
        crafting::craft(state.inventory(), &world.registry, &order)
    })
    .await;
    if applied {
        world.counters.crafts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Burns one of the hero's crafted items for one unit of a resource.
async fn burn(world: &World, player: &mut Player, state: &AppState) {
    let uniques = crafted_items(&hero_items(state, player));
    if uniques.is_empty() {
        return;
    }
    let order = BurnOrder {
        change: ChangeId::from_bytes(player.rng.random()),
        owner: player.hero.clone(),
        item: uniques[player.rng.random_range(0..uniques.len())].clone(),
        recovered: vec![(
            resource(player.rng.random_range(0..RESOURCES.len())),
            Quantity::ONE,
        )],
    };
    let applied = apply_with(world, player, order.change, || {
        crafting::burn(state.inventory(), &world.registry, &order)
    })
    .await;
    if applied {
        world.counters.burns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Applies `change` through `inventory`; see [`apply_with`].
async fn apply(world: &World, player: &mut Player, inventory: &Inventory, change: Change) -> bool {
    apply_with(world, player, change.id, || {
        let change = change.clone();
        async move { inventory.apply(change).await }
    })
    .await
}

/// How long one attempt may take before its outcome counts as unknown.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How an attempt whose outcome is unknown is retried: up to 9 more times,
/// backing off from 50 ms to 500 ms, jittered so that the players one node
/// kill failed together do not retry together.
fn retry_policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(9)
        .with_jitter()
}

/// Runs `attempt` (one attempt of the change `id`: a plain change, a craft
/// or a burn order), retrying it sequentially while the error's code is
/// retryable (a timed-out attempt's outcome is unknown: `unavailable`);
/// records the acknowledgement and the latency marks, and sometimes retries
/// an applied change on purpose. True if applied.
async fn apply_with<F, Fut>(world: &World, player: &mut Player, id: ChangeId, attempt: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<AppliedChange, inventory_core::Error>>,
{
    let started = Instant::now();
    world.propagation.start(id, started);
    // A timed-out attempt is dropped before the next one starts, so the
    // attempts of one order never overlap in this task.
    let bounded = || async {
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt())
            .await
            .unwrap_or_else(|_| {
                Err(inventory_core::Error::Unavailable(format!(
                    "no answer within {ATTEMPT_TIMEOUT:?}"
                )))
            })
    };
    let outcome = bounded
        .retry(retry_policy())
        .when(|e: &inventory_core::Error| e.code().is_retryable())
        .notify(|_, _| {
            world
                .counters
                .retries_after_error
                .fetch_add(1, Ordering::Relaxed);
        })
        .await;
    let applied = match outcome {
        Ok(applied) => applied,
        Err(e) => {
            if e.code() != ErrorCode::InsufficientBalance {
                tracing::warn!(change = %id, error = %e, "change failed");
            }
            world.propagation.forget(&id);
            world.counters.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
    };
    let versions = acknowledge(world, id, &applied, started);
    if player.rng.random_bool(world.config.retry.clamp(0.0, 1.0)) {
        retry_on_purpose(world, id, &applied, &versions, attempt).await;
    }
    true
}

/// Records an applied change: its acknowledged versions (for the audit) and
/// the latency marks of the clients that should show them. Returns the
/// versions.
fn acknowledge(
    world: &World,
    id: ChangeId,
    applied: &AppliedChange,
    started: Instant,
) -> Vec<(OwnerId, Version)> {
    let versions: Vec<(OwnerId, Version)> = applied
        .event
        .owners
        .iter()
        .map(|o| (o.owner.clone(), o.version))
        .collect();
    for (owner, version) in &versions {
        if let Some(index) = user_index(owner.user()) {
            world.probes[index].produced(owner, version.get(), started);
        }
    }
    world
        .acknowledged
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, versions.clone());
    versions
}

/// Sends an applied change again with its id: it must answer "already
/// applied" with the same event, else the mismatch becomes a violation.
async fn retry_on_purpose<F, Fut>(
    world: &World,
    id: ChangeId,
    applied: &AppliedChange,
    versions: &[(OwnerId, Version)],
    attempt: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<AppliedChange, inventory_core::Error>>,
{
    world
        .counters
        .retries_on_purpose
        .fetch_add(1, Ordering::Relaxed);
    match attempt().await {
        Ok(again) if again.already_applied && again.event == applied.event => {}
        other => world
            .retry_mismatches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!(
                "change {id} applied with {versions:?}, its retry answered {other:?}"
            )),
    }
}

/// The player index of a user id `pNNNNNN`.
fn user_index(user: &UserId) -> Option<usize> {
    user.as_str().strip_prefix('p')?.parse().ok()
}

/// Kills and restarts Redis and zone nodes until the world stops; leaves
/// everything running.
async fn chaos_loop(world: &World, servers: &mut [ZoneServer], backend: &mut Backend) {
    let chaos = &world.config.chaos;
    if !chaos.redis_kill && !chaos.node_kill {
        return;
    }
    let mut rng = StdRng::seed_from_u64(world.config.seed ^ 0xc4a0);
    let mut turn = 0u64;
    while !world.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(chaos.chaos_every).await;
        if world.stop.load(Ordering::SeqCst) {
            break;
        }
        turn += 1;
        let redis_turn = chaos.redis_kill && (!chaos.node_kill || turn % 2 == 1);
        if redis_turn && let Some(mut redis) = backend.redis.take() {
            world.counters.redis_kills.fetch_add(1, Ordering::Relaxed);
            tracing::info!("chaos: killing Redis");
            let redis_back = tokio::task::spawn_blocking(move || {
                redis.kill();
                std::thread::sleep(Duration::from_secs(1));
                redis.restart();
                redis
            })
            .await;
            match redis_back {
                Ok(redis) => backend.redis = Some(redis),
                Err(e) => tracing::error!(error = %e, "could not restart Redis"),
            }
        } else if chaos.node_kill && servers.len() > 1 {
            let victim = rng.random_range(0..servers.len());
            world.counters.node_kills.fetch_add(1, Ordering::Relaxed);
            tracing::info!(zone = %servers[victim].name, "chaos: killing a zone node");
            *world.zones[victim]
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner) = None;
            servers[victim].kill().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Err(e) = servers[victim].restart(backend, &world.config).await {
                tracing::error!(error = %e, "could not restart a zone node");
            }
            refresh_slots(world, servers);
        }
    }
}

/// Waits until every client shows what the store holds (or the settle time
/// is up), and returns the clients' views for the audit.
async fn settle(
    world: &World,
    backend: &Backend,
    players: &[Player],
) -> anyhow::Result<Vec<protocol::OwnerSnapshot>> {
    let deadline = Instant::now() + world.config.settle;
    loop {
        let mut views = Vec::new();
        let mut converged = true;
        for player in players {
            let Some(client) = &player.client else {
                continue;
            };
            let stored = backend.store.load_user(&player.user).await?;
            let view = client.view();
            let shown: Vec<protocol::OwnerSnapshot> = view
                .owners
                .iter()
                .map(|o| protocol::OwnerSnapshot {
                    owner: o.owner.clone(),
                    version: o.version,
                    items: o.items.iter().map(|i| (i.item.clone(), i.qty)).collect(),
                })
                .collect();
            if shown != stored {
                converged = false;
            }
            views.extend(shown);
        }
        if converged || Instant::now() >= deadline {
            return Ok(views);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
