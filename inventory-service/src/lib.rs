//! The zone node: the gameplay mutation API that game servers call, and (from
//! the zone-node issue on) the WebSocket edge that streams snapshots and deltas
//! to game clients.
//!
//! The library exposes [`app`] (a `Router`, testable without a socket) and
//! [`run`] (serve a listener until a shutdown signal); `main.rs` only reads
//! [`Config`] and wires.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use inventory_core::{Inventory, MemoryStore};
//! use inventory_service::{AppState, ServiceToken};
//!
//! let state = AppState::new(Inventory::new(MemoryStore::new()), ServiceToken::new("secret")?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! inventory_service::run(listener, state, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod config;
mod error;
mod gameplay;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use auth::ServiceToken;
pub use config::Config;
pub use error::ApiError;
pub use gameplay::AppState;

/// The largest request body the node accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The node's HTTP routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(gameplay::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
