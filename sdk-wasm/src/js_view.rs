//! The JavaScript shapes of the view, its changes and the connection state:
//! plain serde structs that the bindings turn into plain JS objects
//! (camelCase keys, numbers, strings, `null`). The TypeScript declarations in
//! `typescript.rs` describe exactly these shapes.

use std::collections::BTreeMap;

use protocol::{AttributeValue, CraftInput, Descriptor, DescriptorKind, OwnerId, Stacking};
use sdk::{DescriptorState, InventoryView, ItemView, OwnerView, ViewChange};
use serde::Serialize;

/// One inventory (`OwnerInventory` in TypeScript).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JsOwner<'a> {
    /// The owner id's string form, `a:<user>` or `c:<user>:<character>`.
    pub owner: String,
    /// `"account"` or `"character"`.
    pub kind: &'static str,
    /// The player.
    pub user: &'a str,
    /// The character, for a character inventory.
    pub character: Option<&'a str>,
    /// The version the items are as of.
    pub version: u64,
    /// The stacks, in ascending item-id order.
    pub items: Vec<JsItem<'a>>,
}

/// One stack (`ItemStack` in TypeScript).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JsItem<'a> {
    /// The item id.
    pub item: &'a str,
    /// How many.
    pub qty: u64,
    /// `"loading"`, `"ready"`, `"not_found"` or `"burned"`.
    pub status: &'static str,
    /// The descriptor, when `status` is `"ready"`.
    pub descriptor: Option<JsDescriptor<'a>>,
}

/// A descriptor as JavaScript sees it (`Descriptor` in TypeScript): the
/// service's descriptor with camelCase keys.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JsDescriptor<'a> {
    /// The item id.
    pub id: &'a str,
    /// `"catalog"` or `"crafted"`.
    pub kind: &'a DescriptorKind,
    /// The catalog template a crafted item instantiates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<&'a str>,
    /// The display name.
    pub name: &'a str,
    /// `"stackable"` or `"unique"`.
    pub stacking: &'a Stacking,
    /// 1 when created; catalog revisions count up.
    pub revision: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Who crafted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crafted_by: Option<&'a str>,
    /// What crafting it consumed.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub inputs: &'a [CraftInput],
    /// Free-form scalar attributes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: &'a BTreeMap<String, AttributeValue>,
}

impl<'a> From<&'a Descriptor> for JsDescriptor<'a> {
    fn from(d: &'a Descriptor) -> Self {
        Self {
            id: d.id.as_str(),
            kind: &d.kind,
            template: d.template.as_ref().map(protocol::ItemId::as_str),
            name: &d.name,
            stacking: &d.stacking,
            revision: d.revision,
            created_at: d.created_at,
            crafted_by: d.crafted_by.as_ref().map(protocol::UserId::as_str),
            inputs: &d.inputs,
            attributes: &d.attributes,
        }
    }
}

/// One change of the view (`InventoryChange` in TypeScript), tagged by `type`.
#[derive(Serialize, Debug, PartialEq)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum JsChange<'a> {
    /// A stack appeared.
    ItemAdded {
        /// The owner.
        owner: String,
        /// The item.
        item: &'a str,
        /// Its quantity.
        qty: u64,
        /// What is known of its descriptor.
        status: &'static str,
        /// The descriptor, if known.
        descriptor: Option<JsDescriptor<'a>>,
    },
    /// A stack disappeared.
    ItemRemoved {
        /// The owner.
        owner: String,
        /// The item.
        item: &'a str,
        /// The quantity it had.
        qty: u64,
    },
    /// A stack's quantity moved.
    QuantityChanged {
        /// The owner.
        owner: String,
        /// The item.
        item: &'a str,
        /// Before.
        from: u64,
        /// After.
        to: u64,
    },
    /// A held item's descriptor arrived (or turned out missing or burned).
    DescriptorArrived {
        /// The owner.
        owner: String,
        /// The item.
        item: &'a str,
        /// What is now known.
        status: &'static str,
        /// The descriptor, if found.
        descriptor: Option<JsDescriptor<'a>>,
    },
    /// An owner was replaced by a snapshot; its item changes follow.
    Resynced {
        /// The owner.
        owner: String,
        /// The snapshot's version.
        version: u64,
    },
    /// The session no longer covers an owner.
    OwnerRemoved {
        /// The owner.
        owner: String,
    },
}

/// The connection state (`ConnectionState` in TypeScript), tagged by `state`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum JsConnection {
    /// Not connected yet: `connect()` has not been called.
    Idle,
    /// Opening the socket and saying hello.
    Connecting {
        /// Attempts since the last successful session (0 for the first).
        attempt: u32,
    },
    /// Welcomed by the node; deltas flow.
    Connected,
    /// The connection was lost; waiting before the next attempt.
    Reconnecting {
        /// Attempts since the last successful session, from 1.
        attempt: u32,
        /// The wait before the attempt, in milliseconds.
        delay_ms: u64,
    },
    /// Closed for good: by the user, or refused by the node.
    Closed,
}

/// The wire word for a descriptor's state.
#[must_use]
pub fn status(state: &DescriptorState) -> &'static str {
    match state {
        DescriptorState::Loading => "loading",
        DescriptorState::Ready(_) => "ready",
        DescriptorState::NotFound => "not_found",
        DescriptorState::Burned => "burned",
    }
}

/// Every owner of `view`.
#[must_use]
pub fn owners(view: &InventoryView) -> Vec<JsOwner<'_>> {
    view.owners.iter().map(owner).collect()
}

/// One owner of a view.
#[must_use]
pub fn owner(view: &OwnerView) -> JsOwner<'_> {
    let (kind, character) = match &view.owner {
        OwnerId::Account(_) => ("account", None),
        OwnerId::Character(_, character) => ("character", Some(character.as_str())),
    };
    JsOwner {
        owner: view.owner.to_string(),
        kind,
        user: view.owner.user().as_str(),
        character,
        version: view.version.get(),
        items: view.items.iter().map(item).collect(),
    }
}

fn item(view: &ItemView) -> JsItem<'_> {
    JsItem {
        item: view.item.as_str(),
        qty: view.qty,
        status: status(&view.descriptor),
        descriptor: view.descriptor.descriptor().map(JsDescriptor::from),
    }
}

/// The JS shape of one change; `None` for kinds this version of the bindings
/// does not know (the enum is non-exhaustive), which are not forwarded.
#[must_use]
pub fn change(change: &ViewChange) -> Option<JsChange<'_>> {
    Some(match change {
        ViewChange::ItemAdded {
            owner,
            item,
            qty,
            descriptor,
        } => JsChange::ItemAdded {
            owner: owner.to_string(),
            item: item.as_str(),
            qty: *qty,
            status: status(descriptor),
            descriptor: descriptor.descriptor().map(JsDescriptor::from),
        },
        ViewChange::ItemRemoved { owner, item, qty } => JsChange::ItemRemoved {
            owner: owner.to_string(),
            item: item.as_str(),
            qty: *qty,
        },
        ViewChange::QuantityChanged {
            owner,
            item,
            from,
            to,
        } => JsChange::QuantityChanged {
            owner: owner.to_string(),
            item: item.as_str(),
            from: *from,
            to: *to,
        },
        ViewChange::DescriptorArrived {
            owner,
            item,
            descriptor,
        } => JsChange::DescriptorArrived {
            owner: owner.to_string(),
            item: item.as_str(),
            status: status(descriptor),
            descriptor: descriptor.descriptor().map(JsDescriptor::from),
        },
        ViewChange::Resynced { owner, version } => JsChange::Resynced {
            owner: owner.to_string(),
            version: version.get(),
        },
        ViewChange::OwnerRemoved { owner } => JsChange::OwnerRemoved {
            owner: owner.to_string(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use protocol::{ItemId, OwnerSnapshot, ServerMessage, UserId, Version};
    use serde_json::json;

    use super::*;

    fn check(value: impl Serialize, expected: serde_json::Value) {
        assert_eq!(serde_json::to_value(value).unwrap(), expected);
    }

    #[test]
    fn owners_are_plain_objects_with_their_kind_and_items() {
        let alice = UserId::parse("alice").unwrap();
        let hero = OwnerId::parse("c:alice:hero").unwrap();
        let mut state = sdk::ClientState::default();
        state.handle(ServerMessage::Welcome {
            user: alice,
            owners: vec![hero.clone()],
        });
        let changes = state.handle(ServerMessage::Snapshot {
            owners: vec![OwnerSnapshot {
                owner: hero,
                version: Version::new(7),
                items: [(ItemId::parse("wood").unwrap(), 3)].into(),
            }],
        });
        check(
            owners(&state.view()),
            json!([{
                "owner": "c:alice:hero", "kind": "character", "user": "alice",
                "character": "hero", "version": 7,
                "items": [{"item": "wood", "qty": 3, "status": "loading", "descriptor": null}],
            }]),
        );
        let changes: Vec<_> = changes.iter().filter_map(change).collect();
        check(
            changes,
            json!([
                {"type": "resynced", "owner": "c:alice:hero", "version": 7},
                {"type": "item_added", "owner": "c:alice:hero", "item": "wood", "qty": 3,
                 "status": "loading", "descriptor": null},
            ]),
        );
    }

    #[test]
    fn connection_states_are_tagged_with_camel_case_fields() {
        check(
            JsConnection::Reconnecting {
                attempt: 2,
                delay_ms: 400,
            },
            json!({"state": "reconnecting", "attempt": 2, "delayMs": 400}),
        );
        check(JsConnection::Connected, json!({"state": "connected"}));
    }

    #[test]
    fn quantity_changes_keep_from_and_to() {
        let change = ViewChange::QuantityChanged {
            owner: OwnerId::parse("a:bob").unwrap(),
            item: ItemId::parse("gold").unwrap(),
            from: 10,
            to: 4,
        };
        check(
            super::change(&change),
            json!({"type": "quantity_changed", "owner": "a:bob", "item": "gold", "from": 10, "to": 4}),
        );
    }
}
