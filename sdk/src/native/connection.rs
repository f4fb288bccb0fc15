//! The native driver of the SDK's [`Session`]: one tokio task (the pump)
//! owns the WebSocket, feeds the session what happens (frames, closes,
//! tokens, descriptor answers, the time) and does what it asks (open a
//! socket, send, fetch descriptors, ask the token provider), then runs the
//! user's callbacks. Reconnects, resume, pings, hydration and the token's
//! lifecycle are the session's, shared with the browser driver.
//!
//! Callbacks run on the pump, one at a time, after the session lock is
//! released: they may read the view, and what they ask of the client
//! (reconnect, close) is queued and done after they return, never
//! re-entrantly.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use protocol::{BatchGetResponse, Encoding, ItemId, MAX_SERVER_FRAME_BYTES, UserId};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{
    Action, ConnectionState, DescriptorClient, Error, InventoryView, Millis, Session,
    SessionConfig, SessionEvent, SocketId, ViewChange,
};

type ChangeCallback = Box<dyn FnMut(&ViewChange) + Send>;
type ErrorCallback = Box<dyn FnMut(&Error) + Send>;
type ConnectionCallback = Box<dyn FnMut(ConnectionState) + Send>;

/// What a token provider returns: a fresh session token, or why there is
/// none (the session retries later, and reconnects when the node closes the
/// session for its expired token).
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, Error>> + Send>>;

type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Where the client's session tokens come from.
enum TokenSource {
    Fixed(String),
    Provider(TokenProvider),
}

/// Where an [`InventoryClient`] gets descriptors from.
#[derive(Debug)]
enum DescriptorSource {
    None,
    Url(String),
    Client(DescriptorClient),
}

/// Builds and connects an [`InventoryClient`].
#[must_use]
pub struct InventoryClientBuilder {
    url: String,
    token: TokenSource,
    config: SessionConfig,
    descriptors: DescriptorSource,
    on_change: Option<ChangeCallback>,
    on_error: Option<ErrorCallback>,
    on_connection: Option<ConnectionCallback>,
}

impl std::fmt::Debug for InventoryClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryClientBuilder")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl InventoryClientBuilder {
    fn new(url: String, token: TokenSource) -> Self {
        let config = SessionConfig {
            // Every client its own jitter, so that reconnects spread out.
            jitter_seed: now() ^ u64::from(std::process::id()).rotate_left(32),
            ..SessionConfig::default()
        };
        Self {
            url,
            token,
            config,
            descriptors: DescriptorSource::None,
            on_change: None,
            on_error: None,
            on_connection: None,
        }
    }

    /// The wire encoding (default JSON), negotiated as a WebSocket subprotocol.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.config.encoding = encoding;
        self
    }

    /// Fetches descriptors from the descriptor service at `base_url` with a
    /// default [`DescriptorClient`]. Without one, every item stays `Loading`.
    pub fn with_descriptor_url(mut self, base_url: impl Into<String>) -> Self {
        self.descriptors = DescriptorSource::Url(base_url.into());
        self
    }

    /// Fetches descriptors with this client (shared with other users of it).
    pub fn with_descriptor_client(mut self, client: DescriptorClient) -> Self {
        self.descriptors = DescriptorSource::Client(client);
        self
    }

    /// How many descriptor answers the client keeps (default 4096).
    pub fn with_descriptor_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.config.descriptor_capacity = capacity;
        self
    }

    /// How long opening the socket and receiving every inventory may take
    /// (default 10 s) before the attempt counts as failed.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The exponential delays between reconnect attempts (default 100 ms
    /// growing to 10 s, with jitter).
    pub fn with_reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.config.reconnect_min_delay = min;
        self.config.reconnect_max_delay = max;
        self
    }

    /// How often the client pings the node (default 15 s); a connection with
    /// no frame for two intervals is considered dead and reconnected.
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Called for every change of the view, in order.
    pub fn on_change(mut self, callback: impl FnMut(&ViewChange) + Send + 'static) -> Self {
        self.on_change = Some(Box::new(callback));
        self
    }

    /// Called for errors the client recovers from (lost connection, a refused
    /// message, a failed descriptor fetch) and for the one that closes it.
    pub fn on_error(mut self, callback: impl FnMut(&Error) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(callback));
        self
    }

    /// Called whenever the connection state changes.
    pub fn on_connection(mut self, callback: impl FnMut(ConnectionState) + Send + 'static) -> Self {
        self.on_connection = Some(Box::new(callback));
        self
    }

    /// Connects and resolves once every inventory of the player is held.
    /// Fails if the first connection fails or the node refuses the token;
    /// afterwards the client reconnects by itself, resuming.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn connect(self) -> Result<InventoryClient, Error> {
        let mut request =
            self.url
                .as_str()
                .into_client_request()
                .map_err(|e| Error::InvalidUrl {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(self.config.encoding.subprotocol()),
        );
        let descriptors = match self.descriptors {
            DescriptorSource::None => None,
            DescriptorSource::Url(url) => Some(DescriptorClient::new(url)?),
            DescriptorSource::Client(client) => Some(client),
        };
        let mut config = self.config;
        config.fetch_descriptors = descriptors.is_some();
        let encoding = config.encoding;
        let (session, provider) = match self.token {
            TokenSource::Fixed(token) => (Session::new(config, token), None),
            TokenSource::Provider(provider) => {
                (Session::with_token_provider(config), Some(provider))
            }
        };
        let shared = Arc::new(Shared {
            session: Mutex::new(session),
        });
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (ready_tx, ready) = oneshot::channel();
        let pump = Pump {
            request,
            encoding,
            descriptors,
            provider,
            callbacks: Callbacks {
                on_change: self.on_change,
                on_error: self.on_error,
                on_connection: self.on_connection,
            },
            shared: shared.clone(),
            commands,
            inputs_tx,
            inputs,
            ready: Some(ready_tx),
            socket: None,
        };
        let task = tokio::spawn(pump.run());
        ready.await.map_err(|_| Error::Closed)??;
        Ok(InventoryClient {
            handle: ClientHandle {
                shared,
                commands: commands_tx.downgrade(),
            },
            commands: commands_tx,
            task,
        })
    }
}

/// What the pump shares with the handles.
#[derive(Debug)]
struct Shared {
    session: Mutex<Session>,
}

impl Shared {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        // The session is only mutated by plain functions that do not panic
        // half-way; a poisoned lock still guards a consistent state.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request to the pump from a handle.
#[derive(Debug)]
enum Command {
    Reconnect,
    Close,
}

/// A connected client of a zone node: the player's inventories, kept up to
/// date, merged with their descriptors.
///
/// Dropping it (or [`InventoryClient::close`]) stops the connection.
#[derive(Debug)]
pub struct InventoryClient {
    handle: ClientHandle,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl InventoryClient {
    /// A builder for a client of the node at `url` (`ws://` or `wss://`),
    /// authenticating with the fixed `token` (the node closes the session
    /// when it expires; see [`InventoryClient::with_token_provider`]).
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> InventoryClientBuilder {
        InventoryClientBuilder::new(url.into(), TokenSource::Fixed(token.into()))
    }

    /// A builder for a client that gets its session tokens from `provider`
    /// (an async closure, typically a call to the game's login service):
    /// before connecting, before the current token expires, and whenever the
    /// node refuses or closes the session because it expired. The session
    /// survives every expiry without losing or repeating a delta.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sdk::Error> {
    /// let client = sdk::InventoryClient::with_token_provider(
    ///     "ws://127.0.0.1:7000/v1/ws",
    ///     || async { Ok::<_, sdk::Error>("<a fresh jwt from the login service>".to_owned()) },
    /// )
    /// .connect()
    /// .await?;
    /// # drop(client);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_token_provider<F, Fut>(
        url: impl Into<String>,
        provider: F,
    ) -> InventoryClientBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Error>> + Send + 'static,
    {
        let provider: TokenProvider = Arc::new(move || Box::pin(provider()) as TokenFuture);
        InventoryClientBuilder::new(url.into(), TokenSource::Provider(provider))
    }

    /// The merged view as of now.
    #[must_use]
    pub fn view(&self) -> InventoryView {
        self.handle.view()
    }

    /// The authenticated player.
    #[must_use]
    pub fn user(&self) -> Option<UserId> {
        self.handle.user()
    }

    /// Where the connection stands.
    #[must_use]
    pub fn connection_state(&self) -> ConnectionState {
        self.handle.connection_state()
    }

    /// Counters of the session (sockets, snapshots, deltas, tokens).
    #[must_use]
    pub fn stats(&self) -> crate::SessionStats {
        self.handle.shared.session().stats()
    }

    /// A handle for callbacks and other tasks; it does not keep the client
    /// alive.
    #[must_use]
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// Drops the connection and reconnects, resuming from the held versions.
    pub fn reconnect(&self) {
        let _ = self.commands.send(Command::Reconnect);
    }

    /// Closes the connection and waits for the pump to stop.
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close);
        let _ = self.task.await;
    }
}

/// A weak handle on an [`InventoryClient`], for use inside callbacks: what it
/// asks is queued and done after the current callback returns.
#[derive(Clone, Debug)]
pub struct ClientHandle {
    shared: Arc<Shared>,
    commands: mpsc::WeakUnboundedSender<Command>,
}

impl ClientHandle {
    /// The merged view as of now.
    #[must_use]
    pub fn view(&self) -> InventoryView {
        self.shared.session().state().view()
    }

    /// The authenticated player.
    #[must_use]
    pub fn user(&self) -> Option<UserId> {
        self.shared.session().state().user().cloned()
    }

    /// Where the connection stands.
    #[must_use]
    pub fn connection_state(&self) -> ConnectionState {
        self.shared.session().connection()
    }

    /// Queues a reconnect (see [`InventoryClient::reconnect`]).
    pub fn reconnect(&self) {
        self.send(Command::Reconnect);
    }

    /// Queues a close.
    pub fn close(&self) {
        self.send(Command::Close);
    }

    fn send(&self, command: Command) {
        if let Some(commands) = self.commands.upgrade() {
            let _ = commands.send(command);
        }
    }
}

struct Callbacks {
    on_change: Option<ChangeCallback>,
    on_error: Option<ErrorCallback>,
    on_connection: Option<ConnectionCallback>,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a task of the pump reports back.
enum Input {
    Opened(SocketId, Result<Box<Socket>, Error>),
    Token(Result<String, Error>),
    Fetched(Vec<ItemId>, Result<BatchGetResponse, Error>),
}

/// The open socket, split.
struct Open {
    id: SocketId,
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
}

/// What the socket delivered.
enum Received {
    Frame(Bytes),
    Closed(Option<u16>, String),
    Other,
}

struct Pump {
    request: Request,
    encoding: Encoding,
    descriptors: Option<DescriptorClient>,
    provider: Option<TokenProvider>,
    callbacks: Callbacks,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    inputs: mpsc::UnboundedReceiver<Input>,
    /// Answers `connect` once.
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    socket: Option<Open>,
}

/// Milliseconds since the Unix epoch: the session's clock.
fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Pump {
    async fn run(mut self) {
        self.shared.session().connect(now());
        loop {
            self.perform().await;
            if self.shared.session().connection() == ConnectionState::Closed {
                break;
            }
            let timeout = self.shared.session().poll_timeout();
            let sleep = async {
                match timeout {
                    Some(at) => {
                        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = receive(self.socket.as_mut()) => {
                    let Some(id) = self.socket.as_ref().map(|open| open.id) else { continue };
                    let mut session = self.shared.session();
                    match received {
                        Received::Frame(bytes) => session.frame(now(), id, &bytes),
                        Received::Closed(code, reason) => {
                            drop(session);
                            self.socket = None;
                            self.shared.session().socket_closed(now(), id, code, &reason);
                        }
                        Received::Other => {}
                    }
                }
                Some(input) = self.inputs.recv() => self.input(input),
                command = self.commands.recv() => match command {
                    Some(Command::Reconnect) => self.shared.session().reconnect(now()),
                    Some(Command::Close) | None => self.shared.session().close(),
                },
                () = sleep => self.shared.session().handle_timeout(now()),
            }
        }
        self.perform().await;
    }

    fn input(&mut self, input: Input) {
        let mut session = self.shared.session();
        match input {
            Input::Opened(id, Ok(socket)) => {
                let (sink, stream) = (*socket).split();
                drop(session);
                self.socket = Some(Open { id, sink, stream });
                self.shared.session().socket_opened(now(), id);
            }
            Input::Opened(id, Err(error)) => {
                session.socket_closed(now(), id, None, &error.to_string());
            }
            Input::Token(token) => session.token(now(), token),
            Input::Fetched(ids, result) => session.descriptors(now(), &ids, result),
        }
    }

    /// Does what the session asks, then tells the user what it says, until
    /// it has nothing more.
    async fn perform(&mut self) {
        loop {
            let (actions, events) = {
                let mut session = self.shared.session();
                let actions: Vec<Action> = std::iter::from_fn(|| session.poll_action()).collect();
                let events: Vec<SessionEvent> =
                    std::iter::from_fn(|| session.poll_event()).collect();
                (actions, events)
            };
            if actions.is_empty() && events.is_empty() {
                return;
            }
            for action in actions {
                self.act(action).await;
            }
            for event in events {
                self.tell(event);
            }
        }
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Open(id) => {
                self.close_socket();
                let (request, inputs) = (self.request.clone(), self.inputs_tx.clone());
                tokio::spawn(async move {
                    let config =
                        WebSocketConfig::default().max_message_size(Some(MAX_SERVER_FRAME_BYTES));
                    let opened =
                        tokio_tungstenite::connect_async_with_config(request, Some(config), true)
                            .await
                            .map(|(socket, _)| Box::new(socket))
                            .map_err(Error::transport);
                    // The pump is gone only when the client is closed.
                    let _ = inputs.send(Input::Opened(id, opened));
                });
            }
            Action::Send(frame) => {
                let Some(open) = &mut self.socket else { return };
                let message = if self.encoding.is_text() {
                    // The text encoding (JSON) produces UTF-8.
                    Message::text(String::from_utf8_lossy(&frame).into_owned())
                } else {
                    Message::binary(frame)
                };
                if let Err(error) = open.sink.send(message).await {
                    let id = open.id;
                    self.socket = None;
                    self.shared
                        .session()
                        .socket_closed(now(), id, None, &error.to_string());
                }
            }
            Action::CloseSocket => self.close_socket(),
            Action::RefreshToken => {
                let Some(provider) = &self.provider else {
                    return;
                };
                let (token, inputs) = (provider(), self.inputs_tx.clone());
                tokio::spawn(async move {
                    let _ = inputs.send(Input::Token(token.await));
                });
            }
            Action::FetchDescriptors(ids) => {
                let Some(client) = &self.descriptors else {
                    return;
                };
                let (client, inputs) = (client.clone(), self.inputs_tx.clone());
                tokio::spawn(async move {
                    let result = client.get_many(ids.iter().cloned()).await;
                    let _ = inputs.send(Input::Fetched(ids, result));
                });
            }
        }
    }

    /// Closes the socket in the background (the closing handshake must not
    /// hold up the pump).
    fn close_socket(&mut self) {
        if let Some(mut open) = self.socket.take() {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), open.sink.close()).await;
            });
        }
    }

    fn tell(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Changes(changes) => {
                if let Some(callback) = &mut self.callbacks.on_change {
                    changes.iter().for_each(callback);
                }
            }
            SessionEvent::Connection(state) => {
                if let Some(callback) = &mut self.callbacks.on_connection {
                    callback(state);
                }
            }
            SessionEvent::Error(error) => {
                tracing::debug!(%error, "inventory client error");
                if let Some(callback) = &mut self.callbacks.on_error {
                    callback(&error);
                }
            }
            SessionEvent::Ready(result) => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(result);
                }
            }
        }
    }
}

/// The next thing the open socket delivers; never, without one.
async fn receive(socket: Option<&mut Open>) -> Received {
    let Some(open) = socket else {
        return std::future::pending().await;
    };
    match open.stream.next().await {
        Some(Ok(Message::Text(text))) => Received::Frame(Bytes::from(text)),
        Some(Ok(Message::Binary(bytes))) => Received::Frame(bytes),
        Some(Ok(Message::Close(frame))) => Received::Closed(
            frame.as_ref().map(|f| u16::from(f.code)),
            frame.map(|f| f.reason.to_string()).unwrap_or_default(),
        ),
        None => Received::Closed(None, "the connection ended".to_owned()),
        Some(Err(error)) => Received::Closed(None, error.to_string()),
        Some(Ok(_)) => Received::Other,
    }
}
