//! The native descriptor client: batch gets over `reqwest`, with batching of
//! ids requested close together, coalescing of concurrent requests for the
//! same ids, chunking to the service's batch limit and retries with backoff.
//!
//! One background task (the batcher) owns every outstanding id. A request
//! hands it the ids it wants, each with a one-shot reply; the batcher attaches
//! a reply to an id already queued or in flight instead of asking again, waits
//! [`DescriptorClientBuilder::with_batch_window`] after the first queued id so
//! that ids requested close together share one POST, and answers every waiter
//! of an id from the one response that carried it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use protocol::{BatchGetRequest, BatchGetResponse, Descriptor, ErrorBody, ItemId, MAX_BATCH_IDS};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::{DescriptorState, Error};

/// The path of the batch-get endpoint under the service's base URL.
const BATCH_PATH: &str = "/v1/descriptors/batch";

type Reply = oneshot::Sender<Result<DescriptorState, Error>>;

/// Settings of a [`DescriptorClient`]; built by [`DescriptorClientBuilder`].
#[derive(Clone, Debug)]
struct Config {
    endpoint: reqwest::Url,
    batch_window: Duration,
    max_batch: usize,
    max_retries: usize,
    retry_min_delay: Duration,
    retry_max_delay: Duration,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

/// Builds a [`DescriptorClient`].
#[derive(Debug)]
#[must_use]
pub struct DescriptorClientBuilder {
    base_url: String,
    config: Config,
}

impl DescriptorClientBuilder {
    /// How long the client waits after an id is requested for more ids to
    /// share its batch (default 5 ms). Zero still batches ids requested at
    /// the same moment.
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.config.batch_window = window;
        self
    }

    /// The most ids per POST, at most [`MAX_BATCH_IDS`] (the default).
    pub fn with_max_batch(mut self, max: usize) -> Self {
        self.config.max_batch = max.clamp(1, MAX_BATCH_IDS);
        self
    }

    /// How many times a failed POST is retried on a network error, a 5xx or a
    /// 429 (default 4), and the exponential delays between tries (default
    /// 50 ms growing to 2 s, with jitter).
    pub fn with_retries(
        mut self,
        max_retries: usize,
        min_delay: Duration,
        max_delay: Duration,
    ) -> Self {
        self.config.max_retries = max_retries;
        self.config.retry_min_delay = min_delay;
        self.config.retry_max_delay = max_delay;
        self
    }

    /// The timeout of one POST (default 10 s); ignored with
    /// [`DescriptorClientBuilder::with_http_client`], whose own settings apply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Uses this HTTP client (shared connection pool, proxies, TLS settings).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.config.http = Some(http);
        self
    }

    /// Builds the client and starts its batcher on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn build(self) -> Result<DescriptorClient, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: self.base_url.clone(),
            reason,
        };
        let base = reqwest::Url::parse(&self.base_url).map_err(|e| invalid(e.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(invalid("not a base URL".into()));
        }
        let mut config = self.config.clone();
        config.endpoint = base
            .join(&format!(
                "{}{BATCH_PATH}",
                base.path().trim_end_matches('/')
            ))
            .map_err(|e| invalid(e.to_string()))?;
        let http = match config.http.take() {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(Error::transport)?,
        };
        let (requests, inbox) = mpsc::unbounded_channel();
        tokio::spawn(Batcher::new(config, http, inbox).run());
        Ok(DescriptorClient { requests })
    }
}

/// A client of the descriptor service's batch get, usable on its own by tools
/// and by [`InventoryClient`](crate::InventoryClient) for its view.
///
/// Cheap to clone: clones share one batcher, so their requests are batched and
/// coalesced together. The batcher stops when the last clone is dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), sdk::Error> {
/// use sdk::protocol::ItemId;
///
/// let client = sdk::DescriptorClient::new("http://127.0.0.1:7100")?;
/// let answer = client.get_many([ItemId::parse("sword-7f3a")?]).await?;
/// for descriptor in &answer.descriptors {
///     tracing::info!(id = %descriptor.id, name = %descriptor.name, "found");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DescriptorClient {
    requests: mpsc::UnboundedSender<Vec<(ItemId, Reply)>>,
}

impl DescriptorClient {
    /// A builder for a client of the service at `base_url` (for example
    /// `http://descriptors:7100`; the batch endpoint is under
    /// `/v1/descriptors/batch`).
    pub fn builder(base_url: impl Into<String>) -> DescriptorClientBuilder {
        DescriptorClientBuilder {
            base_url: base_url.into(),
            config: Config {
                endpoint: reqwest::Url::parse("http://unset.invalid/").expect("a valid URL"),
                batch_window: Duration::from_millis(5),
                max_batch: MAX_BATCH_IDS,
                max_retries: 4,
                retry_min_delay: Duration::from_millis(50),
                retry_max_delay: Duration::from_secs(2),
                timeout: Duration::from_secs(10),
                http: None,
            },
        }
    }

    /// A client with the default settings.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(base_url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// Fetches the descriptors of `ids`: any number of ids, duplicates
    /// allowed. The answer lists every distinct id once, in first-requested
    /// order, as found, missing or burned.
    pub async fn get_many(
        &self,
        ids: impl IntoIterator<Item = ItemId>,
    ) -> Result<BatchGetResponse, Error> {
        let mut seen = std::collections::HashSet::new();
        let (replies, answers): (Vec<_>, Vec<_>) = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .map(|id| {
                let (tx, rx) = oneshot::channel();
                ((id.clone(), tx), (id, rx))
            })
            .unzip();
        if replies.is_empty() {
            return Ok(BatchGetResponse {
                descriptors: Vec::new(),
                missing: Vec::new(),
                burned: Vec::new(),
            });
        }
        self.requests.send(replies).map_err(|_| Error::Closed)?;
        let mut response = BatchGetResponse {
            descriptors: Vec::new(),
            missing: Vec::new(),
            burned: Vec::new(),
        };
        for (id, answer) in answers {
            match answer.await.map_err(|_| Error::Closed)?? {
                DescriptorState::Ready(descriptor) => {
                    response.descriptors.push(Descriptor::clone(&descriptor));
                }
                DescriptorState::Burned => response.burned.push(id),
                DescriptorState::NotFound | DescriptorState::Loading => response.missing.push(id),
            }
        }
        Ok(response)
    }

    /// Fetches one descriptor; batched with the ids other callers request at
    /// about the same time.
    pub async fn get(&self, id: ItemId) -> Result<DescriptorState, Error> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(vec![(id, tx)])
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// The background task that owns every outstanding id.
struct Batcher {
    config: Arc<Config>,
    http: reqwest::Client,
    inbox: mpsc::UnboundedReceiver<Vec<(ItemId, Reply)>>,
    /// Every id queued or in flight, with everyone waiting for it.
    waiting: HashMap<ItemId, Vec<Reply>>,
    /// Ids not sent yet, in request order.
    queued: Vec<ItemId>,
    /// When the queued ids are sent, if nothing fills a batch first.
    deadline: Option<Instant>,
    done_tx: mpsc::UnboundedSender<(Vec<ItemId>, Result<BatchGetResponse, Error>)>,
    done_rx: mpsc::UnboundedReceiver<(Vec<ItemId>, Result<BatchGetResponse, Error>)>,
}

impl Batcher {
    fn new(
        config: Config,
        http: reqwest::Client,
        inbox: mpsc::UnboundedReceiver<Vec<(ItemId, Reply)>>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            config: Arc::new(config),
            http,
            inbox,
            waiting: HashMap::new(),
            queued: Vec::new(),
            deadline: None,
            done_tx,
            done_rx,
        }
    }

    async fn run(mut self) {
        loop {
            let deadline = self.deadline;
            tokio::select! {
                request = self.inbox.recv() => match request {
                    Some(request) => self.enqueue(request),
                    // Every client handle is gone, so nobody awaits an answer.
                    None => return,
                },
                Some((ids, result)) = self.done_rx.recv() => self.answer(&ids, result),
                () = sleep_until(deadline), if deadline.is_some() => self.flush(),
            }
        }
    }

    fn enqueue(&mut self, request: Vec<(ItemId, Reply)>) {
        for (id, reply) in request {
            let waiters = self.waiting.entry(id.clone()).or_default();
            if waiters.is_empty() {
                self.queued.push(id);
            }
            waiters.push(reply);
        }
        while self.queued.len() >= self.config.max_batch {
            let batch: Vec<ItemId> = self.queued.drain(..self.config.max_batch).collect();
            self.send(batch);
        }
        self.deadline = match (self.queued.is_empty(), self.deadline) {
            (true, _) => None,
            (false, Some(deadline)) => Some(deadline),
            (false, None) => Some(Instant::now() + self.config.batch_window),
        };
    }

    fn flush(&mut self) {
        self.deadline = None;
        let queued = std::mem::take(&mut self.queued);
        for batch in queued.chunks(self.config.max_batch) {
            self.send(batch.to_vec());
        }
    }

    fn send(&self, ids: Vec<ItemId>) {
        let (config, http, done) = (self.config.clone(), self.http.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let result = fetch(&config, &http, &ids).await;
            // The batcher is gone only when every client is.
            let _ = done.send((ids, result));
        });
    }

    fn answer(&mut self, ids: &[ItemId], result: Result<BatchGetResponse, Error>) {
        let mut answers: HashMap<ItemId, DescriptorState> = HashMap::new();
        let result = result.map(|response| {
            answers.extend(
                response
                    .descriptors
                    .into_iter()
                    .map(|d| (d.id.clone(), DescriptorState::Ready(Arc::new(d)))),
            );
            answers.extend(
                response
                    .missing
                    .into_iter()
                    .map(|id| (id, DescriptorState::NotFound)),
            );
            answers.extend(
                response
                    .burned
                    .into_iter()
                    .map(|id| (id, DescriptorState::Burned)),
            );
        });
        for id in ids {
            let answer = match &result {
                Err(error) => Err(error.clone()),
                Ok(()) => answers.get(id).cloned().ok_or_else(|| {
                    Error::Protocol(protocol::Error::MalformedMessage(format!(
                        "the descriptor service left {id} out of its answer"
                    )))
                }),
            };
            for reply in self.waiting.remove(id).unwrap_or_default() {
                // A caller that stopped waiting does not need the answer.
                let _ = reply.send(answer.clone());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// One batch POST, retried with exponential backoff while the failure is
/// retryable.
async fn fetch(
    config: &Config,
    http: &reqwest::Client,
    ids: &[ItemId],
) -> Result<BatchGetResponse, Error> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(config.retry_min_delay)
        .with_max_delay(config.retry_max_delay)
        .with_max_times(config.max_retries)
        .with_jitter();
    (|| post(config, http, ids))
        .retry(backoff)
        .when(Error::is_retryable)
        .notify(|error, delay| {
            tracing::debug!(%error, ?delay, ids = ids.len(), "retrying descriptor batch");
        })
        .await
}

async fn post(
    config: &Config,
    http: &reqwest::Client,
    ids: &[ItemId],
) -> Result<BatchGetResponse, Error> {
    let request = BatchGetRequest { ids: ids.to_vec() };
    let response = http
        .post(config.endpoint.clone())
        .json(&request)
        .send()
        .await
        .map_err(Error::transport)?;
    let status = response.status();
    if status.is_success() {
        return response.json().await.map_err(|e| {
            if e.is_decode() {
                Error::Protocol(protocol::Error::MalformedMessage(e.to_string()))
            } else {
                Error::transport(e)
            }
        });
    }
    // A 5xx keeps its body only when the body's code is a 5xx one too, so that
    // whatever the body says, a server failure stays retryable.
    match response.json::<ErrorBody>().await {
        Ok(body) if !status.is_server_error() || body.code.http_status() >= 500 => {
            Err(Error::Server(body))
        }
        _ => Err(Error::HttpStatus {
            status: status.as_u16(),
        }),
    }
}
