//! What support staff read and do: an owner's history, a crafted item's
//! custody, a revert's outcome and the operator audit log.

use serde::{Deserialize, Serialize};

use crate::{ChangeEvent, ChangeId, ChangeKind, ItemDelta, ItemId, OwnerId, Reverts, Version};

/// The most entries one page of history or of the audit log holds.
pub const MAX_PAGE: usize = 500;

/// One applied change as one owner's history shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change_id: ChangeId,
    /// What it meant.
    pub kind: ChangeKind,
    /// When the store applied it, in milliseconds since the Unix epoch
    /// (absent for changes journaled before the store recorded times).
    pub applied_at: Option<u64>,
    /// The owner's version after the change.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub version: Version,
    /// What the change did to this owner.
    pub deltas: Vec<ItemDelta>,
    /// The other owners the change touched, in ascending order.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub others: Vec<OwnerId>,
    /// For a revert: what it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<Reverts>,
}

/// One page of an owner's history, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The owner.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub owner: OwnerId,
    /// Its changes, newest (highest version) first.
    pub entries: Vec<HistoryEntry>,
    /// The `before` of the next (older) page; absent on the last page.
    pub next_before: Option<u64>,
}

/// One change that moved a crafted item.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CustodyStep {
    /// The change.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change_id: ChangeId,
    /// What it meant.
    pub kind: ChangeKind,
    /// When the store applied it, in milliseconds since the Unix epoch.
    pub applied_at: Option<u64>,
    /// Who held the item before (absent for the craft).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub from: Option<OwnerId>,
    /// Who held it after (absent once burned or taken away).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub to: Option<OwnerId>,
}

/// Every change that moved one crafted item, in the order they happened.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Custody {
    /// The item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub item: ItemId,
    /// The owner whose craft created it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub crafted_by: Option<OwnerId>,
    /// The owner whose burn destroyed it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub burned_by: Option<OwnerId>,
    /// Who holds it now, by the journal.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub holder: Option<OwnerId>,
    /// The changes, oldest first.
    pub steps: Vec<CustodyStep>,
}

/// Items a revert cannot take back: the owner holds fewer than the original
/// change granted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Blocked {
    /// The owner.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub owner: OwnerId,
    /// The item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub item: ItemId,
    /// How many are missing.
    pub short: u64,
}

/// One stack a revert moves.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Undo {
    /// The owner.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub owner: OwnerId,
    /// The item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub item: ItemId,
    /// How the balance moves: the negation of the original's delta.
    pub change: i64,
}

/// What a revert did (or, as a preview, would do).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RevertOutcome {
    /// The change undone, and the request.
    pub reverts: Reverts,
    /// The revert's own change id ([`Reverts::change_id`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change_id: ChangeId,
    /// The stacks the revert moves.
    pub undo: Vec<Undo>,
    /// What could not be taken back (a partial revert leaves it, a full one
    /// is refused with `revert_blocked` instead).
    pub blocked: Vec<Blocked>,
    /// The applied revert's event; absent for a preview or when a partial
    /// revert had nothing it could undo.
    pub applied: Option<ChangeEvent>,
}

/// One call made with a support or operator credential.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OperatorAction {
    /// Sortable id: the time in milliseconds, zero-padded, then a random
    /// suffix.
    pub id: String,
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
    /// The name of the credential used.
    pub actor: String,
    /// Its role.
    pub role: String,
    /// The route called (`GET /v1/owners/{owner}/history`, …).
    pub action: String,
    /// The owner concerned, if any.
    pub owner: Option<String>,
    /// The change or item concerned, if any.
    pub target: Option<String>,
    /// `ok`, or the error code answered.
    pub outcome: String,
}

/// One page of the operator audit log, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AuditLogPage {
    /// The actions.
    pub entries: Vec<OperatorAction>,
    /// The `before` of the next (older) page; absent on the last page.
    pub next_before: Option<String>,
}
