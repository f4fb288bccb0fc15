//! The database operations the store sends, behind one trait: the driver's
//! collection implements it, and so does the failure-injecting wrapper the
//! tests run the store on.

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::Document;
use mongodb::error::Result;
use mongodb::options::ReturnDocument;
use mongodb::{Client, ClientSession, Collection};

use super::document::OwnerUpdate;

/// Every database round trip the store makes. `session` runs the operation
/// inside that session's transaction.
#[async_trait]
pub(crate) trait Database: Send + Sync + fmt::Debug + 'static {
    /// The client, to start sessions.
    fn client(&self) -> &Client;

    /// `findAndModify` with the update's filter, update and projection; the post-image, or `None` if nothing matched.
    async fn find_one_and_update(
        &self,
        session: Option<&mut ClientSession>,
        update: &OwnerUpdate,
    ) -> Result<Option<Document>>;

    /// One document, projected.
    async fn find_one(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        projection: Document,
    ) -> Result<Option<Document>>;

    /// Every matching document, projected, sorted by `_id`.
    async fn find(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        projection: Document,
    ) -> Result<Vec<Document>>;

    /// `updateOne`; how many documents matched.
    async fn update_one(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        update: Document,
    ) -> Result<u64>;

    /// `insertOne`.
    async fn insert_one(&self, doc: Document) -> Result<()>;

    /// `insertMany`, ordered.
    async fn insert_many(&self, session: &mut ClientSession, docs: Vec<Document>) -> Result<()>;

    /// `deleteMany`.
    async fn delete_many(&self, session: &mut ClientSession, filter: Document) -> Result<()>;

    /// `insertOne` into the journal collection.
    async fn journal(&self, session: Option<&mut ClientSession>, entry: Document) -> Result<()>;

    /// `updateOne` in the journal collection; how many entries matched.
    async fn journal_update(&self, filter: Document, update: Document) -> Result<u64>;

    /// `deleteOne` in the journal collection.
    async fn journal_delete(&self, filter: Document) -> Result<()>;

    /// `commitTransaction` of the session's transaction.
    async fn commit(&self, session: &mut ClientSession) -> Result<()>;

    /// Up to `limit` documents of the journal (`journal`) or the owners'
    /// collection matching `filter`, sorted by `_id`.
    async fn page(&self, journal: bool, filter: Document, limit: i64) -> Result<Vec<Document>>;
}

/// The real thing: one collection through the official driver.
#[derive(Clone, Debug)]
pub(crate) struct Driver {
    client: Client,
    collection: Collection<Document>,
    journal: Collection<Document>,
    timeout: Duration,
}

impl Driver {
    /// `timeout` bounds every operation, the wait for a pooled connection
    /// included (the driver has no wait-queue timeout of its own).
    pub(crate) fn new(
        client: Client,
        collection: Collection<Document>,
        journal: Collection<Document>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            collection,
            journal,
            timeout,
        }
    }

    /// Runs `op` within the operation timeout; past it the outcome is
    /// unknown, reported as a network error (the store answers `Unavailable`).
    async fn bounded<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.timeout, op)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from MongoDB within {:?}", self.timeout),
                )
                .into())
            })
    }
}

#[async_trait]
impl Database for Driver {
    fn client(&self) -> &Client {
        &self.client
    }

    async fn find_one_and_update(
        &self,
        session: Option<&mut ClientSession>,
        update: &OwnerUpdate,
    ) -> Result<Option<Document>> {
        let action = self
            .collection
            .find_one_and_update(update.filter.clone(), update.update.clone())
            .projection(update.projection.clone())
            .return_document(ReturnDocument::After);
        self.bounded(async {
            match session {
                Some(session) => action.session(session).await,
                None => action.await,
            }
        })
        .await
    }

    async fn find_one(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        projection: Document,
    ) -> Result<Option<Document>> {
        let action = self.collection.find_one(filter).projection(projection);
        self.bounded(async {
            match session {
                Some(session) => action.session(session).await,
                None => action.await,
            }
        })
        .await
    }

    async fn find(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        projection: Document,
    ) -> Result<Vec<Document>> {
        let action = self
            .collection
            .find(filter)
            .projection(projection)
            .sort(mongodb::bson::doc! { "_id": 1 });
        self.bounded(async {
            match session {
                Some(session) => {
                    let mut cursor = action.session(&mut *session).await?;
                    cursor.stream(session).try_collect().await
                }
                None => action.await?.try_collect().await,
            }
        })
        .await
    }

    async fn update_one(
        &self,
        session: Option<&mut ClientSession>,
        filter: Document,
        update: Document,
    ) -> Result<u64> {
        let action = self.collection.update_one(filter, update);
        self.bounded(async {
            let result = match session {
                Some(session) => action.session(session).await?,
                None => action.await?,
            };
            Ok(result.matched_count)
        })
        .await
    }

    async fn insert_one(&self, doc: Document) -> Result<()> {
        self.bounded(self.collection.insert_one(doc).into_future())
            .await
            .map(drop)
    }

    async fn insert_many(&self, session: &mut ClientSession, docs: Vec<Document>) -> Result<()> {
        self.bounded(
            self.collection
                .insert_many(docs)
                .session(session)
                .into_future(),
        )
        .await
        .map(drop)
    }

    async fn delete_many(&self, session: &mut ClientSession, filter: Document) -> Result<()> {
        self.bounded(
            self.collection
                .delete_many(filter)
                .session(session)
                .into_future(),
        )
        .await
        .map(drop)
    }

    async fn journal(&self, session: Option<&mut ClientSession>, entry: Document) -> Result<()> {
        let action = self.journal.insert_one(entry);
        self.bounded(async {
            match session {
                Some(session) => action.session(session).await.map(drop),
                None => action.await.map(drop),
            }
        })
        .await
    }

    async fn journal_update(&self, filter: Document, update: Document) -> Result<u64> {
        self.bounded(async { Ok(self.journal.update_one(filter, update).await?.matched_count) })
            .await
    }

    async fn journal_delete(&self, filter: Document) -> Result<()> {
        self.bounded(self.journal.delete_one(filter).into_future())
            .await
            .map(drop)
    }

    async fn commit(&self, session: &mut ClientSession) -> Result<()> {
        self.bounded(session.commit_transaction().into_future())
            .await
    }

    async fn page(&self, journal: bool, filter: Document, limit: i64) -> Result<Vec<Document>> {
        let collection = if journal {
            &self.journal
        } else {
            &self.collection
        };
        self.bounded(async {
            collection
                .find(filter)
                .sort(mongodb::bson::doc! { "_id": 1 })
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await
    }
}

#[cfg(feature = "test-util")]
pub(crate) use faults::Faulty;
#[cfg(feature = "test-util")]
pub use faults::{FaultInjector, FaultKind};

#[cfg(feature = "test-util")]
mod faults {
    //! Failure injection: a [`Database`] that fails chosen operations.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use super::{Database, OwnerUpdate, Result};
    use async_trait::async_trait;
    use mongodb::bson::Document;
    use mongodb::{Client, ClientSession};

    /// How an injected failure looks to the store.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum FaultKind {
        /// The connection drops before the operation reaches the server:
        /// nothing is written, the store sees a network error.
        ConnectionDropped,
        /// The server performs the operation, then the reply is lost: the
        /// write happened, the store sees a network error.
        ReplyLost,
    }

    /// Chooses which database operations fail, and counts them. Cloning
    /// shares the plan and the counters.
    #[derive(Clone, Debug, Default)]
    pub struct FaultInjector {
        inner: Arc<Shared>,
    }

    #[derive(Debug, Default)]
    struct Shared {
        operations: AtomicU64,
        fired: AtomicU64,
        plan: Mutex<Vec<(u64, FaultKind)>>,
    }

    impl FaultInjector {
        /// No failures planned yet.
        #[must_use]
        pub fn new() -> Self {
            Self::default()
        }

        /// Makes the `n`-th operation from now (1-based) fail with `kind`.
        #[must_use]
        pub fn fail_nth(self, n: u64, kind: FaultKind) -> Self {
            let at = self.operations() + n;
            self.inner
                .plan
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((at, kind));
            self
        }

        /// Database operations sent (or failed) so far.
        #[must_use]
        pub fn operations(&self) -> u64 {
            self.inner.operations.load(Ordering::SeqCst)
        }

        /// Failures injected so far.
        #[must_use]
        pub fn fired(&self) -> u64 {
            self.inner.fired.load(Ordering::SeqCst)
        }

        fn next(&self) -> Option<FaultKind> {
            let n = self.inner.operations.fetch_add(1, Ordering::SeqCst) + 1;
            let mut plan = self
                .inner
                .plan
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let index = plan.iter().position(|(at, _)| *at == n)?;
            self.inner.fired.fetch_add(1, Ordering::SeqCst);
            Some(plan.swap_remove(index).1)
        }
    }

    /// A [`Database`] that runs on `inner` but fails what `faults` plans.
    #[derive(Debug)]
    pub(crate) struct Faulty<D> {
        pub(crate) inner: D,
        pub(crate) faults: FaultInjector,
    }

    fn network_error() -> mongodb::error::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected fault").into()
    }

    impl<D: Database> Faulty<D> {
        /// Runs `op` unless a fault is planned for it.
        async fn run<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
            match self.faults.next() {
                None => op.await,
                Some(FaultKind::ConnectionDropped) => Err(network_error()),
                Some(FaultKind::ReplyLost) => {
                    // Whatever the server answered, the store never hears it.
                    let _ = op.await;
                    Err(network_error())
                }
            }
        }
    }

    #[async_trait]
    impl<D: Database> Database for Faulty<D> {
        fn client(&self) -> &Client {
            self.inner.client()
        }

        async fn find_one_and_update(
            &self,
            session: Option<&mut ClientSession>,
            update: &OwnerUpdate,
        ) -> Result<Option<Document>> {
            self.run(self.inner.find_one_and_update(session, update))
                .await
        }

        async fn find_one(
            &self,
            session: Option<&mut ClientSession>,
            filter: Document,
            projection: Document,
        ) -> Result<Option<Document>> {
            self.run(self.inner.find_one(session, filter, projection))
                .await
        }

        async fn find(
            &self,
            session: Option<&mut ClientSession>,
            filter: Document,
            projection: Document,
        ) -> Result<Vec<Document>> {
            self.run(self.inner.find(session, filter, projection)).await
        }

        async fn update_one(
            &self,
            session: Option<&mut ClientSession>,
            filter: Document,
            update: Document,
        ) -> Result<u64> {
            self.run(self.inner.update_one(session, filter, update))
                .await
        }

        async fn insert_one(&self, doc: Document) -> Result<()> {
            self.run(self.inner.insert_one(doc)).await
        }

        async fn insert_many(
            &self,
            session: &mut ClientSession,
            docs: Vec<Document>,
        ) -> Result<()> {
            self.run(self.inner.insert_many(session, docs)).await
        }

        async fn delete_many(&self, session: &mut ClientSession, filter: Document) -> Result<()> {
            self.run(self.inner.delete_many(session, filter)).await
        }

        async fn journal(
            &self,
            session: Option<&mut ClientSession>,
            entry: Document,
        ) -> Result<()> {
            self.run(self.inner.journal(session, entry)).await
        }

        async fn journal_update(&self, filter: Document, update: Document) -> Result<u64> {
            self.run(self.inner.journal_update(filter, update)).await
        }

        async fn journal_delete(&self, filter: Document) -> Result<()> {
            self.run(self.inner.journal_delete(filter)).await
        }

        async fn commit(&self, session: &mut ClientSession) -> Result<()> {
            self.run(self.inner.commit(session)).await
        }

        async fn page(&self, journal: bool, filter: Document, limit: i64) -> Result<Vec<Document>> {
            self.run(self.inner.page(journal, filter, limit)).await
        }
    }
}
