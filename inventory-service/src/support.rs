//! The support and operations API: an owner's history, a crafted item's
//! custody, reverts and the operator audit log; and the middleware that
//! records every call made with a support or operator credential.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use inventory_core::RevertMode;
use protocol::{
    AuditLogPage, ChangeId, Custody, ErrorBody, ErrorCode, HistoryPage, ItemId, MAX_PAGE,
    OperatorAction, OwnerId, RevertOutcome, Version,
};
use serde::Deserialize;

use crate::auth::{Permission, Role};
use crate::{ApiError, AppState};

/// The default page size of history and the audit log.
const DEFAULT_PAGE: usize = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/owners/{owner}/history", get(history))
        .route("/v1/items/{item}/custody", get(custody))
        .route("/v1/changes/{id}/revert", post(revert))
        .route("/v1/audit-log", get(audit_log))
}

/// A page request: `before` (exclusive) and `limit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Entries below this version (history) or id (audit log); the newest
    /// when absent.
    before: Option<String>,
    /// At most this many entries: 1 to 500, default 50.
    limit: Option<usize>,
}

fn limit(query: &PageQuery) -> Result<usize, ApiError> {
    match query.limit {
        None => Ok(DEFAULT_PAGE),
        Some(0) => Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "limit is at least 1",
        )),
        Some(n) if n <= MAX_PAGE => Ok(n),
        Some(n) => Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("limit {n} is outside 1..={MAX_PAGE}"),
        )),
    }
}

fn query<T: serde::de::DeserializeOwned>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::new(ErrorCode::MalformedRequest, e.body_text()))
}

fn support(state: &AppState) -> Result<&inventory_core::Support, ApiError> {
    state.support().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unprocessable,
            "this node's store keeps no support index",
        )
    })
}

/// One page of an owner's applied changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/owners/{owner}/history",
    params(("owner" = String, Path, description = "the owner (`a:<user>` or `c:<user>:<character>`)"), PageQuery),
    responses(
        (status = 200, description = "the page; `next_before` continues it", body = HistoryPage),
        (status = 400, description = "a bad owner id (invalid_id) or query (malformed_request)", body = ErrorBody),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "a game_server token (forbidden)", body = ErrorBody),
        (status = 413, description = "a limit above 500 (batch_too_large)", body = ErrorBody),
        (status = 503, description = "the store is unreachable; retry (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(owner): Path<String>,
    page: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    state.authorize(&headers, Permission::Support)?;
    let owner = OwnerId::parse(&owner)?;
    let page = query(page)?;
    let limit = limit(&page)?;
    let before = page
        .before
        .map(|b| {
            b.parse::<u64>().map(Version::new).map_err(|_| {
                ApiError::new(ErrorCode::MalformedRequest, "before is a version number")
            })
        })
        .transpose()?;
    Ok(Json(support(&state)?.history(&owner, before, limit).await?))
}

/// Every change that moved a crafted item, oldest first.
#[utoipa::path(
    get,
    path = "/v1/items/{item}/custody",
    params(("item" = String, Path, description = "a crafted item (`x-` and 32 hex digits)")),
    responses(
        (status = 200, description = "the custody chain", body = Custody),
        (status = 400, description = "a bad item id (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "a game_server token (forbidden)", body = ErrorBody),
        (status = 404, description = "no journaled change moved this item (not_found)", body = ErrorBody),
        (status = 503, description = "the store is unreachable; retry (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn custody(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(item): Path<String>,
) -> Result<Json<Custody>, ApiError> {
    state.authorize(&headers, Permission::Support)?;
    let item = ItemId::parse(&item)?;
    if !protocol::is_crafted_item_id(&item) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            "custody is kept for crafted items: x- and 32 hex digits",
        ));
    }
    support(&state)?
        .custody(&item)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no change moved {item}")))
}

/// How to revert.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevertQuery {
    /// Revert what can be reverted and report the rest (default: all or
    /// nothing, `revert_blocked`).
    #[serde(default)]
    partial: bool,
    /// Only show what the revert would do; write nothing.
    #[serde(default)]
    dry_run: bool,
}

/// The body of a revert: the request's idempotency id.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevertRequest {
    /// The caller's id for this revert request; a retry reuses it.
    #[schema(value_type = String, format = Uuid)]
    id: ChangeId,
}

/// Reverts one applied change: one new change (kind `revert`) undoing its
/// deltas on every owner it touched, guarded and atomic.
#[utoipa::path(
    post,
    path = "/v1/changes/{id}/revert",
    params(("id" = String, Path, description = "the change to revert"), RevertQuery),
    request_body = RevertRequest,
    responses(
        (status = 200, description = "reverted (or a retry of the same request, or a dry run)", body = RevertOutcome),
        (status = 400, description = "a bad id, body or query (invalid_id, malformed_request)", body = ErrorBody),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "not an operator token (forbidden)", body = ErrorBody),
        (status = 404, description = "no applied change has this id (unknown_change)", body = ErrorBody),
        (status = 409, description = "items already spent (revert_blocked), or a revert, craft, burn or change reverted before (not_revertible), or a balance overflow (balance_overflow)", body = ErrorBody),
        (status = 503, description = "the store is unreachable: retry with the same request id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revert(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    options: Result<Query<RevertQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RevertOutcome>, ApiError> {
    state.authorize(&headers, Permission::Operate)?;
    let original = ChangeId::parse(&id)?;
    let options = query(options)?;
    let request: RevertRequest = ApiError::decode_body(body)?;
    let mode = if options.partial {
        RevertMode::Partial
    } else {
        RevertMode::Whole
    };
    Ok(Json(
        support(&state)?
            .revert(original, request.id, mode, !options.dry_run)
            .await?,
    ))
}

/// The operator audit log, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit-log",
    params(PageQuery),
    responses(
        (status = 200, description = "the page; `next_before` continues it", body = AuditLogPage),
        (status = 400, description = "a bad query (malformed_request)", body = ErrorBody),
        (status = 401, description = "no or an unknown token (unauthorized)", body = ErrorBody),
        (status = 403, description = "not an operator token (forbidden)", body = ErrorBody),
        (status = 413, description = "a limit above 500 (batch_too_large)", body = ErrorBody),
        (status = 503, description = "the store is unreachable; retry (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    page: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditLogPage>, ApiError> {
    state.authorize(&headers, Permission::Operate)?;
    let page = query(page)?;
    let limit = limit(&page)?;
    let entries = support(&state)?
        .store()
        .actions(page.before.as_deref(), limit)
        .await?;
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|a| a.id.clone()))
        .flatten();
    Ok(Json(AuditLogPage {
        entries,
        next_before,
    }))
}

/// Records every call made with a support or operator credential (who,
/// when, which route, on which owner and change or item, with which result)
/// in the store's operator log, before answering. A failure to record is
/// logged, not answered: the call itself is done.
pub(crate) async fn record_operator_calls(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let caller = state
        .identify(request.headers())
        .filter(|caller| caller.role != Role::GameServer);
    let Some(caller) = caller else {
        return next.run(request).await;
    };
    let pattern = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let action = format!(
        "{} {}",
        request.method(),
        pattern.as_deref().unwrap_or(&path)
    );
    let (owner, target) = pattern
        .as_deref()
        .map(|pattern| parameters(pattern, &path))
        .unwrap_or_default();
    let response = next.run(request).await;
    let outcome = match response.extensions().get::<ErrorCode>() {
        Some(code) => code.as_str().to_owned(),
        None => "ok".to_owned(),
    };
    let now = u64::try_from(inventory_core::now_millis()).unwrap_or(0);
    let record = OperatorAction {
        id: format!("{now:013}-{}", ChangeId::random().as_uuid().simple()),
        at: now,
        actor: caller.name,
        role: caller.role.as_str().to_owned(),
        action,
        owner,
        target,
        outcome,
    };
    if let Some(support) = state.support()
        && let Err(e) = support.store().record_action(&record).await
    {
        tracing::warn!(error = %e, action = %record.action, actor = %record.actor, "the operator log could not record a call");
    }
    response
}

/// The owner and the change or item a route's path names.
fn parameters(pattern: &str, path: &str) -> (Option<String>, Option<String>) {
    let (mut owner, mut target) = (None, None);
    for (name, value) in pattern.split('/').zip(path.split('/')) {
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match name {
            "{owner}" => owner = Some(value),
            "{id}" | "{item}" => target = Some(value),
            "{user}" => owner = owner.or_else(|| Some(format!("a:{value}"))),
            _ => {}
        }
    }
    (owner, target)
}

#[cfg(test)]
mod tests {
    use super::parameters;

    #[test]
    fn the_audit_log_names_the_owner_and_target_decoded() {
        assert_eq!(
            parameters(
                "/v1/owners/{owner}/history",
                "/v1/owners/c%3Aann%3Ahero/history"
            ),
            (Some("c:ann:hero".to_owned()), None)
        );
        assert_eq!(
            parameters("/v1/changes/{id}/revert", "/v1/changes/abc/revert"),
            (None, Some("abc".to_owned()))
        );
        assert_eq!(
            parameters("/v1/users/{user}", "/v1/users/ann%zz"),
            (Some("a:ann%zz".to_owned()), None)
        );
    }
}
