//! The zone node: the WebSocket edge that streams each game client its own
//! player's snapshot and deltas, and the gameplay API that game servers call
//! to change inventories and to move players between zones.
//!
//! The library exposes [`app`] (a `Router`, testable without a socket),
//! [`run`] (serve a listener until a shutdown signal, then drain) and
//! [`serve`] (the same for the node's router with more routes merged in);
//! [`Node::builder`] assembles a node from its parts (store, bus, tokens,
//! zones, the embedded descriptor service) and [`wire`] does it from a
//! [`Config`], so `main.rs` only reads the configuration and wires. Setup
//! fails with the crate's [`Error`]; requests are answered with
//! [`ApiError`].
//! [`registry`] holds the adapters of the core's crafting registry port (the
//! descriptor service in process or over HTTP). The demo (the live page and
//! its logins) is another crate, `inventory-demo`, that merges its routes
//! into [`app`]; nothing of it is compiled into this one.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /v1/ws` | game clients | the client WebSocket (`protocol::ClientMessage` / `ServerMessage`) |
//! | `POST /v1/changes` | game servers | apply a change (idempotent by change id; the same id with other content is `change_conflict`) |
//! | `GET /v1/changes/{id}` | game servers | the recorded event of an applied change, or `unknown_change` |
//! | `POST /v1/crafts`, `POST /v1/burns` | game servers | craft a unique item from inputs / burn one for resources (`protocol::CraftOrder`, `BurnOrder`; the same order retried completes what the first attempt started) |
//! | `GET /v1/owners/{owner}`, `GET /v1/users/{user}` | game servers | read inventories |
//! | `POST`/`DELETE /v1/zones/{zone}/players/{user}` | game servers | join / leave a zone |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics` | operators | liveness, readiness, Prometheus |
//! | `GET /v1/openapi.json` | everyone | this API (with the embedded descriptor API) as an OpenAPI 3.1 document |
//! | anything else | | the fallback router: in the embedded mode, the descriptor service (`/v1/descriptors…`); else a JSON `not_found` |
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use inventory_core::{LocalBus, MemoryStore};
//! use inventory_service::{BusChoice, ClientTokens, Node, ServiceToken};
//!
//! let node = Node::builder()
//!     .store(Arc::new(MemoryStore::new()))
//!     .bus(BusChoice::Local(LocalBus::new()))
//!     .tokens(
//!         ServiceToken::new("a-service-token-of-16+")?,
//!         ClientTokens::hs256(b"a-jwt-secret-of-16-bytes+")?,
//!     )
//!     .build()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! inventory_service::run(listener, node, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod config;
mod console;
mod edge;
mod error;
mod feed;
mod gameplay;
mod metrics;
mod openapi;
pub mod registry;
mod state;
mod support;
mod wiring;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};

pub use auth::{Caller, ClientTokens, Credentials, Permission, Role, ServiceToken};
pub use config::Config;
pub use edge::EdgeConfig;
pub use error::ApiError;
pub use metrics::Metrics;
pub use state::{AppState, BusChoice, NodeBuilder};
pub use wiring::{Error, Wired, stop_signal, wire};

/// A zone node, as its handlers share it: [`Node::builder`] makes one,
/// [`app`] routes it, [`run`] serves it.
pub type Node = AppState;

/// The largest request body the node accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long [`run`] waits for clients to go and feeds to release their
/// interest after the shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's HTTP routes.
pub fn app(state: AppState) -> Router {
    let extra = state.extra_routes();
    Router::new()
        .route("/healthz", get(openapi::health))
        .route("/readyz", get(openapi::ready))
        .route("/metrics", get(openapi::metrics))
        .route("/v1/openapi.json", get(openapi::openapi_document))
        .route("/v1/ws", any(edge::upgrade))
        .merge(gameplay::routes())
        .merge(support::routes())
        .merge(console::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            support::record_operator_calls,
        ))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                protocol::ErrorCode::MethodNotAllowed,
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(console::page(state.console_dir()))
        .with_state(state)
        .fallback_service(extra)
}

/// Serves [`app`] on `listener` until `shutdown` completes; then refuses new
/// clients, closes the connected ones (they reconnect to another node and
/// resume), finishes the requests in flight and releases every player the
/// clients held (unsubscribing), waiting at most [`DRAIN_TIMEOUT`].
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, app(state.clone()), state, shutdown).await
}

/// Like [`run`], serving `router`: the node's [`app`] over `state` with more
/// routes merged into it (the demo's page and logins, say). Drains `state`
/// after `shutdown` completes, as [`run`] does.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = state.clone();
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown.await;
        draining.drain(DRAIN_TIMEOUT).await;
        let _ = drained_tx.send(());
    };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await;
    // The signal future completed (drained) or the server failed first.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained_rx).await;
    served
}
