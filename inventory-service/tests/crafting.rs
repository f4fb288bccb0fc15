//! The HTTP adapter of the crafting registry: the core's craft and burn
//! protocol over a real SQLite inventory store and a real descriptor service
//! reached over HTTP, and the codes it reports (the protocol's failure
//! injection lives with the protocol, in `inventory-core`).

use std::collections::BTreeMap;
use std::sync::Arc;

use descriptor_service::{AuthConfig, Record};
use inventory_core::crafting::{self, BurnOrder, CraftOrder, DescriptorRegistry};
use inventory_core::{Error, Inventory, InventoryStore, SqliteConfig, SqliteStore};
use inventory_service::registry::HttpRegistry;
use protocol::{Change, ChangeId, ErrorCode, ItemId, OwnerId, Quantity};

const WRITE_TOKEN: &str = "crafting-test-write-token";

fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn bank() -> OwnerId {
    OwnerId::parse("a:smith").unwrap()
}

struct World {
    store: Arc<SqliteStore>,
    inventory: Inventory,
    descriptors: descriptor_service::Descriptors,
    descriptor_store: Arc<dyn descriptor_service::DescriptorStore>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(SqliteStore::open(SqliteConfig::new(dir.path().join("inv.db"))).unwrap());
        let inventory = Inventory::from_arc(store.clone());
        let descriptor_store: Arc<dyn descriptor_service::DescriptorStore> = Arc::new(
            descriptor_service::SqliteStore::open(dir.path().join("descriptors.db")).unwrap(),
        );
        let descriptors =
            descriptor_service::Descriptors::builder(descriptor_store.clone()).build();
        let world = Self {
            store,
            inventory,
            descriptors,
            descriptor_store,
            _dir: dir,
        };
        world
            .inventory
            .apply(
                Change::new(ChangeId::random())
                    .grant(bank(), item("ore"), qty(10))
                    .grant(bank(), item("wood"), qty(10)),
            )
            .await
            .unwrap();
        world
    }

    async fn balances(&self) -> BTreeMap<String, u64> {
        let snapshot = self.store.load(&bank()).await.unwrap();
        snapshot
            .items
            .iter()
            .map(|(item, qty)| (item.to_string(), *qty))
            .collect()
    }

    async fn descriptor(&self, id: &ItemId) -> Option<Record> {
        let records = self
            .descriptor_store
            .get_many(std::slice::from_ref(id))
            .await;
        records.unwrap().into_iter().next()
    }
}

fn sword_order(ore: u64) -> CraftOrder {
    let inputs = [(item("ore"), qty(ore)), (item("wood"), qty(2))];
    CraftOrder::new(ChangeId::random(), bank(), "Smith's sword", inputs, 0)
        .with_template(item("sword"))
}

fn burn_order(sword: &ItemId) -> BurnOrder {
    BurnOrder {
        change: ChangeId::random(),
        owner: bank(),
        item: sword.clone(),
        recovered: vec![(item("ore"), qty(1))],
    }
}

/// Checks the code of a failed craft or burn (a registry's own error
/// converts into the core's).
fn expect_code<T: std::fmt::Debug>(result: Result<T, impl Into<Error>>, code: ErrorCode) {
    match result.map_err(Into::into) {
        Err(err) => assert_eq!(err.code(), code, "{err}"),
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
    }
}

fn is_live(record: Option<Record>) -> bool {
    matches!(record, Some(Record::Live(_)))
}

fn is_burned(record: Option<Record>) -> bool {
    matches!(record, Some(Record::Burned(_)))
}

async fn after_craft(world: &World, sword: &ItemId) {
    let balances = world.balances().await;
    assert_eq!(balances.get("ore"), Some(&7));
    assert_eq!(balances.get("wood"), Some(&8));
    assert_eq!(balances.get(sword.as_str()), Some(&1));
    assert!(is_live(world.descriptor(sword).await));
}

#[tokio::test]
async fn the_http_registry_crafts_through_a_real_descriptor_service_and_reports_its_codes() {
    let world = World::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(descriptor_service::run(
        listener,
        world.descriptors.clone(),
        AuthConfig::default()
            .with_write_token(WRITE_TOKEN)
            .with_open_reads(true),
        std::future::pending(),
    ));
    let registry = HttpRegistry::new(reqwest::Client::new(), &base, WRITE_TOKEN);

    let order = sword_order(3);
    let sword = order.descriptor.id.clone();
    crafting::craft(&world.inventory, &registry, &order)
        .await
        .unwrap();
    after_craft(&world, &sword).await;
    crafting::burn(&world.inventory, &registry, &burn_order(&sword))
        .await
        .unwrap();
    assert!(is_burned(world.descriptor(&sword).await));
    expect_code(registry.create(&order.descriptor).await, ErrorCode::Burned);

    let forged = HttpRegistry::new(reqwest::Client::new(), &base, "not-the-write-token");
    expect_code(forged.burn(&item("ore")).await, ErrorCode::Unauthorized);
    server.abort();

    let gone = HttpRegistry::new(reqwest::Client::new(), "http://127.0.0.1:9", WRITE_TOKEN);
    let fresh = sword_order(3);
    let before = world.balances().await;
    expect_code(
        crafting::craft(&world.inventory, &gone, &fresh).await,
        ErrorCode::Unavailable,
    );
    assert_eq!(world.balances().await, before);
    assert_eq!(world.descriptor(&fresh.descriptor.id).await, None);
}

#[tokio::test]
async fn an_answer_that_is_not_the_services_error_body_is_an_unknown_outcome() {
    // A proxy in front of the service answering in its own words: whether the
    // write happened is unknown, so the craft must be retried, not refused.
    let proxy = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream went away") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, proxy).await });
    let registry = HttpRegistry::new(reqwest::Client::new(), &base, WRITE_TOKEN);
    let world = World::new().await;
    let order = sword_order(3);
    let before = world.balances().await;
    expect_code(
        crafting::craft(&world.inventory, &registry, &order).await,
        ErrorCode::Unavailable,
    );
    expect_code(registry.burn(&item("ore")).await, ErrorCode::Unavailable);
    assert_eq!(world.balances().await, before);
    server.abort();
}
