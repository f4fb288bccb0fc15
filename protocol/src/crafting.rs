//! Crafting and burning orders: what a game server asks the zone node
//! (`POST /v1/crafts`, `POST /v1/burns`) and the core carries out across the
//! inventory store and the descriptor service (`inventory_core::crafting`,
//! which documents the protocol and what holds when a step fails).

use serde::{Deserialize, Serialize};

use crate::{
    AttributeValue, Change, ChangeId, ChangeKind, CraftInput, Descriptor, DescriptorKind, Error,
    ItemId, OwnerId, Quantity, Stacking, ValidChange,
};

/// The id of the unique item a craft with change id `change` creates: the
/// same for every retry of the order.
#[must_use]
pub fn crafted_item_id(change: ChangeId) -> ItemId {
    let id = format!("x-{}", change.as_uuid().simple());
    ItemId::parse(&id).expect("x- and 32 hex digits fit the id grammar")
}

/// One craft: `owner` consumes the descriptor's `inputs` and receives the one
/// item the descriptor describes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CraftOrder {
    /// The change id; retries of this order reuse it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change: ChangeId,
    /// Whose inventory gives the inputs and receives the item.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(a:[A-Za-z0-9_-]{1,64}|c:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64})$"))]
    pub owner: OwnerId,
    /// The new item: kind crafted, unique, `crafted_by` the owner's user,
    /// revision 1, with the inputs the craft consumes.
    pub descriptor: Descriptor,
}

impl CraftOrder {
    /// A craft by `owner` with change id `change` of the item named `name`
    /// from `inputs`, created at `created_at` (ms since the Unix epoch, see
    /// `inventory_core::crafting::unix_millis`; fixed here so that retries carry the same
    /// descriptor). Everything a craft's descriptor must be is derived: the id
    /// from the change ([`crafted_item_id`]), `crafted_by` from the owner,
    /// kind crafted, unique, revision 1. Add a template and attributes with
    /// [`with_template`](Self::with_template) and
    /// [`with_attribute`](Self::with_attribute).
    #[must_use]
    pub fn new(
        change: ChangeId,
        owner: OwnerId,
        name: impl Into<String>,
        inputs: impl IntoIterator<Item = (ItemId, Quantity)>,
        created_at: u64,
    ) -> Self {
        let mut descriptor = Descriptor::catalog(crafted_item_id(change), name);
        descriptor.kind = DescriptorKind::Crafted;
        descriptor.stacking = Stacking::Unique;
        descriptor.created_at = created_at;
        descriptor.crafted_by = Some(owner.user().clone());
        descriptor.inputs = inputs
            .into_iter()
            .map(|(item, qty)| CraftInput { item, qty })
            .collect();
        Self {
            change,
            owner,
            descriptor,
        }
    }

    /// The catalog template the crafted item instantiates.
    #[must_use]
    pub fn with_template(mut self, template: ItemId) -> Self {
        self.descriptor.template = Some(template);
        self
    }

    /// One attribute of the crafted item (a stat, its quality…).
    #[must_use]
    pub fn with_attribute(mut self, key: impl Into<String>, value: AttributeValue) -> Self {
        self.descriptor.attributes.insert(key.into(), value);
        self
    }

    /// The validated change this order applies, after checking that the
    /// descriptor is one a craft by this owner can create.
    pub fn change(&self) -> Result<ValidChange, Error> {
        let descriptor = &self.descriptor;
        descriptor.validate()?;
        let invalid = |why: &str| Err(Error::InvalidDescriptor(why.to_owned()));
        if descriptor.kind != DescriptorKind::Crafted || descriptor.stacking != Stacking::Unique {
            return invalid("a craft creates a crafted, unique descriptor");
        }
        if descriptor.id != crafted_item_id(self.change) {
            return invalid(
                "a crafted item's id is x- and the 32 hex digits of its craft's change id",
            );
        }
        if descriptor.revision != 1 {
            return invalid("a crafted descriptor has revision 1");
        }
        if descriptor.crafted_by.as_ref() != Some(self.owner.user()) {
            return invalid("a crafted descriptor names the crafting owner's user as crafted_by");
        }
        if descriptor.inputs.is_empty() {
            return invalid("a craft consumes at least one input");
        }
        let mut change = Change::new(self.change).with_kind(ChangeKind::Craft);
        for input in &descriptor.inputs {
            change = change.consume(self.owner.clone(), input.item.clone(), input.qty);
        }
        change
            .grant(self.owner.clone(), descriptor.id.clone(), Quantity::ONE)
            .validate()
    }
}

/// One burn: `owner` gives up the unique `item` and receives `recovered`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnOrder {
    /// The change id; retries of this order reuse it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub change: ChangeId,
    /// Who holds the item and receives the resources.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^(a:[A-Za-z0-9_-]{1,64}|c:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64})$"))]
    pub owner: OwnerId,
    /// The crafted item to burn.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub item: ItemId,
    /// The resources recovered (may be empty); on the wire a list of
    /// `{"item": .., "qty": ..}`.
    #[serde(default, with = "stacks")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<CraftInput>))]
    pub recovered: Vec<(ItemId, Quantity)>,
}

impl BurnOrder {
    /// The validated change this order applies, after checking that `item`
    /// is a crafted item's id (see [`crafted_item_id`]).
    pub fn change(&self) -> Result<ValidChange, Error> {
        if !is_crafted_item_id(&self.item) {
            return Err(Error::InvalidDescriptor(
                "a burn takes a crafted item: x- and the 32 hex digits of its craft's change id"
                    .to_owned(),
            ));
        }
        let mut change = Change::new(self.change)
            .with_kind(ChangeKind::Burn)
            .consume(self.owner.clone(), self.item.clone(), Quantity::ONE);
        for (item, qty) in &self.recovered {
            change = change.grant(self.owner.clone(), item.clone(), *qty);
        }
        change.validate()
    }
}

/// Whether `item` has a crafted item's form: `x-` and 32 lowercase hex digits
/// (see [`crafted_item_id`]).
#[must_use]
pub fn is_crafted_item_id(item: &ItemId) -> bool {
    item.as_str().strip_prefix("x-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `(item, qty)` pairs as `{"item": .., "qty": ..}` objects.
mod stacks {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::{ItemId, Quantity};

    #[derive(Serialize)]
    struct StackRef<'a> {
        item: &'a ItemId,
        qty: Quantity,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stack {
        item: ItemId,
        qty: Quantity,
    }

    pub(super) fn serialize<S: Serializer>(
        stacks: &[(ItemId, Quantity)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            stacks
                .iter()
                .map(|(item, qty)| StackRef { item, qty: *qty }),
        )
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(ItemId, Quantity)>, D::Error> {
        Ok(Vec::<Stack>::deserialize(deserializer)?
            .into_iter()
            .map(|stack| (stack.item, stack.qty))
            .collect())
    }
}
