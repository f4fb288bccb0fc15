//! The cache's guarantees that HTTP tests cannot reach: a load racing an
//! invalidation never leaves the old answer behind.

use std::sync::Arc;

use async_trait::async_trait;
use descriptor_service::conformance::crafted;
use descriptor_service::{
    Absence, DescriptorStore, Descriptors, Error, Lookup, Record, ScanFilter, SqliteStore,
    WriteOutcome,
};
use protocol::{BurnOutcome, Descriptor, ItemId};
use tokio::sync::Semaphore;

use crate::common::sqlite_store;

/// A store whose reads answer what they read, but only once let through.
#[derive(Debug)]
struct GatedStore {
    inner: SqliteStore,
    gate: Arc<Semaphore>,
    read: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl DescriptorStore for GatedStore {
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error> {
        let records = self.inner.get_many(ids).await?;
        self.read.notify_one();
        self.gate.acquire().await.expect("open gate").forget();
        Ok(records)
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

#[tokio::test]
async fn a_load_racing_a_burn_does_not_cache_the_burned_descriptor() {
    let (_dir, inner) = sqlite_store();
    let sword = crafted("sword-1");
    inner.create(&sword).await.expect("create");
    let gate = Arc::new(Semaphore::new(0));
    let read = Arc::new(tokio::sync::Notify::new());
    let store = Arc::new(GatedStore {
        inner,
        gate: Arc::clone(&gate),
        read: Arc::clone(&read),
    });
    let descriptors = Descriptors::builder(store.clone()).build();
    let cache = descriptors.cache().clone();
    let ids = vec![sword.id.clone()];
    let racing = tokio::spawn({
        let cache = cache.clone();
        let ids = ids.clone();
        async move { cache.get_many(&ids).await }
    });
    // The load has read the live descriptor; now it is burned.
    read.notified().await;
    store.burn(&sword.id).await.expect("burn");
    cache.burned(&sword.id).await;
    gate.add_permits(10);
    let raced = racing.await.expect("join").expect("load");
    assert!(
        matches!(raced[0], Lookup::Found(_)),
        "the racing read saw it live"
    );
    let after = cache.get_many(&ids).await.expect("get");
    assert!(
        matches!(after[0], Lookup::Absent(Absence::Burned)),
        "{after:?}"
    );
}
