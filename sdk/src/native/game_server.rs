//! The game servers' client of the zone node's gameplay API: apply changes,
//! craft and burn unique items, read inventories, move players between
//! zones, with the core contract
//! built in: a change whose outcome is unknown is retried with the same
//! change id until the node answers.

use std::time::Duration;

use backon::Retryable;
use protocol::{
    BurnOrder, Change, ChangeApplied, ChangeEvent, ChangeId, ChangeRecord, CraftOrder, ErrorCode,
    OwnerId, OwnerSnapshot, PlayerZones, UserId, ZoneId,
};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use super::http::{self, RetryPolicy, send, unreadable};
use crate::Error;

/// Builds a [`GameServerClient`].
#[derive(Debug)]
#[must_use]
pub struct GameServerClientBuilder {
    base_url: String,
    service_token: String,
    retries: RetryPolicy,
    timeout: Duration,
    http: Option<reqwest::Client>,
}

impl GameServerClientBuilder {
    /// Retries of a request whose failure is retryable (the network, a
    /// timeout, `unavailable`, `internal`, `rate_limited`): at most
    /// `max_retries` more attempts, exponential from `min_delay` to
    /// `max_delay`, jittered. Default 5, 50 ms, 2 s. Zero turns retrying off:
    /// the caller then retries unknown outcomes itself, with the same change.
    pub fn with_retries(
        mut self,
        max_retries: usize,
        min_delay: Duration,
        max_delay: Duration,
    ) -> Self {
        self.retries = RetryPolicy {
            max_retries,
            min_delay,
            max_delay,
        };
        self
    }

    /// How long one attempt may take, connecting included (default 10 s).
    /// An attempt that times out has an unknown outcome and is retried.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses `http` (its pool, proxy and TLS settings) instead of a client of
    /// its own; [`with_timeout`](Self::with_timeout) is then `http`'s to set.
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The client: [`Error::InvalidUrl`] for a base URL that cannot be one.
    pub fn build(self) -> Result<GameServerClient, Error> {
        let base = http::base_url(&self.base_url)?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .build()
                .map_err(Error::transport)?,
        };
        Ok(GameServerClient {
            base,
            service_token: self.service_token,
            retries: self.retries,
            http,
        })
    }
}

/// A game server's client of one zone node (or of the load balancer in
/// front of the nodes): every call authenticates with the service token,
/// reuses pooled connections, and retries what is retryable with the same
/// request, bounded and jittered.
///
/// The contract it keeps for you: a change's id names it, so a change sent
/// again after an unknown outcome (a timeout, a dropped connection, a node
/// restarting) is applied at most once; the retry answers
/// [`ChangeApplied::already_applied`] when the first attempt had gone
/// through. When the retries run out the error is still retryable
/// ([`Error::is_retryable`]): send the same change later, or ask
/// [`lookup`](Self::lookup) what became of it. Never send the same change id
/// with other content (`change_conflict`).
///
/// Cheap to clone: clones share the connection pool.
///
/// ```no_run
/// # async fn example() -> Result<(), sdk::Error> {
/// use sdk::GameServerClient;
/// use sdk::protocol::{Change, ChangeId, ItemId, OwnerId, Quantity, UserId};
///
/// let node = GameServerClient::builder("http://zone-node:8080", "the-service-token").build()?;
/// let alice = OwnerId::account(UserId::parse("alice")?);
/// let loot = Change::new(ChangeId::random())
///     .grant(alice.clone(), ItemId::parse("gold")?, Quantity::new(25)?);
/// let applied = node.apply(&loot).await?;
/// assert!(!applied.already_applied);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct GameServerClient {
    base: Url,
    service_token: String,
    retries: RetryPolicy,
    http: reqwest::Client,
}

impl GameServerClient {
    /// A builder for a client of the node at `base_url` (for example
    /// `http://zone-node:8080`; the API is under `/v1`), authenticating with
    /// `service_token`.
    pub fn builder(
        base_url: impl Into<String>,
        service_token: impl Into<String>,
    ) -> GameServerClientBuilder {
        GameServerClientBuilder {
            base_url: base_url.into(),
            service_token: service_token.into(),
            retries: RetryPolicy {
                max_retries: 5,
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(2),
            },
            timeout: Duration::from_secs(10),
            http: None,
        }
    }

    /// Applies `change` (`POST /v1/changes`), atomically and at most once
    /// by its id. The change is validated here first, with the node's own
    /// rules ([`Change::validate`]): one that cannot be valid is refused
    /// with its code ([`Error::Protocol`]) and never sent. Refusals by the
    /// node (`insufficient_balance`, `change_conflict`, …) are final; an
    /// unknown outcome is retried with the same change.
    pub async fn apply(&self, change: &Change) -> Result<ChangeApplied, Error> {
        change.clone().validate()?;
        self.call(Method::POST, "/v1/changes", Some(change)).await
    }

    /// Crafts a unique item (`POST /v1/crafts`): the owner's inputs are
    /// consumed and the item granted, atomically, and its descriptor created
    /// in the descriptor service. The order is checked here first (the
    /// node's own [`CraftOrder::change`]). An unknown outcome is retried with
    /// the same order, which completes what the first attempt started; a
    /// refused craft (`insufficient_balance`) burns its descriptor, so the
    /// same order is refused again (`burned`): make a new one.
    pub async fn craft(&self, order: &CraftOrder) -> Result<ChangeApplied, Error> {
        order.change()?;
        self.call(Method::POST, "/v1/crafts", Some(order)).await
    }

    /// Burns a crafted item (`POST /v1/burns`): consumes it, grants what it
    /// gives back, and burns its descriptor; retried like
    /// [`craft`](Self::craft).
    pub async fn burn(&self, order: &BurnOrder) -> Result<ChangeApplied, Error> {
        order.change()?;
        self.call(Method::POST, "/v1/burns", Some(order)).await
    }

    /// What became of change `id` (`GET /v1/changes/{id}`): its event if it
    /// was applied, `None` if it never was (or was refused).
    pub async fn lookup(&self, id: ChangeId) -> Result<Option<ChangeEvent>, Error> {
        let path = format!("/v1/changes/{id}");
        match self
            .call::<ChangeRecord>(Method::GET, &path, None::<&()>)
            .await
        {
            Ok(record) => Ok(Some(record.event)),
            Err(error) if error.code() == ErrorCode::UnknownChange => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// One inventory (`GET /v1/owners/{owner}`); an owner never written is
    /// empty at version 0.
    pub async fn load(&self, owner: &OwnerId) -> Result<OwnerSnapshot, Error> {
        let path = format!("/v1/owners/{owner}");
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Every inventory of a user: the account's and each character's
    /// (`GET /v1/users/{user}`).
    pub async fn load_user(&self, user: &UserId) -> Result<Vec<OwnerSnapshot>, Error> {
        let path = format!("/v1/users/{}", user.as_str());
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Tells the node that `user` entered `zone` (so its servers receive
    /// the player's changes); answers the node's zones now holding the
    /// player. Joining twice is harmless.
    pub async fn join(&self, zone: &ZoneId, user: &UserId) -> Result<PlayerZones, Error> {
        let path = format!("/v1/zones/{}/players/{}", zone.as_str(), user.as_str());
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Tells the node that `user` left `zone`; leaving twice is harmless.
    pub async fn leave(&self, zone: &ZoneId, user: &UserId) -> Result<PlayerZones, Error> {
        let path = format!("/v1/zones/{}/players/{}", zone.as_str(), user.as_str());
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// One request, retried while its failure is retryable. Every route
    /// this client calls is safe to repeat: reads, idempotent joins and
    /// leaves, and writes idempotent by change id.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl serde::Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        let url = http::under(&self.base, path)?;
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Protocol(protocol::Error::MalformedMessage(e.to_string())))?;
        (|| async {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.service_token);
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            send(request).await?.json::<T>().await.map_err(unreadable)
        })
        .retry(self.retries.backoff())
        .when(Error::is_retryable)
        .notify(|error, delay| {
            tracing::debug!(%error, ?delay, %method, path, "retrying a gameplay request");
        })
        .await
    }
}
