//! Item descriptors and the descriptor service's wire types.
//!
//! An inventory carries only item ids and quantities; everything else about an
//! item lives in its [`Descriptor`]: a typed core (id, kind, template, display
//! name, stacking, revision, creation time, crafter, crafting inputs) plus a
//! bounded map of free-form scalar [`AttributeValue`]s.
//!
//! # Limits
//!
//! | what | limit |
//! |---|---|
//! | ids per batch get | [`MAX_BATCH_IDS`] (1,000) |
//! | one descriptor, serialized as compact JSON | [`MAX_DESCRIPTOR_BYTES`] (16 KiB) |
//! | display name | [`MAX_NAME_LEN`] bytes, not empty |
//! | attributes | [`MAX_ATTRIBUTES`] entries; keys follow the id grammar; text values at most [`MAX_ATTRIBUTE_TEXT_LEN`] bytes; floats finite |
//! | crafting inputs | [`MAX_INPUTS`], distinct items, quantities `1..=MAX_QUANTITY` |
//! | `created_at` | milliseconds since the Unix epoch, at most [`MAX_TIMESTAMP_MS`] (2^53 - 1, exact in JavaScript) |
//!
//! # Lifecycle
//!
//! A **crafted** descriptor is immutable once created: its revision is always 1.
//! A **catalog** (template) descriptor starts at revision 1 and may be revised,
//! each revision exactly one above the previous. Either kind can be **burned**:
//! a tombstone replaces it, its id is never reused, and reads answer "burned",
//! distinctly from "never existed".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, ItemId, Quantity, UserId};

/// The most ids one batch get may name (duplicates count).
pub const MAX_BATCH_IDS: usize = 1_000;
/// The largest descriptor, in bytes of compact JSON.
pub const MAX_DESCRIPTOR_BYTES: usize = 16 * 1024;
/// The longest display name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The most free-form attributes one descriptor may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// The longest text attribute value, in bytes.
pub const MAX_ATTRIBUTE_TEXT_LEN: usize = 2_048;
/// The most crafting inputs one descriptor may list.
pub const MAX_INPUTS: usize = 64;
/// The latest representable creation time (2^53 - 1 ms), exact as a
/// JavaScript number and as a BSON int64.
pub const MAX_TIMESTAMP_MS: u64 = (1 << 53) - 1;

/// Whether a descriptor is a revisable catalog template or an immutable
/// crafted item.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DescriptorKind {
    /// A template from the game's catalog; revisable.
    Catalog,
    /// One crafted item; immutable once created.
    Crafted,
}

/// Whether items under this descriptor stack.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Many units share the id (`wood`).
    Stackable,
    /// The id names exactly one item (a crafted sword).
    Unique,
}

/// One input consumed by the crafting that created a descriptor.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CraftInput {
    /// The item consumed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub item: ItemId,
    /// How many.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub qty: Quantity,
}

/// A free-form attribute value: a scalar, never a nested structure.
///
/// On the wire the bare scalar. Decoding takes whatever scalar comes (an
/// integer beyond `i64` becomes a float), without serde's buffering of
/// untagged enums.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// Text, at most [`MAX_ATTRIBUTE_TEXT_LEN`] bytes.
    Text(String),
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = AttributeValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean, a number or a string")
            }

            fn visit_bool<E>(self, v: bool) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Bool(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Int(v))
            }

            #[allow(clippy::cast_precision_loss)] // Beyond i64 only a float can hold it.
            fn visit_u64<E>(self, v: u64) -> Result<AttributeValue, E> {
                Ok(i64::try_from(v).map_or(AttributeValue::Float(v as f64), AttributeValue::Int))
            }

            fn visit_f64<E>(self, v: f64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Float(v))
            }

            fn visit_str<E>(self, v: &str) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Text(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Text(v))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

/// Everything about one item except who holds how many.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The item id, as carried by inventories.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ItemId,
    /// Catalog template or crafted item.
    pub kind: DescriptorKind,
    /// The catalog template a crafted item instantiates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub template: Option<ItemId>,
    /// The display name.
    pub name: String,
    /// Whether units stack.
    pub stacking: Stacking,
    /// 1 when created; catalog revisions count up by one.
    pub revision: u32,
    /// Creation time in milliseconds since the Unix epoch, chosen by the
    /// creator so that a retried create carries the same content.
    pub created_at: u64,
    /// Who crafted it (crafted descriptors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub crafted_by: Option<UserId>,
    /// What the crafting consumed (crafted descriptors only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<CraftInput>,
    /// Free-form scalar attributes: stats, rarity, lore, model and icon refs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeValue>,
}

fn is_key(key: &str) -> bool {
    (1..=crate::ID_MAX_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Descriptor {
    /// A stackable catalog template at revision 1, created at time 0, with no
    /// attributes: the smallest valid descriptor, for tools and tests.
    #[must_use]
    pub fn catalog(id: ItemId, name: impl Into<String>) -> Self {
        Self {
            id,
            kind: DescriptorKind::Catalog,
            template: None,
            name: name.into(),
            stacking: Stacking::Stackable,
            revision: 1,
            created_at: 0,
            crafted_by: None,
            inputs: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// Checks every rule of the model except the serialized size, which the
    /// caller measures on the bytes it actually stores
    /// ([`Descriptor::check_size`]).
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |why: String| Err(Error::InvalidDescriptor(why));
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return invalid(format!("name must be 1..={MAX_NAME_LEN} bytes"));
        }
        if self.revision == 0 {
            return invalid("revision starts at 1".into());
        }
        if self.created_at > MAX_TIMESTAMP_MS {
            return invalid(format!("created_at must be at most {MAX_TIMESTAMP_MS}"));
        }
        match self.kind {
            DescriptorKind::Crafted => {
                if self.revision != 1 {
                    return invalid("a crafted descriptor is immutable: revision must be 1".into());
                }
                if self.crafted_by.is_none() {
                    return invalid("a crafted descriptor names its crafter (crafted_by)".into());
                }
            }
            DescriptorKind::Catalog => {
                if self.crafted_by.is_some() || !self.inputs.is_empty() || self.template.is_some() {
                    return invalid(
                        "a catalog descriptor has no crafted_by, inputs or template".into(),
                    );
                }
            }
        }
        if self.inputs.len() > MAX_INPUTS {
            return invalid(format!("at most {MAX_INPUTS} inputs are allowed"));
        }
        let mut items = BTreeSet::new();
        for input in &self.inputs {
            if !items.insert(&input.item) {
                return invalid(format!("input {} appears twice", input.item));
            }
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return invalid(format!("at most {MAX_ATTRIBUTES} attributes are allowed"));
        }
        for (key, value) in &self.attributes {
            if !is_key(key) {
                return invalid(format!(
                    "attribute key {:?} must be 1..=64 characters of A-Z a-z 0-9 _ -",
                    key.chars().take(72).collect::<String>()
                ));
            }
            match value {
                AttributeValue::Text(text) if text.len() > MAX_ATTRIBUTE_TEXT_LEN => {
                    return invalid(format!(
                        "attribute {key} is longer than {MAX_ATTRIBUTE_TEXT_LEN} bytes"
                    ));
                }
                AttributeValue::Float(x) if !x.is_finite() => {
                    return invalid(format!("attribute {key} is not a finite number"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks a serialized length against [`MAX_DESCRIPTOR_BYTES`].
    pub fn check_size(len: usize) -> Result<(), Error> {
        if len > MAX_DESCRIPTOR_BYTES {
            Err(Error::DescriptorTooLarge(len))
        } else {
            Ok(())
        }
    }
}

/// A batch get: the ids to fetch, at most [`MAX_BATCH_IDS`]; duplicates are
/// fetched once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchGetRequest {
    /// The ids to fetch.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub ids: Vec<ItemId>,
}

/// The answer to a batch get. Every distinct requested id appears in exactly
/// one of the three lists, in request order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchGetResponse {
    /// The descriptors found.
    pub descriptors: Vec<Descriptor>,
    /// Ids that never existed.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub missing: Vec<ItemId>,
    /// Ids that existed and were burned.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub burned: Vec<ItemId>,
}

/// The most records one page of `GET /v1/descriptors` answers.
pub const MAX_LIST_LIMIT: usize = 1_000;

/// One page of `GET /v1/descriptors`: records in ascending id order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListResponse {
    /// The live descriptors of the page, in id order.
    pub descriptors: Vec<Descriptor>,
    /// The burned ids of the page, in id order (only with
    /// `include_burned=true`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub burned: Vec<ItemId>,
    /// The opaque cursor of the next page, valid only with the same filters;
    /// `null` on the last page.
    pub next_cursor: Option<String>,
    /// With `with_total=true` only: how many records the filters select
    /// now, over the whole listing (not only after the cursor). A progress
    /// total, not a snapshot: creates and burns change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// What a burn did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurnOutcome {
    /// This request burned it.
    Burned,
    /// It was already burned (a retried burn).
    AlreadyBurned,
}

/// The answer to a burn.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnResponse {
    /// The burned id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ItemId,
    /// Whether this request or an earlier one burned it.
    pub outcome: BurnOutcome,
}

#[cfg(test)]
mod tests;
