//! The one client session, without IO: hello, welcome, hydration, resume,
//! ping and liveness, reconnects with backoff, descriptor fetch scheduling
//! and the token's lifecycle, as a state machine that both SDK drivers (the
//! native tokio one and the browser one) feed and obey.
//!
//! In the style of sans-IO protocol crates (quinn-proto, str0m): the session
//! owns no socket, no timer and no clock. The driver
//!
//! 1. tells it what happened, with the time: [`Session::connect`],
//!    [`Session::socket_opened`], [`Session::frame`],
//!    [`Session::socket_closed`], [`Session::token`],
//!    [`Session::descriptors`], [`Session::handle_timeout`], and the user's
//!    [`Session::reconnect`] and [`Session::close`];
//! 2. then does what it asks, in order: [`Session::poll_action`] (open a
//!    socket, send a frame, close the socket, ask the token provider, fetch
//!    descriptors);
//! 3. hands [`Session::poll_event`] to the user (view changes, connection
//!    states, errors, the settling of `connect()`);
//! 4. arms one timer for [`Session::poll_timeout`] and calls
//!    [`Session::handle_timeout`] when it fires.
//!
//! Every socket the session opens has a [`SocketId`]; events of a socket it
//! has given up are ignored, so a driver need not race to detach handlers.
//!
//! # Tokens
//!
//! A session has a fixed token or a provider. With a provider it asks for a
//! fresh token ([`Action::RefreshToken`]) before it connects, when three
//! quarters of the current token's remaining lifetime (its JWT `exp`, read
//! without verifying) have passed, and whenever the node refuses or closes
//! the session because the token expired (`token_expired`, close code
//! [`protocol::CLOSE_TOKEN_EXPIRED`]). A fresh token reaches an open session
//! as a `Hello` that resumes from the held versions, which extends the
//! node's deadline without reconnecting; after an expiry close the session
//! reconnects at once with the fresh token and resumes, so no delta is lost
//! or applied twice and no snapshot is needed.
//!
//! # `connect()`
//!
//! [`SessionEvent::Ready`] settles `connect()` once: `Ok` when every
//! inventory of the player is held (the welcome's owners hydrated), `Err`
//! when the first connection fails or the node refuses the token. Later
//! failures are retried with exponential backoff and jitter, resuming.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::time::Duration;

use protocol::{
    BatchGetResponse, ClientMessage, Encoding, ErrorCode, ItemId, MAX_BATCH_IDS, OwnerId,
    ServerMessage,
};

use crate::{ClientState, Error, ViewChange};

/// Milliseconds since the Unix epoch, on the driver's clock: the session's
/// only notion of time (token expiries are in epoch seconds).
pub type Millis = u64;

/// One socket the session asked for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SocketId(u64);

/// Where the connection to the node stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not yet asked to connect.
    Idle,
    /// Opening a socket, saying hello, receiving the inventories.
    Connecting {
        /// Failed attempts since the last connected session.
        attempt: u32,
    },
    /// Every inventory is held; deltas flow.
    Connected,
    /// The connection was lost; waiting before the next attempt.
    Reconnecting {
        /// Attempts since the last connected session, from 1.
        attempt: u32,
        /// How long until the next attempt.
        delay: Duration,
    },
    /// Closed for good: by the user, or refused by the node.
    Closed,
}

/// What the session asks its driver to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Open a WebSocket to the node (dropping any other), negotiating the
    /// encoding's subprotocol; report on it with this id.
    Open(SocketId),
    /// Send one frame on the open socket: text if the encoding is text.
    Send(Vec<u8>),
    /// Close the socket (normal closure).
    CloseSocket,
    /// Ask the token provider for a fresh token; answer with
    /// [`Session::token`].
    RefreshToken,
    /// Fetch these descriptors (at most [`MAX_BATCH_IDS`]); answer with
    /// [`Session::descriptors`].
    FetchDescriptors(Vec<ItemId>),
}

/// What the session tells the user.
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// The view changed, in this order.
    Changes(Vec<ViewChange>),
    /// The connection state changed.
    Connection(ConnectionState),
    /// Something went wrong; the session recovers unless it also reports
    /// [`ConnectionState::Closed`].
    Error(Error),
    /// Settles `connect()` (once).
    Ready(Result<(), Error>),
}

/// How the session behaves; every field has a sensible default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The wire encoding (default JSON).
    pub encoding: Encoding,
    /// How long opening a socket and getting every inventory may take before
    /// the attempt fails (default 10 s).
    pub connect_timeout: Duration,
    /// The first reconnect delay (default 100 ms).
    pub reconnect_min_delay: Duration,
    /// The longest reconnect delay (default 10 s).
    pub reconnect_max_delay: Duration,
    /// How often to ping (default 15 s); a socket silent for two intervals is
    /// dead.
    pub ping_interval: Duration,
    /// Whether descriptors are fetched (default no: items stay `Loading`).
    pub fetch_descriptors: bool,
    /// How long ids wait to share one descriptor batch (default 5 ms).
    pub batch_window: Duration,
    /// How many descriptor answers the state keeps (default 4096).
    pub descriptor_capacity: NonZeroUsize,
    /// Seeds the reconnect jitter; give each client its own (default 0).
    pub jitter_seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            encoding: Encoding::Json,
            connect_timeout: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            fetch_descriptors: false,
            batch_window: Duration::from_millis(5),
            descriptor_capacity: ClientState::DEFAULT_DESCRIPTOR_CAPACITY,
            jitter_seed: 0,
        }
    }
}

/// Counters since the session started, for tests and diagnostics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct SessionStats {
    /// Sockets opened.
    pub sockets: u64,
    /// Owner snapshots received (a resume that needs none receives none).
    pub snapshots: u64,
    /// Deltas received.
    pub deltas: u64,
    /// Fresh tokens received from the provider.
    pub tokens: u64,
    /// Frames that could not be decoded.
    pub bad_frames: u64,
}

/// Where the current socket stands.
#[derive(Clone, Debug)]
enum Phase {
    /// Not connecting yet (before `connect`, or waiting for a token).
    Idle,
    /// Asked the driver for a socket.
    Opening,
    /// Hello sent; the welcome and the inventories are awaited.
    Hydrating(Option<Vec<OwnerId>>),
    /// Every inventory held.
    Live,
    /// Waiting to reconnect.
    Backoff,
    /// For good.
    Closed,
}

/// Where the token stands.
#[derive(Debug)]
struct Token {
    current: Option<String>,
    /// The current token's `exp`, in milliseconds.
    expires: Option<Millis>,
    /// Whether a provider can give fresh ones.
    provider: bool,
    /// A refresh was asked for and not answered yet.
    pending: bool,
    /// When to ask for the next one.
    refresh_at: Option<Millis>,
    /// Open a socket once the pending token arrives.
    open_after: bool,
    /// Expiry refusals since the last token, to stop a provider that keeps
    /// handing out expired tokens.
    expired_refusals: u32,
}

/// The client session; see the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: ClientState,
    token: Token,
    phase: Phase,
    connection: ConnectionState,
    socket: Option<SocketId>,
    next_socket: u64,
    /// Whether `Ready` was sent.
    settled: bool,
    ever_connected: bool,
    attempt: u32,
    rng: u64,
    connect_deadline: Option<Millis>,
    reconnect_at: Option<Millis>,
    next_ping: Option<Millis>,
    last_frame: Millis,
    nonce: u64,
    ping_sent: Option<(u64, Millis)>,
    latency: Option<Duration>,
    queued_descriptors: Vec<ItemId>,
    flush_at: Option<Millis>,
    descriptor_retry_at: Option<Millis>,
    descriptor_failures: u32,
    actions: VecDeque<Action>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

/// How many times in a row a fresh token may be refused as expired before
/// the session gives up.
const MAX_EXPIRED_REFUSALS: u32 = 3;

impl Session {
    /// A session authenticating with a fixed `token`.
    #[must_use]
    pub fn new(config: SessionConfig, token: impl Into<String>) -> Self {
        let mut session = Self::with(config, false);
        session.set_token(0, token.into());
        session
    }

    /// A session that asks a provider for its tokens ([`Action::RefreshToken`]).
    #[must_use]
    pub fn with_token_provider(config: SessionConfig) -> Self {
        Self::with(config, true)
    }

    fn with(config: SessionConfig, provider: bool) -> Self {
        Self {
            state: ClientState::new(config.descriptor_capacity),
            rng: config.jitter_seed | 1,
            config,
            token: Token {
                current: None,
                expires: None,
                provider,
                pending: false,
                refresh_at: None,
                open_after: false,
                expired_refusals: 0,
            },
            phase: Phase::Idle,
            connection: ConnectionState::Idle,
            socket: None,
            next_socket: 0,
            settled: false,
            ever_connected: false,
            attempt: 0,
            connect_deadline: None,
            reconnect_at: None,
            next_ping: None,
            last_frame: 0,
            nonce: 0,
            ping_sent: None,
            latency: None,
            queued_descriptors: Vec::new(),
            flush_at: None,
            descriptor_retry_at: None,
            descriptor_failures: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The settings it runs with.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Ends the session for good with `error`: the driver cannot go on (its
    /// URL is unusable, say).
    pub fn fail(&mut self, error: Error) {
        if !matches!(self.phase, Phase::Closed) {
            self.refused(error);
        }
    }

    /// The player's inventories and descriptors as held now.
    #[must_use]
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Where the connection stands.
    #[must_use]
    pub fn connection(&self) -> ConnectionState {
        self.connection
    }

    /// The last ping's round trip.
    #[must_use]
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// Counters since the session started.
    #[must_use]
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next thing the user must hear.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        [
            self.connect_deadline,
            self.reconnect_at,
            self.next_ping,
            self.flush_at,
            self.descriptor_retry_at,
            self.token.refresh_at.filter(|_| !self.token.pending),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts connecting (a no-op once started); settles with
    /// [`SessionEvent::Ready`].
    pub fn connect(&mut self, now: Millis) {
        match self.phase {
            Phase::Closed => self
                .events
                .push_back(SessionEvent::Ready(Err(Error::Closed))),
            Phase::Idle if !self.token.pending => self.open(now),
            _ => {}
        }
    }

    /// Drops the connection and opens a new one at once, resuming.
    pub fn reconnect(&mut self, now: Millis) {
        if matches!(self.phase, Phase::Closed) || self.connection == ConnectionState::Idle {
            return;
        }
        self.attempt = 0;
        self.drop_socket();
        self.open(now);
    }

    /// Closes for good, and lets go of the inventories and descriptors held
    /// (the view is empty afterwards).
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.state = ClientState::new(self.config.descriptor_capacity);
        self.end(Error::Closed);
    }

    /// The socket `id` is open: say hello.
    pub fn socket_opened(&mut self, now: Millis, id: SocketId) {
        if self.socket != Some(id) || !matches!(self.phase, Phase::Opening) {
            return;
        }
        self.last_frame = now;
        self.phase = Phase::Hydrating(None);
        let hello = self.state.hello(self.current_token());
        self.send(&hello);
    }

    /// The socket `id` closed (or failed to open), with the close code and
    /// reason the node gave, if any.
    pub fn socket_closed(&mut self, now: Millis, id: SocketId, code: Option<u16>, reason: &str) {
        if self.socket != Some(id) {
            return;
        }
        self.socket = None;
        if code == Some(protocol::CLOSE_TOKEN_EXPIRED) {
            self.token_expired(
                now,
                Error::Server(protocol::ErrorBody::new(ErrorCode::TokenExpired, reason)),
            );
            return;
        }
        let error = Error::transport(SocketClosed {
            code,
            reason: reason.to_owned(),
        });
        self.lost(now, error);
    }

    /// A frame arrived on socket `id`.
    pub fn frame(&mut self, now: Millis, id: SocketId, bytes: &[u8]) {
        if self.socket != Some(id) {
            return;
        }
        self.last_frame = now;
        let message = match protocol::decode_server(self.config.encoding, bytes) {
            Ok(message) => message,
            Err(error) => {
                // A node that sends what cannot be read may have skipped
                // something too: start over from the held versions.
                self.stats.bad_frames += 1;
                self.drop_socket();
                self.lost(now, Error::Protocol(error));
                return;
            }
        };
        match &message {
            ServerMessage::Welcome { owners, .. } => {
                if let Phase::Hydrating(waiting @ None) = &mut self.phase {
                    *waiting = Some(owners.clone());
                }
            }
            ServerMessage::Snapshot { owners } => self.stats.snapshots += owners.len() as u64,
            ServerMessage::Delta { .. } => self.stats.deltas += 1,
            ServerMessage::Pong { nonce } => {
                if let Some((sent, at)) = self.ping_sent
                    && sent == *nonce
                {
                    self.latency = Some(Duration::from_millis(now.saturating_sub(at)));
                    self.ping_sent = None;
                }
            }
            ServerMessage::Error(body) if body.code == ErrorCode::TokenExpired => {
                let error = Error::Server(body.clone());
                self.drop_socket();
                self.token_expired(now, error);
                return;
            }
            ServerMessage::Error(body)
                if matches!(body.code, ErrorCode::Unauthorized | ErrorCode::Forbidden) =>
            {
                self.refused(Error::Server(body.clone()));
                return;
            }
            ServerMessage::Error(body) => {
                self.events
                    .push_back(SessionEvent::Error(Error::Server(body.clone())));
            }
            ServerMessage::Resumed { .. } => {}
        }
        let changes = self.state.handle(message);
        if !changes.is_empty() {
            self.events.push_back(SessionEvent::Changes(changes));
        }
        self.check_hydrated(now);
        if let Some(resume) = self.state.take_resume_request() {
            self.send(&ClientMessage::Hello {
                token: self.current_token(),
                resume: Some(resume),
            });
        }
        self.pump_descriptors(now);
    }

    /// The token provider answered an [`Action::RefreshToken`].
    pub fn token(&mut self, now: Millis, token: Result<String, Error>) {
        if !self.token.pending || matches!(self.phase, Phase::Closed) {
            return;
        }
        self.token.pending = false;
        match token {
            Ok(token) => {
                self.stats.tokens += 1;
                self.set_token(now, token);
                if std::mem::take(&mut self.token.open_after) {
                    self.open(now);
                } else if matches!(self.phase, Phase::Live) {
                    // Re-authenticate the open session: the node takes the
                    // new expiry from this hello, and resumes from the held
                    // versions (nothing is sent twice for long).
                    let hello = ClientMessage::Hello {
                        token: self.current_token(),
                        resume: Some(self.state.resume_versions()),
                    };
                    self.send(&hello);
                }
            }
            Err(error) => {
                self.events.push_back(SessionEvent::Error(error.clone()));
                if std::mem::take(&mut self.token.open_after) {
                    self.lost(now, error);
                } else {
                    // Ask again a little later; the node's expiry close asks
                    // again anyway.
                    self.token.refresh_at = Some(now + millis(self.backoff_delay(1)));
                }
            }
        }
    }

    /// The descriptor fetch of `ids` answered.
    pub fn descriptors(
        &mut self,
        now: Millis,
        ids: &[ItemId],
        result: Result<BatchGetResponse, Error>,
    ) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        match result {
            Ok(response) => {
                self.descriptor_failures = 0;
                let changes = self.state.apply_descriptors(&response);
                if !changes.is_empty() {
                    self.events.push_back(SessionEvent::Changes(changes));
                }
                self.pump_descriptors(now);
            }
            Err(error) => {
                let retryable = error.is_retryable();
                self.events.push_back(SessionEvent::Error(error));
                self.state.descriptor_fetch_failed(ids);
                // A refusal is not retried on a timer: the ids are asked for
                // again with the next message.
                if retryable && self.descriptor_retry_at.is_none() {
                    self.descriptor_failures += 1;
                    let delay = self.backoff_delay(self.descriptor_failures);
                    self.descriptor_retry_at = Some(now + millis(delay));
                }
            }
        }
    }

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.connect_deadline.is_some_and(|at| at <= now) {
            self.connect_deadline = None;
            self.drop_socket();
            let timeout = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no inventories within {} ms of connecting",
                    millis(self.config.connect_timeout)
                ),
            );
            self.lost(now, Error::transport(timeout));
        }
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            if matches!(self.phase, Phase::Backoff) {
                self.open(now);
            }
        }
        if self.next_ping.is_some_and(|at| at <= now) {
            self.ping(now);
        }
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush_at = None;
            self.flush_descriptors();
        }
        if self.descriptor_retry_at.is_some_and(|at| at <= now) {
            self.descriptor_retry_at = None;
            self.pump_descriptors(now);
        }
        if self.token.refresh_at.is_some_and(|at| at <= now) && !self.token.pending {
            self.token.refresh_at = None;
            self.ask_token(false);
        }
    }

    fn set_token(&mut self, now: Millis, token: String) {
        self.token.expires = jwt_expiry(&token);
        self.token.refresh_at = match (self.token.provider, self.token.expires) {
            (true, Some(expires)) => Some(now + expires.saturating_sub(now) * 3 / 4),
            _ => None,
        };
        self.token.current = Some(token);
    }

    /// The token to say hello with (empty while none has arrived).
    fn current_token(&self) -> String {
        self.token.current.clone().unwrap_or_default()
    }

    fn ask_token(&mut self, open_after: bool) {
        self.token.open_after |= open_after;
        if !self.token.pending {
            self.token.pending = true;
            self.actions.push_back(Action::RefreshToken);
        }
    }

    /// Opens a socket, or first asks for a token when there is none (or it
    /// has expired) and a provider can give one.
    fn open(&mut self, now: Millis) {
        self.reconnect_at = None;
        self.set_connection(ConnectionState::Connecting {
            attempt: self.attempt,
        });
        let expired = self.token.expires.is_some_and(|at| at <= now);
        if self.token.provider && (self.token.current.is_none() || expired) {
            self.phase = Phase::Idle;
            self.ask_token(true);
            return;
        }
        self.next_socket += 1;
        let id = SocketId(self.next_socket);
        self.socket = Some(id);
        self.stats.sockets += 1;
        self.phase = Phase::Opening;
        self.connect_deadline = Some(now + millis(self.config.connect_timeout));
        self.actions.push_back(Action::Open(id));
    }

    fn drop_socket(&mut self) {
        if self.socket.take().is_some() {
            self.actions.push_back(Action::CloseSocket);
        }
        self.connect_deadline = None;
        self.next_ping = None;
        self.ping_sent = None;
    }

    fn clear_timers(&mut self) {
        self.connect_deadline = None;
        self.reconnect_at = None;
        self.next_ping = None;
        self.flush_at = None;
        self.descriptor_retry_at = None;
        self.queued_descriptors.clear();
    }

    fn send(&mut self, message: &ClientMessage) {
        match protocol::encode_client(self.config.encoding, message) {
            Ok(frame) => self.actions.push_back(Action::Send(frame)),
            Err(error) => self.events.push_back(SessionEvent::Error(error.into())),
        }
    }

    fn set_connection(&mut self, connection: ConnectionState) {
        if self.connection != connection {
            self.connection = connection;
            self.events.push_back(SessionEvent::Connection(connection));
        }
    }

    fn settle(&mut self, result: Result<(), Error>) {
        if !std::mem::replace(&mut self.settled, true) {
            self.events.push_back(SessionEvent::Ready(result));
        }
    }

    /// Connected once every welcomed owner is held.
    fn check_hydrated(&mut self, now: Millis) {
        let Phase::Hydrating(Some(owners)) = &self.phase else {
            return;
        };
        if !owners.iter().all(|owner| self.state.owner(owner).is_some()) {
            return;
        }
        self.phase = Phase::Live;
        self.connect_deadline = None;
        self.attempt = 0;
        self.ever_connected = true;
        self.token.expired_refusals = 0;
        self.set_connection(ConnectionState::Connected);
        self.settle(Ok(()));
        // Ping at once, so that the latency is known early.
        self.ping(now);
    }

    fn ping(&mut self, now: Millis) {
        let interval = millis(self.config.ping_interval);
        if now.saturating_sub(self.last_frame) > 2 * interval {
            self.drop_socket();
            let silent = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no frame from the node for {} ms", 2 * interval),
            );
            self.lost(now, Error::transport(silent));
            return;
        }
        self.nonce += 1;
        self.ping_sent = Some((self.nonce, now));
        self.send(&ClientMessage::Ping { nonce: self.nonce });
        self.next_ping = Some(now + interval.max(1));
    }

    /// The node refused the client for good: close and say why.
    fn refused(&mut self, error: Error) {
        self.events.push_back(SessionEvent::Error(error.clone()));
        self.end(error);
    }

    /// Ends the session for good; a pending `connect()` fails with `why`.
    fn end(&mut self, why: Error) {
        self.settle(Err(why));
        self.drop_socket();
        self.phase = Phase::Closed;
        self.clear_timers();
        self.token.refresh_at = None;
        self.set_connection(ConnectionState::Closed);
    }

    /// The node said the token expired: with a provider, reconnect at once
    /// with a fresh one; without, that is a refusal.
    fn token_expired(&mut self, now: Millis, error: Error) {
        self.token.expired_refusals += 1;
        if !self.token.provider || self.token.expired_refusals > MAX_EXPIRED_REFUSALS {
            self.refused(error);
            return;
        }
        self.events.push_back(SessionEvent::Error(error));
        self.phase = Phase::Backoff;
        self.next_ping = None;
        self.connect_deadline = None;
        // The token held may be fresher than the one the node refused.
        if self.token.expires.is_some_and(|at| at > now + 1_000) {
            self.open(now);
        } else {
            self.token.current = None;
            self.set_connection(ConnectionState::Connecting {
                attempt: self.attempt,
            });
            self.ask_token(true);
        }
    }

    /// The connection was lost or could not be made: before the first
    /// connected session that ends the client (and fails `connect()`); after
    /// it, reconnect after a backoff delay, resuming.
    fn lost(&mut self, now: Millis, error: Error) {
        self.events.push_back(SessionEvent::Error(error.clone()));
        if !self.ever_connected {
            self.end(error);
            return;
        }
        self.attempt += 1;
        let delay = self.backoff_delay(self.attempt);
        self.phase = Phase::Backoff;
        self.next_ping = None;
        self.connect_deadline = None;
        self.reconnect_at = Some(now + millis(delay));
        self.set_connection(ConnectionState::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }

    /// Exponential from the minimum to the maximum delay, with jitter
    /// between half and all of it.
    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let min = self
            .config
            .reconnect_min_delay
            .max(Duration::from_millis(1));
        let full = min
            .saturating_mul(1 << attempt.saturating_sub(1).min(20))
            .min(self.config.reconnect_max_delay.max(min));
        // xorshift64: deterministic for a seed, different per client.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.5 + (self.rng >> 11) as f64 / (1u64 << 54) as f64;
        full.mul_f64(fraction)
    }

    /// Queues the descriptors the state needs, sending them after the batch
    /// window so that ids arriving close together share one request.
    fn pump_descriptors(&mut self, now: Millis) {
        if !self.config.fetch_descriptors || matches!(self.phase, Phase::Closed) {
            return;
        }
        let wanted = self.state.descriptors_to_fetch();
        if wanted.is_empty() {
            return;
        }
        self.queued_descriptors.extend(wanted);
        if self.config.batch_window.is_zero() {
            self.flush_descriptors();
        } else if self.flush_at.is_none() {
            self.flush_at = Some(now + millis(self.config.batch_window));
        }
    }

    fn flush_descriptors(&mut self) {
        let queued = std::mem::take(&mut self.queued_descriptors);
        for chunk in queued.chunks(MAX_BATCH_IDS) {
            self.actions
                .push_back(Action::FetchDescriptors(chunk.to_vec()));
        }
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

/// A socket closed by the node or the network.
#[derive(Debug, thiserror::Error)]
#[error("the connection closed{}: {reason}", code.map(|c| format!(" ({c})")).unwrap_or_default())]
struct SocketClosed {
    code: Option<u16>,
    reason: String,
}

/// The `exp` of a JWT, in milliseconds, read without verifying it (the node
/// verifies; the client only schedules its refresh). `None` for anything
/// that is not a JWT with a numeric `exp`.
fn jwt_expiry(token: &str) -> Option<Millis> {
    /// The one claim the session reads.
    #[derive(serde::Deserialize)]
    struct Expiry {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64url_decode(payload)?;
    let claims: Expiry = serde_json::from_slice(&json).ok()?;
    claims.exp.checked_mul(1000)
}

/// Unpadded base64url, as JWTs use it.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
