//! The conformance suite against every store.

use std::sync::Arc;

use descriptor_service::conformance::{CountingStore, check_store, crafted};
use descriptor_service::{Descriptors, Lookup, MongoStore};
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
    drop(store);
    let reopened =
        descriptor_service::SqliteStore::open(dir.path().join("descriptors.db")).expect("reopen");
    check_store(&reopened, "b").await;
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
        .load((0..500).map(|n| crafted(&format!("m{n}"))).collect())
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
    assert_eq!(sqlite.load(batch()).await.expect("load"), 10);
    assert_eq!(sqlite.load(batch()).await.expect("reload"), 0);
    let mongo = MongoStore::connect(&mongodb_uri(), &unique_name("descriptors"))
        .await
        .expect("connect");
    assert_eq!(mongo.load(batch()).await.expect("load"), 10);
    assert_eq!(mongo.load(batch()).await.expect("reload"), 0);
}
