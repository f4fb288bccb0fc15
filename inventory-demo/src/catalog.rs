//! The demo's world as data: the catalog of item descriptors seeded into the
//! embedded descriptor service, the starter inventories of a new player and
//! of the merchant, and where each kind of item is kept.

use descriptor_service::WriteOutcome;
use protocol::{
    AttributeValue, ChangeId, CharacterId, Descriptor, ItemId, OwnerId, Quantity, UserId,
};

/// The user every demo trade is made with. Nobody can log in as the merchant.
pub(crate) const MERCHANT: &str = "merchant";

/// The one character of every demo player.
pub(crate) const CHARACTER: &str = "hero";

/// One catalog entry: id, display name, stats.
struct Entry {
    id: &'static str,
    name: &'static str,
    attributes: &'static [(&'static str, Stat)],
}

#[derive(Clone, Copy)]
enum Stat {
    Int(i64),
    Text(&'static str),
}

/// Every catalog item of the demo.
const CATALOG: &[Entry] = &[
    Entry {
        id: "gold",
        name: "Gold coins",
        attributes: &[("value", Stat::Int(1)), ("rarity", Stat::Text("common"))],
    },
    Entry {
        id: "wood",
        name: "Oak wood",
        attributes: &[("weight", Stat::Int(2)), ("rarity", Stat::Text("common"))],
    },
    Entry {
        id: "iron-ore",
        name: "Iron ore",
        attributes: &[("weight", Stat::Int(3)), ("rarity", Stat::Text("common"))],
    },
    Entry {
        id: "leather",
        name: "Leather",
        attributes: &[("weight", Stat::Int(1)), ("rarity", Stat::Text("common"))],
    },
    Entry {
        id: "gem",
        name: "Sapphire",
        attributes: &[("value", Stat::Int(40)), ("rarity", Stat::Text("rare"))],
    },
    Entry {
        id: "health-potion",
        name: "Health potion",
        attributes: &[("heal", Stat::Int(50)), ("rarity", Stat::Text("common"))],
    },
    Entry {
        id: "torch",
        name: "Torch",
        attributes: &[("light", Stat::Int(3)), ("burns_min", Stat::Int(10))],
    },
    Entry {
        id: "iron-sword",
        name: "Iron sword",
        attributes: &[("damage", Stat::Int(12)), ("slot", Stat::Text("hand"))],
    },
    Entry {
        id: "leather-armor",
        name: "Leather armor",
        attributes: &[("armor", Stat::Int(8)), ("slot", Stat::Text("body"))],
    },
    Entry {
        id: "sapphire-amulet",
        name: "Sapphire amulet",
        attributes: &[("magic", Stat::Int(16)), ("slot", Stat::Text("neck"))],
    },
];

/// What crafting can make: the catalog template the item instantiates, the
/// inputs it consumes from the bank, and its one rolled stat.
pub(crate) struct Recipe {
    pub template: &'static str,
    pub inputs: &'static [(&'static str, u64)],
    pub stat: &'static str,
    pub roll: (i64, i64),
}

pub(crate) const RECIPES: &[Recipe] = &[
    Recipe {
        template: "iron-sword",
        inputs: &[("iron-ore", 3), ("wood", 2)],
        stat: "damage",
        roll: (9, 16),
    },
    Recipe {
        template: "leather-armor",
        inputs: &[("leather", 3), ("iron-ore", 1)],
        stat: "armor",
        roll: (5, 11),
    },
    Recipe {
        template: "sapphire-amulet",
        inputs: &[("gem", 1), ("gold", 10)],
        stat: "magic",
        roll: (12, 20),
    },
];

/// How good a crafted item came out, from its roll's place in the range.
pub(crate) const QUALITIES: &[&str] = &["Crude", "Plain", "Sturdy", "Fine", "Masterwork"];

/// Whether `item` is one of the catalog's (not a crafted item).
pub(crate) fn is_catalog(item: &str) -> bool {
    CATALOG.iter().any(|entry| entry.id == item)
}

/// Parses an id of the demo's own data, which is valid by construction
/// (checked by the tests below).
pub(crate) fn id<T: std::str::FromStr>(id: &str) -> T {
    id.parse()
        .unwrap_or_else(|_| unreachable!("demo id {id:?} follows the grammar"))
}

/// A positive demo quantity.
pub(crate) fn qty(n: u64) -> Quantity {
    Quantity::new(n).unwrap_or_else(|_| unreachable!("demo quantity {n} is in range"))
}

/// Every catalog descriptor of the demo.
pub(crate) fn descriptors() -> Vec<Descriptor> {
    CATALOG
        .iter()
        .map(|entry| {
            let mut descriptor = Descriptor::catalog(id(entry.id), entry.name);
            descriptor.attributes = entry
                .attributes
                .iter()
                .map(|(key, stat)| {
                    let value = match *stat {
                        Stat::Int(n) => AttributeValue::Int(n),
                        Stat::Text(text) => AttributeValue::Text(text.to_owned()),
                    };
                    ((*key).to_owned(), value)
                })
                .collect();
            descriptor
        })
        .collect()
}

/// The display name of a catalog item, or its id.
pub(crate) fn name(item: &str) -> &str {
    CATALOG
        .iter()
        .find(|entry| entry.id == item)
        .map_or(item, |entry| entry.name)
}

/// The player's account (the bank: coins and materials).
pub(crate) fn account(player: &UserId) -> OwnerId {
    OwnerId::account(player.clone())
}

/// The player's character (what the hero carries: potions, torches, gear).
pub(crate) fn hero(player: &UserId) -> OwnerId {
    OwnerId::character(player.clone(), id::<CharacterId>(CHARACTER))
}

/// The merchant's user id.
pub(crate) fn merchant() -> UserId {
    id(MERCHANT)
}

/// What a new player starts with, as `(owner, item, qty)`.
pub(crate) fn starter(player: &UserId) -> Vec<(OwnerId, ItemId, Quantity)> {
    if *player == merchant() {
        let stock = [
            ("gold", 1_000_000),
            ("health-potion", 100_000),
            ("torch", 100_000),
        ];
        return stock
            .into_iter()
            .map(|(item, n)| (account(player), id(item), qty(n)))
            .collect();
    }
    let bank = [
        ("gold", 120),
        ("wood", 20),
        ("iron-ore", 10),
        ("leather", 6),
        ("gem", 2),
    ];
    let carried = [("health-potion", 3), ("torch", 2)];
    bank.into_iter()
        .map(|(item, n)| (account(player), id(item), qty(n)))
        .chain(
            carried
                .into_iter()
                .map(|(item, n)| (hero(player), id(item), qty(n))),
        )
        .collect()
}

/// The change that gives `player` their starter inventory.
pub(crate) fn starter_change(player: &UserId) -> protocol::Change {
    starter(player).into_iter().fold(
        protocol::Change::new(ChangeId::random()),
        |change, (owner, item, qty)| change.grant(owner, item, qty),
    )
}

/// Stores every catalog descriptor that is not there yet, through the
/// descriptor service (its store and its cache). A stored entry with other
/// content (an older demo's catalog) is kept as it is.
pub async fn seed_demo_catalog(
    service: &descriptor_service::Descriptors,
) -> Result<(), descriptor_service::Error> {
    for descriptor in descriptors() {
        descriptor.validate()?;
        match service.create(&descriptor).await {
            Ok(WriteOutcome::Applied) => {
                tracing::debug!(id = %descriptor.id, "demo catalog descriptor created");
            }
            Ok(WriteOutcome::Unchanged) => {}
            Err(descriptor_service::Error::Conflict { .. }) => {
                tracing::info!(id = %descriptor.id, "kept the stored demo catalog descriptor");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The catalog's ids and names.
#[cfg(test)]
pub(crate) fn catalog_ids() -> std::collections::BTreeMap<&'static str, &'static str> {
    CATALOG.iter().map(|entry| (entry.id, entry.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_valid() {
        for descriptor in descriptors() {
            descriptor.validate().unwrap();
            let json = serde_json::to_vec(&descriptor).unwrap();
            Descriptor::check_size(json.len()).unwrap();
        }
    }

    #[test]
    fn recipes_use_catalog_items_and_valid_rolls() {
        for recipe in RECIPES {
            assert!(is_catalog(recipe.template), "{}", recipe.template);
            assert!(recipe.inputs.iter().all(|(item, _)| is_catalog(item)));
            assert!(recipe.roll.0 < recipe.roll.1);
            let starter: u64 = starter(&UserId::parse("alice").unwrap())
                .iter()
                .filter(|(_, item, _)| recipe.inputs.iter().any(|(i, _)| item.as_str() == *i))
                .map(|(_, _, qty)| qty.get())
                .sum();
            assert!(starter > 0, "a new player can craft a {}", recipe.template);
        }
    }

    #[test]
    fn starters_are_valid_changes_of_catalog_items() {
        let ids = catalog_ids();
        for player in ["alice", MERCHANT] {
            let player = UserId::parse(player).unwrap();
            let change = starter_change(&player).validate().unwrap();
            assert!(change.ops().iter().all(|op| op.owner().user() == &player));
            assert!(
                change
                    .ops()
                    .iter()
                    .all(|op| ids.contains_key(op.item().as_str()))
            );
        }
    }
}
