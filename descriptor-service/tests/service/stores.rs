//! The conformance suite against every store.

use std::sync::Arc;
use std::time::Duration;

use descriptor_service::conformance::{CountingStore, check_scan, check_store, crafted};
use descriptor_service::{
    DescriptorStore, Descriptors, Error, Lookup, MongoStore, Record, ScanFilter, SqliteConfig,
    SqliteStore, Synchronous, WriteOutcome,
};
use futures::future::join_all;
use protocol::ItemId;

use testkit::{mongodb_uri, unique_name};

use crate::common::sqlite_store;

#[tokio::test]
async fn sqlite_store_honours_the_contract() {
    let (_dir, store) = sqlite_store();
    check_store(&store, "a").await;
}

#[tokio::test]
async fn sqlite_store_reopens_with_its_data() {
    let (dir, store) = sqlite_store();
    check_store(&store, "a").await;
    let identity = store.identity().await.expect("identity");
    drop(store);
    let reopened = SqliteStore::open(dir.path().join("descriptors.db")).expect("reopen");
    check_store(&reopened, "b").await;
    assert_eq!(reopened.identity().await.expect("identity"), identity);
    let (_other_dir, other) = sqlite_store();
    assert_ne!(other.identity().await.expect("identity"), identity);
}

/// Every connection to one database, even racing on first use, agrees on its
/// identity; another database has another.
#[tokio::test]
async fn mongodb_stores_share_the_identity_of_their_database() {
    let (uri, database) = (mongodb_uri(), unique_name("descriptors"));
    let (a, b) = tokio::join!(
        MongoStore::connect(&uri, &database),
        MongoStore::connect(&uri, &database)
    );
    let (a, b) = (a.expect("connect"), b.expect("connect"));
    let (first, second) = tokio::join!(a.identity(), b.identity());
    let identity = first.expect("identity");
    assert_eq!(second.expect("identity"), identity);
    let other = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    assert_ne!(other.identity().await.expect("identity"), identity);
}

#[tokio::test]
async fn sqlite_store_honours_the_contract_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SqliteConfig::new(dir.path().join("nested/descriptors.db"))
        .with_readers(1)
        .with_batch_limit(1)
        .with_linger(Duration::ZERO)
        .with_synchronous(Synchronous::Normal);
    let store = SqliteStore::open_with(config).expect("open");
    check_store(&store, "a").await;
}

/// Concurrent writes share the writer's transactions; one that is refused
/// (a conflicting create) fails alone and the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sqlite_writes_share_commits_and_fail_alone() {
    let (_dir, store) = sqlite_store();
    let mut contested = crafted("contested");
    store.create(&contested).await.expect("first create");
    contested.name = "another name".to_owned();
    let creates: Vec<_> = (0..32).map(|n| crafted(&format!("c{n}"))).collect();
    let (conflict, outcomes, inserted) = tokio::join!(
        store.create(&contested),
        join_all(creates.iter().map(|d| store.create(d))),
        store.insert_many((0..8).map(|n| crafted(&format!("bulk{n}")))),
    );
    assert!(
        matches!(conflict, Err(Error::Conflict { .. })),
        "{conflict:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(WriteOutcome::Applied))),
        "{outcomes:?}"
    );
    assert_eq!(inserted.expect("bulk insert"), 8);
    let ids: Vec<ItemId> = (0..32)
        .map(|n| format!("c{n}"))
        .chain((0..8).map(|n| format!("bulk{n}")))
        .chain(["contested".to_owned()])
        .map(|id| ItemId::parse(id).expect("id"))
        .collect();
    let records = store.get_many(&ids).await.expect("read back");
    assert_eq!(records.len(), 41);
    assert!(records.contains(&Record::Live(crafted("contested"))));
}

#[tokio::test]
async fn mongodb_store_honours_the_contract() {
    let store = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    check_store(&store, "a").await;
}

#[tokio::test]
async fn mongodb_store_honours_the_contract_on_a_standalone_server() {
    let uri = testkit::mongodb_standalone_uri();
    let store = MongoStore::connect(&uri, &unique_name("descriptors"))
        .await
        .expect("connect");
    check_store(&store, "a").await;
}

#[tokio::test]
async fn a_missed_batch_is_one_in_query_on_mongodb() {
    let store = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    let loaded = store
        .insert_many((0..500).map(|n| crafted(&format!("m{n}"))).collect())
        .await
        .expect("load");
    assert_eq!(loaded, 500);
    let store = Arc::new(CountingStore::new(store));
    let descriptors = Descriptors::builder(store.clone()).build();
    let ids: Vec<ItemId> = (0..1_000)
        .map(|n| ItemId::parse(format!("m{n}")).unwrap())
        .collect();
    let lookups = descriptors.get_many(&ids).await.expect("batch");
    let found = lookups
        .iter()
        .filter(|l| matches!(l, Lookup::Found(_)))
        .count();
    assert_eq!((found, store.reads()), (500, 1));
    descriptors.get_many(&ids).await.expect("warm batch");
    assert_eq!(store.reads(), 1);
}

#[tokio::test]
async fn bulk_loading_skips_ids_already_stored() {
    let (_dir, sqlite) = sqlite_store();
    let batch = || {
        (0..10)
            .map(|n| crafted(&format!("l{n}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(sqlite.insert_many(batch()).await.expect("load"), 10);
    assert_eq!(sqlite.insert_many(batch()).await.expect("reload"), 0);
    let mongo = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    assert_eq!(mongo.insert_many(batch()).await.expect("load"), 10);
    assert_eq!(mongo.insert_many(batch()).await.expect("reload"), 0);
}

#[tokio::test]
async fn sqlite_store_scans_as_the_contract_says() {
    let (_dir, store) = sqlite_store();
    check_scan(&store).await;
}

#[tokio::test]
async fn mongodb_store_scans_as_the_contract_says() {
    let store = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    check_scan(&store).await;
}

#[tokio::test]
async fn mongodb_store_scans_as_the_contract_says_on_a_standalone_server() {
    let store = MongoStore::connect(
        &testkit::mongodb_standalone_uri(),
        &unique_name("descriptors"),
    )
    .await
    .expect("connect");
    check_scan(&store).await;
}

#[test]
fn contradictory_scan_filters_are_refused() {
    let inverted = ScanFilter {
        since: Some(10),
        until: Some(10),
        ..ScanFilter::default()
    };
    let burned_by_kind = ScanFilter {
        include_burned: true,
        kind: Some(protocol::DescriptorKind::Crafted),
        ..ScanFilter::default()
    };
    for filter in [inverted, burned_by_kind] {
        assert_eq!(
            filter.validate().expect_err("refused").code(),
            protocol::ErrorCode::Unprocessable
        );
    }
}
