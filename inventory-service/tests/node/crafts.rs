//! Crafting and burning over HTTP (`POST /v1/crafts`, `POST /v1/burns`) on
//! node processes: embedded (the node's own descriptor service) and with the
//! descriptor service elsewhere, stopped in the middle of a craft.

use std::time::Duration;

use descriptor_service::AuthConfig;
use protocol::{
    BurnOrder, Change, ChangeId, CraftOrder, ErrorCode, ItemId, OwnerId, Quantity, UserId,
    crafted_item_id,
};
use reqwest::StatusCode;
use sdk::GameServerClient;
use serde_json::{Value, json};
use testkit::NodeProcess;

use crate::common::{SERVICE_TOKEN, node_command};

const DESCRIPTOR_WRITER: &str = "crafts-test-descriptor-writer";

fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn smith() -> OwnerId {
    OwnerId::account(UserId::parse("smith").unwrap())
}

fn client(base: &str) -> GameServerClient {
    GameServerClient::builder(base, SERVICE_TOKEN)
        .with_retries(2, Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap()
}

fn sword_order() -> CraftOrder {
    CraftOrder::new(
        ChangeId::random(),
        smith(),
        "Sword",
        [(item("ore"), qty(3)), (item("wood"), qty(1))],
        1_700_000_000_000,
    )
}

async fn stock(node: &GameServerClient, ore: u64, wood: u64) {
    let change = Change::new(ChangeId::random())
        .grant(smith(), item("ore"), qty(ore))
        .grant(smith(), item("wood"), qty(wood));
    node.apply(&change).await.expect("stocked");
}

async fn balances(node: &GameServerClient) -> Vec<(String, u64)> {
    let snapshot = node.load(&smith()).await.expect("load");
    snapshot
        .items
        .into_iter()
        .map(|(item, qty)| (item.to_string(), qty))
        .collect()
}

/// GET `path` on `base`: the status and the body's code, if any.
async fn status_of(base: &str, path: &str) -> (StatusCode, Option<String>) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn crafts_and_burns_over_http_keep_items_and_descriptors_together() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(node_command(dir.path(), &[]));
    let base = node.base().to_owned();
    let api = client(&base);
    stock(&api, 3, 1).await;

    // A craft grants the item and consumes the inputs; retried, it is
    // applied once.
    let order = sword_order();
    let sword = order.descriptor.id.clone();
    let crafted = api.craft(&order).await.expect("crafted");
    assert!(!crafted.already_applied);
    let again = api.craft(&order).await.expect("retried");
    assert!(again.already_applied);
    assert_eq!(balances(&api).await, [(sword.to_string(), 1)]);
    let (status, _) = status_of(&base, &format!("/v1/descriptors/{sword}")).await;
    assert_eq!(status, StatusCode::OK, "the descriptor lives");

    // A craft without its inputs is refused and its descriptor burned: the
    // same order is refused again, for good.
    let short = sword_order();
    let refused = api.craft(&short).await.expect_err("no inputs left");
    assert_eq!(refused.code(), ErrorCode::InsufficientBalance);
    let (status, code) =
        status_of(&base, &format!("/v1/descriptors/{}", short.descriptor.id)).await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::GONE, Some("burned"))
    );
    let again = api.craft(&short).await.expect_err("refused for good");
    assert_eq!(again.code(), ErrorCode::Burned);
    assert_eq!(balances(&api).await, [(sword.to_string(), 1)]);

    // A burn consumes the item, gives resources back, burns the descriptor.
    let burn = BurnOrder {
        change: ChangeId::random(),
        owner: smith(),
        item: sword.clone(),
        recovered: vec![(item("ore"), qty(2))],
    };
    let burned = api.burn(&burn).await.expect("burned");
    assert!(!burned.already_applied);
    assert!(api.burn(&burn).await.expect("retried").already_applied);
    assert_eq!(balances(&api).await, [("ore".to_owned(), 2)]);
    let (status, _) = status_of(&base, &format!("/v1/descriptors/{sword}")).await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn bad_craft_and_burn_requests_get_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::spawn(node_command(dir.path(), &[]));
    let base = node.base().to_owned();
    let api = client(&base);
    stock(&api, 10, 10).await;
    let http = reqwest::Client::new();
    let order = serde_json::to_value(sword_order()).unwrap();
    let with = |key: &str, value: Value| {
        let mut body = order.clone();
        body[key] = value;
        body
    };
    let mut catalog = order.clone();
    catalog["descriptor"]["kind"] = json!("catalog");
    // The item's id is derived from the change id, so that every retry
    // crafts the same item.
    let renamed = with("change", json!(ChangeId::random()));
    let mut stranger = order.clone();
    stranger["descriptor"]["crafted_by"] = json!("someone-else");
    let cases = [
        ("/v1/crafts", with("extra", json!(1)), "malformed_request"),
        ("/v1/crafts", with("owner", json!("nobody")), "invalid_id"),
        ("/v1/crafts", catalog, "invalid_descriptor"),
        ("/v1/crafts", stranger, "invalid_descriptor"),
        ("/v1/crafts", json!([]), "malformed_request"),
        (
            "/v1/burns",
            json!({"change": ChangeId::random(), "owner": "a:smith", "item": "ore", "recovered": [{"item": "ore", "qty": 0}]}),
            "invalid_quantity",
        ),
        (
            "/v1/burns",
            json!({"change": ChangeId::random(), "owner": "a:smith", "item": "ore"}),
            "invalid_descriptor",
        ),
        (
            "/v1/burns",
            json!({"change": ChangeId::random(), "owner": "a:smith", "item": crafted_item_id(ChangeId::random())}),
            "insufficient_balance",
        ),
        ("/v1/crafts", renamed, "invalid_descriptor"),
    ];
    for (path, body, code) in cases {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(SERVICE_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_client_error(), "{path} {body}: {status}");
        assert_eq!(answer["code"], code, "{path} {body}");
    }
    let unauthenticated = http
        .post(format!("{base}/v1/crafts"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let not_json = http
        .post(format!("{base}/v1/crafts"))
        .bearer_auth(SERVICE_TOKEN)
        .body(order.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        balances(&api).await,
        [("ore".to_owned(), 10), ("wood".to_owned(), 10)],
        "nothing was written"
    );
}

/// A descriptor service on `port` (0: any), in this process; answers its URL
/// and the task serving it.
async fn descriptor_service(
    dir: &std::path::Path,
    port: u16,
) -> (String, tokio::task::JoinHandle<()>) {
    let store = descriptor_service::SqliteStore::open(dir.join("descriptors.db")).unwrap();
    let descriptors = descriptor_service::Descriptors::builder(std::sync::Arc::new(store)).build();
    let auth = AuthConfig::default()
        .with_write_token(DESCRIPTOR_WRITER)
        .with_open_reads(true);
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => break listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, descriptor_service::app(descriptors, auth))
            .await
            .unwrap();
    });
    (url, task)
}

/// The registry goes down between two crafts: the craft's outcome is
/// unknown (`unavailable`, nothing granted), and the same order, sent again
/// once the service is back, completes it.
#[tokio::test]
async fn a_craft_cut_off_from_the_descriptor_service_completes_when_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (url, service) = descriptor_service(dir.path(), 0).await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let node = NodeProcess::spawn(node_command(
        dir.path(),
        &[
            "--descriptor-url",
            &url,
            "--descriptor-write-token",
            DESCRIPTOR_WRITER,
        ],
    ));
    let api = client(node.base());
    stock(&api, 6, 2).await;
    api.craft(&sword_order()).await.expect("crafted while up");

    service.abort();
    let _ = service.await;
    let order = sword_order();
    let unknown = api.craft(&order).await.expect_err("the registry is down");
    assert_eq!(unknown.code(), ErrorCode::Unavailable, "{unknown}");
    assert!(unknown.is_retryable());
    let held: Vec<_> = balances(&api).await;
    assert!(
        !held
            .iter()
            .any(|(id, _)| id == order.descriptor.id.as_str()),
        "nothing is held without a live descriptor: {held:?}"
    );

    let (_url, service) = descriptor_service(dir.path(), port).await;
    let done = api.craft(&order).await.expect("the retry completes");
    assert!(!done.already_applied);
    let sword = order.descriptor.id.clone();
    assert!(balances(&api).await.contains(&(sword.to_string(), 1)));

    // A burn cut off from the descriptor service: the item is gone, its
    // descriptor still lives (unheld, harmless), and the same order burns it
    // once the service is back.
    service.abort();
    let _ = service.await;
    let burn = BurnOrder {
        change: ChangeId::random(),
        owner: smith(),
        item: sword.clone(),
        recovered: vec![(item("ore"), qty(1))],
    };
    let unknown = api.burn(&burn).await.expect_err("the registry is down");
    assert_eq!(unknown.code(), ErrorCode::Unavailable, "{unknown}");
    assert!(!balances(&api).await.contains(&(sword.to_string(), 1)));
    let (url, _service) = descriptor_service(dir.path(), port).await;
    let (status, _) = status_of(&url, &format!("/v1/descriptors/{sword}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "still live until the burn is retried"
    );
    assert!(
        api.burn(&burn)
            .await
            .expect("the retry completes")
            .already_applied
    );
    let (status, _) = status_of(&url, &format!("/v1/descriptors/{sword}")).await;
    assert_eq!(status, StatusCode::GONE);

    let other = tempfile::tempdir().unwrap();
    let without_token = NodeProcess::spawn(node_command(other.path(), &["--descriptor-url", &url]));
    let refused = client(without_token.base())
        .craft(&sword_order())
        .await
        .expect_err("this node does not craft");
    assert_eq!(refused.code(), ErrorCode::Unprocessable);
}
