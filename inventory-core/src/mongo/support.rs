//! The support reads and the operator log on MongoDB.
//!
//! - **History**: every journal entry carries `h`, one `<owner>/<version>`
//!   key per owner it touched, under a multikey index (`journal_history`).
//!   An owner's versions are dense, so the page below version `before` is
//!   the point lookup `{h: {$in: [owner/before-1, …, owner/before-limit]}}`:
//!   no sort on a multikey field, and the cost does not grow with the
//!   owner's history. Without `before`, the owner document's `v` gives the
//!   top.
//! - **Custody**: entries that move crafted items list them in `x`, under a
//!   sparse multikey index (`journal_crafted`).
//! - **Operator log**: `<collection>_operator_log`, `{_id: <action id>, b:
//!   <action JSON>}`; ids sort by time, so a page is a range on `_id`.
//!
//! Entries journaled before these fields existed are not found by history
//! or custody (the audit and lookups still read them).

use std::future::IntoFuture;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use protocol::{ChangeId, ItemId, OperatorAction, OwnerId, Version, is_crafted_item_id};

use super::backend;
use super::document::{
    APPLIED_AT, CRAFTED_ITEMS, HISTORY_KEYS, ID, VERSION, applied_entry, applied_only, history_key,
    read_journal_entry,
};
use crate::{Error, JournalRecord};

/// The collections the support reads use, with the store's operation timeout.
#[derive(Clone, Debug)]
pub(super) struct SupportCollections {
    pub(super) owners: Collection<Document>,
    pub(super) journal: Collection<Document>,
    pub(super) log: Collection<Document>,
    pub(super) timeout: Duration,
}

const BODY: &str = "b";

impl SupportCollections {
    /// Creates the indexes the reads need (idempotent).
    pub(super) async fn create_indexes(&self) -> Result<(), Error> {
        let history = IndexModel::builder()
            .keys(doc! { HISTORY_KEYS: 1 })
            .options(
                IndexOptions::builder()
                    .name("journal_history".to_owned())
                    .build(),
            )
            .build();
        let crafted = IndexModel::builder()
            .keys(doc! { CRAFTED_ITEMS: 1 })
            .options(
                IndexOptions::builder()
                    .name("journal_crafted".to_owned())
                    .sparse(true)
                    .build(),
            )
            .build();
        self.journal
            .create_indexes([history, crafted])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn bounded<T>(
        &self,
        op: impl Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result.map_err(backend),
            Err(_) => Err(Error::Unavailable(format!(
                "no answer from MongoDB within {:?}",
                self.timeout
            ))),
        }
    }

    async fn records(&self, filter: Document) -> Result<Vec<JournalRecord>, Error> {
        let docs: Vec<Document> = self
            .bounded(async { self.journal.find(filter).await?.try_collect().await })
            .await?;
        docs.iter().map(record).collect()
    }

    pub(super) async fn history(
        &self,
        owner: &OwnerId,
        before: Option<Version>,
        limit: usize,
    ) -> Result<Vec<JournalRecord>, Error> {
        let top = match before {
            Some(before) => before.get(),
            None => {
                let doc = self
                    .bounded(
                        self.owners
                            .find_one(doc! { ID: owner.to_string() })
                            .projection(doc! { VERSION: 1 })
                            .into_future(),
                    )
                    .await?;
                let version = doc.and_then(|d| d.get_i64(VERSION).ok()).unwrap_or(0);
                u64::try_from(version).unwrap_or(0).saturating_add(1)
            }
        };
        let lowest = top.saturating_sub(limit as u64).max(1);
        let keys: Vec<String> = (lowest..top)
            .rev()
            .map(|v| history_key(owner, Version::new(v)))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut filter = applied_only();
        filter.insert(HISTORY_KEYS, doc! { "$in": keys });
        let mut records = self.records(filter).await?;
        let version = |r: &JournalRecord| {
            r.entry
                .versions
                .iter()
                .find(|(o, _)| o == owner)
                .map(|(_, v)| *v)
        };
        records.sort_by_key(|r| std::cmp::Reverse(version(r)));
        Ok(records)
    }

    pub(super) async fn change(&self, id: ChangeId) -> Result<Option<JournalRecord>, Error> {
        let mut filter = applied_only();
        filter.insert(ID, applied_entry(id));
        let doc = self
            .bounded(self.journal.find_one(filter).into_future())
            .await?;
        doc.as_ref().map(record).transpose()
    }

    pub(super) async fn item_changes(&self, item: &ItemId) -> Result<Vec<JournalRecord>, Error> {
        if !is_crafted_item_id(item) {
            return Ok(Vec::new());
        }
        let mut filter = applied_only();
        filter.insert(CRAFTED_ITEMS, item.as_str());
        self.records(filter).await
    }

    pub(super) async fn record_action(&self, action: &OperatorAction) -> Result<(), Error> {
        let body = serde_json::to_string(action).map_err(|e| Error::Backend(e.to_string()))?;
        self.bounded(
            self.log
                .insert_one(doc! { ID: &action.id, BODY: body })
                .into_future(),
        )
        .await
        .map(drop)
    }

    pub(super) async fn actions(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperatorAction>, Error> {
        let filter = match before {
            Some(before) => doc! { ID: { "$lt": before } },
            None => doc! {},
        };
        let docs: Vec<Document> = self
            .bounded(async {
                self.log
                    .find(filter)
                    .sort(doc! { ID: -1 })
                    .limit(i64::try_from(limit).unwrap_or(i64::MAX))
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        docs.iter()
            .map(|doc| {
                let body = doc
                    .get_str(BODY)
                    .map_err(|e| Error::Backend(format!("operator log entry: {e}")))?;
                serde_json::from_str(body)
                    .map_err(|e| Error::Backend(format!("operator log entry is malformed: {e}")))
            })
            .collect()
    }
}

fn record(doc: &Document) -> Result<JournalRecord, Error> {
    Ok(JournalRecord {
        entry: read_journal_entry(doc)?,
        applied_at: doc
            .get_i64(APPLIED_AT)
            .ok()
            .and_then(|t| u64::try_from(t).ok()),
    })
}
