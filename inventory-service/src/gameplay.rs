//! The gameplay API game servers call: apply a change, read inventories.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use inventory_core::Inventory;
use protocol::{Change, ChangeEvent, OwnerId, OwnerSnapshot, UserId};
use serde::Serialize;

use crate::{ApiError, ServiceToken};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    inventory: Inventory,
    token: ServiceToken,
}

impl AppState {
    /// State over an inventory, guarded by a service token.
    #[must_use]
    pub fn new(inventory: Inventory, token: ServiceToken) -> Self {
        Self { inventory, token }
    }
}

/// The answer to an applied change.
#[derive(Debug, Serialize)]
struct Applied {
    /// True if this change id had been applied before (a retry).
    already_applied: bool,
    /// The change's event, with the versions it produced.
    event: ChangeEvent,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/changes", post(apply_change))
        .route("/v1/owners/{owner}", get(load_owner))
        .route("/v1/users/{user}", get(load_user))
}

async fn apply_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Change>, JsonRejection>,
) -> Result<(StatusCode, Json<Applied>), ApiError> {
    state.token.check(&headers)?;
    let Json(change) = body?;
    let applied = state.inventory.apply(change).await?;
    let status = if applied.already_applied {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Applied {
            already_applied: applied.already_applied,
            event: applied.event,
        }),
    ))
}

async fn load_owner(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(owner): Path<String>,
) -> Result<Json<OwnerSnapshot>, ApiError> {
    state.token.check(&headers)?;
    let owner = OwnerId::parse(&owner)?;
    Ok(Json(state.inventory.load(&owner).await?))
}

async fn load_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Result<Json<Vec<OwnerSnapshot>>, ApiError> {
    state.token.check(&headers)?;
    let user = UserId::parse(user)?;
    Ok(Json(state.inventory.load_user(&user).await?))
}
