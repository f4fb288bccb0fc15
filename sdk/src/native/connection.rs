//! The native inventory client: one tokio task (the pump) owns the WebSocket
//! and the [`ClientState`], applies every frame, fetches missing descriptors
//! and runs the user's callbacks; it reconnects with exponential backoff and
//! resumes from the versions it holds.
//!
//! Callbacks run on the pump, one at a time, after the state lock is released:
//! they may read the view, and what they ask of the client (reconnect, close)
//! is queued and done after they return, never re-entrantly.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{SinkExt, StreamExt};
use protocol::{
    BatchGetResponse, ClientMessage, Encoding, ErrorCode, ItemId, MAX_SERVER_FRAME_BYTES,
    ServerMessage, UserId,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::{ClientState, DescriptorClient, Error, InventoryView, ViewChange};

/// Where the connection to the node stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Opening the socket and saying hello.
    Connecting,
    /// Welcomed by the node; deltas flow.
    Connected,
    /// The connection was lost; waiting before the next attempt.
    Reconnecting {
        /// Attempts since the last successful session, from 1.
        attempt: u32,
    },
    /// Closed for good: by the user, or refused by the node.
    Closed,
}

type ChangeCallback = Box<dyn FnMut(&ViewChange) + Send>;
type ErrorCallback = Box<dyn FnMut(&Error) + Send>;
type ConnectionCallback = Box<dyn FnMut(ConnectionState) + Send>;

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
    token: String,
    encoding: Encoding,
    descriptors: DescriptorSource,
    descriptor_capacity: NonZeroUsize,
    connect_timeout: Duration,
    reconnect_min_delay: Duration,
    reconnect_max_delay: Duration,
    ping_interval: Duration,
    on_change: Option<ChangeCallback>,
    on_error: Option<ErrorCallback>,
    on_connection: Option<ConnectionCallback>,
}

impl std::fmt::Debug for InventoryClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryClientBuilder")
            .field("url", &self.url)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl InventoryClientBuilder {
    /// The wire encoding (default JSON), negotiated as a WebSocket subprotocol.
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
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
        self.descriptor_capacity = capacity;
        self
    }

    /// How long opening the socket and getting the node's welcome may take
    /// (default 10 s) before the attempt counts as failed.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The exponential delays between reconnect attempts (default 100 ms
    /// growing to 10 s, with jitter).
    pub fn with_reconnect_delay(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min_delay = min;
        self.reconnect_max_delay = max;
        self
    }

    /// How often the client pings the node (default 15 s); a connection with
    /// no frame for two intervals is considered dead and reconnected.
    pub fn with_ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(1));
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

    /// Connects, says hello and waits for the node's welcome. Fails if the
    /// first connection fails or the node refuses the token; afterwards the
    /// client reconnects by itself.
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
            HeaderValue::from_static(self.encoding.subprotocol()),
        );
        let descriptors = match self.descriptors {
            DescriptorSource::None => None,
            DescriptorSource::Url(url) => Some(DescriptorClient::new(url)?),
            DescriptorSource::Client(client) => Some(client),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(ClientState::new(self.descriptor_capacity)),
            connection: Mutex::new(ConnectionState::Connecting),
        });
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (fetched_tx, fetched) = mpsc::unbounded_channel();
        let (ready_tx, ready) = oneshot::channel();
        let pump = Pump {
            request,
            token: self.token,
            encoding: self.encoding,
            descriptors,
            reconnect: ExponentialBuilder::default()
                .with_min_delay(self.reconnect_min_delay)
                .with_max_delay(self.reconnect_max_delay)
                .with_jitter()
                .without_max_times(),
            ping_interval: self.ping_interval,
            connect_timeout: self.connect_timeout,
            callbacks: Callbacks {
                on_change: self.on_change,
                on_error: self.on_error,
                on_connection: self.on_connection,
            },
            shared: shared.clone(),
            commands,
            fetched_tx,
            fetched,
            ready: Some(ready_tx),
            nonce: 0,
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
    state: Mutex<ClientState>,
    connection: Mutex<ConnectionState>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, ClientState> {
        // The state is only mutated by plain functions that do not panic
        // half-way; a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self) -> ConnectionState {
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
    /// authenticating with `token`.
    pub fn builder(url: impl Into<String>, token: impl Into<String>) -> InventoryClientBuilder {
        InventoryClientBuilder {
            url: url.into(),
            token: token.into(),
            encoding: Encoding::Json,
            descriptors: DescriptorSource::None,
            descriptor_capacity: ClientState::DEFAULT_DESCRIPTOR_CAPACITY,
            connect_timeout: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            on_change: None,
            on_error: None,
            on_connection: None,
        }
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
        self.shared.state().view()
    }

    /// The authenticated player.
    #[must_use]
    pub fn user(&self) -> Option<UserId> {
        self.shared.state().user().cloned()
    }

    /// Where the connection stands.
    #[must_use]
    pub fn connection_state(&self) -> ConnectionState {
        self.shared.connection()
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

impl Callbacks {
    fn changes(&mut self, changes: &[ViewChange]) {
        if let Some(callback) = &mut self.on_change {
            changes.iter().for_each(callback);
        }
    }

    fn error(&mut self, error: &Error) {
        tracing::debug!(%error, "inventory client error");
        if let Some(callback) = &mut self.on_error {
            callback(error);
        }
    }
}

/// How one session ended.
enum SessionEnd {
    /// The user closed the client.
    Closed,
    /// The user asked for a new connection.
    Reconnect,
    /// The node refused the client for good (bad token).
    Refused(Error),
    /// The connection was lost or could not be made; `welcomed` says whether
    /// the session got as far as the node's welcome.
    Lost { error: Error, welcomed: bool },
}

type Fetched = (Vec<ItemId>, Result<BatchGetResponse, Error>);

struct Pump {
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    token: String,
    encoding: Encoding,
    descriptors: Option<DescriptorClient>,
    reconnect: ExponentialBuilder,
    ping_interval: Duration,
    connect_timeout: Duration,
    callbacks: Callbacks,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    fetched_tx: mpsc::UnboundedSender<Fetched>,
    fetched: mpsc::UnboundedReceiver<Fetched>,
    /// Answers `connect` once: the first welcome, or the first failure.
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    nonce: u64,
}

impl Pump {
    async fn run(mut self) {
        let mut delays = self.reconnect.build();
        let mut attempt = 0;
        loop {
            match self.session().await {
                SessionEnd::Closed => break,
                SessionEnd::Reconnect => {
                    delays = self.reconnect.build();
                    attempt = 0;
                }
                SessionEnd::Refused(error) => {
                    self.callbacks.error(&error);
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(error));
                    }
                    break;
                }
                SessionEnd::Lost { error, welcomed } => {
                    self.callbacks.error(&error);
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(error));
                        break;
                    }
                    if welcomed {
                        delays = self.reconnect.build();
                        attempt = 0;
                    }
                    attempt += 1;
                    self.set_connection(ConnectionState::Reconnecting { attempt });
                    let delay = delays.next().unwrap_or(Duration::from_secs(10));
                    if self.wait(delay).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.set_connection(ConnectionState::Closed);
    }

    /// Sleeps before a reconnect, still answering commands and descriptor
    /// fetches; `Err` when the client is closed meanwhile.
    async fn wait(&mut self, delay: Duration) -> Result<(), ()> {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Ok(()),
                command = self.commands.recv() => match command {
                    Some(Command::Reconnect) => return Ok(()),
                    Some(Command::Close) | None => return Err(()),
                },
                Some(fetched) = self.fetched.recv() => self.apply_fetched(fetched),
            }
        }
    }

    fn set_connection(&mut self, state: ConnectionState) {
        *self
            .shared
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = state;
        if let Some(callback) = &mut self.callbacks.on_connection {
            callback(state);
        }
    }

    async fn session(&mut self) -> SessionEnd {
        let lost = |error: Error, welcomed: bool| SessionEnd::Lost { error, welcomed };
        if self.shared.connection() != ConnectionState::Connecting {
            self.set_connection(ConnectionState::Connecting);
        }
        let timed_out = || Error::transport(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let welcome_deadline = Instant::now() + self.connect_timeout;
        let config = WebSocketConfig::default().max_message_size(Some(MAX_SERVER_FRAME_BYTES));
        let connecting =
            tokio_tungstenite::connect_async_with_config(self.request.clone(), Some(config), true);
        let (socket, _) = match tokio::time::timeout_at(welcome_deadline, connecting).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => return lost(Error::transport(error), false),
            Err(_) => return lost(timed_out(), false),
        };
        let (mut sink, mut stream) = socket.split();
        let hello = self.shared.state().hello(self.token.clone());
        if let Err(error) = send(self.encoding, &mut sink, &hello).await {
            return lost(error, false);
        }
        let mut welcomed = false;
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.tick().await;
        let mut last_frame = Instant::now();
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let bytes = match frame {
                        Some(Ok(Message::Text(text))) => Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Close(_))) | None => {
                            return lost(Error::transport(std::io::Error::from(std::io::ErrorKind::ConnectionReset)), welcomed);
                        }
                        Some(Ok(_)) => {
                            last_frame = Instant::now();
                            continue;
                        }
                        Some(Err(error)) => return lost(Error::transport(error), welcomed),
                    };
                    last_frame = Instant::now();
                    let message = match protocol::decode_server(self.encoding, &bytes) {
                        Ok(message) => message,
                        Err(error) => {
                            self.callbacks.error(&Error::Protocol(error));
                            continue;
                        }
                    };
                    if let ServerMessage::Error(body) = &message {
                        let error = Error::Server(body.clone());
                        if matches!(body.code, ErrorCode::Unauthorized | ErrorCode::Forbidden) {
                            return SessionEnd::Refused(error);
                        }
                        self.callbacks.error(&error);
                    }
                    let is_welcome = matches!(message, ServerMessage::Welcome { .. });
                    let changes = self.shared.state().handle(message);
                    if is_welcome {
                        welcomed = true;
                        self.set_connection(ConnectionState::Connected);
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Ok(()));
                        }
                    }
                    self.callbacks.changes(&changes);
                    if let Err(error) = self.after_message(&mut sink).await {
                        return lost(error, welcomed);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Reconnect) => {
                        let _ = sink.close().await;
                        return SessionEnd::Reconnect;
                    }
                    Some(Command::Close) | None => {
                        let _ = sink.close().await;
                        return SessionEnd::Closed;
                    }
                },
                Some(fetched) = self.fetched.recv() => {
                    self.apply_fetched(fetched);
                    if let Err(error) = self.after_message(&mut sink).await {
                        return lost(error, welcomed);
                    }
                }
                () = tokio::time::sleep_until(welcome_deadline), if !welcomed => {
                    return lost(timed_out(), false);
                }
                _ = ping.tick() => {
                    if last_frame.elapsed() > 2 * self.ping_interval {
                        return lost(timed_out(), welcomed);
                    }
                    self.nonce += 1;
                    let ping = ClientMessage::Ping { nonce: self.nonce };
                    if let Err(error) = send(self.encoding, &mut sink, &ping).await {
                        return lost(error, welcomed);
                    }
                }
            }
        }
    }

    /// What follows every applied message: a resume request after a gap, and
    /// descriptor fetches for items that appeared.
    async fn after_message<S>(&mut self, sink: &mut S) -> Result<(), Error>
    where
        S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    {
        let (resume, wanted) = {
            let mut state = self.shared.state();
            let resume = state.take_resume_request();
            let wanted = if self.descriptors.is_some() {
                state.descriptors_to_fetch()
            } else {
                Vec::new()
            };
            (resume, wanted)
        };
        if let Some(versions) = resume {
            let hello = ClientMessage::Hello {
                token: self.token.clone(),
                resume: Some(versions),
            };
            send(self.encoding, sink, &hello).await?;
        }
        if let (Some(client), false) = (&self.descriptors, wanted.is_empty()) {
            let (client, done) = (client.clone(), self.fetched_tx.clone());
            tokio::spawn(async move {
                let result = client.get_many(wanted.iter().cloned()).await;
                // The pump is gone only when the client is closed.
                let _ = done.send((wanted, result));
            });
        }
        Ok(())
    }

    fn apply_fetched(&mut self, (ids, result): Fetched) {
        let changes = match result {
            Ok(response) => self.shared.state().apply_descriptors(&response),
            Err(error) => {
                self.shared.state().descriptor_fetch_failed(&ids);
                self.callbacks.error(&error);
                Vec::new()
            }
        };
        self.callbacks.changes(&changes);
    }
}

/// Encodes and sends one message in the negotiated encoding's frame type.
async fn send<S>(encoding: Encoding, sink: &mut S, message: &ClientMessage) -> Result<(), Error>
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let frame = protocol::encode_client(encoding, message)?;
    let message = if encoding.is_text() {
        let text = String::from_utf8(frame)
            .map_err(|e| Error::Protocol(protocol::Error::Encoding(e.to_string())))?;
        Message::text(text)
    } else {
        Message::binary(frame)
    };
    sink.send(message).await.map_err(Error::transport)
}
