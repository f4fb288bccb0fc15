//! The MongoDB store: the `descriptors` collection, `_id` = descriptor id.
//!
//! A live document is `{_id, body: <descriptor>}`; a tombstone is
//! `{_id, burned: true}` with the body removed. A batch read is one
//! `find({_id: {$in: ids}})`; writes are single-document atomic operations
//! (insert, conditional `find_one_and_update`), so no transaction is needed
//! and a standalone server works as well as a replica set. A scan is one
//! `find` sorted by `_id`; filtering by crafter it uses the index
//! `{body.crafted_by: 1, _id: 1}` that [`MongoStore::connect`] ensures.

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection, IndexModel};
use protocol::{BurnOutcome, Descriptor, ItemId};
use serde::{Deserialize, Serialize};

use super::{
    DescriptorStore, Record, ScanFilter, WriteOutcome, classify_failed_create,
    classify_failed_revise, kind_name,
};
use crate::Error;

const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    #[serde(rename = "_id")]
    id: ItemId,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    burned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Descriptor>,
}

impl Document {
    fn into_record(self) -> Result<Record, Error> {
        match (self.burned, self.body) {
            (true, _) => Ok(Record::Burned(self.id)),
            (false, Some(body)) => Ok(Record::Live(body)),
            (false, None) => Err(Error::Internal(format!(
                "descriptor {} has neither body nor tombstone",
                self.id
            ))),
        }
    }
}

fn to_bson(descriptor: &Descriptor) -> Result<bson::Document, Error> {
    bson::to_document(descriptor).map_err(|e| Error::Internal(format!("bson: {e}")))
}

/// Descriptors in a MongoDB collection.
#[derive(Clone, Debug)]
pub struct MongoStore {
    collection: Collection<Document>,
}

impl MongoStore {
    /// Connects to `uri`, uses `database.descriptors` and ensures its
    /// indexes ([`ensure_indexes`](Self::ensure_indexes)).
    pub async fn connect(uri: &str, database: &str) -> Result<Self, Error> {
        let client = Client::with_uri_str(uri).await?;
        let store = Self::from_client(&client, database);
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// Creates the indexes the scan needs, if missing (the crafter index).
    pub async fn ensure_indexes(&self) -> Result<(), Error> {
        self.collection
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "body.crafted_by": 1, "_id": 1 })
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// Uses `database.descriptors` through an existing client, without
    /// creating indexes.
    #[must_use]
    pub fn from_client(client: &Client, database: &str) -> Self {
        Self {
            collection: client.database(database).collection("descriptors"),
        }
    }

    /// Inserts many new descriptors with unordered bulk inserts, skipping ids
    /// already stored (bulk loading for tools and benchmarks).
    pub async fn insert_many(&self, descriptors: Vec<Descriptor>) -> Result<usize, Error> {
        if descriptors.is_empty() {
            return Ok(0);
        }
        let total = descriptors.len();
        let documents = descriptors.into_iter().map(|body| Document {
            id: body.id.clone(),
            burned: false,
            body: Some(body),
        });
        match self.collection.insert_many(documents).ordered(false).await {
            Ok(result) => Ok(result.inserted_ids.len()),
            Err(e) => match *e.kind {
                ErrorKind::InsertMany(ref failure)
                    if failure.write_concern_error.is_none()
                        && failure
                            .write_errors
                            .iter()
                            .flatten()
                            .all(|w| w.code == DUPLICATE_KEY) =>
                {
                    Ok(total - failure.write_errors.as_ref().map_or(0, Vec::len))
                }
                _ => Err(e.into()),
            },
        }
    }

    async fn read_one(&self, id: &ItemId) -> Result<Option<Record>, Error> {
        self.collection
            .find_one(doc! { "_id": id.as_str() })
            .await?
            .map(Document::into_record)
            .transpose()
    }
}

#[async_trait]
impl DescriptorStore for MongoStore {
    async fn get_many(&self, ids: &[ItemId]) -> Result<Vec<Record>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(ItemId::as_str).collect();
        // One reply for the whole batch: without a batch size the server
        // answers 101 documents and the rest in a second round trip.
        let batch_size = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let documents: Vec<Document> = self
            .collection
            .find(doc! { "_id": { "$in": ids } })
            .batch_size(batch_size)
            .await?
            .try_collect()
            .await?;
        documents.into_iter().map(Document::into_record).collect()
    }

    async fn create(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        let document = Document {
            id: descriptor.id.clone(),
            burned: false,
            body: Some(descriptor.clone()),
        };
        match self.collection.insert_one(document).await {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(e) => match *e.kind {
                ErrorKind::Write(WriteFailure::WriteError(ref w)) if w.code == DUPLICATE_KEY => {
                    classify_failed_create(
                        self.read_one(&descriptor.id).await?.as_ref(),
                        descriptor,
                    )
                }
                _ => Err(e.into()),
            },
        }
    }

    async fn revise(&self, descriptor: &Descriptor) -> Result<WriteOutcome, Error> {
        let previous = i64::from(descriptor.revision) - 1;
        let updated = self
            .collection
            .find_one_and_update(
                doc! {
                    "_id": descriptor.id.as_str(),
                    "burned": { "$ne": true },
                    "body.kind": "catalog",
                    "body.revision": previous,
                },
                doc! { "$set": { "body": to_bson(descriptor)? } },
            )
            .return_document(ReturnDocument::Before)
            .await?;
        if updated.is_some() {
            return Ok(WriteOutcome::Applied);
        }
        classify_failed_revise(self.read_one(&descriptor.id).await?.as_ref(), descriptor)
    }

    async fn burn(&self, id: &ItemId) -> Result<BurnOutcome, Error> {
        // The common case is one plain update; only a burn that matched
        // nothing reads to tell a retried burn from an unknown id.
        let burned = self
            .collection
            .update_one(
                doc! { "_id": id.as_str(), "burned": { "$ne": true } },
                doc! { "$set": { "burned": true }, "$unset": { "body": "" } },
            )
            .await?;
        if burned.matched_count == 1 {
            return Ok(BurnOutcome::Burned);
        }
        match self.read_one(id).await? {
            Some(Record::Burned(_)) => Ok(BurnOutcome::AlreadyBurned),
            Some(Record::Live(_)) => Err(Error::Internal(format!(
                "descriptor {id} is live but its burn matched nothing"
            ))),
            None => Err(Error::NotFound(id.clone())),
        }
    }

    async fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<&ItemId>,
        limit: usize,
    ) -> Result<Vec<Record>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let documents: Vec<Document> = self
            .collection
            .find(selection(filter, after))
            .sort(doc! { "_id": 1 })
            .limit(limit)
            .batch_size(u32::try_from(limit).unwrap_or(u32::MAX))
            .await?
            .try_collect()
            .await?;
        documents.into_iter().map(Document::into_record).collect()
    }

    async fn count(&self, filter: &ScanFilter) -> Result<u64, Error> {
        Ok(self
            .collection
            .count_documents(selection(filter, None))
            .await?)
    }

    async fn ping(&self) -> Result<(), Error> {
        self.collection
            .client()
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await?;
        Ok(())
    }

    /// Kept in `<database>.descriptors_meta` under `_id: "identity"`: the
    /// first caller's insert makes it (a racing second insert hits the
    /// unique `_id`), and everyone reads the one stored.
    async fn identity(&self) -> Result<String, Error> {
        let meta = self
            .collection
            .client()
            .database(self.collection.namespace().db.as_str())
            .collection::<bson::Document>("descriptors_meta");
        let read = async || -> Result<Option<String>, Error> {
            let stored = meta.find_one(doc! { "_id": "identity" }).await?;
            Ok(stored.and_then(|meta| meta.get_str("value").ok().map(str::to_owned)))
        };
        if let Some(identity) = read().await? {
            return Ok(identity);
        }
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        match meta
            .insert_one(doc! { "_id": "identity", "value": fresh })
            .await
        {
            Ok(_) => {}
            Err(e) if matches!(*e.kind, ErrorKind::Write(WriteFailure::WriteError(ref w)) if w.code == DUPLICATE_KEY) =>
                {}
            Err(e) => return Err(e.into()),
        }
        read()
            .await?
            .ok_or_else(|| Error::Internal("the store's identity was not stored".into()))
    }
}

/// The query selecting what `filter` selects after the id `after`.
fn selection(filter: &ScanFilter, after: Option<&ItemId>) -> bson::Document {
    let mut query = doc! {};
    if let Some(after) = after {
        query.insert("_id", doc! { "$gt": after.as_str() });
    }
    if !filter.include_burned {
        query.insert("burned", doc! { "$ne": true });
    }
    if let Some(kind) = filter.kind {
        query.insert("body.kind", kind_name(kind));
    }
    if let Some(user) = &filter.crafted_by {
        query.insert("body.crafted_by", user.as_str());
    }
    let time = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let mut created = doc! {};
    if let Some(since) = filter.since {
        created.insert("$gte", time(since));
    }
    if let Some(until) = filter.until {
        created.insert("$lt", time(until));
    }
    if !created.is_empty() {
        query.insert("body.created_at", created);
    }
    query
}
