//! The wasm build's suite, run by `wasm-bindgen-test-runner` in Node and in
//! headless Chromium (`cargo xtask test` runs both). The client tests talk to
//! `js/stub-node.mjs`, a scripted node speaking the real wire protocol, whose
//! address `cargo xtask test` passes at build time in `SDK_WASM_STUB_NODE`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::future::TimeoutFuture;
use js_sys::{Function, Promise, Reflect};
use sdk_wasm::{InventoryClient, InventoryState};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_str_and_init(input: &str, init: &JsValue) -> Promise;
}

fn stub() -> &'static str {
    // Read at build time: a wasm test has no environment of its own.
    match option_env!("SDK_WASM_STUB_NODE") {
        Some(url) => url,
        None => panic!(
            "SDK_WASM_STUB_NODE is unset: run these tests through `cargo xtask test`, \
             which starts sdk-wasm/js/stub-node.mjs"
        ),
    }
}

/// A user id of its own for each test, so that runs sharing a stub (Node,
/// then Chromium) do not see each other's inventories.
fn unique(name: &str) -> String {
    format!("{name}{}", (js_sys::Math::random() * 1e9) as u64)
}

fn ws_url() -> String {
    format!("{}/v1/ws", stub().replacen("http", "ws", 1))
}

fn plain(value: &JsValue) -> Value {
    if value.is_undefined() {
        return Value::Null;
    }
    let json = js_sys::JSON::stringify(value).expect("a plain JS value");
    serde_json::from_str(&String::from(json)).unwrap()
}

/// Calls a control endpoint of the stub.
async fn control(method: &str, path: &str, body: Option<Value>) -> Value {
    let init = js_sys::Object::new();
    Reflect::set(&init, &"method".into(), &method.into()).unwrap();
    if let Some(body) = body {
        Reflect::set(&init, &"body".into(), &body.to_string().into()).unwrap();
    }
    let response = JsFuture::from(fetch_with_str_and_init(&format!("{}{path}", stub()), &init))
        .await
        .expect("the stub answers");
    let response: web_sys::Response = response.unchecked_into();
    let text = JsFuture::from(response.text().unwrap()).await.unwrap();
    serde_json::from_str(&text.as_string().unwrap()).unwrap()
}

/// Waits until `condition` holds, for at most 5 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        TimeoutFuture::new(20).await;
    }
    panic!("timed out waiting for {what}");
}

fn qty(client: &InventoryClient, owner: &str, item: &str) -> Option<u64> {
    let owner = plain(&client.owner(owner));
    owner["items"]
        .as_array()?
        .iter()
        .find(|stack| stack["item"] == item)
        .and_then(|stack| stack["qty"].as_u64())
}

/// A listener that records what it is given.
fn recorder() -> (Rc<RefCell<Vec<Value>>>, Function) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |value: JsValue| {
        sink.borrow_mut().push(plain(&value));
    });
    (seen, listener.into_js_value().unchecked_into())
}

fn options(value: Value) -> Option<js_sys::Object> {
    Some(
        js_sys::JSON::parse(&value.to_string())
            .unwrap()
            .unchecked_into(),
    )
}

fn fast_options() -> Option<js_sys::Object> {
    options(json!({
        "descriptorUrl": stub(),
        "reconnectMinDelayMs": 20,
        "reconnectMaxDelayMs": 200,
        "batchWindowMs": 10,
    }))
}

const WELCOME: &str = r#"{"type":"welcome","user":"ann","owners":["a:ann"]}"#;
const SNAPSHOT: &str =
    r#"{"type":"snapshot","owners":[{"owner":"a:ann","version":3,"items":{"wood":10}}]}"#;
const DELTA_4: &str = r#"{"type":"delta","change_id":"00000000-0000-0000-0000-000000000001","kind":"adjust","owner":{"owner":"a:ann","version":4,"deltas":[{"item":"wood","change":-4}]}}"#;
const DELTA_6: &str = r#"{"type":"delta","change_id":"00000000-0000-0000-0000-000000000002","kind":"adjust","owner":{"owner":"a:ann","version":6,"deltas":[{"item":"wood","change":1}]}}"#;

#[wasm_bindgen_test]
fn the_state_applies_frames_and_ignores_duplicates() {
    let mut state = InventoryState::new(None).unwrap();
    state.apply_frame(WELCOME.into()).unwrap();
    let changes = plain(&state.apply_frame(SNAPSHOT.into()).unwrap());
    assert_eq!(
        changes,
        json!([
            {"type": "resynced", "owner": "a:ann", "version": 3},
            {"type": "item_added", "owner": "a:ann", "item": "wood", "qty": 10,
             "status": "loading", "descriptor": null},
        ])
    );
    let changes = plain(&state.apply_frame(DELTA_4.into()).unwrap());
    assert_eq!(
        changes,
        json!([{"type": "quantity_changed", "owner": "a:ann", "item": "wood", "from": 10, "to": 6}])
    );
    assert_eq!(
        plain(&state.apply_frame(DELTA_4.into()).unwrap()),
        json!([])
    );
    assert_eq!(
        plain(&state.items()),
        json!([{"owner": "a:ann", "kind": "account", "user": "ann", "character": null,
                "version": 4, "items": [{"item": "wood", "qty": 6, "status": "loading", "descriptor": null}]}])
    );
}

#[wasm_bindgen_test]
fn a_gap_asks_for_a_resume() {
    let mut state = InventoryState::new(None).unwrap();
    for frame in [WELCOME, SNAPSHOT] {
        state.apply_frame(frame.into()).unwrap();
    }
    assert!(!state.needs_resume());
    assert_eq!(
        plain(&state.apply_frame(DELTA_6.into()).unwrap()),
        json!([])
    );
    assert!(state.needs_resume());
}

#[cfg(not(feature = "msgpack"))]
#[wasm_bindgen_test]
fn message_pack_is_refused_clearly_by_the_lean_build() {
    let error = InventoryState::new(Some("msgpack".into())).unwrap_err();
    assert_eq!(
        Reflect::get(&error, &"code".into()).unwrap(),
        "malformed_request"
    );
    assert!(
        js_sys::Error::from(error)
            .message()
            .as_string()
            .unwrap()
            .contains("msgpack")
    );
}

#[cfg(feature = "msgpack")]
#[wasm_bindgen_test]
fn message_pack_frames_are_read_from_bytes() {
    let mut state = InventoryState::new(Some("msgpack".into())).unwrap();
    let welcome: protocol::ServerMessage = serde_json::from_str(WELCOME).unwrap();
    let frame = protocol::encode_server(protocol::Encoding::MessagePack, &welcome).unwrap();
    state
        .apply_frame(js_sys::Uint8Array::from(frame.as_slice()).into())
        .unwrap();
    let error = state.apply_frame(WELCOME.into()).unwrap_err();
    assert_eq!(
        Reflect::get(&error, &"code".into()).unwrap(),
        "malformed_request"
    );
}

#[wasm_bindgen_test]
fn bad_options_throw_an_error_with_a_stable_code() {
    let error = InventoryClient::new(ws_url(), "t".into(), options(json!({"encoding": "xml"})))
        .unwrap_err();
    assert_eq!(
        Reflect::get(&error, &"code".into()).unwrap(),
        "malformed_request"
    );
    assert!(error.is_instance_of::<js_sys::Error>());
}

#[wasm_bindgen_test]
async fn the_client_shows_the_inventory_with_descriptors_fetched_in_one_batch() {
    let walt = unique("walt");
    let client = InventoryClient::new(ws_url(), walt.clone().into(), fast_options()).unwrap();
    let (states, on_connection) = recorder();
    let _stop = client.on_connection(on_connection);
    JsFuture::from(client.connect()).await.unwrap();
    assert_eq!(client.user(), Some(walt.clone()));
    assert_eq!(
        client.owners(),
        [format!("a:{walt}"), format!("c:{walt}:hero")]
    );
    assert_eq!(qty(&client, &format!("a:{walt}"), "wood"), Some(10));
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "connected"})
    );
    assert_eq!(
        states.borrow().first(),
        Some(&json!({"state": "connecting", "attempt": 0}))
    );

    eventually("descriptors", || {
        plain(&client.items())
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|owner| owner["items"].as_array().unwrap().clone())
            .all(|stack| stack["status"] == "ready")
    })
    .await;
    let hero = plain(&client.owner(&format!("c:{walt}:hero")));
    assert_eq!(hero["kind"], "character");
    assert_eq!(hero["character"], "hero");
    assert_eq!(
        hero["items"][0]["descriptor"]["name"],
        format!("The {walt}-sword")
    );
    assert_eq!(hero["items"][0]["descriptor"]["attributes"]["power"], 3);
    assert_eq!(
        hero["items"][0]["descriptor"]["createdAt"], 0,
        "camelCase keys"
    );
    let batches = control("GET", "/test/batches", None).await;
    let mine: Vec<_> = batches
        .as_array()
        .unwrap()
        .iter()
        .filter(|batch| batch.to_string().contains(&format!("{walt}-sword")))
        .collect();
    assert_eq!(mine.len(), 1, "both ids share one batch: {batches}");
    eventually("a ping's latency", || client.latency_ms().is_some()).await;
    client.close();
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "closed"})
    );
}

#[wasm_bindgen_test]
async fn changes_reach_listeners_until_they_unsubscribe() {
    let cleo = unique("cleo");
    let bank = format!("a:{cleo}");
    let client = InventoryClient::new(ws_url(), cleo.clone().into(), fast_options()).unwrap();
    JsFuture::from(client.connect()).await.unwrap();
    let (changes, on_change) = recorder();
    let stop: Function = client.on_change(on_change).unchecked_into();
    let grant = json!({"user": cleo, "owner": bank, "item": "wood", "qty": 5});
    control("POST", "/test/grant", Some(grant.clone())).await;
    eventually("the delta", || qty(&client, &bank, "wood") == Some(15)).await;
    assert!(changes.borrow().iter().any(|batch| batch
        == &json!([{"type": "quantity_changed", "owner": bank, "item": "wood", "from": 10, "to": 15}])));

    stop.call0(&JsValue::NULL).unwrap();
    let seen = changes.borrow().len();
    control("POST", "/test/grant", Some(grant)).await;
    eventually("the second delta", || {
        qty(&client, &bank, "wood") == Some(20)
    })
    .await;
    assert_eq!(changes.borrow().len(), seen);
    client.close();
}

#[wasm_bindgen_test]
async fn a_lost_connection_reconnects_and_resumes_from_the_held_versions() {
    let rey = unique("rey");
    let hero = format!("c:{rey}:hero");
    let client = InventoryClient::new(ws_url(), rey.clone().into(), fast_options()).unwrap();
    JsFuture::from(client.connect()).await.unwrap();
    let (states, on_connection) = recorder();
    let _stop = client.on_connection(on_connection);

    control("POST", "/test/drop", Some(json!({"user": rey}))).await;
    // Applied while the client is away: it must arrive through the resume.
    control(
        "POST",
        "/test/grant",
        Some(json!({"user": rey, "owner": hero, "item": "ore", "qty": 3})),
    )
    .await;
    eventually("the missed delta", || qty(&client, &hero, "ore") == Some(3)).await;
    assert!(
        states
            .borrow()
            .iter()
            .any(|state| state["state"] == "reconnecting"),
        "{:?}",
        states.borrow()
    );
    let hellos = control("GET", &format!("/test/hellos?user={rey}"), None).await;
    assert_eq!(hellos[0], Value::Null);
    assert_eq!(hellos[1], json!({format!("a:{rey}"): 1, hero: 1}));
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "connected"})
    );
    client.close();
}

#[wasm_bindgen_test]
async fn a_refused_token_rejects_connect_and_closes() {
    let client = InventoryClient::new(ws_url(), "bad".into(), fast_options()).unwrap();
    let error = JsFuture::from(client.connect()).await.unwrap_err();
    assert_eq!(
        Reflect::get(&error, &"code".into()).unwrap(),
        "unauthorized"
    );
    assert_eq!(Reflect::get(&error, &"retryable".into()).unwrap(), false);
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "closed"})
    );
}

#[wasm_bindgen_test]
async fn an_unreachable_node_rejects_connect() {
    // Port 9 (discard) is closed on the test machine.
    let client =
        InventoryClient::new("ws://127.0.0.1:9/v1/ws".into(), "t".into(), fast_options()).unwrap();
    let error = JsFuture::from(client.connect()).await.unwrap_err();
    assert_eq!(Reflect::get(&error, &"code".into()).unwrap(), "unavailable");
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "closed"})
    );
}

#[wasm_bindgen_test]
async fn close_rejects_a_pending_connect() {
    let client = InventoryClient::new(ws_url(), "pat".into(), fast_options()).unwrap();
    let pending = JsFuture::from(client.connect());
    client.close();
    let error = pending.await.unwrap_err();
    assert_eq!(Reflect::get(&error, &"code".into()).unwrap(), "unavailable");
}

/// An unsigned JWT for `user` expiring `seconds` from now, as the stub reads
/// them (it checks `exp`, not the signature).
fn short_token(user: &str, seconds: f64) -> String {
    sdk::testing::unsigned_jwt(user, (js_sys::Date::now() / 1000.0 + seconds) as u64)
}

/// A token provider (`() => Promise<string>`) handing out 2 s tokens for
/// `user`, answering every call whose number `late` picks only after 2.5 s;
/// and how many times it was called.
fn provider(user: &str, late: fn(u32) -> bool) -> (Function, Rc<RefCell<u32>>) {
    let calls = Rc::new(RefCell::new(0));
    let count = calls.clone();
    let user = user.to_owned();
    let provide = Closure::<dyn FnMut() -> Promise>::new(move || {
        let call = *count.borrow();
        *count.borrow_mut() += 1;
        let user = user.clone();
        let delay = if late(call) { 2_500 } else { 0 };
        wasm_bindgen_futures::future_to_promise(async move {
            TimeoutFuture::new(delay).await;
            Ok(short_token(&user, 2.0).into())
        })
    });
    (provide.into_js_value().unchecked_into(), calls)
}

/// Grants one wood to `owner` every 100 ms for `ms`; how many.
async fn keep_granting(user: &str, owner: &str, ms: u32) -> u64 {
    let mut granted = 0;
    for _ in 0..ms / 100 {
        let grant = json!({"user": user, "owner": owner, "item": "wood", "qty": 1});
        control("POST", "/test/grant", Some(grant)).await;
        granted += 1;
        TimeoutFuture::new(100).await;
    }
    granted
}

/// Every Hello after the first resumed: nothing was snapshotted again.
async fn resumed_every_time(user: &str) {
    let hellos = control("GET", &format!("/test/hellos?user={user}"), None).await;
    let hellos = hellos.as_array().unwrap();
    assert_eq!(hellos[0], Value::Null);
    assert!(
        hellos[1..].iter().all(Value::is_object),
        "resumes only: {hellos:?}"
    );
}

#[wasm_bindgen_test]
async fn a_token_provider_carries_the_client_across_expiries() {
    let tia = unique("tia");
    let bank = format!("a:{tia}");
    let (provide, calls) = provider(&tia, |_| false);
    let client = InventoryClient::new(ws_url(), provide.into(), fast_options()).unwrap();
    JsFuture::from(client.connect()).await.unwrap();
    let granted = keep_granting(&tia, &bank, 5_000).await;
    eventually("every grant", || {
        qty(&client, &bank, "wood") == Some(10 + granted)
    })
    .await;
    assert!(*calls.borrow() >= 3, "{} tokens", calls.borrow());
    resumed_every_time(&tia).await;
    assert_eq!(
        plain(&client.connection_state()),
        json!({"state": "connected"})
    );
    client.close();
}

#[wasm_bindgen_test]
async fn an_expiry_close_reconnects_with_a_fresh_token_and_resumes() {
    let uma = unique("uma");
    let bank = format!("a:{uma}");
    // The refreshes come too late: the stub closes each session at expiry.
    let (provide, _) = provider(&uma, |call| call % 2 == 1);
    let client = InventoryClient::new(ws_url(), provide.into(), fast_options()).unwrap();
    JsFuture::from(client.connect()).await.unwrap();
    let (errors, on_error) = recorder();
    let _stop = client.on_error(on_error);
    let granted = keep_granting(&uma, &bank, 5_000).await;
    eventually("every grant", || {
        qty(&client, &bank, "wood") == Some(10 + granted)
    })
    .await;
    assert!(
        errors
            .borrow()
            .iter()
            .any(|e| e.to_string().contains("expired")),
        "an expiry was survived: {:?}",
        errors.borrow()
    );
    resumed_every_time(&uma).await;
    client.close();
}

#[wasm_bindgen_test]
async fn the_snapshot_is_shared_until_something_changes() {
    let vic = unique("vic");
    let bank = format!("a:{vic}");
    let client = InventoryClient::new(ws_url(), vic.clone().into(), fast_options()).unwrap();
    JsFuture::from(client.connect()).await.unwrap();
    eventually("descriptors", || {
        plain(&client.get_snapshot()).to_string().contains("ready")
            && !plain(&client.get_snapshot())
                .to_string()
                .contains("loading")
    })
    .await;
    let first = client.get_snapshot();
    assert!(js_sys::Object::is(&first, &client.get_snapshot()));
    assert!(js_sys::Object::is_frozen(
        first.unchecked_ref::<js_sys::Object>()
    ));
    let (ticks, on_tick) = recorder();
    let _stop = client.subscribe(on_tick);
    let grant = json!({"user": vic, "owner": bank, "item": "wood", "qty": 1});
    control("POST", "/test/grant", Some(grant)).await;
    eventually("the delta", || qty(&client, &bank, "wood") == Some(11)).await;
    assert!(!ticks.borrow().is_empty());
    let second = client.get_snapshot();
    assert!(!js_sys::Object::is(&first, &second));
    let at = |snapshot: &JsValue, i: u32| js_sys::Array::from(snapshot).get(i);
    // The account changed; the hero did not and keeps its object.
    assert!(!js_sys::Object::is(&at(&first, 0), &at(&second, 0)));
    assert!(js_sys::Object::is(&at(&first, 1), &at(&second, 1)));
    client.close();
    assert_eq!(plain(&client.get_snapshot()), json!([]), "close frees");
}
