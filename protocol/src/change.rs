//! The change a game server asks for, and its validation.
//!
//! A [`Change`] is what arrives from outside; [`Change::validate`] turns it into
//! a [`ValidChange`], the only form stores accept, so nothing malformed ever
//! reaches a database.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{ChangeId, Error, ItemId, OwnerId, UserId};

/// The largest quantity one operation may grant or consume.
pub const MAX_QUANTITY: u64 = 1_000_000_000;
/// The largest balance a stack may hold (10^12). Far below 2^53, so every
/// balance is exact as a JavaScript number, and reachable in a test. A grant
/// that would exceed it is refused by the store with `balance_overflow`.
pub const MAX_BALANCE: u64 = 1_000_000_000_000;
/// The most operations one change may carry.
pub const MAX_OPERATIONS: usize = 256;
/// The most distinct owners one change may touch (a trade between two users,
/// each with an account and a character, touches four).
pub const MAX_OWNERS_PER_CHANGE: usize = 8;

/// A positive quantity, `1..=MAX_QUANTITY`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Quantity(u64);

impl Quantity {
    /// One unit: the quantity of a unique item.
    pub const ONE: Self = Self(1);

    /// Checks that `n` is within `1..=MAX_QUANTITY`.
    pub const fn new(n: u64) -> Result<Self, Error> {
        if n == 0 || n > MAX_QUANTITY {
            Err(Error::InvalidQuantity(n))
        } else {
            Ok(Self(n))
        }
    }

    /// The quantity as a number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Quantity {
    type Error = Error;
    fn try_from(n: u64) -> Result<Self, Error> {
        Self::new(n)
    }
}

impl From<Quantity> for u64 {
    fn from(q: Quantity) -> u64 {
        q.0
    }
}

/// One operation of a change on one stack. On the wire:
/// `{"op": "grant" | "consume", "owner", "item", "qty"}`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(from = "WireOperation", into = "WireOperation")]
pub enum Operation {
    /// Add `qty` of `item` to `owner`.
    Grant {
        /// The inventory that receives.
        owner: OwnerId,
        /// The item granted.
        item: ItemId,
        /// How many.
        qty: Quantity,
    },
    /// Remove `qty` of `item` from `owner`; the whole change fails if the owner
    /// holds fewer (the guard is checked by the store in the same atomic step).
    Consume {
        /// The inventory that gives up the items.
        owner: OwnerId,
        /// The item consumed.
        item: ItemId,
        /// How many.
        qty: Quantity,
    },
}

/// Which way an operation moves items.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OperationKind {
    Grant,
    Consume,
}

/// The wire form of an [`Operation`]: a plain struct rather than an
/// internally tagged enum, so that decoding needs no buffering and a bad
/// field is reported at its path (`ops[0].qty`), which is how the edge tells
/// `invalid_quantity` and `invalid_id` from a malformed body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Operation))]
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireOperation {
    op: OperationKind,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(a:[A-Za-z0-9_-]{1,64}|c:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64})$"))]
    owner: OwnerId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    item: ItemId,
    #[cfg_attr(feature = "openapi", schema(value_type = u64, minimum = 1))]
    qty: Quantity,
}

impl From<WireOperation> for Operation {
    fn from(wire: WireOperation) -> Self {
        let WireOperation {
            op,
            owner,
            item,
            qty,
        } = wire;
        match op {
            OperationKind::Grant => Self::Grant { owner, item, qty },
            OperationKind::Consume => Self::Consume { owner, item, qty },
        }
    }
}

impl From<Operation> for WireOperation {
    fn from(op: Operation) -> Self {
        match op {
            Operation::Grant { owner, item, qty } => Self {
                op: OperationKind::Grant,
                owner,
                item,
                qty,
            },
            Operation::Consume { owner, item, qty } => Self {
                op: OperationKind::Consume,
                owner,
                item,
                qty,
            },
        }
    }
}

impl Operation {
    /// The inventory this operation touches.
    #[must_use]
    pub fn owner(&self) -> &OwnerId {
        match self {
            Self::Grant { owner, .. } | Self::Consume { owner, .. } => owner,
        }
    }

    /// The item this operation touches.
    #[must_use]
    pub fn item(&self) -> &ItemId {
        match self {
            Self::Grant { item, .. } | Self::Consume { item, .. } => item,
        }
    }

    /// The quantity moved.
    #[must_use]
    pub fn qty(&self) -> Quantity {
        match self {
            Self::Grant { qty, .. } | Self::Consume { qty, .. } => *qty,
        }
    }

    /// The signed change to the balance: `+qty` for a grant, `-qty` for a consume.
    #[must_use]
    pub fn delta(&self) -> i64 {
        // MAX_QUANTITY fits in an i64, so the cast is exact.
        let qty = self.qty().get() as i64;
        match self {
            Self::Grant { .. } => qty,
            Self::Consume { .. } => -qty,
        }
    }
}

/// What a change means, for the audit. A trade must conserve items.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Gameplay: grants and consumes decided by a game server.
    #[default]
    Adjust,
    /// A trade between exactly two users; every item's net change is zero.
    Trade,
    /// Crafting: consumes inputs and grants a newly created unique item.
    Craft,
    /// Burning: consumes a unique item whose descriptor is removed.
    Burn,
    /// An operator's revert: undoes the deltas of the change it names
    /// ([`Change::reverts`]) on every owner that change touched.
    Revert,
}

/// A change as requested: an id chosen by the caller and one or more operations.
///
/// Use the builder methods, then [`Change::validate`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The caller's id for this change; a retry must reuse it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: ChangeId,
    /// What the change means.
    #[serde(default)]
    pub kind: ChangeKind,
    /// The operations, applied together or not at all.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<WireOperation>))]
    pub ops: Vec<Operation>,
    /// What a revert undoes: set exactly when `kind` is `revert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<Reverts>,
}

/// What a revert undoes, and the request that asked for it.
///
/// A revert's change id is [`Reverts::change_id`]: derived from the original,
/// so the store's rule "a change id names one change, applied at most once"
/// makes every change revertible at most once. A retry of the same request
/// (the same `request` id and operations) answers "already applied"; another
/// request to revert the same change conflicts with the first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reverts {
    /// The change undone.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub original: ChangeId,
    /// The caller's idempotency id for the revert request.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub request: ChangeId,
}

impl Reverts {
    /// The change id of every revert of `original`: a UUIDv5 of it.
    #[must_use]
    pub fn change_id(original: ChangeId) -> ChangeId {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x6f1c_2d9e_4b7a_5c3e_9a21_0d4f_8e6b_7c15);
        ChangeId::from_uuid(uuid::Uuid::new_v5(
            &NAMESPACE,
            original.as_uuid().as_bytes(),
        ))
    }
}

impl Change {
    /// An empty gameplay change with the given id.
    #[must_use]
    pub fn new(id: ChangeId) -> Self {
        Self {
            id,
            kind: ChangeKind::Adjust,
            ops: Vec::new(),
            reverts: None,
        }
    }

    /// A revert of change `original` asked for by request `request`: id
    /// [`Reverts::change_id`], kind [`ChangeKind::Revert`]; add the
    /// operations that undo it.
    #[must_use]
    pub fn revert_of(original: ChangeId, request: ChangeId) -> Self {
        Self {
            reverts: Some(Reverts { original, request }),
            ..Self::new(Reverts::change_id(original)).with_kind(ChangeKind::Revert)
        }
    }

    /// Sets what the change means.
    #[must_use]
    pub fn with_kind(mut self, kind: ChangeKind) -> Self {
        self.kind = kind;
        self
    }

    /// Adds a grant.
    #[must_use]
    pub fn grant(mut self, owner: OwnerId, item: ItemId, qty: Quantity) -> Self {
        self.ops.push(Operation::Grant { owner, item, qty });
        self
    }

    /// Adds a guarded consume.
    #[must_use]
    pub fn consume(mut self, owner: OwnerId, item: ItemId, qty: Quantity) -> Self {
        self.ops.push(Operation::Consume { owner, item, qty });
        self
    }

    /// A trade: `a` gives `a_gives` to `b`, and `b` gives `b_gives` to `a`.
    #[must_use]
    pub fn trade(
        id: ChangeId,
        (a, a_gives): (OwnerId, &[(ItemId, Quantity)]),
        (b, b_gives): (OwnerId, &[(ItemId, Quantity)]),
    ) -> Self {
        let mut change = Self::new(id).with_kind(ChangeKind::Trade);
        for (from, to, gives) in [(&a, &b, a_gives), (&b, &a, b_gives)] {
            for (item, qty) in gives {
                change = change.consume(from.clone(), item.clone(), *qty).grant(
                    to.clone(),
                    item.clone(),
                    *qty,
                );
            }
        }
        change
    }

    /// Checks the structural rules a store relies on:
    /// at least one and at most [`MAX_OPERATIONS`] operations, at most
    /// [`MAX_OWNERS_PER_CHANGE`] owners, no stack (owner and item) touched twice,
    /// and for a trade: exactly two distinct users and every item conserved.
    pub fn validate(self) -> Result<ValidChange, Error> {
        if self.ops.is_empty() {
            return Err(Error::EmptyChange);
        }
        if self.ops.len() > MAX_OPERATIONS {
            return Err(Error::TooManyOperations(self.ops.len()));
        }
        let mut stacks = BTreeSet::new();
        for op in &self.ops {
            if !stacks.insert((op.owner(), op.item())) {
                return Err(Error::DuplicateItem {
                    owner: op.owner().clone(),
                    item: op.item().clone(),
                });
            }
        }
        let owners: Vec<OwnerId> = self
            .ops
            .iter()
            .map(Operation::owner)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        if owners.len() > MAX_OWNERS_PER_CHANGE {
            return Err(Error::TooManyOwners(owners.len()));
        }
        if self.kind == ChangeKind::Trade {
            check_trade(&self.ops, &owners)?;
        }
        let reverts_right = match self.reverts {
            Some(reverts) => {
                self.kind == ChangeKind::Revert && self.id == Reverts::change_id(reverts.original)
            }
            None => self.kind != ChangeKind::Revert,
        };
        if !reverts_right {
            return Err(Error::RevertReference);
        }
        Ok(ValidChange {
            change: self,
            owners,
        })
    }
}

fn check_trade(ops: &[Operation], owners: &[OwnerId]) -> Result<(), Error> {
    let users: BTreeSet<&UserId> = owners.iter().map(OwnerId::user).collect();
    match users.len() {
        2 => {}
        1 => {
            return Err(Error::TradeWithSelf(owners[0].user().clone()));
        }
        n => return Err(Error::TradeNotBetweenTwoUsers(n)),
    }
    let mut net: BTreeMap<&ItemId, i64> = BTreeMap::new();
    for op in ops {
        *net.entry(op.item()).or_default() += op.delta();
    }
    match net.into_iter().find(|(_, sum)| *sum != 0) {
        Some((item, sum)) => Err(Error::TradeUnbalanced {
            item: item.clone(),
            net: sum,
        }),
        None => Ok(()),
    }
}

/// A change that passed [`Change::validate`]: the only form a store accepts.
///
/// Deserializing a `ValidChange` validates it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "Change", into = "Change")]
pub struct ValidChange {
    change: Change,
    owners: Vec<OwnerId>,
}

impl ValidChange {
    /// The change id.
    #[must_use]
    pub fn id(&self) -> ChangeId {
        self.change.id
    }

    /// What the change means.
    #[must_use]
    pub fn kind(&self) -> ChangeKind {
        self.change.kind
    }

    /// What this change reverts, for a [`ChangeKind::Revert`].
    #[must_use]
    pub fn reverts(&self) -> Option<Reverts> {
        self.change.reverts
    }

    /// All operations, in request order.
    #[must_use]
    pub fn ops(&self) -> &[Operation] {
        &self.change.ops
    }

    /// The distinct owners touched, in ascending order (a stable lock order).
    pub fn owners(&self) -> impl ExactSizeIterator<Item = &OwnerId> + Clone {
        self.owners.iter()
    }

    /// The operations on one owner, in request order.
    pub fn ops_for<'a>(&'a self, owner: &'a OwnerId) -> impl Iterator<Item = &'a Operation> {
        self.change.ops.iter().filter(move |op| op.owner() == owner)
    }

    /// The distinct users touched, in ascending order.
    #[must_use]
    pub fn users(&self) -> BTreeSet<&UserId> {
        self.owners.iter().map(OwnerId::user).collect()
    }

    /// Whether `other` is the same change as this one: the same id, kind and
    /// operations, in any order (a change touches each stack at most once, so
    /// sorted by owner and item the operations compare one to one). Stores
    /// use it to tell a retry from the reuse of an id for other content.
    #[must_use]
    pub fn same_content(&self, other: &ValidChange) -> bool {
        self.id() == other.id()
            && self.kind() == other.kind()
            && self.reverts() == other.reverts()
            && self.ops().len() == other.ops().len()
            && self.sorted_ops() == other.sorted_ops()
    }

    fn sorted_ops(&self) -> Vec<&Operation> {
        let mut ops: Vec<&Operation> = self.ops().iter().collect();
        ops.sort_by(|a, b| (a.owner(), a.item()).cmp(&(b.owner(), b.item())));
        ops
    }

    /// Gives back the plain change.
    #[must_use]
    pub fn into_inner(self) -> Change {
        self.change
    }
}

impl TryFrom<Change> for ValidChange {
    type Error = Error;
    fn try_from(change: Change) -> Result<Self, Error> {
        change.validate()
    }
}

impl From<ValidChange> for Change {
    fn from(valid: ValidChange) -> Change {
        valid.change
    }
}

#[cfg(test)]
mod tests;
