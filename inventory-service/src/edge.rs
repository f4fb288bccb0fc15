//! The client WebSocket at `/v1/ws`: authenticate the `Hello`, answer with
//! the welcome and the snapshot (or the missed deltas), then stream the
//! player's deltas; enforce the limits of [`EdgeConfig`].
//!
//! One task per connection does everything: it reads the client's frames,
//! drains the connection's bounded send queue (filled by the player's feed,
//! see `feed.rs`) and watches the timers and the shutdown signal. A send that
//! cannot complete within the send timeout, or a queue that overflows,
//! disconnects the client: a slow client never makes the node buffer without
//! bound.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use protocol::{ClientMessage, Encoding, ErrorBody, ErrorCode, ServerMessage, UserId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::feed::{Lease, Outgoing};
use crate::{ApiError, AppState};

/// The read buffer of a connection (zero-filled, so resident): a `Hello`
/// fits; a bigger frame grows it.
const READ_BUFFER_BYTES: usize = 1024;

/// How much a connection buffers before writing to the socket (a flush
/// writes everything regardless).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The limits of the client WebSocket.
#[derive(Clone, Copy, Debug)]
pub struct EdgeConfig {
    pub(crate) messages_per_second: f64,
    pub(crate) burst: f64,
    pub(crate) idle_timeout: Duration,
    pub(crate) hello_timeout: Duration,
    pub(crate) send_queue: usize,
    pub(crate) send_timeout: Duration,
    pub(crate) max_offences: u32,
    pub(crate) resume_window: usize,
    pub(crate) linger: Duration,
    pub(crate) max_read_bytes: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            messages_per_second: 10.0,
            burst: 20.0,
            idle_timeout: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(10),
            send_queue: 256,
            send_timeout: Duration::from_secs(10),
            max_offences: 3,
            resume_window: 128,
            linger: Duration::from_secs(30),
            max_read_bytes: 4 * protocol::MAX_CLIENT_FRAME_BYTES,
        }
    }
}

impl EdgeConfig {
    /// The defaults: 10 messages/s with bursts of 20, 60 s idle timeout
    /// (clients ping every 15 s), 10 s to say hello, a queue of 256 messages
    /// and 10 s per send before a client counts as slow, closed after 3
    /// refused messages, 128 deltas per owner kept for resumes, feeds kept
    /// 30 s after their last client, frames over 16 KiB dropped unread.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The sustained client message rate and the burst above it.
    #[must_use]
    pub fn with_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.messages_per_second = per_second.max(0.001);
        self.burst = f64::from(burst.max(1));
        self
    }

    /// How long a connection may stay silent (no frame at all).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a new connection has to send an accepted `Hello`.
    #[must_use]
    pub fn with_hello_timeout(mut self, timeout: Duration) -> Self {
        self.hello_timeout = timeout;
        self
    }

    /// How many messages may wait for one client, and how long one send may
    /// take, before the client is disconnected as slow.
    #[must_use]
    pub fn with_send_queue(mut self, messages: usize, send_timeout: Duration) -> Self {
        self.send_queue = messages.max(1);
        self.send_timeout = send_timeout;
        self
    }

    /// How many refused messages (malformed, oversized, over the rate) close
    /// the connection.
    #[must_use]
    pub fn with_max_offences(mut self, n: u32) -> Self {
        self.max_offences = n.max(1);
        self
    }

    /// How many recent deltas per owner are kept to answer resumes.
    #[must_use]
    pub fn with_resume_window(mut self, deltas: usize) -> Self {
        self.resume_window = deltas;
        self
    }

    /// How long a player's feed (its interest and resume window) outlives
    /// the player's last connection.
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
}

/// A tiny token bucket for one connection's messages. It lives on the
/// connection's task, so it needs no atomics or shared clock, which is all a
/// rate-limiting crate would add here.
#[derive(Debug)]
struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        Self {
            per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/ws",
    description = "Upgrades to the client WebSocket: the first message is `hello` with the \
        player's session token (a JWT); then the player's snapshot and deltas stream. Frames \
        are `protocol::ClientMessage` / `ServerMessage` in JSON or MessagePack.",
    responses(
        (status = 101, description = "switched to the WebSocket protocol"),
        (status = 400, description = "not a WebSocket upgrade (malformed_request)", body = ErrorBody),
        (status = 503, description = "the node is draining (unavailable)", body = ErrorBody)
    )
)]
pub(crate) async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    if state.is_draining() {
        return ApiError::new(ErrorCode::Unavailable, "the node is shutting down").into_response();
    }
    let config = state.edge_config();
    ws.protocols(Encoding::ALL.map(Encoding::subprotocol))
        .max_message_size(config.max_read_bytes)
        .max_frame_size(config.max_read_bytes)
        // Clients send small frames; the 128 KiB defaults would dominate an
        // idle connection's memory.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let encoding = socket
                .protocol()
                .and_then(|p| p.to_str().ok())
                .and_then(Encoding::from_subprotocol)
                .unwrap_or_default();
            Connection::new(state, encoding).run(socket).await;
        })
}

/// The player a connection serves, once its `Hello` was accepted.
struct Session {
    user: UserId,
    lease: Lease,
    queue: mpsc::Receiver<Arc<Outgoing>>,
    /// When the token of the last accepted `Hello` expires (its `exp` plus
    /// the leeway): the node closes the session then with
    /// [`protocol::CLOSE_TOKEN_EXPIRED`], unless a `Hello` with a fresher
    /// token moved it.
    expires: Instant,
}

/// Why a connection ends.
enum End {
    /// The client went away, or the socket failed.
    Gone,
    /// The node closes with this code and reason.
    Close(u16, &'static str),
}

struct Connection {
    state: AppState,
    config: EdgeConfig,
    encoding: Encoding,
    session: Option<Session>,
    offences: u32,
}

impl Connection {
    fn new(state: AppState, encoding: Encoding) -> Self {
        let config = state.edge_config();
        Self {
            state,
            config,
            encoding,
            session: None,
            offences: 0,
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let metrics = self.state.metrics().clone();
        metrics.clients_connected.inc();
        let end = self.converse(&mut socket).await;
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // The closing handshake: wait (briefly) for the client's close,
            // reading what it had sent meanwhile, so that the socket closes
            // with nothing unread. Closing with unread data resets the
            // connection, and the client would lose the last messages (the
            // error saying why, say).
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    while let Some(Ok(message)) = socket.recv().await {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                    }
                }
            })
            .await;
        }
        metrics.clients_connected.dec();
    }

    async fn converse(&mut self, socket: &mut WebSocket) -> End {
        let mut shutdown = self.state.shutdown_signal();
        let opened = Instant::now();
        let mut bucket =
            TokenBucket::new(self.config.messages_per_second, self.config.burst, opened);
        let mut last_heard = opened;
        loop {
            if self.session.as_ref().is_some_and(|s| s.lease.is_slow()) {
                return End::Close(close_code::POLICY, "too slow: send queue full");
            }
            let deadline = if self.session.is_some() {
                last_heard + self.config.idle_timeout
            } else {
                (opened + self.config.hello_timeout).min(last_heard + self.config.idle_timeout)
            };
            let expires = self.session.as_ref().map(|s| s.expires);
            tokio::select! {
                biased;
                () = until_draining(&mut shutdown) => {
                    return End::Close(close_code::AWAY, "the node is shutting down");
                }
                () = until(expires) => {
                    self.state.metrics().client_errors.with_label_values(&[ErrorCode::TokenExpired.as_str()]).inc();
                    return End::Close(protocol::CLOSE_TOKEN_EXPIRED, "the token has expired");
                }
                frame = socket.recv() => {
                    let now = Instant::now();
                    last_heard = now;
                    let bytes = match frame {
                        Some(Ok(Message::Text(text))) => axum::body::Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                            if !bucket.take(now) && self.offend(socket, ErrorCode::RateLimited, "too many messages").await {
                                return End::Close(close_code::POLICY, "too many refused messages");
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(_))) | None => return End::Gone,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "client socket failed");
                            return End::Close(close_code::SIZE, "frame too large or malformed");
                        }
                    };
                    if !bucket.take(now) {
                        if self.offend(socket, ErrorCode::RateLimited, "too many messages; slow down").await {
                            return End::Close(close_code::POLICY, "too many refused messages");
                        }
                        continue;
                    }
                    match protocol::decode_client(self.encoding, &bytes) {
                        Ok(ClientMessage::Ping { nonce }) => {
                            if !self.send(socket, &Outgoing::new(ServerMessage::Pong { nonce })).await {
                                return End::Close(close_code::POLICY, "too slow");
                            }
                        }
                        Ok(ClientMessage::Hello { token, resume }) => {
                            match self.hello(&token, resume.as_ref()).await {
                                Ok(initial) => {
                                    for out in &initial {
                                        if !self.send(socket, out).await {
                                            return End::Close(close_code::POLICY, "too slow");
                                        }
                                    }
                                }
                                Err(body) => {
                                    let fatal = matches!(body.code, ErrorCode::Unauthorized | ErrorCode::Forbidden);
                                    let expired = body.code == ErrorCode::TokenExpired;
                                    self.state.metrics().client_errors.with_label_values(&[body.code.as_str()]).inc();
                                    let _ = self.send(socket, &Outgoing::new(ServerMessage::Error(body))).await;
                                    return if expired {
                                        End::Close(protocol::CLOSE_TOKEN_EXPIRED, "the token has expired")
                                    } else if fatal {
                                        End::Close(close_code::POLICY, "not authorized")
                                    } else {
                                        End::Close(close_code::AGAIN, "try again later")
                                    };
                                }
                            }
                        }
                        Err(e) => {
                            if self.offend(socket, e.code(), &e.to_string()).await {
                                return End::Close(close_code::POLICY, "too many refused messages");
                            }
                        }
                    }
                }
                out = next(&mut self.session) => match out {
                    Some(out) => {
                        if !self.send(socket, &out).await {
                            return End::Close(close_code::POLICY, "too slow");
                        }
                        // Drain what else is queued before flushing.
                        if !self.flush_queue(socket).await {
                            return End::Close(close_code::POLICY, "too slow");
                        }
                    }
                    None if self.session.as_ref().is_some_and(|s| s.lease.is_slow()) => {
                        return End::Close(close_code::POLICY, "too slow: send queue full");
                    }
                    None => return End::Close(close_code::RESTART, "the player's feed closed; reconnect"),
                },
                () = tokio::time::sleep_until(deadline) => {
                    return End::Close(close_code::POLICY, if self.session.is_some() { "idle" } else { "no hello" });
                }
            }
        }
    }

    /// Answers a refused message; true when the client has now offended too
    /// often and must be closed.
    async fn offend(&mut self, socket: &mut WebSocket, code: ErrorCode, message: &str) -> bool {
        self.offences += 1;
        self.state
            .metrics()
            .client_errors
            .with_label_values(&[code.as_str()])
            .inc();
        let error = Outgoing::new(ServerMessage::error(code, message));
        let sent = self.send(socket, &error).await;
        !sent || self.offences >= self.config.max_offences
    }

    async fn hello(
        &mut self,
        token: &str,
        resume: Option<&std::collections::BTreeMap<protocol::OwnerId, protocol::Version>>,
    ) -> Result<Vec<Arc<Outgoing>>, ErrorBody> {
        let (user, left) = self
            .state
            .client_tokens()
            .verify_session(token)
            .map_err(|e| ErrorBody::new(e.code(), e.to_string()))?;
        let expires = Instant::now() + left;
        if let Some(session) = &mut self.session {
            if session.user != user {
                return Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "this connection belongs to another player",
                ));
            }
            session.expires = expires;
            let (initial, queue) = session.lease.hello(resume, self.config.send_queue);
            session.queue = queue;
            return Ok(initial);
        }
        // Boxed: the attach (a join and a store load) happens once, and its
        // state would otherwise sit in every idle connection's future.
        let lease = Box::pin(self.state.feeds().attach(&user)).await?;
        let (initial, queue) = lease.hello(resume, self.config.send_queue);
        self.session = Some(Session {
            user,
            lease,
            queue,
            expires,
        });
        Ok(initial)
    }

    /// Sends one message within the send timeout; false if the client is too
    /// slow or gone.
    async fn send(&self, socket: &mut WebSocket, out: &Outgoing) -> bool {
        let (frame, len) = out.frame(self.encoding);
        let sent = tokio::time::timeout(self.config.send_timeout, socket.send(frame)).await;
        if !matches!(sent, Ok(Ok(()))) {
            if sent.is_err() {
                self.state.metrics().slow_client_disconnects.inc();
            }
            return false;
        }
        self.count(out, len);
        true
    }

    /// Sends every message already queued, flushing once at the end.
    async fn flush_queue(&mut self, socket: &mut WebSocket) -> bool {
        let Some(session) = &mut self.session else {
            return true;
        };
        let mut batch = Vec::new();
        while batch.len() < 64 {
            match session.queue.try_recv() {
                Ok(out) => batch.push(out),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return true;
        }
        let encoding = self.encoding;
        let feed = async {
            for out in &batch {
                let (frame, _) = out.frame(encoding);
                socket.feed(frame).await?;
            }
            socket.flush().await
        };
        let sent = tokio::time::timeout(self.config.send_timeout, feed).await;
        if !matches!(sent, Ok(Ok(()))) {
            if sent.is_err() {
                self.state.metrics().slow_client_disconnects.inc();
            }
            return false;
        }
        for out in &batch {
            let (_, len) = out.frame(encoding);
            self.count(out, len);
        }
        true
    }

    fn count(&self, out: &Outgoing, len: usize) {
        let metrics = self.state.metrics();
        metrics.bytes_sent.inc_by(len as u64);
        match out.message() {
            ServerMessage::Delta { .. } => metrics.deltas_sent.inc(),
            ServerMessage::Snapshot { .. } => metrics.snapshots_sent.inc(),
            _ => {}
        }
    }
}

/// Completes once the node starts draining.
async fn until_draining(signal: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = signal.wait_for(|draining| *draining).await;
}

/// The next queued message of the session; pending forever without one.
/// Sleeps until `at`, or forever without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next(session: &mut Option<Session>) -> Option<Arc<Outgoing>> {
    match session {
        Some(session) => session.queue.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 3.0, start);
        assert_eq!(
            (0..4).map(|_| bucket.take(start)).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert!(bucket.take(start + Duration::from_millis(500)));
        assert!(!bucket.take(start + Duration::from_millis(500)));
        assert!(bucket.take(start + Duration::from_secs(60)));
    }
}
