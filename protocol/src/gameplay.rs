//! The answers of the zone node's gameplay API (`/v1/changes`, `/v1/zones`),
//! shared by the node and its clients.

use serde::{Deserialize, Serialize};

use crate::{ChangeEvent, ZoneId};

/// The answer to an applied change (`POST /v1/changes`, and the crafts and
/// burns that apply one): 201 for a change applied now, 200 for a retry of
/// one applied before.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeApplied {
    /// True if this change id had been applied before (a retry).
    pub already_applied: bool,
    /// The change's event, with the versions it produced.
    pub event: ChangeEvent,
}

/// What the node recorded of a change id (`GET /v1/changes/{id}`). An id
/// never applied, or refused, is `404 unknown_change` instead.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRecord {
    /// Always [`ChangeState::Applied`].
    pub state: ChangeState,
    /// The change's event as it was applied.
    pub event: ChangeEvent,
}

/// The state of a recorded change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Applied, once, with the event recorded.
    Applied,
}

/// The answer to a join or a leave (`POST`/`DELETE
/// /v1/zones/{zone}/players/{user}`): the zones of that node now holding the
/// player.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerZones {
    /// The zones, in no particular order.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub zones: Vec<ZoneId>,
}
