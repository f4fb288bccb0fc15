//! The browser driver: a web-sys `WebSocket` feeding the SDK's [`ClientState`],
//! with reconnect and exponential backoff, resume, pings, a connect timeout,
//! and descriptor batches over `fetch`.
//!
//! Everything runs on the one JavaScript thread. The driver's state lives in
//! an `Rc<RefCell<Driver>>`; socket and timer callbacks hold only a `Weak`
//! reference (so that dropping the client frees everything) and the session
//! number they were made for (so that a late event of a replaced socket is
//! ignored). A callback mutates the driver, which queues what users must hear
//! in its outbox; the outbox is dispatched after the borrow ends, so user
//! listeners may call back into the client (read the view, close) without
//! re-entrancy.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::{Rc, Weak};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use gloo_timers::callback::{Interval, Timeout};
use protocol::{
    BatchGetResponse, ClientMessage, Encoding, ErrorCode, ItemId, MAX_BATCH_IDS, ServerMessage,
};
use sdk::{ClientState, ViewChange};
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::Error;
use crate::client::Listeners;
use crate::error::transport;
use crate::fetch::{batch_endpoint, post_batch};
use crate::js_view::JsConnection;

/// The driver's settings, from the constructor's options.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub url: String,
    pub token: String,
    pub encoding: Encoding,
    /// The batch endpoint, when descriptors are fetched.
    pub descriptor_endpoint: Option<String>,
    pub descriptor_capacity: NonZeroUsize,
    pub connect_timeout_ms: u32,
    pub reconnect_min_delay: Duration,
    pub reconnect_max_delay: Duration,
    pub ping_interval_ms: u32,
    pub batch_window_ms: u32,
}

impl Config {
    pub fn new(url: String, token: String) -> Self {
        Self {
            url,
            token,
            encoding: Encoding::Json,
            descriptor_endpoint: None,
            descriptor_capacity: ClientState::DEFAULT_DESCRIPTOR_CAPACITY,
            connect_timeout_ms: 10_000,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(10),
            ping_interval_ms: 15_000,
            batch_window_ms: 5,
        }
    }

    pub fn with_descriptor_url(mut self, base_url: &str) -> Self {
        self.descriptor_endpoint = Some(batch_endpoint(base_url));
        self
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.reconnect_min_delay)
            .with_max_delay(self.reconnect_max_delay)
            .with_jitter()
            // Every browser would otherwise draw the same jitter, which is the
            // thundering herd jitter exists to avoid.
            .with_jitter_seed((js_sys::Math::random() * (1u64 << 53) as f64) as u64)
            .without_max_times()
            .build()
    }
}

/// What users must hear, queued while the driver is borrowed.
#[derive(Debug)]
pub(crate) enum Event {
    Changes(Vec<ViewChange>),
    Connection(JsConnection),
    Error(sdk::Error),
    /// Settles the promise of `connect()`.
    Ready(Result<(), sdk::Error>),
}

/// One open (or opening) WebSocket with its handlers; dropping it detaches
/// the handlers and closes the socket.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // Closing an already closed socket is a no-op; it never throws with
        // code 1000.
        let _ = self.ws.close_with_code(1000);
    }
}

/// Descriptor ids waiting for the batch window, and the retry schedule.
#[derive(Default)]
struct DescriptorQueue {
    queued: Vec<ItemId>,
    flush: Option<Timeout>,
    retry: Option<Timeout>,
    retry_delays: Option<ExponentialBackoff>,
}

/// The state behind one `InventoryClient`.
pub(crate) struct Driver {
    config: Config,
    state: ClientState,
    connection: JsConnection,
    socket: Option<Socket>,
    /// Incremented for every socket, so that events of an old one are ignored.
    session: u64,
    welcomed: bool,
    /// The owners of the session's welcome until each is held: the session
    /// counts as connected (and `connect()` resolves) once all are.
    hydrating: Option<Vec<protocol::OwnerId>>,
    closed: bool,
    delays: ExponentialBackoff,
    attempt: u32,
    reconnect_timer: Option<Timeout>,
    connect_timer: Option<Timeout>,
    ping_timer: Option<Interval>,
    last_frame_ms: f64,
    nonce: u64,
    ping_sent: Option<(u64, f64)>,
    latency_ms: Option<f64>,
    /// Whether a session ever got connected: until then a failure ends the
    /// client (and rejects `connect()`), as natively.
    ever_connected: bool,
    descriptors: DescriptorQueue,
    outbox: Vec<Event>,
    /// The user's listeners and pending `connect()` promises.
    pub listeners: Listeners,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("url", &self.config.url)
            .field("connection", &self.connection)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

pub(crate) type Shared = Rc<RefCell<Driver>>;

/// Runs `work` on the driver if it still exists, then returns what it queued
/// for users: the caller dispatches it after the borrow has ended.
pub(crate) fn with_driver(
    weak: &Weak<RefCell<Driver>>,
    work: impl FnOnce(&mut Driver, &Weak<RefCell<Driver>>),
) -> Vec<Event> {
    let Some(shared) = weak.upgrade() else {
        return Vec::new();
    };
    let mut driver = shared.borrow_mut();
    work(&mut driver, weak);
    std::mem::take(&mut driver.outbox)
}

impl Driver {
    pub fn new(config: Config) -> Self {
        Self {
            state: ClientState::new(config.descriptor_capacity),
            delays: config.backoff(),
            config,
            connection: JsConnection::Idle,
            socket: None,
            session: 0,
            welcomed: false,
            hydrating: None,
            closed: false,
            attempt: 0,
            reconnect_timer: None,
            connect_timer: None,
            ping_timer: None,
            last_frame_ms: 0.0,
            nonce: 0,
            ping_sent: None,
            latency_ms: None,
            ever_connected: false,
            descriptors: DescriptorQueue::default(),
            outbox: Vec::new(),
            listeners: Listeners::default(),
        }
    }

    pub fn state(&self) -> &ClientState {
        &self.state
    }

    pub fn connection(&self) -> &JsConnection {
        &self.connection
    }

    pub fn latency_ms(&self) -> Option<f64> {
        self.latency_ms
    }

    /// Starts connecting unless it already has; the next welcome, or a
    /// failure that ends the client, is reported as [`Event::Ready`].
    pub fn connect(&mut self, me: &Weak<RefCell<Driver>>) {
        if self.closed {
            self.outbox.push(Event::Ready(Err(sdk::Error::Closed)));
        } else if self.connection == JsConnection::Connected {
            self.outbox.push(Event::Ready(Ok(())));
        } else if self.connection == JsConnection::Idle {
            self.open(me);
        }
    }

    /// Drops the connection and opens a new one at once, resuming.
    pub fn reconnect(&mut self, me: &Weak<RefCell<Driver>>) {
        if self.closed || self.connection == JsConnection::Idle {
            return;
        }
        self.end_session();
        self.delays = self.config.backoff();
        self.attempt = 0;
        self.open(me);
    }

    /// Closes for good.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.end_session();
        self.descriptors = DescriptorQueue::default();
        self.outbox.push(Event::Ready(Err(sdk::Error::Closed)));
        self.set_connection(JsConnection::Closed);
    }

    fn set_connection(&mut self, connection: JsConnection) {
        if self.connection != connection {
            self.connection = connection.clone();
            self.outbox.push(Event::Connection(connection));
        }
    }

    fn end_session(&mut self) {
        self.socket = None;
        self.welcomed = false;
        self.hydrating = None;
        self.reconnect_timer = None;
        self.connect_timer = None;
        self.ping_timer = None;
        self.ping_sent = None;
    }

    fn open(&mut self, me: &Weak<RefCell<Driver>>) {
        self.end_session();
        self.session += 1;
        let session = self.session;
        self.set_connection(JsConnection::Connecting {
            attempt: self.attempt,
        });
        let ws = match WebSocket::new_with_str(&self.config.url, self.config.encoding.subprotocol())
        {
            Ok(ws) => ws,
            Err(error) => {
                // An unusable URL will not get better by retrying.
                let error = sdk::Error::InvalidUrl {
                    url: self.config.url.clone(),
                    reason: Error::browser(&error).to_string(),
                };
                self.refused(error);
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let me = me.clone();
            Closure::<dyn FnMut()>::new(move || {
                dispatch_from(&me, with_driver(&me, |d, _| d.on_open(session)));
            })
        };
        let on_message = {
            let me = me.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                dispatch_from(
                    &me,
                    with_driver(&me, |d, me| d.on_frame(session, &event.data(), me)),
                );
            })
        };
        let on_close = {
            let me = me.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                let error = Error::SocketClosed {
                    code: event.code(),
                    reason: event.reason(),
                };
                dispatch_from(
                    &me,
                    with_driver(&me, |d, me| {
                        if d.session == session {
                            d.lost(sdk::Error::transport(error), me);
                        }
                    }),
                );
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.socket = Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
        let timeout_ms = self.config.connect_timeout_ms;
        let me = me.clone();
        self.connect_timer = Some(Timeout::new(timeout_ms, move || {
            dispatch_from(
                &me,
                with_driver(&me, |d, me| {
                    if d.session == session && !d.welcomed {
                        d.lost(sdk::Error::transport(Error::ConnectTimeout(timeout_ms)), me);
                    }
                }),
            );
        }));
    }

    fn on_open(&mut self, session: u64) {
        if session != self.session {
            return;
        }
        self.last_frame_ms = js_sys::Date::now();
        let hello = self.state.hello(self.config.token.clone());
        self.send(&hello);
    }

    fn send(&mut self, message: &ClientMessage) {
        let Some(socket) = &self.socket else { return };
        let sent = protocol::encode_client(self.config.encoding, message)
            .map_err(sdk::Error::from)
            .and_then(|frame| {
                if self.config.encoding.is_text() {
                    // JSON encoding produces UTF-8.
                    let text = String::from_utf8_lossy(&frame);
                    socket.ws.send_with_str(&text)
                } else {
                    socket.ws.send_with_u8_array(&frame)
                }
                .map_err(|e| transport(&e))
            });
        if let Err(error) = sent {
            self.outbox.push(Event::Error(error));
        }
    }

    fn on_frame(&mut self, session: u64, data: &JsValue, me: &Weak<RefCell<Driver>>) {
        if session != self.session {
            return;
        }
        self.last_frame_ms = js_sys::Date::now();
        let frame = match data.as_string() {
            Some(text) => text.into_bytes(),
            None => js_sys::Uint8Array::new(data).to_vec(),
        };
        let message = match protocol::decode_server(self.config.encoding, &frame) {
            Ok(message) => message,
            Err(error) => {
                self.outbox.push(Event::Error(error.into()));
                return;
            }
        };
        match &message {
            ServerMessage::Welcome { owners, .. } => {
                if !self.welcomed {
                    self.hydrating = Some(owners.clone());
                }
                self.welcomed(me);
            }
            ServerMessage::Pong { nonce } => {
                if let Some((sent_nonce, sent_at)) = self.ping_sent
                    && sent_nonce == *nonce
                {
                    self.latency_ms = Some(js_sys::Date::now() - sent_at);
                    self.ping_sent = None;
                }
            }
            ServerMessage::Error(body)
                if matches!(body.code, ErrorCode::Unauthorized | ErrorCode::Forbidden) =>
            {
                self.refused(sdk::Error::Server(body.clone()));
                return;
            }
            ServerMessage::Error(body) => {
                self.outbox
                    .push(Event::Error(sdk::Error::Server(body.clone())));
            }
            _ => {}
        }
        let changes = self.state.handle(message);
        if !changes.is_empty() {
            self.outbox.push(Event::Changes(changes));
        }
        self.check_hydrated();
        if let Some(resume) = self.state.take_resume_request() {
            self.send(&ClientMessage::Hello {
                token: self.config.token.clone(),
                resume: Some(resume),
            });
        }
        self.pump_descriptors(me);
    }

    fn welcomed(&mut self, me: &Weak<RefCell<Driver>>) {
        // A Welcome answering a resume on an open session changes nothing here.
        if self.welcomed {
            return;
        }
        self.welcomed = true;
        self.connect_timer = None;
        self.delays = self.config.backoff();
        self.attempt = 0;
        let session = self.session;
        let me = me.clone();
        let interval_ms = self.config.ping_interval_ms;
        self.ping_timer = Some(Interval::new(interval_ms, move || {
            dispatch_from(&me, with_driver(&me, |d, me| d.on_ping_tick(session, me)));
        }));
        // Replay the immediate first ping so that the latency is known early.
        self.ping();
    }

    /// Reports the session connected once every welcomed owner is held.
    fn check_hydrated(&mut self) {
        let hydrated = self
            .hydrating
            .as_ref()
            .is_some_and(|owners| owners.iter().all(|owner| self.state.owner(owner).is_some()));
        if hydrated {
            self.hydrating = None;
            self.ever_connected = true;
            self.set_connection(JsConnection::Connected);
            self.outbox.push(Event::Ready(Ok(())));
        }
    }

    fn on_ping_tick(&mut self, session: u64, me: &Weak<RefCell<Driver>>) {
        if session != self.session {
            return;
        }
        let silent_for = js_sys::Date::now() - self.last_frame_ms;
        let limit = 2 * self.config.ping_interval_ms;
        if silent_for > f64::from(limit) {
            self.lost(sdk::Error::transport(Error::Silent(limit)), me);
        } else {
            self.ping();
        }
    }

    fn ping(&mut self) {
        self.nonce += 1;
        self.ping_sent = Some((self.nonce, js_sys::Date::now()));
        self.send(&ClientMessage::Ping { nonce: self.nonce });
    }

    /// The node refused the client for good: close and say why.
    fn refused(&mut self, error: sdk::Error) {
        self.outbox.push(Event::Error(error.clone()));
        self.outbox.push(Event::Ready(Err(error)));
        self.closed = true;
        self.end_session();
        self.set_connection(JsConnection::Closed);
    }

    /// The connection was lost or could not be made: the first connection's
    /// failure is reported to `connect()` (and ends the client, as natively);
    /// later ones are retried after a backoff delay, resuming.
    fn lost(&mut self, error: sdk::Error, me: &Weak<RefCell<Driver>>) {
        self.end_session();
        self.outbox.push(Event::Error(error.clone()));
        if !self.ever_connected {
            self.outbox.push(Event::Ready(Err(error)));
            self.closed = true;
            self.set_connection(JsConnection::Closed);
            return;
        }
        self.attempt += 1;
        let delay = self
            .delays
            .next()
            .unwrap_or(self.config.reconnect_max_delay);
        self.set_connection(JsConnection::Reconnecting {
            attempt: self.attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
        let me = me.clone();
        self.reconnect_timer = Some(Timeout::new(millis(delay), move || {
            dispatch_from(
                &me,
                with_driver(&me, |d, me| {
                    d.reconnect_timer = None;
                    if !d.closed {
                        d.open(me);
                    }
                }),
            );
        }));
    }

    /// Queues the descriptors the state needs and arms the batch window, so
    /// that ids arriving close together share one POST.
    fn pump_descriptors(&mut self, me: &Weak<RefCell<Driver>>) {
        if self.config.descriptor_endpoint.is_none() || self.closed {
            return;
        }
        let wanted = self.state.descriptors_to_fetch();
        if wanted.is_empty() {
            return;
        }
        self.descriptors.queued.extend(wanted);
        if self.descriptors.flush.is_none() {
            let me = me.clone();
            self.descriptors.flush = Some(Timeout::new(self.config.batch_window_ms, move || {
                dispatch_from(&me, with_driver(&me, |d, me| d.flush_descriptors(me)));
            }));
        }
    }

    fn flush_descriptors(&mut self, me: &Weak<RefCell<Driver>>) {
        self.descriptors.flush = None;
        let Some(endpoint) = self.config.descriptor_endpoint.clone() else {
            return;
        };
        let queued = std::mem::take(&mut self.descriptors.queued);
        for chunk in queued.chunks(MAX_BATCH_IDS) {
            let (ids, endpoint, me) = (chunk.to_vec(), endpoint.clone(), me.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = post_batch(&endpoint, &ids).await;
                dispatch_from(&me, with_driver(&me, |d, me| d.fetched(&ids, result, me)));
            });
        }
    }

    fn fetched(
        &mut self,
        ids: &[ItemId],
        result: Result<BatchGetResponse, sdk::Error>,
        me: &Weak<RefCell<Driver>>,
    ) {
        if self.closed {
            return;
        }
        match result {
            Ok(response) => {
                self.descriptors.retry_delays = None;
                let changes = self.state.apply_descriptors(&response);
                if !changes.is_empty() {
                    self.outbox.push(Event::Changes(changes));
                }
                self.pump_descriptors(me);
            }
            Err(error) => {
                // A refusal is not retried on a timer: the ids are asked for
                // again with the next message, as natively.
                let retryable = error.is_retryable();
                self.outbox.push(Event::Error(error));
                self.state.descriptor_fetch_failed(ids);
                if !retryable || self.descriptors.retry.is_some() {
                    return;
                }
                let config = &self.config;
                let delay = self
                    .descriptors
                    .retry_delays
                    .get_or_insert_with(|| config.backoff())
                    .next()
                    .unwrap_or(config.reconnect_max_delay);
                let me = me.clone();
                self.descriptors.retry = Some(Timeout::new(millis(delay), move || {
                    dispatch_from(
                        &me,
                        with_driver(&me, |d, me| {
                            d.descriptors.retry = None;
                            d.pump_descriptors(me);
                        }),
                    );
                }));
            }
        }
    }
}

fn millis(delay: Duration) -> u32 {
    u32::try_from(delay.as_millis()).unwrap_or(u32::MAX)
}

/// Hands queued events to the client's listeners (see `client.rs`).
fn dispatch_from(me: &Weak<RefCell<Driver>>, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    if let Some(shared) = me.upgrade() {
        crate::client::dispatch(&shared, events);
    }
}
