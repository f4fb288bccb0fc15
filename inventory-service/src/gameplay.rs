//! The gameplay API game servers call: apply a change, craft and burn
//! unique items, read inventories, and join or leave a player into a zone of
//! this node.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use inventory_core::crafting::{self, DescriptorRegistry};
use inventory_core::{AppliedChange, Holder};
use protocol::{
    BurnOrder, Change, ChangeApplied, ChangeId, ChangeRecord, ChangeState, CraftOrder, ErrorBody,
    ErrorCode, OwnerId, OwnerSnapshot, PlayerZones, UserId, ZoneId,
};

use crate::auth::Permission;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/changes", post(apply_change))
        .route("/v1/changes/{id}", get(lookup_change))
        .route("/v1/crafts", post(craft))
        .route("/v1/burns", post(burn))
        .route("/v1/owners/{owner}", get(load_owner))
        .route("/v1/users/{user}", get(load_user))
        .route(
            "/v1/zones/{zone}/players/{user}",
            post(join_zone).delete(leave_zone),
        )
}

#[utoipa::path(
    post,
    path = "/v1/changes",
    request_body = Change,
    responses(
        (status = 201, description = "applied now", body = ChangeApplied),
        (status = 200, description = "applied before: a retry of the same id", body = ChangeApplied),
        (status = 400, description = "a body that is not JSON or not a change (malformed_request), an id or a quantity breaking its grammar (invalid_id, invalid_quantity), a change breaking a structural rule (empty_change, too_many_operations, too_many_owners, duplicate_item, trade_*)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 409, description = "refused by the balances or the id (insufficient_balance, balance_overflow, change_conflict)", body = ErrorBody),
        (status = 413, description = "a body above 64 KiB (payload_too_large)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn apply_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ChangeApplied>), ApiError> {
    let change: Change = order(&state, &headers, body)?;
    Ok(answer(state.inventory().apply(change).await?))
}

/// Crafts an item (see `inventory_core::crafting`): the same order retried
/// after an unknown outcome completes what the first attempt started; a
/// refused craft burns its descriptor.
#[utoipa::path(
    post,
    path = "/v1/crafts",
    request_body = CraftOrder,
    responses(
        (status = 201, description = "applied now", body = ChangeApplied),
        (status = 200, description = "applied before: a retry of the same id", body = ChangeApplied),
        (status = 400, description = "a body that is not JSON or not a craft order (malformed_request), an id or a quantity breaking its grammar (invalid_id, invalid_quantity), a change breaking a structural rule (empty_change, too_many_operations, too_many_owners, duplicate_item, trade_*)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 409, description = "refused by the balances or the id (insufficient_balance, balance_overflow, change_conflict)", body = ErrorBody),
        (status = 410, description = "the order was refused before and its descriptor burned: make a new order (burned)", body = ErrorBody),
        (status = 413, description = "a body above 64 KiB (payload_too_large)", body = ErrorBody),
        (status = 422, description = "a descriptor a craft cannot create (invalid_descriptor), or a node without a descriptor write token (unprocessable)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the descriptor service is unreachable: the outcome is unknown; retry the same order (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn craft(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ChangeApplied>), ApiError> {
    let order: CraftOrder = order(&state, &headers, body)?;
    let registry = registry(&state)?;
    Ok(answer(
        crafting::craft(state.inventory(), registry, &order).await?,
    ))
}

/// Burns a crafted item: consumes it, grants what it gives back, burns its
/// descriptor.
#[utoipa::path(
    post,
    path = "/v1/burns",
    request_body = BurnOrder,
    responses(
        (status = 201, description = "applied now", body = ChangeApplied),
        (status = 200, description = "applied before: a retry of the same id", body = ChangeApplied),
        (status = 400, description = "a body that is not JSON or not a burn order (malformed_request), an id or a quantity breaking its grammar (invalid_id, invalid_quantity), a change breaking a structural rule (empty_change, too_many_operations, too_many_owners, duplicate_item, trade_*)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 409, description = "the owner does not hold the item, or a grant overflows (insufficient_balance, balance_overflow, change_conflict)", body = ErrorBody),
        (status = 413, description = "a body above 64 KiB (payload_too_large)", body = ErrorBody),
        (status = 422, description = "a node without a descriptor write token (unprocessable)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the descriptor service is unreachable: retry the same order (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn burn(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ChangeApplied>), ApiError> {
    let order: BurnOrder = order(&state, &headers, body)?;
    let registry = registry(&state)?;
    Ok(answer(
        crafting::burn(state.inventory(), registry, &order).await?,
    ))
}

/// The checks every write shares: the service token, a JSON body within
/// the size limit, its decoding.
fn order<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    state.authorize(headers, Permission::Apply)?;
    json_content(headers)?;
    ApiError::decode_body(body)
}

/// 201 for a change applied now, 200 for a retry of one applied before.
fn answer(applied: AppliedChange) -> (StatusCode, Json<ChangeApplied>) {
    let status = if applied.already_applied {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (
        status,
        Json(ChangeApplied {
            already_applied: applied.already_applied,
            event: applied.event,
        }),
    )
}

fn registry(state: &AppState) -> Result<&dyn DescriptorRegistry, ApiError> {
    state.registry().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unprocessable,
            "this node cannot craft: its descriptor service is elsewhere and it has no \
             --descriptor-write-token",
        )
    })
}

/// Was change `id` applied, and with what result? Read-only: what a game
/// server asks after a write whose outcome it does not know. Answers for as
/// long as the store remembers the id (SQLite: its journal, kept forever).
/// A body must say it is JSON, as axum's `Json` extractor demands.
fn json_content(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "expected a body with Content-Type: application/json",
        ))
    }
}

#[utoipa::path(
    get,
    path = "/v1/changes/{id}",
    params(("id" = String, Path, description = "the change id (a UUID)")),
    responses(
        (status = 200, description = "the change was applied; its event", body = ChangeRecord),
        (status = 400, description = "not a change id (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 404, description = "no change with this id was applied (unknown_change)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn lookup_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ChangeRecord>, ApiError> {
    state.authorize(&headers, Permission::Read)?;
    let id = ChangeId::parse(&id)?;
    match state.inventory().lookup(id).await? {
        Some(event) => Ok(Json(ChangeRecord {
            state: ChangeState::Applied,
            event,
        })),
        None => Err(ApiError::new(
            ErrorCode::UnknownChange,
            format!("no change {id} was applied"),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/v1/owners/{owner}",
    params(("owner" = String, Path, description = "`a:<user>` (the account) or `c:<user>:<character>`")),
    responses(
        (status = 200, description = "the inventory; an owner never written is empty at version 0", body = OwnerSnapshot),
        (status = 400, description = "not an owner id (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn load_owner(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(owner): Path<String>,
) -> Result<Json<OwnerSnapshot>, ApiError> {
    state.authorize(&headers, Permission::Read)?;
    let owner = OwnerId::parse(&owner)?;
    Ok(Json(state.inventory().load(&owner).await?))
}

#[utoipa::path(
    get,
    path = "/v1/users/{user}",
    params(("user" = String, Path, description = "the user id")),
    responses(
        (status = 200, description = "every inventory of the user: the account's and each character's", body = Vec<OwnerSnapshot>),
        (status = 400, description = "not a user id (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn load_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<Vec<OwnerSnapshot>>, ApiError> {
    state.authorize(&headers, Permission::Read)?;
    let user = UserId::parse(user)?;
    Ok(Json(state.inventory().load_user(&user).await?))
}

/// A zone name follows the id grammar (`[A-Za-z0-9_-]{1,64}`); a name that
/// does not is `invalid_id`, one this node does not host `not_found`.
fn zone(state: &AppState, name: String) -> Result<ZoneId, ApiError> {
    let zone = ZoneId::parse(name)?;
    if !state.zone_allowed(&zone) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("this node does not host zone {:?}", zone.as_str()),
        ));
    }
    Ok(zone)
}

#[utoipa::path(
    post,
    path = "/v1/zones/{zone}/players/{user}",
    params(("zone" = String, Path, description = "the zone"), ("user" = String, Path, description = "the player's user id")),
    responses(
        (status = 200, description = "the zones of this node now holding the player", body = PlayerZones),
        (status = 400, description = "a zone or user id breaking the grammar (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 404, description = "a zone this node does not host (not_found)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn join_zone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((zone_name, user)): Path<(String, String)>,
) -> Result<Json<PlayerZones>, ApiError> {
    let (zone, user) = zone_request(&state, &headers, zone_name, user)?;
    state.hub().join(zone, &user).await?;
    Ok(Json(zones_of(&state, &user)))
}

#[utoipa::path(
    delete,
    path = "/v1/zones/{zone}/players/{user}",
    params(("zone" = String, Path, description = "the zone"), ("user" = String, Path, description = "the player's user id")),
    responses(
        (status = 200, description = "the zones of this node now holding the player", body = PlayerZones),
        (status = 400, description = "a zone or user id breaking the grammar (invalid_id)", body = ErrorBody),
        (status = 401, description = "no or a wrong service token (unauthorized)", body = ErrorBody),
        (status = 404, description = "a zone this node does not host (not_found)", body = ErrorBody),
        (status = 500, description = "a failing backend (internal); retryable", body = ErrorBody),
        (status = 503, description = "the store or the bus is unreachable: the outcome is unknown; retry with the same id (unavailable)", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn leave_zone(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((zone_name, user)): Path<(String, String)>,
) -> Result<Json<PlayerZones>, ApiError> {
    let (zone, user) = zone_request(&state, &headers, zone_name, user)?;
    state.hub().leave(zone, &user).await?;
    Ok(Json(zones_of(&state, &user)))
}

/// The checks a join and a leave share: the service token, the zone, the user.
fn zone_request(
    state: &AppState,
    headers: &HeaderMap,
    zone_name: String,
    user: String,
) -> Result<(ZoneId, UserId), ApiError> {
    state.authorize(headers, Permission::Presence)?;
    Ok((zone(state, zone_name)?, UserId::parse(user)?))
}

/// The game zones holding `user` (the node's client feeds are not listed).
fn zones_of(state: &AppState, user: &UserId) -> PlayerZones {
    PlayerZones {
        zones: state
            .hub()
            .holders_of(user)
            .iter()
            .filter_map(Holder::zone)
            .cloned()
            .collect(),
    }
}
