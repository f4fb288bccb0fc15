//! The browser driver of the SDK's [`Session`]: a web-sys `WebSocket`,
//! one `setTimeout` for the session's next deadline, `fetch` for descriptor
//! batches, and the page's token provider. Reconnects, resume, pings,
//! hydration and the token's lifecycle are the session's, shared with the
//! native driver.
//!
//! Everything runs on the one JavaScript thread. The driver lives in an
//! `Rc<RefCell<Driver>>`; socket, timer and promise callbacks hold only a
//! `Weak` reference (so that dropping the client frees everything). Each
//! entry point feeds the session, then [`Driver::pump`] does what it asks and
//! queues what users must hear in the outbox, which is dispatched after the
//! borrow ends, so user listeners may call back into the client (read the
//! view, close) without re-entrancy.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise};
use protocol::{BatchGetResponse, ItemId, OwnerId};
use sdk::{Action, ConnectionState, Millis, Session, SessionConfig, SessionEvent, SocketId};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::Error;
use crate::client::{Listeners, to_plain};
use crate::error::transport;
use crate::fetch::{DescriptorSource, post_batch};
use crate::js_view::JsConnection;

/// Where the client's tokens come from.
#[derive(Clone, Debug)]
pub(crate) enum TokenSource {
    Fixed(String),
    /// A JavaScript `() => Promise<string>`.
    Provider(Function),
}

/// The driver's settings, from the constructor's arguments.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub url: String,
    pub token: TokenSource,
    pub session: SessionConfig,
    /// Where descriptors come from, when they are fetched.
    pub descriptors: Option<DescriptorSource>,
}

/// What users must hear, queued while the driver is borrowed.
#[derive(Debug)]
pub(crate) enum Event {
    Changes(Vec<sdk::ViewChange>),
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

/// The state behind one `InventoryClient`.
pub(crate) struct Driver {
    url: String,
    provider: Option<Function>,
    descriptors: Option<DescriptorSource>,
    session: Session,
    socket: Option<Socket>,
    /// The armed timer and when it fires.
    timer: Option<(Millis, Timeout)>,
    snapshot: Snapshot,
    outbox: Vec<Event>,
    /// The user's listeners and pending `connect()` promises.
    pub listeners: Listeners,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("url", &self.url)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

pub(crate) type Shared = Rc<RefCell<Driver>>;

/// Runs `work` on the driver if it still exists, does what the session then
/// asks, and returns what it queued for users: the caller dispatches it after
/// the borrow has ended.
pub(crate) fn with_driver(
    weak: &Weak<RefCell<Driver>>,
    work: impl FnOnce(&mut Driver, Millis),
) -> Vec<Event> {
    let Some(shared) = weak.upgrade() else {
        return Vec::new();
    };
    let mut driver = shared.borrow_mut();
    work(&mut driver, now());
    driver.pump(weak);
    std::mem::take(&mut driver.outbox)
}

/// The page's clock, in milliseconds since the Unix epoch.
fn now() -> Millis {
    js_sys::Date::now() as Millis
}

impl Driver {
    pub fn new(config: Config) -> Self {
        let (session, provider) = match config.token {
            TokenSource::Fixed(token) => (Session::new(config.session, token), None),
            TokenSource::Provider(provider) => {
                (Session::with_token_provider(config.session), Some(provider))
            }
        };
        Self {
            url: config.url,
            provider,
            descriptors: config.descriptors,
            session,
            socket: None,
            timer: None,
            snapshot: Snapshot::default(),
            outbox: Vec::new(),
            listeners: Listeners::default(),
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The frozen snapshot of every inventory: the previous one while nothing
    /// changed, and otherwise a new array in which unchanged inventories keep
    /// their objects.
    pub fn snapshot(&mut self) -> JsValue {
        if let Some(array) = &self.snapshot.array
            && self.snapshot.changed.is_empty()
        {
            return array.clone();
        }
        let view = self.session.state().view();
        let array = js_sys::Array::new();
        let mut owners = Vec::with_capacity(view.owners.len());
        for owner in &view.owners {
            let kept = self
                .snapshot
                .owners
                .iter()
                .find(|(id, _)| *id == owner.owner)
                .filter(|_| !self.snapshot.changed.contains(&owner.owner));
            let object = match kept {
                Some((_, object)) => object.clone(),
                None => deep_freeze(to_plain(&crate::js_view::owner(owner))),
            };
            array.push(&object);
            owners.push((owner.owner.clone(), object));
        }
        let array: JsValue = js_sys::Object::freeze(&array).into();
        self.snapshot = Snapshot {
            array: Some(array.clone()),
            owners,
            changed: Vec::new(),
        };
        array
    }

    /// Lets go of everything but the (closed, emptied) session: the socket,
    /// the timer, the snapshot cache and the listeners.
    pub fn release(&mut self) {
        self.socket = None;
        self.timer = None;
        self.snapshot = Snapshot::default();
        self.listeners = Listeners::default();
    }

    /// Does what the session asks and queues what it says, until it has
    /// nothing more; then arms the timer for its next deadline.
    fn pump(&mut self, me: &Weak<RefCell<Driver>>) {
        loop {
            let mut acted = false;
            while let Some(action) = self.session.poll_action() {
                acted = true;
                self.act(action, me);
            }
            while let Some(event) = self.session.poll_event() {
                self.outbox.push(match event {
                    SessionEvent::Changes(changes) => {
                        for change in &changes {
                            if !self.snapshot.changed.contains(change.owner()) {
                                self.snapshot.changed.push(change.owner().clone());
                            }
                        }
                        Event::Changes(changes)
                    }
                    SessionEvent::Connection(state) => Event::Connection(js_connection(state)),
                    SessionEvent::Error(error) => Event::Error(error),
                    SessionEvent::Ready(result) => Event::Ready(result),
                });
            }
            if !acted {
                break;
            }
        }
        self.arm_timer(me);
    }

    fn arm_timer(&mut self, me: &Weak<RefCell<Driver>>) {
        let Some(at) = self.session.poll_timeout() else {
            self.timer = None;
            return;
        };
        if self.timer.as_ref().is_some_and(|(armed, _)| *armed == at) {
            return;
        }
        let delay = u32::try_from(at.saturating_sub(now())).unwrap_or(u32::MAX);
        let me = me.clone();
        let timeout = Timeout::new(delay, move || {
            dispatch_from(
                &me,
                with_driver(&me, |d, now| {
                    d.timer = None;
                    d.session.handle_timeout(now);
                }),
            );
        });
        self.timer = Some((at, timeout));
    }

    fn act(&mut self, action: Action, me: &Weak<RefCell<Driver>>) {
        match action {
            Action::Open(id) => self.open(id, me),
            Action::Send(frame) => self.send(&frame),
            Action::CloseSocket => self.socket = None,
            Action::RefreshToken => self.refresh_token(me),
            Action::FetchDescriptors(ids) => self.fetch(ids, me),
        }
    }

    fn open(&mut self, id: SocketId, me: &Weak<RefCell<Driver>>) {
        self.socket = None;
        let subprotocol = self.session.config().encoding.subprotocol();
        let ws = match WebSocket::new_with_str(&self.url, subprotocol) {
            Ok(ws) => ws,
            Err(error) => {
                // An unusable URL will not get better by retrying.
                self.session.fail(sdk::Error::InvalidUrl {
                    url: self.url.clone(),
                    reason: Error::browser(&error).to_string(),
                });
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let me = me.clone();
            Closure::<dyn FnMut()>::new(move || {
                dispatch_from(
                    &me,
                    with_driver(&me, |d, now| d.session.socket_opened(now, id)),
                );
            })
        };
        let on_message = {
            let me = me.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                let frame = match data.as_string() {
                    Some(text) => text.into_bytes(),
                    None => js_sys::Uint8Array::new(&data).to_vec(),
                };
                dispatch_from(
                    &me,
                    with_driver(&me, |d, now| d.session.frame(now, id, &frame)),
                );
            })
        };
        let on_close = {
            let me = me.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                dispatch_from(
                    &me,
                    with_driver(&me, |d, now| {
                        d.session
                            .socket_closed(now, id, Some(event.code()), &event.reason());
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
    }

    fn send(&mut self, frame: &[u8]) {
        let Some(socket) = &self.socket else { return };
        let sent = if self.session.config().encoding.is_text() {
            // The text encoding (JSON) produces UTF-8.
            socket.ws.send_with_str(&String::from_utf8_lossy(frame))
        } else {
            socket.ws.send_with_u8_array(frame)
        };
        if let Err(error) = sent {
            self.outbox.push(Event::Error(transport(&error)));
        }
    }

    /// Calls the page's token provider; its promise's answer goes to the
    /// session.
    fn refresh_token(&mut self, me: &Weak<RefCell<Driver>>) {
        let Some(provider) = &self.provider else {
            return;
        };
        let called = provider.call0(&JsValue::NULL);
        let me = me.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let token = match called {
                Ok(value) => match value.dyn_into::<Promise>() {
                    Ok(promise) => JsFuture::from(promise).await,
                    Err(value) => Ok(value),
                },
                Err(thrown) => Err(thrown),
            };
            let token = match token {
                Ok(value) => value.as_string().ok_or_else(|| {
                    sdk::Error::transport(Error::Browser(
                        "the token provider must resolve to a string".to_owned(),
                    ))
                }),
                Err(error) => Err(transport(&error)),
            };
            dispatch_from(&me, with_driver(&me, |d, now| d.session.token(now, token)));
        });
    }

    fn fetch(&mut self, ids: Vec<ItemId>, me: &Weak<RefCell<Driver>>) {
        let Some(source) = self.descriptors.clone() else {
            return;
        };
        let me = me.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result: Result<BatchGetResponse, sdk::Error> = post_batch(&source, &ids).await;
            dispatch_from(
                &me,
                with_driver(&me, |d, now| d.session.descriptors(now, &ids, result)),
            );
        });
    }
}

/// The last snapshot handed out, and the owners changed since. (A player
/// has a handful of owners: plain vectors, and no map type more in the
/// bundle.)
#[derive(Default)]
struct Snapshot {
    array: Option<JsValue>,
    owners: Vec<(OwnerId, JsValue)>,
    changed: Vec<OwnerId>,
}

/// Freezes a plain object or array and everything in it.
fn deep_freeze(value: JsValue) -> JsValue {
    if let Some(object) = value.dyn_ref::<js_sys::Object>() {
        for nested in js_sys::Object::values(object).iter() {
            if nested.is_object() {
                deep_freeze(nested);
            }
        }
        js_sys::Object::freeze(object);
    }
    value
}

/// The JavaScript form of a connection state.
pub(crate) fn js_connection(state: ConnectionState) -> JsConnection {
    match state {
        ConnectionState::Idle => JsConnection::Idle,
        ConnectionState::Connecting { attempt } => JsConnection::Connecting { attempt },
        ConnectionState::Connected => JsConnection::Connected,
        ConnectionState::Reconnecting { attempt, delay } => JsConnection::Reconnecting {
            attempt,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        },
        // `Closed`, and any state a later core adds.
        _ => JsConnection::Closed,
    }
}

/// Hands queued events to the client's listeners (see `client.rs`).
pub(crate) fn dispatch_from(me: &Weak<RefCell<Driver>>, events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    if let Some(shared) = me.upgrade() {
        crate::client::dispatch(&shared, events);
    }
}
