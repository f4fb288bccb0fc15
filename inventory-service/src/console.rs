//! The operator console: a page at `/console` (its own files compiled into
//! the binary, `inventory-service/console/`) running on the browser SDK's
//! web package from `--web-dir` (served under `/console/pkg/`), and the
//! session it watches a player with.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, body::Bytes};
use protocol::{ErrorBody, UserId};
use serde::{Deserialize, Serialize};
use tower_http::services::ServeDir;

use crate::auth::Permission;
use crate::{ApiError, AppState};

const INDEX_HTML: &str = include_str!("../console/index.html");
const CONSOLE_JS: &str = include_str!("../console/console.js");

/// How long a console's watching session lasts, in seconds (the console
/// asks for a new one on each search).
const SESSION_TTL_SECS: i64 = 15 * 60;

/// The files of the web package the console imports.
const BUNDLE_FILES: &[&str] = &["sdk_wasm.js", "sdk_wasm_bg.wasm"];

/// The console's page routes; the SDK's files when the node has a web dir.
pub(crate) fn page(web_dir: Option<&Path>) -> Router<AppState> {
    let dir = web_dir.map(Path::to_owned);
    let router = Router::new()
        .route("/console", get(move || index(dir.clone())))
        .route("/console/console.js", get(script));
    match web_dir {
        Some(dir) => router.nest_service("/console/pkg", ServeDir::new(dir)),
        None => router,
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/console/sessions", post(session))
        .route("/v1/console/me", get(me))
}

/// Who a console's token names.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    /// The credential's name.
    name: String,
    /// Its role: `support` or `operator`.
    role: String,
}

/// The caller a support or operator token names: how the console signs in.
#[utoipa::path(
    get,
    path = "/v1/console/me",
    responses(
        (status = 200, description = "the caller", body = Me),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "a game_server token (forbidden)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let caller = state.authorize(&headers, Permission::Support)?;
    Ok(Json(Me {
        name: caller.name,
        role: caller.role.as_str().to_owned(),
    }))
}

async fn script() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        CONSOLE_JS,
    )
        .into_response()
}

async fn index(web_dir: Option<PathBuf>) -> Response {
    let built = web_dir
        .as_ref()
        .is_some_and(|dir| BUNDLE_FILES.iter().all(|name| dir.join(name).is_file()));
    if built {
        return Html(INDEX_HTML).into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Inventory console: the browser SDK is missing</title></head><body>\
             <h1>The console needs the browser SDK</h1><p>Build it with <code>cargo xtask \
             wasm</code> and start the node with <code>--web-dir target/npm/web</code>.</p>\
             </body></html>",
        ),
    )
        .into_response()
}

/// Which player to watch.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRequest {
    /// The player's user id.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    user: UserId,
}

/// A client session token for watching the player over `/v1/ws`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    /// The player.
    #[schema(value_type = String)]
    user: UserId,
    /// The token, for the SDK's `Hello`.
    token: String,
    /// Seconds until it expires.
    expires_in: i64,
}

/// Issues a client session for a player, so that the console shows their
/// inventories live through the SDK, exactly as the player's client sees
/// them (a client session reads; it cannot change anything).
#[utoipa::path(
    post,
    path = "/v1/console/sessions",
    request_body = SessionRequest,
    responses(
        (status = 200, description = "the session", body = Session),
        (status = 400, description = "a bad body or user id (malformed_request, invalid_id)", body = ErrorBody),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "a game_server token (forbidden)", body = ErrorBody),
        (status = 413, description = "a body above 64 KiB (payload_too_large)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Session>, ApiError> {
    state.authorize(&headers, Permission::Support)?;
    let request: SessionRequest = ApiError::decode_body(body)?;
    let token = state
        .client_tokens()
        .issue(&request.user, SESSION_TTL_SECS)?;
    Ok(Json(Session {
        user: request.user,
        token,
        expires_in: SESSION_TTL_SECS,
    }))
}
