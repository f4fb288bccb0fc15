//! The craft and burn protocol across a real SQLite inventory store and a real
//! SQLite descriptor service (in process), with failures injected at every
//! step: no phantom item, no lost input, and a retry of the same order
//! finishes what the first attempt started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use descriptor_service::Record;
use inventory_core::crafting::{self, BurnOrder, CraftOrder, DescriptorRegistry, RegistryError};
use inventory_core::{ApplyOutcome, Error, Inventory, InventoryStore, SqliteConfig, SqliteStore};
use protocol::{
    Change, ChangeEvent, ChangeId, Descriptor, DescriptorKind, ErrorCode, ItemId, OwnerId,
    OwnerSnapshot, Quantity, Stacking, UserId, ValidChange,
};

fn item(id: &str) -> ItemId {
    ItemId::parse(id).unwrap()
}

fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap()
}

fn bank() -> OwnerId {
    OwnerId::parse("a:smith").unwrap()
}

/// How the next store apply fails, if it does.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    /// Unavailable before anything is written.
    Before,
    /// Written, then the reply is lost.
    ReplyLost,
}

/// A real SQLite store whose next apply can be made to fail.
struct FlakyStore {
    inner: SqliteStore,
    next: std::sync::Mutex<Fault>,
}

impl FlakyStore {
    fn fail_next(&self, fault: Fault) {
        *self.next.lock().unwrap() = fault;
    }
}

#[async_trait]
impl InventoryStore for FlakyStore {
    async fn apply(&self, change: &ValidChange) -> Result<ApplyOutcome, Error> {
        let fault = std::mem::replace(&mut *self.next.lock().unwrap(), Fault::None);
        match fault {
            Fault::None => self.inner.apply(change).await,
            Fault::Before => Err(Error::Unavailable("injected: before the write".into())),
            Fault::ReplyLost => {
                let _lost = self.inner.apply(change).await?;
                Err(Error::Unavailable("injected: reply lost".into()))
            }
        }
    }

    async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        self.inner.load(owner).await
    }

    async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        self.inner.load_user(user).await
    }

    async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        self.inner.lookup(id).await
    }
}

/// The in-process descriptor service, whose next creates or burns can be
/// made to fail before or after they write.
#[derive(Debug)]
struct FlakyRegistry {
    inner: descriptor_service::Descriptors,
    create_failures: AtomicU32,
    burn_failures: AtomicU32,
    after_write: bool,
}

impl FlakyRegistry {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    async fn fail_or<T, F: Future<Output = Result<T, descriptor_service::Error>>>(
        &self,
        counter: &AtomicU32,
        write: F,
    ) -> Result<(), RegistryError> {
        let write = async {
            match write.await {
                Ok(_) => Ok(()),
                Err(e) => Err(RegistryError::new(e.code(), e.to_string())),
            }
        };
        if !Self::take(counter) {
            return write.await;
        }
        if self.after_write {
            write.await?;
        }
        Err(RegistryError::new(
            ErrorCode::Unavailable,
            "injected registry failure",
        ))
    }
}

#[async_trait]
impl DescriptorRegistry for FlakyRegistry {
    async fn create(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        let write = self.inner.create(descriptor);
        self.fail_or(&self.create_failures, write).await
    }

    async fn burn(&self, id: &ItemId) -> Result<(), RegistryError> {
        let write = self.inner.burn(id);
        self.fail_or(&self.burn_failures, write).await
    }
}

struct World {
    store: Arc<FlakyStore>,
    inventory: Inventory,
    descriptors: descriptor_service::Descriptors,
    descriptor_store: Arc<dyn descriptor_service::DescriptorStore>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(SqliteConfig::new(dir.path().join("inv.db"))).unwrap();
        let store = Arc::new(FlakyStore {
            inner,
            next: std::sync::Mutex::new(Fault::None),
        });
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

    fn registry(
        &self,
        create_failures: u32,
        burn_failures: u32,
        after_write: bool,
    ) -> FlakyRegistry {
        FlakyRegistry {
            inner: self.descriptors.clone(),
            create_failures: AtomicU32::new(create_failures),
            burn_failures: AtomicU32::new(burn_failures),
            after_write,
        }
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

fn expect_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) {
    match result {
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

async fn untouched(world: &World, sword: &ItemId) {
    let balances = world.balances().await;
    assert_eq!(balances.get("ore"), Some(&10));
    assert_eq!(balances.get("wood"), Some(&10));
    assert_eq!(balances.get(sword.as_str()), None);
}

#[tokio::test]
async fn a_craft_consumes_the_inputs_and_grants_one_item_with_a_live_descriptor() {
    let world = World::new().await;
    let registry = world.registry(0, 0, false);
    let order = sword_order(3);
    let sword = order.descriptor.id.clone();
    let applied = crafting::craft(&world.inventory, &registry, &order)
        .await
        .unwrap();
    assert!(!applied.already_applied);
    after_craft(&world, &sword).await;

    let retried = crafting::craft(&world.inventory, &registry, &order)
        .await
        .unwrap();
    assert!(
        retried.already_applied,
        "a retry of the same order changes nothing"
    );
    after_craft(&world, &sword).await;
}

#[tokio::test]
async fn a_refused_craft_keeps_the_inputs_and_burns_the_descriptor_for_good() {
    let world = World::new().await;
    let registry = world.registry(0, 0, false);
    let order = sword_order(11);
    let sword = order.descriptor.id.clone();
    expect_code(
        crafting::craft(&world.inventory, &registry, &order).await,
        ErrorCode::InsufficientBalance,
    );
    untouched(&world, &sword).await;
    assert!(is_burned(world.descriptor(&sword).await));

    // Even once the inputs are there, the refused order stays refused.
    world
        .inventory
        .apply(Change::new(ChangeId::random()).grant(bank(), item("ore"), qty(5)))
        .await
        .unwrap();
    expect_code(
        crafting::craft(&world.inventory, &registry, &order).await,
        ErrorCode::Burned,
    );
    assert_eq!(world.balances().await.get(sword.as_str()), None);
}

#[tokio::test]
async fn a_craft_whose_descriptor_cannot_be_created_writes_nothing_and_a_retry_crafts() {
    for after_write in [false, true] {
        let world = World::new().await;
        let registry = world.registry(1, 0, after_write);
        let order = sword_order(3);
        let sword = order.descriptor.id.clone();
        expect_code(
            crafting::craft(&world.inventory, &registry, &order).await,
            ErrorCode::Unavailable,
        );
        untouched(&world, &sword).await;
        assert_eq!(is_live(world.descriptor(&sword).await), after_write);

        crafting::craft(&world.inventory, &registry, &order)
            .await
            .unwrap();
        after_craft(&world, &sword).await;
    }
}

#[tokio::test]
async fn a_craft_whose_store_write_fails_or_loses_its_reply_is_finished_by_a_retry() {
    for fault in [Fault::Before, Fault::ReplyLost] {
        let world = World::new().await;
        let registry = world.registry(0, 0, false);
        let order = sword_order(3);
        let sword = order.descriptor.id.clone();
        world.store.fail_next(fault);
        expect_code(
            crafting::craft(&world.inventory, &registry, &order).await,
            ErrorCode::Unavailable,
        );
        // The descriptor exists first: at worst an orphan, never an item
        // without its descriptor.
        assert!(is_live(world.descriptor(&sword).await));
        let held = world.balances().await.get(sword.as_str()).copied();
        assert_eq!(held, (fault == Fault::ReplyLost).then_some(1), "{fault:?}");

        let retried = crafting::craft(&world.inventory, &registry, &order)
            .await
            .unwrap();
        assert_eq!(retried.already_applied, fault == Fault::ReplyLost);
        after_craft(&world, &sword).await;
    }
}

#[tokio::test]
async fn a_burn_removes_the_item_grants_the_resources_and_burns_the_descriptor() {
    let world = World::new().await;
    let registry = world.registry(0, 0, false);
    let craft = sword_order(3);
    let sword = craft.descriptor.id.clone();
    crafting::craft(&world.inventory, &registry, &craft)
        .await
        .unwrap();

    let order = burn_order(&sword);
    crafting::burn(&world.inventory, &registry, &order)
        .await
        .unwrap();
    let check = || async {
        let balances = world.balances().await;
        assert_eq!(balances.get("ore"), Some(&8));
        assert_eq!(balances.get(sword.as_str()), None);
        assert!(is_burned(world.descriptor(&sword).await));
    };
    check().await;
    let retried = crafting::burn(&world.inventory, &registry, &order)
        .await
        .unwrap();
    assert!(retried.already_applied);
    check().await;
}

#[tokio::test]
async fn a_burn_whose_descriptor_burn_fails_leaves_an_unheld_descriptor_until_retried() {
    let world = World::new().await;
    let registry = world.registry(0, 1, false);
    let craft = sword_order(3);
    let sword = craft.descriptor.id.clone();
    crafting::craft(&world.inventory, &registry, &craft)
        .await
        .unwrap();

    let order = burn_order(&sword);
    expect_code(
        crafting::burn(&world.inventory, &registry, &order).await,
        ErrorCode::Unavailable,
    );
    assert_eq!(world.balances().await.get(sword.as_str()), None);
    assert!(
        is_live(world.descriptor(&sword).await),
        "not held, not yet burned"
    );

    crafting::burn(&world.inventory, &registry, &order)
        .await
        .unwrap();
    assert!(is_burned(world.descriptor(&sword).await));
    assert_eq!(
        world.balances().await.get("ore"),
        Some(&8),
        "resources granted once"
    );
}

#[tokio::test]
async fn burning_an_item_the_owner_does_not_hold_leaves_its_descriptor_alone() {
    let world = World::new().await;
    let registry = world.registry(0, 0, false);
    let craft = sword_order(3);
    let sword = craft.descriptor.id.clone();
    crafting::craft(&world.inventory, &registry, &craft)
        .await
        .unwrap();
    let mut order = burn_order(&sword);
    order.owner = OwnerId::parse("a:thief").unwrap();
    expect_code(
        crafting::burn(&world.inventory, &registry, &order).await,
        ErrorCode::InsufficientBalance,
    );
    after_craft(&world, &sword).await;
}

#[tokio::test]
async fn invalid_orders_write_nothing() {
    let world = World::new().await;
    let registry = world.registry(0, 0, false);
    let mut cases = Vec::new();
    let mut catalog = sword_order(3);
    catalog.descriptor.kind = DescriptorKind::Catalog;
    cases.push(("catalog kind", catalog));
    let mut stackable = sword_order(3);
    stackable.descriptor.stacking = Stacking::Stackable;
    cases.push(("stackable", stackable));
    let mut stranger = sword_order(3);
    stranger.descriptor.crafted_by = Some(UserId::parse("someone-else").unwrap());
    cases.push(("crafted_by another user", stranger));
    let mut nothing = sword_order(3);
    nothing.descriptor.inputs.clear();
    cases.push(("no inputs", nothing));
    let mut itself = sword_order(3);
    itself.descriptor.inputs[0].item = itself.descriptor.id.clone();
    cases.push(("consumes itself", itself));
    for (why, order) in cases {
        let result = crafting::craft(&world.inventory, &registry, &order).await;
        let err = result.expect_err(why);
        assert!(
            err.code().as_str().starts_with("invalid") || err.code() == ErrorCode::DuplicateItem,
            "{why}: {err}"
        );
        assert_eq!(world.descriptor(&order.descriptor.id).await, None, "{why}");
        untouched(&world, &order.descriptor.id).await;
    }
}
