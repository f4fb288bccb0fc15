//! The conformance suite against every store.

use descriptor_service::conformance::check_store;

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
