//! The harness: zone nodes on loopback ports over a shared store and bus, a
//! stand-in descriptor service, SDK and raw WebSocket clients, a killable
//! TCP proxy, and HTTP helpers for the gameplay API.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use futures::{SinkExt, StreamExt};
use inventory_core::{InventoryStore, PlayerHubConfig, SqliteConfig, SqliteStore};
use inventory_service::{AppState, BusChoice, ClientTokens, EdgeConfig, NodeBuilder, ServiceToken};
use protocol::{
    BatchGetRequest, BatchGetResponse, ChangeId, Descriptor, Encoding, ItemId, OwnerId,
    OwnerSnapshot, ServerMessage, UserId,
};
use sdk::{InventoryClient, ViewChange};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SERVICE_TOKEN: &str = "test-service-token-0123";
pub const JWT_SECRET: &[u8] = b"test-jwt-secret-0123456789";

/// The tests' client tokens, without leeway: a token of a few seconds
/// expires in a few seconds.
pub fn tokens() -> ClientTokens {
    ClientTokens::hs256(JWT_SECRET)
        .unwrap()
        .with_leeway(Duration::ZERO)
}

/// A zone node over `store` and `bus`, with the tests' service token and
/// client token secret, ready for the test's own settings.
pub fn state_builder(
    store: Arc<dyn InventoryStore>,
    bus: BusChoice,
    config: PlayerHubConfig,
) -> NodeBuilder {
    inventory_service::Node::builder()
        .store(store)
        .bus(bus)
        .hub_config(config)
        .tokens(ServiceToken::new(SERVICE_TOKEN).unwrap(), tokens())
}

/// A valid session token for `user`, for an hour.
pub fn token(user: &str) -> String {
    tokens().issue(&UserId::parse(user).unwrap(), 3600).unwrap()
}

pub fn owner(id: &str) -> OwnerId {
    OwnerId::parse(id).unwrap()
}

pub fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

/// A SQLite store in a temp dir that lives as long as the value.
pub struct SharedStore {
    pub store: Arc<dyn InventoryStore>,
    _dir: tempfile::TempDir,
}

impl SharedStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("inv.db"))).unwrap();
        Self {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    pub async fn truth(&self, user: &str) -> Vec<OwnerSnapshot> {
        self.store
            .load_user(&UserId::parse(user).unwrap())
            .await
            .unwrap()
    }
}

/// One zone node serving on a loopback port.
pub struct Node {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Node {
    pub async fn start(store: &SharedStore, bus: BusChoice) -> Self {
        Self::start_with(
            store,
            bus,
            EdgeConfig::new(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
    }

    pub async fn start_with(
        store: &SharedStore,
        bus: BusChoice,
        edge: EdgeConfig,
        addr: SocketAddr,
    ) -> Self {
        // A publish lost while Redis restarts is only caught by the periodic
        // version check (or the player's next event): keep it short.
        let config =
            PlayerHubConfig::new().with_version_check_interval(Some(Duration::from_millis(500)));
        Self::start_configured(store, bus, edge, config, addr, axum::Router::new()).await
    }

    pub async fn start_configured(
        store: &SharedStore,
        bus: BusChoice,
        edge: EdgeConfig,
        config: PlayerHubConfig,
        addr: SocketAddr,
        fallback: axum::Router,
    ) -> Self {
        let state = state_builder(store.store.clone(), bus, config)
            .edge(edge)
            .fallback(fallback)
            .build()
            .await
            .unwrap();
        let mut attempts = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "port busy; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("binding {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(inventory_service::run(listener, state.clone(), async {
            stopped.await.ok();
        }));
        Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down gracefully and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the node drains in time")
                .unwrap()
                .unwrap();
        }
    }

    /// Applies a change through the gameplay API.
    pub async fn apply(&self, change: Value) -> Value {
        let (status, body) = api(
            self,
            "POST",
            "/v1/changes",
            Some(SERVICE_TOKEN),
            Some(change),
        )
        .await;
        assert!(status.is_success(), "{status}: {body}");
        body
    }

    /// A metric's value from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Calls the gameplay API.
pub async fn api(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), node.http(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A change of one grant, with a fresh id.
pub fn grant(owner: &str, item: &str, qty: i64) -> Value {
    json!({"id": ChangeId::random(), "ops": [{"op": "grant", "owner": owner, "item": item, "qty": qty}]})
}

/// A change of one consume, with a fresh id.
pub fn consume(owner: &str, item: &str, qty: i64) -> Value {
    json!({"id": ChangeId::random(), "ops": [{"op": "consume", "owner": owner, "item": item, "qty": qty}]})
}

/// An SDK client and every view change it reported, in order.
pub struct Watched {
    pub client: InventoryClient,
    pub changes: Arc<Mutex<Vec<ViewChange>>>,
}

impl Watched {
    pub async fn connect(url: &str, user: &str, descriptors: Option<&str>) -> Self {
        Self::connect_with(url, user, descriptors, Encoding::Json).await
    }

    pub async fn connect_with(
        url: &str,
        user: &str,
        descriptors: Option<&str>,
        encoding: Encoding,
    ) -> Self {
        Self::connect_built(
            InventoryClient::builder(url, token(user)).with_encoding(encoding),
            descriptors,
        )
        .await
    }

    /// A client whose tokens come from `provider`.
    pub async fn connect_provided<F, Fut>(url: &str, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, sdk::Error>> + Send + 'static,
    {
        Self::connect_built(InventoryClient::with_token_provider(url, provider), None).await
    }

    async fn connect_built(
        builder: sdk::InventoryClientBuilder,
        descriptors: Option<&str>,
    ) -> Self {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = changes.clone();
        let mut builder = builder
            .with_reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
            .on_change(move |change| log.lock().unwrap().push(change.clone()));
        if let Some(url) = descriptors {
            builder = builder.with_descriptor_url(url);
        }
        let client = builder.connect().await.unwrap();
        Self { client, changes }
    }

    /// The owners and items the client shows, as snapshots.
    pub fn holdings(&self) -> Vec<OwnerSnapshot> {
        self.client
            .view()
            .owners
            .into_iter()
            .map(|o| OwnerSnapshot {
                owner: o.owner,
                version: o.version,
                items: o.items.into_iter().map(|i| (i.item, i.qty)).collect(),
            })
            .collect()
    }

    /// The quantity transitions reported for one stack, in order.
    pub fn transitions(&self, of: &OwnerId, stack: &ItemId) -> Vec<(u64, u64)> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .filter_map(|change| match change {
                ViewChange::ItemAdded {
                    owner, item, qty, ..
                } if owner == of && item == stack => Some((0, *qty)),
                ViewChange::QuantityChanged {
                    owner,
                    item,
                    from,
                    to,
                } if owner == of && item == stack => Some((*from, *to)),
                ViewChange::ItemRemoved { owner, item, qty } if owner == of && item == stack => {
                    Some((*qty, 0))
                }
                _ => None,
            })
            .collect()
    }
}

/// Waits until `condition` holds, failing after fifteen seconds.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the client shows exactly the store's truth for `user`.
pub async fn converges(client: &Watched, store: &SharedStore, user: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let truth = store.truth(user).await;
        let held = client.holdings();
        if held == truth {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client never converged:\nheld  {held:?}\ntruth {truth:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A descriptor service stand-in: every id is a catalog item named
/// `The <id>`.
pub async fn descriptor_service() -> String {
    async fn batch(Json(request): Json<BatchGetRequest>) -> Json<BatchGetResponse> {
        Json(BatchGetResponse {
            descriptors: request.ids.iter().map(descriptor).collect(),
            missing: Vec::new(),
            burned: Vec::new(),
        })
    }
    let app = axum::Router::new().route("/v1/descriptors/batch", post(batch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub fn descriptor(id: &ItemId) -> Descriptor {
    Descriptor::catalog(id.clone(), format!("The {id}"))
}

/// A raw WebSocket client, to send what the SDK never would.
pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    encoding: Encoding,
    /// The code of the node's close frame, once received.
    pub close_code: Option<u16>,
}

impl RawClient {
    pub async fn connect(node: &Node) -> Self {
        Self::connect_with(node, Encoding::Json).await
    }

    pub async fn connect_with(node: &Node, encoding: Encoding) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = node.ws_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            encoding.subprotocol().parse().unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok()),
            Some(encoding.subprotocol())
        );
        Self {
            ws,
            encoding,
            close_code: None,
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> bool {
        self.ws.send(Message::binary(bytes)).await.is_ok()
    }

    pub async fn hello(&mut self, token: &str) {
        self.hello_resuming(token, None).await;
    }

    /// A `Hello` that resumes from `resume`.
    pub async fn hello_resuming(
        &mut self,
        token: &str,
        resume: Option<std::collections::BTreeMap<OwnerId, protocol::Version>>,
    ) {
        let hello = protocol::ClientMessage::Hello {
            token: token.into(),
            resume,
        };
        let frame = protocol::encode_client(self.encoding, &hello).unwrap();
        let message = match self.encoding {
            Encoding::Json => Message::text(String::from_utf8(frame).unwrap()),
            _ => Message::binary(frame),
        };
        self.ws.send(message).await.unwrap();
    }

    /// The next message, `None` once the node closed (within 5 s).
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a frame or a close within 5 s");
            let bytes = match frame {
                Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                Some(Ok(Message::Close(frame))) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    return None;
                }
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            };
            return Some(protocol::decode_server(self.encoding, &bytes).unwrap());
        }
    }

    /// Every message until the node closes the connection.
    pub async fn until_closed(&mut self) -> Vec<ServerMessage> {
        let mut all = Vec::new();
        while let Some(message) = self.recv().await {
            all.push(message);
        }
        all
    }
}

/// A TCP proxy whose connections can be cut mid-stream.
pub struct Proxy {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let tracked = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, connections }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Cuts every connection (no close frame: both sides see a reset).
    pub fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// The `inventory-service` binary listening on a free loopback port, its
/// SQLite file in `dir`, with the tests' secrets, none of the environment's
/// servers or descriptor settings, and `args`.
pub fn node_command(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inventory-service"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .args(args)
        // Relative defaults (the embedded descriptor store's file) land in
        // the test's dir, not in the source tree.
        .current_dir(dir)
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env(
            "INVENTORY_JWT_SECRET",
            String::from_utf8_lossy(JWT_SECRET).as_ref(),
        )
        .env_remove("REDIS_URL")
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL")
        .env_remove("INVENTORY_DESCRIPTOR_SQLITE_PATH");
    command
}
