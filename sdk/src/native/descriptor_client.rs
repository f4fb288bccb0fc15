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
//!
//! Tools that read many ids use [`DescriptorClient::stream_many`] instead:
//! chunks of ids posted straight to the service, at most
//! [`DescriptorClientBuilder::with_max_in_flight`] at a time, answers streamed
//! back in order; and [`DescriptorClient::list`] pages through the listing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use futures::{Stream, StreamExt};
use protocol::{
    BatchGetRequest, BatchGetResponse, Descriptor, DescriptorKind, ItemId, ListResponse,
    MAX_BATCH_IDS, UserId,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::http::{self, RetryPolicy, send, unreadable};
use crate::{DescriptorState, Error};

/// The path of the batch-get endpoint under the service's base URL.
const BATCH_PATH: &str = "/v1/descriptors/batch";
/// The path of the listing under the service's base URL.
const LIST_PATH: &str = "/v1/descriptors";

type Reply = oneshot::Sender<Result<DescriptorState, Error>>;

/// Settings of a [`DescriptorClient`]; built by [`DescriptorClientBuilder`].
#[derive(Clone, Debug)]
struct Config {
    endpoint: reqwest::Url,
    list_endpoint: reqwest::Url,
    bearer_token: Option<String>,
    max_in_flight: usize,
    batch_window: Duration,
    max_batch: usize,
    retries: RetryPolicy,
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
        self.config.retries = RetryPolicy {
            max_retries,
            min_delay,
            max_delay,
        };
        self
    }

    /// The timeout of one POST (default 10 s); ignored with
    /// [`DescriptorClientBuilder::with_http_client`], whose own settings apply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (a service
    /// whose reads are closed).
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.bearer_token = Some(token.into());
        self
    }

    /// The most batch POSTs [`DescriptorClient::stream_many`] keeps in
    /// flight at once (default 4, at least 1).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.config.max_in_flight = max.max(1);
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
        let base = http::base_url(&self.base_url)?;
        let mut config = self.config.clone();
        config.endpoint = http::under(&base, BATCH_PATH)?;
        config.list_endpoint = http::under(&base, LIST_PATH)?;
        let http = match config.http.take() {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(Error::transport)?,
        };
        let (requests, inbox) = mpsc::unbounded_channel();
        let config = Arc::new(config);
        tokio::spawn(Batcher::new(config.clone(), http.clone(), inbox).run());
        Ok(DescriptorClient {
            requests,
            config,
            http,
        })
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
    config: Arc<Config>,
    http: reqwest::Client,
}

/// What [`DescriptorClient::list`] asks for: the listing's filters, the page
/// size, and where to start. The default lists every live descriptor from
/// the start, 1,000 a page.
#[derive(Clone, Debug)]
pub struct ListFilter {
    /// Only descriptors of this kind.
    pub kind: Option<DescriptorKind>,
    /// Only descriptors crafted by this user.
    pub crafted_by: Option<UserId>,
    /// Only descriptors created at or after this time (ms since the epoch).
    pub since: Option<u64>,
    /// Only descriptors created before this time (ms since the epoch).
    pub until: Option<u64>,
    /// Burned ids too (the service refuses it with the other filters).
    pub include_burned: bool,
    /// Records a page, 1 to [`protocol::MAX_LIST_LIMIT`].
    pub limit: usize,
    /// Resume after this cursor (a page's `next_cursor`, same filters).
    pub cursor: Option<String>,
    /// Ask the first page for [`ListResponse::total`] (one more store query
    /// on the service); [`DescriptorClient::list`] does not ask again for
    /// the pages after it.
    pub with_total: bool,
}

/// One page of the listing as [`DescriptorClient::list_raw`] answers it:
/// [`ListResponse`] with each descriptor's JSON unparsed.
#[derive(Debug, serde::Deserialize)]
#[non_exhaustive]
pub struct RawListPage {
    /// The live descriptors of the page, in id order, each one JSON object
    /// as the service sent it.
    pub descriptors: Vec<Box<serde_json::value::RawValue>>,
    /// The burned ids of the page, in id order.
    pub burned: Vec<ItemId>,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// The listing's total, when [`ListFilter::with_total`] asked for it.
    #[serde(default)]
    pub total: Option<u64>,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            kind: None,
            crafted_by: None,
            since: None,
            until: None,
            include_burned: false,
            limit: protocol::MAX_LIST_LIMIT,
            cursor: None,
            with_total: false,
        }
    }
}

impl ListFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("limit", self.limit.to_string())];
        if let Some(kind) = self.kind {
            let kind = match kind {
                DescriptorKind::Catalog => "catalog",
                DescriptorKind::Crafted => "crafted",
            };
            query.push(("kind", kind.to_owned()));
        }
        if let Some(user) = &self.crafted_by {
            query.push(("crafted_by", user.as_str().to_owned()));
        }
        if let Some(since) = self.since {
            query.push(("since", since.to_string()));
        }
        if let Some(until) = self.until {
            query.push(("until", until.to_string()));
        }
        if self.include_burned {
            query.push(("include_burned", "true".to_owned()));
        }
        if let Some(cursor) = &self.cursor {
            query.push(("cursor", cursor.clone()));
        }
        if self.with_total {
            query.push(("with_total", "true".to_owned()));
        }
        query
    }
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
                list_endpoint: reqwest::Url::parse("http://unset.invalid/").expect("a valid URL"),
                bearer_token: None,
                max_in_flight: 4,
                batch_window: Duration::from_millis(5),
                max_batch: MAX_BATCH_IDS,
                retries: RetryPolicy {
                    max_retries: 4,
                    min_delay: Duration::from_millis(50),
                    max_delay: Duration::from_secs(2),
                },
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
    /// order, as found, missing or burned. Built on
    /// [`stream_many`](Self::stream_many) (same chunks, concurrency and
    /// retries); unlike the stream it holds every answer, and it fails with
    /// the first chunk that still fails after its retries.
    pub async fn get_many(
        &self,
        ids: impl IntoIterator<Item = ItemId>,
    ) -> Result<BatchGetResponse, Error> {
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<ItemId> = ids
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        let mut response = BatchGetResponse {
            descriptors: Vec::new(),
            missing: Vec::new(),
            burned: Vec::new(),
        };
        let mut answers = self.stream_many(distinct);
        while let Some(answer) = answers.next().await {
            match answer.map_err(|(_, error)| error)? {
                (_, DescriptorState::Ready(descriptor)) => {
                    response.descriptors.push(Descriptor::clone(&descriptor));
                }
                (id, DescriptorState::Burned) => response.burned.push(id),
                (id, DescriptorState::NotFound | DescriptorState::Loading) => {
                    response.missing.push(id);
                }
            }
        }
        Ok(response)
    }

    /// Streams the state of every id of `ids`, in the order given (an id
    /// given twice is answered twice): chunks of up to
    /// [`DescriptorClientBuilder::with_max_batch`] ids posted straight to the
    /// service, at most [`DescriptorClientBuilder::with_max_in_flight`]
    /// chunks in flight, each retried as [`DescriptorClientBuilder::with_retries`]
    /// says. A chunk that still fails answers `Err((id, error))` for each of
    /// its ids and the stream goes on. Memory stays bounded by the chunks in
    /// flight, whatever the number of ids; `ids` is read as the stream is
    /// polled.
    pub fn stream_many<I>(
        &self,
        ids: I,
    ) -> impl Stream<Item = Result<(ItemId, DescriptorState), (ItemId, Error)>> + Send + Unpin + 'static
    where
        I: IntoIterator<Item = ItemId>,
        I::IntoIter: Send + 'static,
    {
        let (config, http) = (self.config.clone(), self.http.clone());
        let in_flight = config.max_in_flight;
        futures::stream::iter(ids)
            .chunks(config.max_batch)
            .map(move |chunk| {
                let (config, http) = (config.clone(), http.clone());
                async move {
                    let result = fetch(&config, &http, &chunk).await;
                    futures::stream::iter(answers_of(chunk, result))
                }
            })
            .buffered(in_flight)
            .flatten()
            .boxed()
    }

    /// Streams the listing's pages for `filter`, following each page's
    /// cursor until the last; each page is retried as
    /// [`DescriptorClientBuilder::with_retries`] says, and an error ends the
    /// stream. A page's `next_cursor` resumes the listing after it (set it
    /// as [`ListFilter::cursor`]).
    ///
    /// One page ahead is fetched while the caller handles the current one
    /// (a background task; dropping the stream stops it), so memory stays
    /// at about two pages whatever the listing's length.
    pub fn list(
        &self,
        filter: ListFilter,
    ) -> impl Stream<Item = Result<ListResponse, Error>> + Send + Unpin + 'static {
        self.pages(filter)
    }

    /// [`list`](Self::list) with each descriptor left as the JSON the
    /// service sent ([`RawListPage`]): for tools that write descriptors out
    /// rather than read them, at a fraction of the cost of parsing each.
    pub fn list_raw(
        &self,
        filter: ListFilter,
    ) -> impl Stream<Item = Result<RawListPage, Error>> + Send + Unpin + 'static {
        self.pages(filter)
    }

    fn pages<P: ListPage>(
        &self,
        filter: ListFilter,
    ) -> impl Stream<Item = Result<P, Error>> + Send + Unpin + 'static {
        let (config, http) = (self.config.clone(), self.http.clone());
        let (pages_tx, pages_rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut next = Some(filter);
            while let Some(filter) = next.take() {
                let page = list_page::<P>(&config, &http, &filter).await;
                if let Ok(page) = &page {
                    next = page.next_cursor().map(|cursor| ListFilter {
                        cursor: Some(cursor.to_owned()),
                        with_total: false,
                        ..filter
                    });
                }
                if pages_tx.send(page).await.is_err() {
                    break;
                }
            }
        });
        futures::stream::unfold(pages_rx, |mut pages| async move {
            pages.recv().await.map(|page| (page, pages))
        })
        .boxed()
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
        config: Arc<Config>,
        http: reqwest::Client,
        inbox: mpsc::UnboundedReceiver<Vec<(ItemId, Reply)>>,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            config,
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
        let result = result.map(states_of);
        for id in ids {
            let answer = match &result {
                Err(error) => Err(error.clone()),
                Ok(answers) => answers.get(id).cloned().ok_or_else(|| left_out(id)),
            };
            for reply in self.waiting.remove(id).unwrap_or_default() {
                // A caller that stopped waiting does not need the answer.
                let _ = reply.send(answer.clone());
            }
        }
    }
}

/// Each id of `chunk` with its state from `result`, in chunk order; a failed
/// chunk answers its error for each of its ids.
fn answers_of(
    chunk: Vec<ItemId>,
    result: Result<BatchGetResponse, Error>,
) -> Vec<Result<(ItemId, DescriptorState), (ItemId, Error)>> {
    let states = match result {
        Err(error) => {
            return chunk
                .into_iter()
                .map(|id| Err((id, error.clone())))
                .collect();
        }
        Ok(response) => states_of(response),
    };
    chunk
        .into_iter()
        .map(|id| match states.get(&id) {
            Some(state) => Ok((id, state.clone())),
            None => {
                let error = left_out(&id);
                Err((id, error))
            }
        })
        .collect()
}

/// The state of every id a batch answer names.
fn states_of(response: BatchGetResponse) -> HashMap<ItemId, DescriptorState> {
    let mut states = HashMap::new();
    states.extend(
        response
            .descriptors
            .into_iter()
            .map(|d| (d.id.clone(), DescriptorState::Ready(Arc::new(d)))),
    );
    states.extend(
        response
            .missing
            .into_iter()
            .map(|id| (id, DescriptorState::NotFound)),
    );
    states.extend(
        response
            .burned
            .into_iter()
            .map(|id| (id, DescriptorState::Burned)),
    );
    states
}

fn left_out(id: &ItemId) -> Error {
    Error::Protocol(protocol::Error::MalformedMessage(format!(
        "the descriptor service left {id} out of its answer"
    )))
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
    let backoff = config.retries.backoff();
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
    let post = http.post(config.endpoint.clone()).json(&request);
    send(authorized(config, post))
        .await?
        .json()
        .await
        .map_err(unreadable)
}

/// One page of the listing, retried like a batch POST.
/// A page of the listing in one of its two forms.
trait ListPage: serde::de::DeserializeOwned + Send + 'static {
    fn next_cursor(&self) -> Option<&str>;
}

impl ListPage for ListResponse {
    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

impl ListPage for RawListPage {
    fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }
}

async fn list_page<P: ListPage>(
    config: &Config,
    http: &reqwest::Client,
    filter: &ListFilter,
) -> Result<P, Error> {
    let backoff = config.retries.backoff();
    let mut url = config.list_endpoint.clone();
    url.query_pairs_mut().extend_pairs(filter.query());
    (|| async {
        let get = http.get(url.clone());
        send(authorized(config, get))
            .await?
            .json()
            .await
            .map_err(unreadable)
    })
    .retry(backoff)
    .when(Error::is_retryable)
    .await
}

fn authorized(config: &Config, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match &config.bearer_token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}
