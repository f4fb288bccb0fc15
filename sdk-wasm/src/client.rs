//! `InventoryClient`, the JavaScript API over the browser driver: created
//! from a URL and a token, `connect()` returning a promise, the view as plain
//! objects, listeners returning their unsubscribe function, `close()`.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::time::Duration;

use js_sys::{Function, Promise};
use protocol::{Encoding, OwnerId};
use sdk::SessionConfig;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::Error;
use crate::connection::{Config, Driver, Event, Shared, TokenSource, with_driver};
use crate::error::{option_to_js, to_js};
use crate::fetch::{DescriptorSource, batch_endpoint};
use crate::js_view;

/// The constructor's options (`InventoryClientOptions` in TypeScript).
#[derive(Deserialize, Default, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Options {
    /// `"same-origin"`, a URL, or `null` (no descriptors); absent
    /// (`None`) is reported at `connect()`.
    #[serde(default, deserialize_with = "present")]
    descriptor_url: Option<Option<String>>,
    descriptor_token: Option<String>,
    encoding: Option<String>,
    descriptor_capacity: Option<usize>,
    connect_timeout_ms: Option<u32>,
    reconnect_min_delay_ms: Option<u32>,
    reconnect_max_delay_ms: Option<u32>,
    ping_interval_ms: Option<u32>,
    batch_window_ms: Option<u32>,
}

impl Options {
    pub(crate) fn into_config(self, url: String, token: TokenSource) -> Result<Config, Error> {
        let mut session = SessionConfig::default();
        let descriptors = match self.descriptor_url.flatten() {
            None => None,
            Some(base) if !base.is_empty() => Some(DescriptorSource {
                endpoint: batch_endpoint(&base),
                token: self.descriptor_token,
            }),
            Some(_) => {
                return Err(Error::InvalidOption(
                    "descriptorUrl must be \"same-origin\", a URL, or null, not \"\"".into(),
                ));
            }
        };
        session.fetch_descriptors = descriptors.is_some();
        if let Some(encoding) = &self.encoding {
            session.encoding = encoding_named(encoding)?;
        }
        if let Some(capacity) = self.descriptor_capacity {
            session.descriptor_capacity = NonZeroUsize::new(capacity).ok_or_else(|| {
                Error::InvalidOption("descriptorCapacity must be positive".into())
            })?;
        }
        let ms = |value: u32| Duration::from_millis(value.into());
        session.connect_timeout = self.connect_timeout_ms.map_or(session.connect_timeout, ms);
        session.reconnect_min_delay = self
            .reconnect_min_delay_ms
            .map_or(session.reconnect_min_delay, ms);
        session.reconnect_max_delay = self
            .reconnect_max_delay_ms
            .map_or(session.reconnect_max_delay, ms);
        if session.reconnect_max_delay < session.reconnect_min_delay {
            return Err(Error::InvalidOption(
                "reconnectMaxDelayMs must be at least reconnectMinDelayMs".into(),
            ));
        }
        session.ping_interval = self
            .ping_interval_ms
            .map_or(session.ping_interval, |v| ms(v.max(1)));
        session.batch_window = self.batch_window_ms.map_or(session.batch_window, ms);
        // Every browser would otherwise draw the same jitter, which is the
        // thundering herd jitter exists to avoid.
        session.jitter_seed = (js_random() * (1u64 << 53) as f64) as u64;
        Ok(Config {
            url,
            token,
            session,
            descriptors,
        })
    }
}

/// A random number in `[0, 1)`: `Math.random` in wasm, a fixed one in
/// native unit tests.
fn js_random() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Math::random()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0.5
    }
}

/// A field that is present: `Some` of its value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The encoding named `"json"` or `"msgpack"`.
pub(crate) fn encoding_named(name: &str) -> Result<Encoding, Error> {
    match name {
        "json" => Ok(Encoding::Json),
        "msgpack" if Encoding::MessagePack.is_built_in() => Ok(Encoding::MessagePack),
        "msgpack" => Err(Error::InvalidOption(
            "this build of the SDK has no MessagePack (build sdk-wasm with its `msgpack` \
             feature); use \"json\""
                .into(),
        )),
        other => Err(Error::InvalidOption(format!(
            "encoding must be \"json\" or \"msgpack\", not {other:?}"
        ))),
    }
}

/// The user's listeners and the pending `connect()` promises.
#[derive(Default, Debug)]
pub(crate) struct Listeners {
    next_id: u32,
    change: Vec<(u32, Function)>,
    connection: Vec<(u32, Function)>,
    error: Vec<(u32, Function)>,
    pending: Vec<(Function, Function)>,
}

#[derive(Clone, Copy)]
enum Kind {
    Change,
    Connection,
    Error,
}

impl Listeners {
    fn list(&mut self, kind: Kind) -> &mut Vec<(u32, Function)> {
        match kind {
            Kind::Change => &mut self.change,
            Kind::Connection => &mut self.connection,
            Kind::Error => &mut self.error,
        }
    }
}

/// Converts Rust values to plain JS objects (maps as objects, `None` as
/// `null`) through JSON: one `JSON.parse` of a string built in wasm is both
/// smaller and faster than creating each object and property across the
/// boundary.
pub(crate) fn to_plain<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // The shapes serialized here are plain data, which serde_json always
    // writes and JSON.parse always reads.
    serde_json::to_string(value)
        .ok()
        .and_then(|json| js_sys::JSON::parse(&json).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

/// Hands queued events to the listeners. No borrow of the driver is held
/// while a listener runs, so listeners may call any method of the client.
pub(crate) fn dispatch(shared: &Shared, events: Vec<Event>) {
    for event in events {
        let (kind, value) = match event {
            Event::Changes(changes) => {
                let changes: Vec<_> = changes.iter().filter_map(js_view::change).collect();
                (Kind::Change, to_plain(&changes))
            }
            Event::Connection(state) => (Kind::Connection, to_plain(&state)),
            Event::Error(error) => (Kind::Error, to_js(&error)),
            Event::Ready(result) => {
                let pending = std::mem::take(&mut shared.borrow_mut().listeners.pending);
                for (resolve, reject) in pending {
                    let _ = match &result {
                        Ok(()) => resolve.call0(&JsValue::NULL),
                        Err(error) => reject.call1(&JsValue::NULL, &to_js(error)),
                    };
                }
                continue;
            }
        };
        let listeners: Vec<Function> = shared
            .borrow_mut()
            .listeners
            .list(kind)
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for listener in listeners {
            // A throwing listener must not stop the others or the client.
            if let Err(thrown) = listener.call1(&JsValue::NULL, &value) {
                tracing::warn!(?thrown, "an InventoryClient listener threw");
            }
        }
    }
}

/// A client of a zone node: the player's inventories, kept up to date over a
/// WebSocket (reconnecting and resuming by itself), merged with their
/// descriptors fetched in batches.
#[wasm_bindgen]
#[derive(Debug)]
pub struct InventoryClient {
    shared: Shared,
    /// `descriptorUrl` was left out: said once, at `connect()`.
    descriptors_unset: bool,
}

impl InventoryClient {
    fn run(&self, work: impl FnOnce(&mut Driver, sdk::Millis)) {
        let events = with_driver(&Rc::downgrade(&self.shared), work);
        dispatch(&self.shared, events);
    }

    fn listen(&self, kind: Kind, callback: Function) -> JsValue {
        let id = {
            let listeners = &mut self.shared.borrow_mut().listeners;
            listeners.next_id += 1;
            let id = listeners.next_id;
            listeners.list(kind).push((id, callback));
            id
        };
        let weak = Rc::downgrade(&self.shared);
        Closure::once_into_js(move || {
            if let Some(shared) = weak.upgrade() {
                shared
                    .borrow_mut()
                    .listeners
                    .list(kind)
                    .retain(|(listener, _)| *listener != id);
            }
        })
    }
}

#[wasm_bindgen]
impl InventoryClient {
    /// A client of the node at `url` (`ws://…/v1/ws`, `wss://…`, or a URL
    /// relative to the page), authenticating with `token`: a fixed token, or
    /// a provider `() => Promise<string>` asked before connecting, before
    /// each token expires and whenever the node closes the session for an
    /// expired one. Nothing happens until `connect()`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: String,
        #[wasm_bindgen(unchecked_param_type = "string | (() => Promise<string>)")] token: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "InventoryClientOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> Result<InventoryClient, JsValue> {
        let token = match (token.as_string(), token.dyn_into::<Function>()) {
            (Some(token), _) => TokenSource::Fixed(token),
            (None, Ok(provider)) => TokenSource::Provider(provider),
            (None, Err(_)) => {
                return Err(option_to_js(&Error::InvalidOption(
                    "token must be a string or a function returning a promise of one".into(),
                )));
            }
        };
        let options: Options = match options {
            Some(options) => {
                let json = js_sys::JSON::stringify(&options)
                    .map_err(|e| option_to_js(&Error::browser(&e)))?;
                serde_json::from_str(&String::from(json))
                    .map_err(|e| option_to_js(&Error::InvalidOption(e.to_string())))?
            }
            None => Options::default(),
        };
        let descriptors_unset = options.descriptor_url.is_none();
        let config = options
            .into_config(url, token)
            .map_err(|e| option_to_js(&e))?;
        Ok(Self {
            shared: Rc::new(RefCell::new(Driver::new(config))),
            descriptors_unset,
        })
    }

    /// Connects and resolves once every inventory of the player is held
    /// (they are then in `items()` and `getSnapshot()`). Rejects with an
    /// `InventoryError` if the first connection fails or the token is
    /// refused; afterwards the client reconnects and resumes by itself.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn connect(&self) -> Promise {
        let promise = Promise::new(&mut |resolve, reject| {
            self.shared
                .borrow_mut()
                .listeners
                .pending
                .push((resolve, reject));
        });
        if self.descriptors_unset {
            let unset = sdk::Error::Server(protocol::ErrorBody::new(
                protocol::ErrorCode::MalformedRequest,
                "no descriptorUrl was given, so descriptors are not fetched and items stay \
                 \"loading\"; pass \"same-origin\", the descriptor service's URL, or null",
            ));
            dispatch(&self.shared, vec![Event::Error(unset)]);
        }
        self.run(|driver, now| driver.session_mut().connect(now));
        promise
    }

    /// Every inventory of the player, account first, then characters, as
    /// new objects (see `getSnapshot` for a shared, immutable one).
    #[wasm_bindgen(unchecked_return_type = "OwnerInventory[]")]
    pub fn items(&self) -> JsValue {
        let view = self.shared.borrow().session().state().view();
        to_plain(&js_view::owners(&view))
    }

    /// The inventories as one frozen array, the same object until something
    /// changes, and an unchanged inventory keeps its object: usable as the
    /// `getSnapshot` of React's `useSyncExternalStore` (with `subscribe`).
    #[wasm_bindgen(js_name = getSnapshot, unchecked_return_type = "readonly OwnerInventory[]")]
    pub fn get_snapshot(&self) -> JsValue {
        self.shared.borrow_mut().snapshot()
    }

    /// Calls `listener` (without arguments) after every change of the view.
    /// Returns the unsubscribe function.
    pub fn subscribe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => void")] listener: Function,
    ) -> JsValue {
        self.listen(Kind::Change, listener)
    }

    /// One inventory by owner id (`a:<user>` or `c:<user>:<character>`).
    #[wasm_bindgen(unchecked_return_type = "OwnerInventory | undefined")]
    pub fn owner(&self, owner: &str) -> JsValue {
        let Ok(owner) = OwnerId::parse(owner) else {
            return JsValue::UNDEFINED;
        };
        let view = self.shared.borrow().session().state().view();
        view.owner(&owner)
            .map_or(JsValue::UNDEFINED, |o| to_plain(&js_view::owner(o)))
    }

    /// The owner ids the session covers.
    pub fn owners(&self) -> Vec<String> {
        let driver = self.shared.borrow();
        driver
            .session()
            .state()
            .resume_versions()
            .into_keys()
            .map(|owner| owner.to_string())
            .collect()
    }

    /// The authenticated player, once welcomed.
    pub fn user(&self) -> Option<String> {
        self.shared
            .borrow()
            .session()
            .state()
            .user()
            .map(ToString::to_string)
    }

    /// Where the connection stands.
    #[wasm_bindgen(js_name = connectionState, unchecked_return_type = "ConnectionState")]
    pub fn connection_state(&self) -> JsValue {
        to_plain(&crate::connection::js_connection(
            self.shared.borrow().session().connection(),
        ))
    }

    /// The round trip of the last answered ping, in milliseconds.
    #[wasm_bindgen(getter, js_name = latencyMs)]
    pub fn latency_ms(&self) -> Option<f64> {
        self.shared
            .borrow()
            .session()
            .latency()
            .map(|d| d.as_secs_f64() * 1000.0)
    }

    /// Calls `listener` with the changes of each message the node sends (and
    /// of each descriptor batch), in order. Returns the unsubscribe function.
    #[wasm_bindgen(js_name = onChange, unchecked_return_type = "() => void")]
    pub fn on_change(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(changes: InventoryChange[]) => void")]
        listener: Function,
    ) -> JsValue {
        self.listen(Kind::Change, listener)
    }

    /// Calls `listener` whenever the connection state changes. Returns the
    /// unsubscribe function.
    #[wasm_bindgen(js_name = onConnection, unchecked_return_type = "() => void")]
    pub fn on_connection(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(state: ConnectionState) => void")]
        listener: Function,
    ) -> JsValue {
        self.listen(Kind::Connection, listener)
    }

    /// Calls `listener` with each error the client recovers from (a lost
    /// connection, a failed descriptor batch, an expired token) and with the
    /// one that closes it. Returns the unsubscribe function.
    #[wasm_bindgen(js_name = onError, unchecked_return_type = "() => void")]
    pub fn on_error(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(error: InventoryError) => void")]
        listener: Function,
    ) -> JsValue {
        self.listen(Kind::Error, listener)
    }

    /// Drops the connection and reconnects at once, resuming from the held
    /// versions.
    pub fn reconnect(&self) {
        self.run(|driver, now| driver.session_mut().reconnect(now));
    }

    /// Closes the connection for good and frees what the client holds in
    /// wasm memory (inventories, descriptors, listeners); a pending
    /// `connect()` rejects. `free()` (or `using`, through `Symbol.dispose`)
    /// also frees the client object itself.
    pub fn close(&self) {
        self.run(|driver, _| driver.session_mut().close());
        self.shared.borrow_mut().release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> Result<Config, String> {
        let options: Options = serde_json::from_str(json).map_err(|e| e.to_string())?;
        options
            .into_config("ws://node/v1/ws".into(), TokenSource::Fixed("t".into()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn options_are_camel_case_and_checked() {
        let config = options(
            &format!(
                r#"{{"descriptorUrl": "same-origin", "descriptorToken": "r", "encoding": "{}", "reconnectMinDelayMs": 5, "pingIntervalMs": 0}}"#,
                if cfg!(feature = "msgpack") { "msgpack" } else { "json" }
            ),
        )
        .unwrap();
        assert_eq!(
            config.descriptors,
            Some(DescriptorSource {
                endpoint: "/v1/descriptors/batch".into(),
                token: Some("r".into()),
            })
        );
        assert!(config.session.fetch_descriptors);
        assert_eq!(
            config.session.encoding,
            if cfg!(feature = "msgpack") {
                Encoding::MessagePack
            } else {
                Encoding::Json
            }
        );
        assert_eq!(config.session.reconnect_min_delay, Duration::from_millis(5));
        assert_eq!(config.session.ping_interval, Duration::from_millis(1));
        let none = options(r#"{"descriptorUrl": null}"#).unwrap();
        assert!(none.descriptors.is_none() && !none.session.fetch_descriptors);
        assert!(
            options(r#"{"descriptorUrl": ""}"#)
                .unwrap_err()
                .contains("same-origin")
        );
        assert!(
            options(r#"{"encoding": "xml"}"#)
                .unwrap_err()
                .contains("msgpack")
        );
        assert!(options(r#"{"descriptorCapacity": 0}"#).is_err());
        assert!(options(r#"{"reconnectMaxDelayMs": 1}"#).is_err());
        assert!(
            options(r#"{"descriptorURL": "/"}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
