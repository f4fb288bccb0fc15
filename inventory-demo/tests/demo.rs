//! The demo: the page and its bundle, demo logins and actions, the
//! auto-play driver, their refusals, and the binary serving them only over
//! the embedded stack.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use inventory_core::LocalBus;
use inventory_demo::{Demo, DemoConfig};
use inventory_service::{AppState, BusChoice};
use protocol::{ErrorBody, ErrorCode, OwnerSnapshot, UserId};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{JWT_SECRET, SERVICE_TOKEN, SharedStore, eventually, state_builder, tokens};

/// A node with the demo over SQLite files, tested through its router.
struct DemoNode {
    state: AppState,
    router: axum::Router,
    store: SharedStore,
    _descriptors: tempfile::TempDir,
}

impl DemoNode {
    async fn start(configure: impl FnOnce(DemoConfig) -> DemoConfig) -> Self {
        let store = SharedStore::new();
        let dir = tempfile::tempdir().unwrap();
        let descriptor_store =
            descriptor_service::SqliteStore::open(dir.path().join("descriptors.db")).unwrap();
        let descriptors =
            descriptor_service::Descriptors::builder(Arc::new(descriptor_store)).build();
        inventory_demo::seed_demo_catalog(&descriptors)
            .await
            .unwrap();
        let state = state_builder(
            store.store.clone(),
            BusChoice::Local(LocalBus::new()),
            inventory_core::PlayerHubConfig::new(),
        )
        .fallback(descriptor_service::app(
            descriptors.clone(),
            descriptor_service::AuthConfig::default().with_open_reads(true),
        ))
        .build()
        .await
        .unwrap();
        let demo = Demo::new(configure(DemoConfig::new(descriptors).with_seed(7)), &state);
        let router = inventory_demo::app(state.clone(), demo);
        Self {
            state,
            router,
            store,
            _descriptors: dir,
        }
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, bytes) = call(&self.router, "POST", uri, Some(body.to_string())).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn truth(&self, player: &str) -> Vec<OwnerSnapshot> {
        self.store.truth(player).await
    }
}

/// One request through the router: status, content type, body.
async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, String, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, content_type, bytes.to_vec())
}

fn code(value: &Value) -> ErrorCode {
    serde_json::from_value::<ErrorBody>(value.clone())
        .unwrap_or_else(|_| panic!("not an error body: {value}"))
        .code
}

fn qty(truth: &[OwnerSnapshot], owner: &str, item: &str) -> u64 {
    truth
        .iter()
        .find(|o| o.owner.to_string() == owner)
        .and_then(|o| {
            o.items
                .iter()
                .find(|(id, _)| id.as_str() == item)
                .map(|(_, n)| *n)
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn login_mints_a_token_and_seeds_a_new_player_once() {
    let demo = DemoNode::start(|c| c).await;
    let (status, login) = demo.post("/demo/login", json!({"player": "alice"})).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["player"], "alice");
    assert_eq!(login["expires_in_secs"], 15 * 60);
    let user = tokens().verify(login["token"].as_str().unwrap()).unwrap();
    assert_eq!(user, UserId::parse("alice").unwrap());

    let seeded = demo.truth("alice").await;
    let owners: Vec<String> = seeded.iter().map(|o| o.owner.to_string()).collect();
    assert_eq!(owners, ["a:alice", "c:alice:hero"]);
    assert_eq!(qty(&seeded, "a:alice", "gold"), 120);
    assert_eq!(qty(&seeded, "c:alice:hero", "health-potion"), 3);

    let (status, _) = demo.post("/demo/login", json!({"player": "alice"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        demo.truth("alice").await,
        seeded,
        "a second login seeds nothing"
    );
}

#[tokio::test]
async fn a_returning_player_keeps_their_inventory() {
    let demo = DemoNode::start(|c| c).await;
    demo.state
        .inventory()
        .apply(protocol::Change::new(protocol::ChangeId::random()).grant(
            "a:bob".parse().unwrap(),
            "wood".parse().unwrap(),
            protocol::Quantity::new(1).unwrap(),
        ))
        .await
        .unwrap();
    let (status, _) = demo.post("/demo/login", json!({"player": "bob"})).await;
    assert_eq!(status, StatusCode::OK);
    let truth = demo.truth("bob").await;
    assert_eq!(truth.len(), 1);
    assert_eq!(qty(&truth, "a:bob", "wood"), 1);
}

#[tokio::test]
async fn the_catalog_serves_names_and_stats() {
    let demo = DemoNode::start(|c| c).await;
    let (status, batch) = demo
        .post(
            "/v1/descriptors/batch",
            json!({"ids": ["wood", "gem", "health-potion"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    let descriptors = batch["descriptors"].as_array().unwrap();
    assert_eq!(descriptors.len(), 3, "{batch}");
    let gem = descriptors.iter().find(|d| d["id"] == "gem").unwrap();
    assert_eq!(gem["name"], "Sapphire");
    assert_eq!(gem["attributes"]["rarity"], "rare");
}

#[tokio::test]
async fn actions_change_the_inventory_server_side() {
    let demo = DemoNode::start(|c| c).await;
    demo.post("/demo/login", json!({"player": "carol"})).await;
    let before = demo.truth("carol").await;

    let (status, done) = demo
        .post(
            "/demo/actions",
            json!({"player": "carol", "action": "grant"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["action"], "grant");
    assert!(done["summary"].as_str().unwrap().starts_with("Found "));
    assert!(done["change_id"].is_string());
    let after = demo.truth("carol").await;
    let moved: u64 = after.iter().map(|o| o.version.get()).sum::<u64>()
        - before.iter().map(|o| o.version.get()).sum::<u64>();
    assert_eq!(moved, 1, "one owner got one change");

    // Every potion and torch the hero carries can be used once, then nothing.
    let truth = demo.truth("carol").await;
    let usable =
        qty(&truth, "c:carol:hero", "health-potion") + qty(&truth, "c:carol:hero", "torch");
    assert!(usable >= 5, "the starter kit: {truth:?}");
    for _ in 0..usable {
        let (status, done) = demo
            .post(
                "/demo/actions",
                json!({"player": "carol", "action": "consume"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
    }
    let emptied = demo.truth("carol").await;
    assert_eq!(qty(&emptied, "c:carol:hero", "health-potion"), 0);
    assert_eq!(qty(&emptied, "c:carol:hero", "torch"), 0);
    let (status, refused) = demo
        .post(
            "/demo/actions",
            json!({"player": "carol", "action": "consume"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), ErrorCode::InsufficientBalance);
    assert_eq!(
        demo.truth("carol").await,
        emptied,
        "a refused action writes nothing"
    );
}

#[tokio::test]
async fn trades_with_the_merchant_conserve_items() {
    let demo = DemoNode::start(|c| c).await;
    demo.post("/demo/login", json!({"player": "dave"})).await;
    let total = |player: &[OwnerSnapshot], merchant: &[OwnerSnapshot], item: &str| {
        qty(player, "a:dave", item)
            + qty(player, "c:dave:hero", item)
            + qty(merchant, "a:merchant", item)
    };
    assert!(demo.truth("merchant").await.is_empty());
    let (status, done) = demo
        .post(
            "/demo/actions",
            json!({"player": "dave", "action": "trade"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(
        qty(&demo.truth("merchant").await, "a:merchant", "torch") > 0,
        "the merchant is seeded on the first trade"
    );
    let mut traded = 0;
    for _ in 0..20 {
        let before = (demo.truth("dave").await, demo.truth("merchant").await);
        let (status, done) = demo
            .post(
                "/demo/actions",
                json!({"player": "dave", "action": "trade"}),
            )
            .await;
        if status != StatusCode::OK {
            assert_eq!(code(&done), ErrorCode::InsufficientBalance, "{done}");
            continue;
        }
        traded += 1;
        assert!(
            done["summary"].as_str().unwrap().contains("the merchant"),
            "{done}"
        );
        let after = (demo.truth("dave").await, demo.truth("merchant").await);
        for item in [
            "gold",
            "wood",
            "iron-ore",
            "leather",
            "gem",
            "health-potion",
            "torch",
        ] {
            assert_eq!(
                total(&before.0, &before.1, item),
                total(&after.0, &after.1, item),
                "{item} after {done}"
            );
        }
        assert_ne!(before, after, "{done} changed nothing");
    }
    assert!(traded >= 10, "only {traded} trades of 20");
}

/// The crafted items (`x-…`) `player` holds, as `(owner, item)`.
fn crafted(truth: &[OwnerSnapshot]) -> Vec<(String, String)> {
    truth
        .iter()
        .flat_map(|o| {
            o.items
                .keys()
                .filter(|item| item.as_str().starts_with("x-"))
                .map(|item| (o.owner.to_string(), item.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn craft_creates_a_unique_item_and_burn_recovers_materials() {
    let demo = DemoNode::start(|c| c).await;
    demo.post("/demo/login", json!({"player": "lea"})).await;
    let before = demo.truth("lea").await;

    let (status, done) = demo
        .post("/demo/actions", json!({"player": "lea", "action": "craft"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(
        done["summary"].as_str().unwrap().starts_with("Crafted a "),
        "{done}"
    );
    let after = demo.truth("lea").await;
    let [(owner, item)] = &crafted(&after)[..] else {
        panic!("one crafted item: {after:?}");
    };
    assert_eq!(owner, "a:lea");
    let (_, batch) = demo
        .post("/v1/descriptors/batch", json!({"ids": [item]}))
        .await;
    let descriptor = &batch["descriptors"][0];
    assert_eq!(descriptor["kind"], "crafted", "{batch}");
    assert_eq!(descriptor["crafted_by"], "lea");
    assert_eq!(descriptor["stacking"], "unique");
    let inputs = descriptor["inputs"].as_array().unwrap();
    for input in inputs {
        let material = input["item"].as_str().unwrap();
        let used = input["qty"].as_u64().unwrap();
        assert_eq!(
            qty(&before, "a:lea", material) - qty(&after, "a:lea", material),
            used,
            "{material}"
        );
    }

    let (status, done) = demo
        .post("/demo/actions", json!({"player": "lea", "action": "burn"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(
        done["summary"].as_str().unwrap().starts_with("Burned a "),
        "{done}"
    );
    let burned = demo.truth("lea").await;
    assert!(crafted(&burned).is_empty(), "{burned:?}");
    for input in inputs {
        let material = input["item"].as_str().unwrap();
        let back = input["qty"].as_u64().unwrap().div_ceil(2);
        assert_eq!(
            qty(&burned, "a:lea", material) - qty(&after, "a:lea", material),
            back,
            "{material}"
        );
    }
    let (_, batch) = demo
        .post("/v1/descriptors/batch", json!({"ids": [item]}))
        .await;
    assert_eq!(batch["burned"], json!([item]), "{batch}");

    let (status, refused) = demo
        .post("/demo/actions", json!({"player": "lea", "action": "burn"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), ErrorCode::InsufficientBalance);
    assert_eq!(demo.truth("lea").await, burned);
}

#[tokio::test]
async fn craft_without_materials_is_refused_and_writes_nothing() {
    let demo = DemoNode::start(|c| c).await;
    demo.post("/demo/login", json!({"player": "max"})).await;
    let bank = demo
        .truth("max")
        .await
        .into_iter()
        .find(|o| o.owner.to_string() == "a:max")
        .unwrap();
    let mut empty = protocol::Change::new(protocol::ChangeId::random());
    for (item, n) in &bank.items {
        empty = empty.consume(
            bank.owner.clone(),
            item.clone(),
            protocol::Quantity::new(*n).unwrap(),
        );
    }
    demo.state.inventory().apply(empty).await.unwrap();
    let before = demo.truth("max").await;
    let (status, refused) = demo
        .post("/demo/actions", json!({"player": "max", "action": "craft"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(code(&refused), ErrorCode::InsufficientBalance);
    assert_eq!(demo.truth("max").await, before);
}

#[tokio::test]
async fn bad_demo_input_gets_a_stable_code_and_writes_nothing() {
    let demo = DemoNode::start(|c| c).await;
    let long = "x".repeat(65);
    let cases = [
        ("/demo/login", json!({"player": ""}), ErrorCode::InvalidId),
        (
            "/demo/login",
            json!({"player": "bad name"}),
            ErrorCode::InvalidId,
        ),
        (
            "/demo/login",
            json!({"player": "a:b"}),
            ErrorCode::InvalidId,
        ),
        ("/demo/login", json!({"player": long}), ErrorCode::InvalidId),
        (
            "/demo/login",
            json!({"player": "merchant"}),
            ErrorCode::Forbidden,
        ),
        ("/demo/login", json!({}), ErrorCode::MalformedRequest),
        (
            "/demo/login",
            json!({"player": 7}),
            ErrorCode::MalformedRequest,
        ),
        (
            "/demo/login",
            json!({"player": "eve", "admin": true}),
            ErrorCode::MalformedRequest,
        ),
        (
            "/demo/actions",
            json!({"player": "eve", "action": "fly"}),
            ErrorCode::MalformedRequest,
        ),
        (
            "/demo/actions",
            json!({"player": "eve"}),
            ErrorCode::MalformedRequest,
        ),
        (
            "/demo/actions",
            json!({"player": "bad/name", "action": "grant"}),
            ErrorCode::InvalidId,
        ),
        (
            "/demo/actions",
            json!({"player": "merchant", "action": "grant"}),
            ErrorCode::Forbidden,
        ),
        (
            "/demo/autoplay",
            json!({"player": "eve", "on": "yes"}),
            ErrorCode::MalformedRequest,
        ),
        (
            "/demo/autoplay",
            json!({"player": "", "on": true}),
            ErrorCode::InvalidId,
        ),
    ];
    for (uri, body, expected) in cases {
        let (status, value) = demo.post(uri, body.clone()).await;
        assert_eq!(code(&value), expected, "{uri} {body}: {value}");
        assert_eq!(status.as_u16(), expected.http_status(), "{uri} {body}");
    }
    let (status, _, bytes) = call(&demo.router, "GET", "/demo/autoplay/bad%20name", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        code(&serde_json::from_slice(&bytes).unwrap()),
        ErrorCode::InvalidId
    );
    let (status, _, bytes) = call(
        &demo.router,
        "POST",
        "/demo/login",
        Some("{not json".into()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        code(&serde_json::from_slice(&bytes).unwrap()),
        ErrorCode::MalformedRequest
    );
    let huge = json!({"player": "x".repeat(inventory_service::MAX_BODY_BYTES)}).to_string();
    let (status, _, _) = call(&demo.router, "POST", "/demo/login", Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let request = Request::builder()
        .method("POST")
        .uri("/demo/login")
        .body(Body::from(json!({"player": "eve"}).to_string()))
        .unwrap();
    let response = demo.router.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "no JSON content type"
    );

    for player in ["eve", "merchant"] {
        assert!(demo.truth(player).await.is_empty(), "{player} was written");
    }
}

#[tokio::test]
async fn the_number_of_players_is_bounded() {
    let demo = DemoNode::start(|c| c.with_max_players(2)).await;
    for player in ["p1", "p2", "p1"] {
        let (status, value) = demo.post("/demo/login", json!({"player": player})).await;
        assert_eq!(status, StatusCode::OK, "{player}: {value}");
    }
    let (status, value) = demo.post("/demo/login", json!({"player": "p3"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&value), ErrorCode::Unprocessable);
    assert!(demo.truth("p3").await.is_empty());
}

async fn versions(demo: &DemoNode, player: &str) -> u64 {
    demo.truth(player)
        .await
        .iter()
        .map(|o| o.version.get())
        .sum()
}

#[tokio::test]
async fn autoplay_acts_until_its_time_limit() {
    let pause = (Duration::from_millis(10), Duration::from_millis(20));
    let demo = DemoNode::start(|c| c.with_autoplay(Duration::from_millis(600), pause)).await;
    let (status, state) = demo
        .post("/demo/autoplay", json!({"player": "fay", "on": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["running"], true);
    let seeded = 2;
    eventually("auto-play to act several times", || async {
        versions(&demo, "fay").await >= seeded + 5
    })
    .await;
    eventually("auto-play to stop by itself at its limit", || async {
        let (status, _, body) = call(&demo.router, "GET", "/demo/autoplay/fay", None).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice::<Value>(&body).unwrap()["running"] == false
    })
    .await;
    let stopped = versions(&demo, "fay").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        versions(&demo, "fay").await,
        stopped,
        "nothing after the stop"
    );
}

#[tokio::test]
async fn autoplay_stops_when_turned_off_and_is_bounded() {
    let pause = (Duration::from_millis(10), Duration::from_millis(20));
    let demo = DemoNode::start(|c| {
        c.with_autoplay(Duration::from_secs(60), pause)
            .with_max_autoplay(1)
    })
    .await;
    let (_, state) = demo
        .post("/demo/autoplay", json!({"player": "gus", "on": true}))
        .await;
    assert_eq!(state["running"], true, "{state}");
    let remaining = state["remaining_secs"].as_u64().unwrap();
    assert!((58..=60).contains(&remaining), "{state}");
    let (_, again) = demo
        .post("/demo/autoplay", json!({"player": "gus", "on": true}))
        .await;
    assert_eq!(again["running"], true, "turning it on twice is harmless");

    let (status, refused) = demo
        .post("/demo/autoplay", json!({"player": "hal", "on": true}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(code(&refused), ErrorCode::Unprocessable);

    eventually("auto-play to act", || async {
        versions(&demo, "gus").await > 2
    })
    .await;
    let (_, state) = demo
        .post("/demo/autoplay", json!({"player": "gus", "on": false}))
        .await;
    assert_eq!(state["running"], false);
    // An action already under way may still land; then nothing more (a
    // driver still acting every 10-20 ms would never hold still that long).
    eventually("the inventory to hold still", || async {
        let before = versions(&demo, "gus").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        versions(&demo, "gus").await == before
    })
    .await;

    let (_, state) = demo
        .post("/demo/autoplay", json!({"player": "hal", "on": true}))
        .await;
    assert_eq!(state["running"], true, "a slot is free again: {state}");
}

/// A directory holding a fake web package, and a secret file beside it.
fn web_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("web");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::write(pkg.join("sdk_wasm.js"), "export default function init() {}").unwrap();
    std::fs::write(pkg.join("sdk_wasm_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    dir
}

#[tokio::test]
async fn the_page_and_its_bundle_are_served_with_their_content_types() {
    let dir = web_dir();
    let pkg = dir.path().join("web");
    let demo = DemoNode::start(|c| c.with_web_dir(&pkg)).await;
    let cases = [
        ("/", "text/html", "<title>Inventory</title>"),
        ("/app.js", "text/javascript", "InventoryClient"),
        ("/style.css", "text/css", "--accent"),
        ("/pkg/sdk_wasm.js", "text/javascript", "export default"),
        ("/pkg/sdk_wasm_bg.wasm", "application/wasm", "asm"),
    ];
    for (uri, content_type, contains) in cases {
        let (status, got_type, body) = call(&demo.router, "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(got_type.starts_with(content_type), "{uri}: {got_type}");
        assert!(
            String::from_utf8_lossy(&body).contains(contains),
            "{uri} lacks {contains:?}"
        );
    }
    let (status, _, _) = call(&demo.router, "GET", "/pkg/nothing.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_bundle_directory_cannot_be_escaped() {
    let dir = web_dir();
    let pkg = dir.path().join("web");
    let demo = DemoNode::start(|c| c.with_web_dir(&pkg)).await;
    let outside = dir.path().join("secret.txt");
    let absolute = format!("/pkg/{}", outside.display());
    let attempts = [
        "/pkg/../secret.txt",
        "/pkg/%2e%2e/secret.txt",
        "/pkg/..%2fsecret.txt",
        "/pkg/..%5csecret.txt",
        "/pkg/%2e%2e%2fsecret.txt",
        "/pkg/web/../../secret.txt",
        "/pkg//etc/passwd",
        "/pkg/%2fetc%2fpasswd",
        absolute.as_str(),
        "/../secret.txt",
    ];
    for uri in attempts {
        let (status, _, body) = call(&demo.router, "GET", uri, None).await;
        let body = String::from_utf8_lossy(&body);
        assert!(
            !status.is_success() && !body.contains("secret") && !body.contains("root:"),
            "{uri} answered {status}: {body}"
        );
    }
}

#[tokio::test]
async fn without_the_bundle_the_page_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    for demo in [
        DemoNode::start(|c| c).await,
        DemoNode::start(|c| c.with_web_dir(empty.path())).await,
    ] {
        let (status, content_type, body) = call(&demo.router, "GET", "/", None).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(content_type.starts_with("text/html"));
        assert!(body.contains("cargo xtask node"), "{body}");
        assert!(body.contains("cargo xtask wasm"), "{body}");
    }
    let demo = DemoNode::start(|c| c.with_web_dir(empty.path())).await;
    let (_, _, body) = call(&demo.router, "GET", "/", None).await;
    assert!(String::from_utf8_lossy(&body).contains("sdk_wasm_bg.wasm"));
}

/// The `inventory-demo` binary on a loopback port over files in a temp dir;
/// killed when dropped.
struct DemoProcess {
    _process: testkit::NodeProcess,
    base: String,
    _dir: tempfile::TempDir,
}

/// The demo binary's command over files in `dir`, with the tests' secrets
/// and none of the environment's servers.
fn demo_command(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory-demo"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--sqlite-path")
        .arg(dir.join("inventory.db"))
        .arg("--descriptor-sqlite-path")
        .arg(dir.join("descriptors.db"))
        .args(args)
        .env("INVENTORY_SERVICE_TOKEN", SERVICE_TOKEN)
        .env(
            "INVENTORY_JWT_SECRET",
            String::from_utf8_lossy(JWT_SECRET).as_ref(),
        )
        .env_remove("REDIS_URL")
        .env_remove("MONGODB_URI")
        .env_remove("INVENTORY_DESCRIPTOR_URL")
        .env_remove("INVENTORY_WEB_DIR");
    command
}

impl DemoProcess {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let process = testkit::NodeProcess::spawn(demo_command(dir.path(), args));
        Self {
            base: process.base().to_owned(),
            _process: process,
            _dir: dir,
        }
    }

    /// Runs the binary with `args`, expecting it to refuse them: its exit
    /// status and what it wrote on stderr.
    fn refused(args: &[&str]) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().unwrap();
        testkit::NodeProcess::refused(demo_command(dir.path(), args))
    }

    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let client = reqwest::Client::new();
        let mut request = client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

#[tokio::test]
async fn the_binary_runs_the_demo_in_the_embedded_mode_only() {
    let web = web_dir();
    let pkg = web.path().join("web");
    let embedded = DemoProcess::start(&["--web-dir", pkg.to_str().unwrap()]);
    let (status, page) = embedded.request("GET", "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Inventory</title>"));
    let (status, wasm) = embedded.request("GET", "/pkg/sdk_wasm_bg.wasm", None).await;
    assert_eq!((status, wasm.contains("asm")), (200, true));
    let (status, body) = embedded
        .request("POST", "/demo/login", Some(json!({"player": "jo"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, batch) = embedded
        .request(
            "POST",
            "/v1/descriptors/batch",
            Some(json!({"ids": ["gold"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        batch.contains("Gold coins"),
        "the catalog is seeded: {batch}"
    );

    // A demo login is a token for any player: never beside shared servers.
    for args in [
        &["--descriptor-url", "http://127.0.0.1:9"][..],
        &["--redis-url", "redis://127.0.0.1:9"][..],
    ] {
        let (status, stderr) = DemoProcess::refused(args);
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains("embedded"), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_demo_token_opens_a_session_that_shows_demo_actions() {
    let node = DemoProcess::start(&[]);
    let (status, body) = node
        .request("POST", "/demo/login", Some(json!({"player": "kim"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    let ws = format!("{}/v1/ws", node.base.replacen("http", "ws", 1));
    let client = sdk::InventoryClient::builder(ws, login["token"].as_str().unwrap())
        .with_descriptor_url(&node.base)
        .connect()
        .await
        .unwrap();
    let gold = |client: &sdk::InventoryClient| {
        client
            .view()
            .owners
            .iter()
            .flat_map(|o| o.items.iter())
            .find(|i| i.item.as_str() == "gold")
            .map(|i| i.qty)
    };
    eventually("the starter inventory", || async {
        gold(&client) == Some(120)
    })
    .await;
    let (status, body) = node
        .request(
            "POST",
            "/demo/actions",
            Some(json!({"player": "kim", "action": "trade"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the trade to reach the client", || async {
        gold(&client) != Some(120)
    })
    .await;
    eventually("the catalog name to arrive", || async {
        client
            .view()
            .owners
            .iter()
            .flat_map(|o| o.items.iter())
            .any(|i| {
                i.descriptor
                    .descriptor()
                    .is_some_and(|d| d.name == "Gold coins")
            })
    })
    .await;
}
