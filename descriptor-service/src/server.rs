//! Serving the router on a listener until a shutdown signal.

use std::future::Future;

use tokio::net::TcpListener;

use crate::{AppState, app};

/// Serves the API on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = ?listener.local_addr()?, "descriptor service listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
