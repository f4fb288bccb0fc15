//! The servers of a world, in this process: the shared inventory and
//! descriptor stores, the bus, and one zone node per zone on its own loopback
//! listener, each of which can be killed and restarted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use descriptor_service::{AuthConfig, DescriptorStore};
use inventory_core::{
    EventBus, FaultPlan, FaultyBus, Inventory, InventoryStore, LocalBus, MetricsSnapshot,
    MongoConfig, PlayerHub, PlayerHubConfig, PropagationMetrics, RedisBus, RedisBusConfig,
    SqliteConfig, SqliteStore, StoreScan,
};
use inventory_service::{AppState, ClientTokens, EdgeConfig, Node, ServiceToken};
use protocol::ZoneId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::WorldConfig;

/// The secret every node verifies client tokens with (all nodes share it, so
/// a token is good on whichever node holds the player).
const JWT_SECRET: &[u8] = b"world-simulation-jwt-secret";

/// Where inventories and descriptors live, and the bus.
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn InventoryStore>,
    pub(crate) scan: Arc<dyn StoreScan>,
    pub(crate) descriptors: Arc<dyn DescriptorStore>,
    pub(crate) registry: descriptor_service::Descriptors,
    pub(crate) bus: Bus,
    /// The one publishing facade every node applies through: with a store
    /// that has an outbox, one relay per store publishes everything (several
    /// would each publish every change); under event chaos, through a
    /// `FaultyBus`.
    pub(crate) inventory: Inventory,
    /// What `inventory` counted (publishes and their failures).
    pub(crate) publishing: PropagationMetrics,
    pub(crate) tokens: ClientTokens,
    /// The Redis server the world started itself (chaos kills it).
    pub(crate) redis: Option<testkit::RedisServer>,
    _temp: Option<tempfile::TempDir>,
}

/// The inventory store (as a store and for scans), the descriptor store, and
/// the temp dir holding their files, if the world made one.
type Stores = (
    Arc<dyn InventoryStore>,
    Arc<dyn StoreScan>,
    Arc<dyn DescriptorStore>,
    Option<tempfile::TempDir>,
);

/// The propagation fabric.
#[derive(Clone, Debug)]
pub(crate) enum Bus {
    Local(LocalBus),
    Redis(RedisBusConfig),
}

impl Backend {
    pub(crate) async fn start(config: &WorldConfig) -> anyhow::Result<Self> {
        let (store, scan, descriptors, temp): Stores = match &config.mongodb_uri {
            Some(uri) => {
                let database = format!("world_{}", config.seed);
                let store = Arc::new(
                    inventory_core::MongoStore::connect(
                        MongoConfig::new(uri.clone()).with_database(&database),
                    )
                    .await?,
                );
                let descriptors = Arc::new(
                    descriptor_service::MongoStore::connect(uri, &format!("{database}_desc"))
                        .await?,
                );
                (store.clone(), store, descriptors, None)
            }
            None => {
                let (dir, temp) = match &config.data_dir {
                    Some(dir) => {
                        std::fs::create_dir_all(dir)?;
                        (dir.clone(), None)
                    }
                    None => {
                        let temp = tempfile::tempdir()?;
                        (temp.path().to_owned(), Some(temp))
                    }
                };
                let store = Arc::new(SqliteStore::open(SqliteConfig::new(
                    dir.join("inventory.db"),
                ))?);
                let descriptors = Arc::new(descriptor_service::SqliteStore::open(
                    dir.join("descriptors.db"),
                )?);
                (store.clone(), store, descriptors, temp)
            }
        };
        let mut redis = None;
        let bus = match (&config.redis_url, config.chaos.redis_kill) {
            (Some(url), _) => Bus::Redis(RedisBusConfig::new(url.clone())),
            (None, true) => {
                let server = tokio::task::spawn_blocking(testkit::RedisServer::start).await?;
                let url = server.url();
                redis = Some(server);
                Bus::Redis(
                    RedisBusConfig::new(url)
                        .with_backoff(Duration::from_millis(50), Duration::from_millis(500)),
                )
            }
            (None, false) => Bus::Local(LocalBus::new()),
        };
        let registry = descriptor_service::Descriptors::builder(descriptors.clone()).build();
        let publishing = PropagationMetrics::new();
        let publisher = publisher(&bus, config).await?;
        let inventory = Inventory::from_arc(store.clone())
            .with_metrics(publishing.clone())
            .with_bus(publisher);
        Ok(Self {
            store,
            scan,
            descriptors,
            registry,
            bus,
            inventory,
            publishing,
            tokens: ClientTokens::hs256(JWT_SECRET).context("client tokens")?,
            redis,
            _temp: temp,
        })
    }

    /// A connection to the bus: the subscriber of one node, or the latency
    /// probe.
    pub(crate) async fn connect(
        &self,
    ) -> anyhow::Result<(Arc<dyn EventBus>, inventory_core::BusReceiver)> {
        connect(&self.bus).await
    }
}

async fn connect(bus: &Bus) -> anyhow::Result<(Arc<dyn EventBus>, inventory_core::BusReceiver)> {
    Ok(match bus {
        Bus::Local(bus) => {
            let (connection, receiver) = bus.connect();
            (Arc::new(connection), receiver)
        }
        Bus::Redis(config) => {
            let (bus, receiver) = RedisBus::connect(config.clone()).await?;
            (Arc::new(bus), receiver)
        }
    })
}

/// The world's publishing connection, faulty under event chaos. It only
/// publishes: what it would receive is dropped.
async fn publisher(bus: &Bus, config: &WorldConfig) -> anyhow::Result<Arc<dyn EventBus>> {
    let (bus, _receiver) = connect(bus).await?;
    Ok(if config.chaos.faulty() {
        let plan = FaultPlan::none(config.seed)
            .with_drop(config.chaos.drop)
            .with_duplicate(config.chaos.duplicate)
            .with_delay(config.chaos.delay, Duration::from_millis(50));
        Arc::new(FaultyBus::new(bus, plan))
    } else {
        bus
    })
}

/// One zone's node: its state (inventory facade, player hub, client edge)
/// served on a fixed loopback address.
pub(crate) struct ZoneServer {
    pub(crate) name: ZoneId,
    pub(crate) addr: SocketAddr,
    running: Option<Running>,
    /// Counters of the node's earlier incarnations.
    retired: Vec<Retired>,
}

struct Running {
    state: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// What a stopped incarnation counted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Retired {
    pub(crate) propagation: MetricsSnapshot,
    pub(crate) resumes: u64,
    pub(crate) slow_disconnects: u64,
}

impl ZoneServer {
    /// Binds a fresh port and starts the node.
    pub(crate) async fn start(
        name: ZoneId,
        backend: &Backend,
        config: &WorldConfig,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut server = Self {
            name,
            addr,
            running: None,
            retired: Vec::new(),
        };
        server.serve(listener, backend, config).await?;
        Ok(server)
    }

    /// Starts the node again on its address after a kill.
    pub(crate) async fn restart(
        &mut self,
        backend: &Backend,
        config: &WorldConfig,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serve(listener, backend, config).await
    }

    async fn serve(
        &mut self,
        listener: tokio::net::TcpListener,
        backend: &Backend,
        config: &WorldConfig,
    ) -> anyhow::Result<()> {
        let metrics = PropagationMetrics::new();
        let (bus, receiver) = backend.connect().await?;
        let hub = PlayerHub::start(
            backend.store.clone(),
            bus,
            receiver,
            PlayerHubConfig::new()
                .with_version_check_interval(Some(config.version_check))
                .with_metrics(metrics.clone()),
        );
        let inventory = backend.inventory.clone();
        // Slow clients get a short send queue so the node cuts them off (and
        // they resume) within a run.
        let edge = EdgeConfig::new()
            .with_linger(Duration::from_secs(5))
            .with_send_queue(64, Duration::from_secs(2));
        let state = Node::builder()
            .started(inventory, hub)
            .tokens(ServiceToken::random(), backend.tokens.clone())
            .zones([self.name.clone()])
            .edge(edge)
            .fallback(descriptor_service::app(
                backend.registry.clone(),
                AuthConfig::default().with_open_reads(true),
            ))
            .build()
            .await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(inventory_service::run(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        self.running = Some(Running { state, stop, task });
        Ok(())
    }

    /// Stops the node: clients are told to go (they retry this address until
    /// it is back), its caches are dropped.
    pub(crate) async fn kill(&mut self) {
        if let Some(running) = self.running.take() {
            let retired = Retired::of(&running.state);
            let _ = running.stop.send(());
            if let Ok(Err(e)) = running.task.await {
                tracing::warn!(zone = %self.name, error = %e, "node stopped with an error");
            }
            self.retired.push(retired);
        }
    }

    /// The running node's state, if it is up.
    pub(crate) fn state(&self) -> Option<&AppState> {
        self.running.as_ref().map(|r| &r.state)
    }

    /// The client WebSocket URL.
    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// The HTTP base URL (descriptors are served there too).
    pub(crate) fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Counters of every incarnation so far.
    pub(crate) fn totals(&self) -> Retired {
        let mut all = self.retired.clone();
        if let Some(running) = &self.running {
            all.push(Retired::of(&running.state));
        }
        all.iter().fold(Retired::default(), |acc, r| acc.add(r))
    }
}

impl Retired {
    fn of(state: &AppState) -> Self {
        let text = state.metrics().render();
        Self {
            propagation: state.hub().metrics().snapshot(),
            resumes: counter(&text, "inventory_resumes_total"),
            slow_disconnects: counter(&text, "inventory_slow_client_disconnects_total"),
        }
    }

    fn add(&self, other: &Self) -> Self {
        let (a, b) = (self.propagation, other.propagation);
        Self {
            propagation: MetricsSnapshot {
                published: a.published + b.published,
                publish_failures: a.publish_failures + b.publish_failures,
                received: a.received + b.received,
                applied: a.applied + b.applied,
                duplicates: a.duplicates + b.duplicates,
                gaps: a.gaps + b.gaps,
                rehydrations: a.rehydrations + b.rehydrations,
                reconnects: a.reconnects + b.reconnects,
                active_subscriptions: a.active_subscriptions + b.active_subscriptions,
            },
            resumes: self.resumes + other.resumes,
            slow_disconnects: self.slow_disconnects + other.slow_disconnects,
        }
    }
}

/// A counter's value from Prometheus text (0 if absent).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .next()
        .map_or(0, |v| v as u64)
}
