//! What every handler shares ([`AppState`]), and the wiring of a store and a
//! bus into an [`Inventory`] and a [`PlayerHub`].

use std::collections::BTreeSet;
use std::sync::Arc;

use inventory_core::crafting::DescriptorRegistry;
use inventory_core::{
    EventBus, Inventory, InventoryStore, LocalBus, PlayerHub, PlayerHubConfig, PropagationMetrics,
    RedisBus, RedisBusConfig, Support, SupportStore,
};
use protocol::ZoneId;
use tokio::sync::watch;

use crate::auth::{Caller, Permission};
use crate::feed::{FeedConfig, Feeds};
use crate::registry::InProcessRegistry;
use crate::{ApiError, ClientTokens, Credentials, EdgeConfig, Error, Metrics, ServiceToken};

/// Which propagation fabric a node uses.
#[derive(Clone, Debug)]
pub enum BusChoice {
    /// In-process: every node sharing this bus lives in this process.
    Local(LocalBus),
    /// Redis pub/sub; each node opens its own connections.
    Redis(RedisBusConfig),
}

/// Opens a bus connection and starts a node's player hub over `store`: the
/// returned [`Inventory`] publishes through the same connection the hub
/// subscribes with, and both count in the same metrics.
async fn start_node(
    store: Arc<dyn InventoryStore>,
    bus: BusChoice,
    config: PlayerHubConfig,
) -> Result<(Inventory, PlayerHub), inventory_core::Error> {
    let metrics = PropagationMetrics::new();
    let config = config.with_metrics(metrics.clone());
    let (bus, receiver): (Arc<dyn EventBus>, _) = match bus {
        BusChoice::Local(bus) => {
            let (connection, receiver) = bus.connect();
            (Arc::new(connection), receiver)
        }
        BusChoice::Redis(config) => {
            let (bus, receiver) = RedisBus::connect(config).await?;
            (Arc::new(bus), receiver)
        }
    };
    let hub = PlayerHub::start(store.clone(), bus.clone(), receiver, config);
    let inventory = Inventory::from_arc(store)
        .with_metrics(metrics)
        .with_bus(bus);
    Ok((inventory, hub))
}

/// What every handler shares. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct AppState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inventory: Inventory,
    hub: PlayerHub,
    service_token: ServiceToken,
    credentials: Credentials,
    support: Option<Support>,
    console_dir: Option<std::path::PathBuf>,
    client_tokens: ClientTokens,
    zones: Option<BTreeSet<ZoneId>>,
    edge: EdgeConfig,
    feeds: Feeds,
    metrics: Metrics,
    draining: watch::Sender<bool>,
    extra: axum::Router,
    registry: Option<Arc<dyn DescriptorRegistry>>,
    openapi_json: String,
}

/// Builds a zone node ([`Node`](crate::Node)): `Node::builder().store(..)
/// .bus(..).tokens(..).zones(..)`, then [`build`](Self::build).
///
/// Needs a store (or parts started elsewhere, [`started`](Self::started))
/// and the tokens; everything else has a default: the in-process bus, any
/// zone name, [`EdgeConfig::default`], no descriptor registry (crafts and
/// burns refused), a JSON `not_found` for routes the node does not serve.
#[derive(Debug)]
#[must_use]
pub struct NodeBuilder {
    parts: Parts,
    tokens: Option<(ServiceToken, ClientTokens)>,
    credentials: Credentials,
    support: Option<SupportPort>,
    console_dir: Option<std::path::PathBuf>,
    zones: Option<BTreeSet<ZoneId>>,
    edge: EdgeConfig,
    extra: axum::Router,
    registry: Option<Arc<dyn DescriptorRegistry>>,
    embedded_descriptors: bool,
}

/// A store's support port, for the builder's `Debug`.
struct SupportPort(Arc<dyn SupportStore>);

impl std::fmt::Debug for SupportPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupportPort(..)")
    }
}

/// Where a node's inventory and player hub come from.
enum Parts {
    /// Started by [`NodeBuilder::build`].
    ToStart {
        store: Option<Arc<dyn InventoryStore>>,
        bus: BusChoice,
        hub: PlayerHubConfig,
    },
    /// Started by the caller.
    Started(Inventory, PlayerHub),
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ToStart { store, bus, hub } => f
                .debug_struct("ToStart")
                .field("store", &store.as_ref().map(|_| ".."))
                .field("bus", bus)
                .field("hub", hub)
                .finish(),
            Self::Started(inventory, hub) => f
                .debug_tuple("Started")
                .field(inventory)
                .field(hub)
                .finish(),
        }
    }
}

impl Default for NodeBuilder {
    fn default() -> Self {
        Self {
            parts: Parts::ToStart {
                store: None,
                bus: BusChoice::Local(LocalBus::new()),
                hub: PlayerHubConfig::new(),
            },
            tokens: None,
            credentials: Credentials::default(),
            support: None,
            console_dir: None,
            zones: None,
            edge: EdgeConfig::default(),
            extra: axum::Router::new().fallback(|| async { ApiError::no_route() }),
            registry: None,
            embedded_descriptors: false,
        }
    }
}

impl NodeBuilder {
    /// The inventory store the node changes and reads.
    pub fn store(mut self, store: Arc<dyn InventoryStore>) -> Self {
        if let Parts::ToStart { store: slot, .. } = &mut self.parts {
            *slot = Some(store);
        }
        self
    }

    /// The propagation fabric (default: a new in-process bus).
    pub fn bus(mut self, bus: BusChoice) -> Self {
        if let Parts::ToStart { bus: slot, .. } = &mut self.parts {
            *slot = bus;
        }
        self
    }

    /// The player hub's settings (version checks, metrics).
    pub fn hub_config(mut self, config: PlayerHubConfig) -> Self {
        if let Parts::ToStart { hub, .. } = &mut self.parts {
            *hub = config;
        }
        self
    }

    /// An inventory and a player hub the caller started (over a bus of its
    /// own, say), instead of [`store`](Self::store), [`bus`](Self::bus) and
    /// [`hub_config`](Self::hub_config).
    pub fn started(mut self, inventory: Inventory, hub: PlayerHub) -> Self {
        self.parts = Parts::Started(inventory, hub);
        self
    }

    /// Named credentials (support, operator, more game servers) beside the
    /// service token.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The store's support port (history, custody, reverts, the operator
    /// log); without it those routes answer `unprocessable`.
    pub fn support(mut self, store: Arc<dyn SupportStore>) -> Self {
        self.support = Some(SupportPort(store));
        self
    }

    /// The browser SDK's web package the operator console at `/console`
    /// runs on.
    pub fn console(mut self, web_dir: Option<std::path::PathBuf>) -> Self {
        self.console_dir = web_dir;
        self
    }

    /// The service token guarding the gameplay API (role `game_server`), and
    /// the verifier (and issuer) of the clients' session tokens.
    pub fn tokens(mut self, service: ServiceToken, clients: ClientTokens) -> Self {
        self.tokens = Some((service, clients));
        self
    }

    /// Only these zones may be joined (default: any zone name).
    pub fn zones(mut self, zones: impl IntoIterator<Item = ZoneId>) -> Self {
        let zones: BTreeSet<ZoneId> = zones.into_iter().collect();
        self.zones = (!zones.is_empty()).then_some(zones);
        self
    }

    /// The client WebSocket's limits.
    pub fn edge(mut self, edge: EdgeConfig) -> Self {
        self.edge = edge;
        self
    }

    /// A router that answers every request the node itself does not route,
    /// on the same listener.
    pub fn fallback(mut self, routes: axum::Router) -> Self {
        self.extra = routes;
        self
    }

    /// Where crafted descriptors are created and burned: without one, the
    /// node refuses crafts and burns (`unprocessable`).
    pub fn registry(mut self, registry: Arc<dyn DescriptorRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Embeds the descriptor service: its API on this node's listener (the
    /// fallback router, guarded by `auth`), in the node's OpenAPI document,
    /// and as the registry crafts and burns write to.
    pub fn embedded_descriptors(
        mut self,
        descriptors: descriptor_service::Descriptors,
        auth: descriptor_service::AuthConfig,
    ) -> Self {
        self.extra = descriptor_service::app(descriptors.clone(), auth);
        self.registry = Some(Arc::new(InProcessRegistry(descriptors)));
        self.embedded_descriptors = true;
        self
    }

    /// Connects the bus and starts the player hub (unless
    /// [`started`](Self::started)), then the node's state.
    ///
    /// # Errors
    /// [`Error::Missing`] without a store or tokens; [`Error::Bus`] when the
    /// bus cannot be reached.
    pub async fn build(self) -> Result<AppState, Error> {
        let (service_token, client_tokens) = self
            .tokens
            .ok_or(Error::Missing("tokens (NodeBuilder::tokens)"))?;
        let (inventory, hub) = match self.parts {
            Parts::Started(inventory, hub) => (inventory, hub),
            Parts::ToStart { store, bus, hub } => {
                let store = store.ok_or(Error::Missing("a store (NodeBuilder::store)"))?;
                start_node(store, bus, hub).await.map_err(Error::Bus)?
            }
        };
        let metrics = Metrics::new(hub.metrics().clone());
        let feeds = Feeds::new(
            hub.clone(),
            FeedConfig {
                resume_window: self.edge.resume_window,
                linger: self.edge.linger,
            },
            metrics.clone(),
        );
        let draining = watch::Sender::new(false);
        let support = self
            .support
            .map(|SupportPort(store)| Support::new(inventory.clone(), store));
        Ok(AppState {
            shared: Arc::new(Shared {
                inventory,
                hub,
                service_token,
                credentials: self.credentials,
                support,
                console_dir: self.console_dir,
                client_tokens,
                zones: self.zones,
                edge: self.edge,
                feeds,
                metrics,
                draining,
                extra: self.extra,
                registry: self.registry,
                openapi_json: crate::openapi::document(self.embedded_descriptors),
            }),
        })
    }
}

impl AppState {
    /// Starts building a node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// The inventory facade.
    #[must_use]
    pub fn inventory(&self) -> &Inventory {
        &self.shared.inventory
    }

    /// The player hub: the node's player caches and the interest holding them.
    #[must_use]
    pub fn hub(&self) -> &PlayerHub {
        &self.shared.hub
    }

    /// The node's metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The client token verifier (and issuer).
    #[must_use]
    pub fn client_tokens(&self) -> &ClientTokens {
        &self.shared.client_tokens
    }

    /// Authenticates the request and checks its role allows `permission`.
    pub(crate) fn authorize(
        &self,
        headers: &axum::http::HeaderMap,
        permission: Permission,
    ) -> Result<Caller, ApiError> {
        Ok(self
            .shared
            .credentials
            .authorize(&self.shared.service_token, headers, permission)?)
    }

    /// The caller the request's token names, if any (whatever it may do).
    pub(crate) fn identify(&self, headers: &axum::http::HeaderMap) -> Option<Caller> {
        self.shared
            .credentials
            .identify_headers(&self.shared.service_token, headers)
    }

    pub(crate) fn console_dir(&self) -> Option<&std::path::Path> {
        self.shared.console_dir.as_deref()
    }

    /// History, custody and reverts, if the node has the store's support port.
    #[must_use]
    pub fn support(&self) -> Option<&Support> {
        self.shared.support.as_ref()
    }

    pub(crate) fn zone_allowed(&self, zone: &ZoneId) -> bool {
        self.shared.zones.as_ref().is_none_or(|z| z.contains(zone))
    }

    pub(crate) fn edge_config(&self) -> EdgeConfig {
        self.shared.edge
    }

    pub(crate) fn feeds(&self) -> &Feeds {
        &self.shared.feeds
    }

    pub(crate) fn openapi_json(&self) -> &str {
        &self.shared.openapi_json
    }

    pub(crate) fn registry(&self) -> Option<&dyn DescriptorRegistry> {
        self.shared.registry.as_deref()
    }

    pub(crate) fn extra_routes(&self) -> axum::Router {
        self.shared.extra.clone()
    }

    /// True once shutdown began: readiness fails and new clients are refused.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        *self.shared.draining.borrow()
    }

    /// Turns `true` when shutdown begins: for tasks serving beside the node
    /// (connections, drivers) that must end with it.
    #[must_use]
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.draining.subscribe()
    }

    /// Starts draining: refuses new clients and tells connected ones to go
    /// (they reconnect elsewhere and resume); then waits for the player
    /// feeds to release their interest, at most `timeout`.
    pub async fn drain(&self, timeout: std::time::Duration) {
        self.shared.draining.send_replace(true);
        self.shared.feeds.close(timeout).await;
    }
}
