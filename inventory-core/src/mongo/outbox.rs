//! The MongoDB outbox: the journal collection read through a change stream.
//!
//! On a replica set every change inserts its journal entry in the change's
//! own transaction, so the stream of inserts into `<collection>_journal` is
//! the record of applied changes in commit order (the oplog's order), and a
//! stream's resume token is a durable position in it. Nothing is written on
//! the write path for the outbox's sake.
//!
//! - **Positions**: the event's cluster time (a total order: one oplog entry
//!   per transaction) and its resume token, as one BSON document.
//! - **The mark**: `<collection>_outbox` document `{_id: "mark", ts, t}`,
//!   moved only forward (its filter compares cluster times). The first
//!   store to connect creates it at the cluster time of that moment, so
//!   nothing older is published again.
//! - **One publisher per deployment**: every node's store reads the same
//!   journal, so a lease document `{_id: "lease", holder, until}` names the
//!   one store instance whose relays publish; the others' reads answer
//!   nothing. The holder renews it while it reads; when it dies, another
//!   takes over after the lease ran out and starts from the mark (the changes
//!   since are published twice: consumers discard repeats by version).
//!   Nodes' clocks must agree to well within the lease.
//! - **Reading**: each relay keeps its stream open between reads (a few per
//!   store instance, keyed by the position they reached); a read returns at
//!   the end of the server's batch, or after waiting [`AWAIT`] for one, so
//!   the relay reads again at once ([`Outbox::waits_for_news`]) and changes
//!   applied by other nodes reach it without a poll.
//! - A position the server no longer holds (the oplog rolled past it) is
//!   reported and the stream starts again from the present: the changes in
//!   between are not published, and caches heal at each player's next change.
//!
//! A standalone server has no change streams; there the store has no outbox
//! and [`Inventory`](crate::Inventory) publishes inline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mongodb::bson::{self, Document, Timestamp, doc};
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::{Client, Collection};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use super::document::{ID, read_journal_entry};
use super::{backend, error_code, is_duplicate_key};
use crate::{Error, Outbox, OutboxEntry, OutboxPosition};

/// How long a read waits for the server to report new changes.
pub(crate) const AWAIT: Duration = Duration::from_millis(20);

/// Open streams kept per store instance (one per relay reading it).
const STREAMS: usize = 4;

const MARK: &str = "mark";
const LEASE: &str = "lease";

/// The journal's inserts, as the driver streams them.
type JournalStream = ChangeStream<ChangeStreamEvent<Document>>;

/// A position: where a change stood in the journal's stream.
#[derive(Serialize, Deserialize)]
struct Position {
    ts: Timestamp,
    t: ResumeToken,
}

impl Position {
    fn encode(&self) -> Result<OutboxPosition, Error> {
        bson::to_vec(self)
            .map(OutboxPosition::from_bytes)
            .map_err(|e| Error::Backend(format!("cannot encode an outbox position: {e}")))
    }

    fn decode(position: &OutboxPosition) -> Result<Self, Error> {
        bson::from_slice(position.as_bytes())
            .map_err(|e| Error::Backend(format!("not a MongoDB outbox position: {e}")))
    }
}

/// Where this store instance stands with the publishing lease.
enum Lease {
    /// It held the lease and still does.
    Held,
    /// It has just taken the lease (the first time, or from a node that
    /// died): its reads start again from the mark.
    TakenOver,
    /// Another instance holds it.
    Elsewhere,
}

/// Where a new stream starts.
enum Start {
    After(ResumeToken),
    At(Timestamp),
}

/// The journal's change stream as an [`Outbox`].
pub(crate) struct ChangeFeed {
    journal: Collection<Document>,
    marks: Collection<Document>,
    holder: String,
    lease: Duration,
    signal: Arc<Notify>,
    /// When this instance last renewed the lease, if it holds it.
    leased: Mutex<Option<Instant>>,
    /// Open streams, keyed by the position they reached (`None`: the mark,
    /// for a stream that has returned nothing yet).
    streams: Mutex<Vec<(Option<OutboxPosition>, JournalStream)>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("journal", &self.journal.name())
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// The feed over `journal`, its mark and lease in `<collection>_outbox`;
    /// creates the mark at the present if there is none yet.
    pub(crate) async fn open(
        client: &Client,
        database: &str,
        collection: &str,
        lease: Duration,
    ) -> Result<Self, Error> {
        let db = client.database(database);
        let marks = db.collection::<Document>(&format!("{collection}_outbox"));
        let mut session = client.start_session().await.map_err(backend)?;
        marks
            .update_one(
                doc! { ID: MARK },
                doc! { "$setOnInsert": { "created": true } },
            )
            .upsert(true)
            .session(&mut session)
            .await
            .map_err(backend)?;
        let now = session.operation_time().ok_or_else(|| {
            Error::Backend("MongoDB reported no operation time: no change streams here".into())
        })?;
        // Only the first store to connect sets the start.
        marks
            .update_one(
                doc! { ID: MARK, "ts": { "$exists": false } },
                doc! { "$set": { "ts": now } },
            )
            .await
            .map_err(backend)?;
        Ok(Self {
            journal: db.collection(&format!("{collection}_journal")),
            marks,
            holder: protocol::ChangeId::random().to_string(),
            lease,
            signal: Arc::new(Notify::new()),
            leased: Mutex::new(None),
            streams: Mutex::new(Vec::new()),
        })
    }

    /// Wakes the relays: a change was applied through this instance.
    pub(crate) fn notify(&self) {
        self.signal.notify_waiters();
    }

    /// Takes or renews the lease when a third of it has passed. Losing it
    /// closes this instance's streams.
    async fn hold_lease(&self) -> Result<Lease, Error> {
        let mut leased = self.leased.lock().await;
        if let Some(at) = *leased
            && at.elapsed() < self.lease / 3
        {
            return Ok(Lease::Held);
        }
        let now = bson::DateTime::now();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let until = bson::DateTime::from_millis(now.timestamp_millis().saturating_add(lease_ms));
        let taken = self
            .marks
            .update_one(
                doc! { ID: LEASE, "$or": [{ "holder": &self.holder }, { "until": { "$lt": now } }] },
                doc! { "$set": { "holder": &self.holder, "until": until } },
            )
            .upsert(true)
            .await;
        let held = match taken {
            Ok(_) => true,
            // Someone else holds it: the upsert's insert collided.
            Err(e) if is_duplicate_key(&e) => false,
            Err(e) => return Err(backend(e)),
        };
        let was_held = leased.is_some();
        *leased = held.then(Instant::now);
        if held != was_held {
            tracing::info!(holder = %self.holder, held, "outbox lease");
            if !held {
                self.streams.lock().await.clear();
            }
        }
        Ok(match (held, was_held) {
            (false, _) => Lease::Elsewhere,
            (true, true) => Lease::Held,
            (true, false) => Lease::TakenOver,
        })
    }

    /// Where reading starts when no position is given: the mark.
    async fn mark(&self) -> Result<Start, Error> {
        let mark = self
            .marks
            .find_one(doc! { ID: MARK })
            .await
            .map_err(backend)?
            .ok_or_else(|| Error::Backend("the outbox mark document is missing".into()))?;
        if let Ok(token) = mark.get_document("t") {
            let token = bson::from_document(doc! { "t": token.clone() })
                .map(|p: TokenOnly| p.t)
                .map_err(|e| Error::Backend(format!("the outbox mark is malformed: {e}")))?;
            return Ok(Start::After(token));
        }
        mark.get_timestamp("ts")
            .map(Start::At)
            .map_err(|e| Error::Backend(format!("the outbox mark is malformed: {e}")))
    }

    async fn open_stream(&self, start: Start) -> Result<JournalStream, Error> {
        let watch = self
            .journal
            .watch()
            .pipeline([doc! { "$match": { "operationType": "insert" } }])
            .max_await_time(AWAIT);
        let opened = match start {
            Start::After(token) => watch.resume_after(token).await,
            Start::At(ts) => watch.start_at_operation_time(ts).await,
        };
        match opened {
            Ok(stream) => Ok(stream),
            Err(e) if is_history_lost(&e) => {
                tracing::error!(error = %e, "the outbox position is no longer in the oplog: starting from the present; changes in between are not published (caches heal at each player's next change)");
                self.journal
                    .watch()
                    .pipeline([doc! { "$match": { "operationType": "insert" } }])
                    .max_await_time(AWAIT)
                    .await
                    .map_err(backend)
            }
            Err(e) => Err(backend(e)),
        }
    }
}

#[derive(Deserialize)]
struct TokenOnly {
    t: ResumeToken,
}

/// The change stream cannot resume from where it was asked to.
fn is_history_lost(e: &mongodb::error::Error) -> bool {
    // ChangeStreamHistoryLost, ChangeStreamFatalError.
    matches!(error_code(e), Some(286 | 280))
}

#[async_trait]
impl Outbox for ChangeFeed {
    /// Answers nothing while another store instance holds the lease. When
    /// this instance takes it over, it reads from the mark, whatever `after`
    /// says.
    async fn read_after(
        &self,
        after: Option<&OutboxPosition>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, Error> {
        let after = match self.hold_lease().await? {
            Lease::Held => after,
            Lease::TakenOver => None,
            Lease::Elsewhere => {
                // Nothing to do: wait as a read would have.
                tokio::time::sleep(AWAIT).await;
                return Ok(Vec::new());
            }
        };
        let kept = {
            let mut streams = self.streams.lock().await;
            streams
                .iter()
                .position(|(at, _)| at.as_ref() == after)
                .map(|i| streams.swap_remove(i))
        };
        let (mut reached, mut stream) = match kept {
            Some(kept) => kept,
            None => {
                let start = match after {
                    Some(after) => Start::After(Position::decode(after)?.t),
                    None => self.mark().await?,
                };
                (after.cloned(), self.open_stream(start).await?)
            }
        };
        let mut entries = Vec::new();
        while entries.len() < limit {
            let Some(event) = stream.next_if_any().await.map_err(backend)? else {
                break;
            };
            let position = Position {
                ts: event.cluster_time.ok_or_else(|| {
                    Error::Backend("a change stream event without a cluster time".into())
                })?,
                t: event.id.clone(),
            }
            .encode()?;
            let document = event.full_document.as_ref().ok_or_else(|| {
                Error::Backend("a journal insert event without its document".into())
            })?;
            entries.push(OutboxEntry {
                position: position.clone(),
                event: read_journal_entry(document)?.event(),
            });
            reached = Some(position);
            // The end of the server's batch: return what it gave rather than
            // wait for more.
            if stream.resume_token().as_ref() != Some(&event.id) {
                break;
            }
        }
        let mut streams = self.streams.lock().await;
        if streams.len() >= STREAMS {
            streams.remove(0);
        }
        streams.push((reached, stream));
        Ok(entries)
    }

    /// Moves the mark only forward: its filter compares cluster times.
    async fn mark_published(&self, position: &OutboxPosition) -> Result<(), Error> {
        let Position { ts, t } = Position::decode(position)?;
        let token = bson::to_bson(&t)
            .map_err(|e| Error::Backend(format!("cannot encode a resume token: {e}")))?;
        self.marks
            .update_one(
                doc! { ID: MARK, "ts": { "$lte": ts } },
                doc! { "$set": { "ts": ts, "t": token } },
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn signal(&self) -> Arc<Notify> {
        Arc::clone(&self.signal)
    }

    fn waits_for_news(&self) -> bool {
        true
    }
}
