//! The [`DescriptorStore`] conformance suite every store must pass (including
//! the scan's, [`check_scan`]), a
//! query-counting store wrapper, and sample descriptors (feature `test-util`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use protocol::{
    AttributeValue, BurnOutcome, CraftInput, Descriptor, DescriptorKind, ErrorCode, ItemId,
    Quantity, Stacking, UserId,
};

use crate::Error;
use crate::store::{DescriptorStore, MAX_SCAN_LIMIT, Record, ScanFilter, WriteOutcome};

/// The id of the `n`th descriptor of [`reference_crafted`]: `it` and seven
/// digits, so that ids sort as their numbers do.
#[must_use]
pub fn reference_id(n: usize) -> ItemId {
    ItemId::parse(format!("it{n:07}")).expect("valid id")
}

/// The `n`th of the reference game's crafted descriptors, as the benchmarks
/// load them by the million: realistic size (about 450 bytes of JSON), 512
/// templates, 74,774 crafters, created a millisecond apart.
#[must_use]
pub fn reference_crafted(n: usize) -> Descriptor {
    let id = |s: String| ItemId::parse(s).expect("valid id");
    let stat = |k: usize| i64::try_from(n % k).expect("small");
    Descriptor {
        id: reference_id(n),
        kind: DescriptorKind::Crafted,
        template: Some(id(format!("tpl-{}", n % 512))),
        name: format!(
            "Runed Blade of the {} Moon #{n}",
            ["Red", "Pale", "Hollow"][n % 3]
        ),
        stacking: Stacking::Unique,
        revision: 1,
        created_at: 1_600_000_000_000 + n as u64,
        crafted_by: Some(UserId::parse(format!("user-{}", n % 74_774)).expect("valid id")),
        inputs: vec![
            CraftInput {
                item: id("iron-ingot".into()),
                qty: Quantity::new(3).expect("valid"),
            },
            CraftInput {
                item: id(format!("gem-{}", n % 12)),
                qty: Quantity::new(1).expect("valid"),
            },
        ],
        attributes: BTreeMap::from([
            ("attack".to_owned(), AttributeValue::Int(stat(97))),
            ("defense".to_owned(), AttributeValue::Int(stat(89))),
            (
                "speed".to_owned(),
                AttributeValue::Float(1.0 + stat(50) as f64 / 100.0),
            ),
            (
                "rarity".to_owned(),
                AttributeValue::Text(["common", "rare", "epic"][n % 3].into()),
            ),
            (
                "soulbound".to_owned(),
                AttributeValue::Bool(n.is_multiple_of(2)),
            ),
            (
                "lore".to_owned(),
                AttributeValue::Text(
                    "Forged in the last light of the old sun, it hums near water.".into(),
                ),
            ),
            (
                "model".to_owned(),
                AttributeValue::Text(format!("models/blades/{}.glb", n % 64)),
            ),
            (
                "icon".to_owned(),
                AttributeValue::Text(format!("icons/blades/{}.png", n % 64)),
            ),
        ]),
    }
}

/// A crafted descriptor named `id`, with a few attributes.
#[must_use]
pub fn crafted(id: &str) -> Descriptor {
    Descriptor {
        id: ItemId::parse(id).expect("valid id"),
        kind: DescriptorKind::Crafted,
        template: Some(ItemId::parse("iron-sword").expect("valid id")),
        name: format!("Sword {id}"),
        stacking: Stacking::Unique,
        revision: 1,
        created_at: 1_700_000_000_000,
        crafted_by: Some(UserId::parse("alice").expect("valid id")),
        inputs: vec![CraftInput {
            item: ItemId::parse("iron").expect("valid id"),
            qty: Quantity::new(3).expect("valid quantity"),
        }],
        attributes: BTreeMap::from([
            ("attack".to_owned(), AttributeValue::Int(12)),
            ("weight".to_owned(), AttributeValue::Float(2.5)),
            ("rarity".to_owned(), AttributeValue::Text("rare".into())),
            ("soulbound".to_owned(), AttributeValue::Bool(true)),
        ]),
    }
}

/// A catalog descriptor named `id` at `revision`.
#[must_use]
pub fn catalog(id: &str, revision: u32) -> Descriptor {
    Descriptor {
        name: format!("Template {id} r{revision}"),
        revision,
        created_at: 1_600_000_000_000,
        attributes: BTreeMap::from([("tier".to_owned(), AttributeValue::Int(i64::from(revision)))]),
        ..Descriptor::catalog(ItemId::parse(id).expect("valid id"), "")
    }
}

fn id(value: &str) -> ItemId {
    ItemId::parse(value).expect("valid id")
}

fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> ErrorCode {
    result.expect_err("an error").code()
}

async fn get_sorted(store: &dyn DescriptorStore, ids: &[ItemId]) -> Vec<Record> {
    let mut records = store.get_many(ids).await.expect("get_many");
    records.sort_by(|a, b| a.id().cmp(b.id()));
    records
}

/// Runs every contract check against an empty `store`. Ids are prefixed with
/// `prefix` so that one store can run the suite more than once.
pub async fn check_store(store: &dyn DescriptorStore, prefix: &str) {
    let name = |s: &str| format!("{prefix}-{s}");
    store.ping().await.expect("ping");
    assert!(store.get_many(&[]).await.expect("empty get").is_empty());
    let identity = store.identity().await.expect("identity");
    assert!(!identity.is_empty());
    assert_eq!(store.identity().await.expect("identity again"), identity);

    // Create, idempotent by content.
    let sword = crafted(&name("sword"));
    assert_eq!(
        store.create(&sword).await.expect("create"),
        WriteOutcome::Applied
    );
    assert_eq!(
        store.create(&sword).await.expect("retry"),
        WriteOutcome::Unchanged
    );
    let mut other = sword.clone();
    other.name = "Another".into();
    assert_eq!(code(store.create(&other).await), ErrorCode::Conflict);

    // Batch read: live, missing, exact round trip (attribute types kept).
    let ghost = id(&name("ghost"));
    let records = store
        .get_many(&[sword.id.clone(), ghost.clone()])
        .await
        .expect("get_many");
    assert_eq!(records, vec![Record::Live(sword.clone())]);

    // Burn: tombstone, idempotent, distinct from never existed.
    assert_eq!(
        store.burn(&sword.id).await.expect("burn"),
        BurnOutcome::Burned
    );
    assert_eq!(
        store.burn(&sword.id).await.expect("burn again"),
        BurnOutcome::AlreadyBurned
    );
    assert_eq!(code(store.burn(&ghost).await), ErrorCode::NotFound);
    assert!(
        store
            .get_many(std::slice::from_ref(&ghost))
            .await
            .expect("get")
            .is_empty()
    );
    assert_eq!(
        store
            .get_many(std::slice::from_ref(&sword.id))
            .await
            .expect("get"),
        vec![Record::Burned(sword.id.clone())]
    );
    assert_eq!(code(store.create(&sword).await), ErrorCode::Burned);

    // Catalog revisions.
    let template = catalog(&name("template"), 1);
    store.create(&template).await.expect("create catalog");
    let next = catalog(&name("template"), 2);
    assert_eq!(
        store.revise(&next).await.expect("revise"),
        WriteOutcome::Applied
    );
    assert_eq!(
        store.revise(&next).await.expect("retry"),
        WriteOutcome::Unchanged
    );
    let mut different = next.clone();
    different.name = "Different".into();
    assert_eq!(code(store.revise(&different).await), ErrorCode::Conflict);
    assert_eq!(
        code(store.revise(&catalog(&name("template"), 4)).await),
        ErrorCode::Conflict
    );
    assert_eq!(
        get_sorted(store, std::slice::from_ref(&next.id)).await,
        vec![Record::Live(next.clone())]
    );
    assert_eq!(
        code(store.revise(&catalog(&name("nothing"), 2)).await),
        ErrorCode::NotFound
    );
    let mut crafted_as_catalog = catalog(&name("crafted"), 2);
    store
        .create(&crafted(&name("crafted")))
        .await
        .expect("create crafted");
    crafted_as_catalog.id = id(&name("crafted"));
    assert_eq!(
        code(store.revise(&crafted_as_catalog).await),
        ErrorCode::DescriptorImmutable
    );
    store.burn(&next.id).await.expect("burn catalog");
    assert_eq!(
        code(store.revise(&catalog(&name("template"), 3)).await),
        ErrorCode::Burned
    );

    // A full batch: 1,000 ids, some present, in one call.
    let many: Vec<Descriptor> = (0..50).map(|n| crafted(&name(&format!("m{n}")))).collect();
    for descriptor in &many {
        store.create(descriptor).await.expect("create many");
    }
    let ids: Vec<ItemId> = (0..1_000).map(|n| id(&name(&format!("m{n}")))).collect();
    let records = get_sorted(store, &ids).await;
    assert_eq!(records.len(), many.len());
    assert!(records.iter().all(|r| matches!(r, Record::Live(_))));

    // Concurrent identical creates: exactly one applies.
    let racer = crafted(&name("racer"));
    let outcomes = futures::future::join_all((0..8).map(|_| store.create(&racer))).await;
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(WriteOutcome::Applied)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}

/// Pages through `filter` with `limit` records a page, calling `between`
/// after each page; answers every record returned, in order.
async fn scan_all<F>(
    store: &dyn DescriptorStore,
    filter: &ScanFilter,
    limit: usize,
    mut between: F,
) -> Vec<Record>
where
    F: AsyncFnMut(usize),
{
    let mut all: Vec<Record> = Vec::new();
    let mut pages = 0;
    loop {
        let after = all.last().map(|r| r.id().clone());
        let page = store
            .scan(filter, after.as_ref(), limit)
            .await
            .expect("scan");
        assert!(page.len() <= limit, "a page holds at most the limit");
        let done = page.len() < limit;
        all.extend(page);
        pages += 1;
        between(pages).await;
        if done {
            return all;
        }
    }
}

fn ids_of(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.id().as_str().to_owned()).collect()
}

/// Runs the scan contract checks against an **empty** `store`: every filter
/// answers what [`ScanFilter::matches`] selects, in ascending id order,
/// page after page; paging while descriptors are created and burned skips
/// nothing that stayed live and repeats nothing.
pub async fn check_scan(store: &dyn DescriptorStore) {
    let everything = ScanFilter::default();
    assert!(
        store
            .scan(&everything, None, MAX_SCAN_LIMIT)
            .await
            .expect("empty scan")
            .is_empty()
    );

    // 30 crafted by two crafters a second apart, 3 catalog, 2 burned.
    let mut stored: Vec<Descriptor> = Vec::new();
    for n in 0..30_u64 {
        let mut descriptor = crafted(&format!("s-{n:02}"));
        descriptor.created_at = 1_700_000_000_000 + n * 1_000;
        let crafter = if n % 3 == 0 { "bob" } else { "alice" };
        descriptor.crafted_by = Some(UserId::parse(crafter).expect("valid id"));
        stored.push(descriptor);
    }
    stored.extend((0..3).map(|n| catalog(&format!("c-{n}"), 1)));
    for descriptor in &stored {
        store.create(descriptor).await.expect("create");
    }
    for burned in ["s-05", "s-12"] {
        store.burn(&id(burned)).await.expect("burn");
    }
    let all_ids: Vec<ItemId> = stored.iter().map(|d| d.id.clone()).collect();
    let records = get_sorted(store, &all_ids).await;

    let filters = [
        everything.clone(),
        ScanFilter {
            kind: Some(DescriptorKind::Crafted),
            ..ScanFilter::default()
        },
        ScanFilter {
            kind: Some(DescriptorKind::Catalog),
            ..ScanFilter::default()
        },
        ScanFilter {
            crafted_by: Some(UserId::parse("bob").expect("valid id")),
            ..ScanFilter::default()
        },
        ScanFilter {
            kind: Some(DescriptorKind::Crafted),
            crafted_by: Some(UserId::parse("alice").expect("valid id")),
            since: Some(1_700_000_004_000),
            until: Some(1_700_000_020_000),
            include_burned: false,
        },
        ScanFilter {
            since: Some(1_700_000_029_000),
            ..ScanFilter::default()
        },
        ScanFilter {
            include_burned: true,
            ..ScanFilter::default()
        },
    ];
    for filter in &filters {
        filter.validate().expect("a valid filter");
        let expected: Vec<Record> = records
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        for limit in [1, 7, MAX_SCAN_LIMIT] {
            let got = scan_all(store, filter, limit, async |_| {}).await;
            assert_eq!(got, expected, "{filter:?}, {limit} a page");
        }
        assert_eq!(
            store.count(filter).await.expect("count"),
            expected.len() as u64,
            "{filter:?}"
        );
    }
    let burned_too = scan_all(store, &filters[6], 4, async |_| {}).await;
    assert!(burned_too.contains(&Record::Burned(id("s-05"))));

    // Churn: between pages, create ids before and after the cursor and burn
    // ids not yet reached. What stayed live is returned exactly once.
    let stayed_live: Vec<String> = records
        .iter()
        .filter(|r| matches!(r, Record::Live(_)))
        .map(|r| r.id().as_str().to_owned())
        .filter(|id| !["s-20", "s-25", "c-1"].contains(&id.as_str()))
        .collect();
    let got = scan_all(store, &everything, 4, async |page| {
        for name in [format!("a-new-{page}"), format!("s-99-{page}")] {
            store.create(&crafted(&name)).await.expect("create");
        }
        if let Some(victim) = ["s-20", "s-25", "c-1"].get(page - 1) {
            store.burn(&id(victim)).await.expect("burn");
        }
    })
    .await;
    let got = ids_of(&got);
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(got, sorted, "ascending, each id once");
    for id in &stayed_live {
        assert!(got.contains(id), "{id} stayed live but was skipped");
    }
}

/// Wraps a store and counts its read queries, for proving that a missed
/// batch costs exactly one.
#[derive(Debug)]
pub struct CountingStore<S> {
    inner: S,
    reads: Arc<AtomicU64>,
    ids_read: Arc<AtomicU64>,
}

impl<S> CountingStore<S> {
    /// Counts the reads of `inner`.
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            reads: Arc::default(),
            ids_read: Arc::default(),
        }
    }

    /// `get_many` calls so far.
    #[must_use]
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Ids asked of the store so far, over all `get_many` calls.
    #[must_use]
    pub fn ids_read(&self) -> u64 {
        self.ids_read.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: DescriptorStore> DescriptorStore for CountingStore<S> {
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.ids_read.fetch_add(ids.len() as u64, Ordering::SeqCst);
        self.inner.get_many(ids).await
    }
    async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        self.inner.create(descriptor).await
    }
    async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        self.inner.revise(descriptor).await
    }
    async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        self.inner.burn(id).await
    }
    async fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        self.inner.scan(filter, after, limit).await
    }
    async fn count(&self, filter: &ScanFilter) -> Result<u64, Error> {
        self.inner.count(filter).await
    }
    async fn ping(&self) -> Result<(), Error> {
        self.inner.ping().await
    }
    async fn identity(&self) -> Result<String, Error> {
        self.inner.identity().await
    }
}
