//! The one writer thread and its group commit.
//!
//! The thread owns the only write connection. Each turn it takes every queued
//! request (up to the batch limit), hands them to the store's
//! [`BatchWriter`], which writes them in ONE transaction and commits once (one
//! fsync per batch under `synchronous = FULL`), and only then answers each
//! caller. While it commits, new requests queue up and form the next batch, so
//! the batch size adapts to the load. One refinement: the callers answered by
//! the last commit often come straight back with their next request, so when a
//! batch is smaller than the last one the writer lingers a moment (at most the
//! configured linger, well under an fsync) for them to join it rather than
//! wait a whole commit. A lone caller never waits: its last batch was 1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::BatchWriter;

/// How the writer forms batches.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batching {
    /// The most requests in one transaction.
    pub(super) limit: usize,
    /// The longest the writer waits for the callers it just answered.
    pub(super) linger: Duration,
}

/// One request waiting for the writer, and where to send its outcome.
pub(super) struct Request<W: BatchWriter> {
    pub(super) request: W::Request,
    pub(super) reply: oneshot::Sender<W::Outcome>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) batches: AtomicU64,
    pub(super) requests: AtomicU64,
    pub(super) largest_batch: AtomicU64,
}

/// The writer thread's loop: runs until every sender is gone and the queue is
/// drained.
pub(super) fn run<W: BatchWriter>(
    mut conn: Connection,
    mut writer: W,
    queue: &Receiver<Request<W>>,
    batching: Batching,
    counters: &Counters,
) {
    let mut batch = Vec::with_capacity(batching.limit);
    let mut requests = Vec::with_capacity(batching.limit);
    let mut last_size = 0;
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < batching.limit {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let expected = last_size.min(batching.limit);
        let deadline = Instant::now() + batching.linger;
        while batch.len() < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match queue.recv_timeout(left) {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        last_size = batch.len();
        let replies: Vec<_> = batch
            .drain(..)
            .map(|Request { request, reply }| {
                requests.push(request);
                reply
            })
            .collect();
        let outcomes = writer.write_batch(&mut conn, &requests);
        requests.clear();
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        counters
            .largest_batch
            .fetch_max(replies.len() as u64, Ordering::Relaxed);
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that stopped waiting (its future was dropped) learns
            // the outcome by asking again.
            let _ = reply.send(outcome);
        }
    }
}
