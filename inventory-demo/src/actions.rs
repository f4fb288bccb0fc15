//! The demo's gameplay decisions as pure functions: given what a player
//! holds and a random source, what a game server would do for "loot
//! something", "use something", "trade with the merchant" (a change), "craft
//! something" or "burn a crafted item" (an order for
//! [`inventory_core::crafting`]), and a sentence saying what happened. Carrying it out is the caller's job;
//! the store still guards every consume, so a decision made on a stale view
//! fails cleanly instead of overdrawing.

use inventory_core::crafting::{BurnOrder, CraftOrder};
use inventory_service::ApiError;
use protocol::{
    AttributeValue, Change, ChangeId, ChangeKind, Descriptor, ErrorCode, ItemId, OwnerId,
    OwnerSnapshot, UserId,
};
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::catalog::{QUALITIES, RECIPES, account, hero, id, merchant, name, qty};

/// A change to apply and what it means, for people.
#[derive(Debug)]
pub(crate) struct Planned {
    pub change: Change,
    pub summary: String,
}

/// What a player holds: their owners' snapshots.
#[derive(Debug, Default)]
pub(crate) struct Holdings(Vec<OwnerSnapshot>);

impl Holdings {
    pub(crate) fn new(owners: Vec<OwnerSnapshot>) -> Self {
        Self(owners)
    }

    /// Every stack of one the player holds of an item outside the catalog:
    /// the crafted items, as `(owner, item)`.
    pub(crate) fn uniques(&self) -> Vec<(OwnerId, ItemId)> {
        self.0
            .iter()
            .flat_map(|snapshot| {
                snapshot
                    .items
                    .iter()
                    .filter(|(item, qty)| **qty == 1 && !crate::catalog::is_catalog(item.as_str()))
                    .map(|(item, _)| (snapshot.owner.clone(), item.clone()))
            })
            .collect()
    }

    /// The balance of `item` in `owner` (0 if absent).
    pub(crate) fn qty(&self, owner: &OwnerId, item: &str) -> u64 {
        self.0
            .iter()
            .find(|snapshot| snapshot.owner == *owner)
            .and_then(|snapshot| {
                snapshot
                    .items
                    .iter()
                    .find(|(id, _)| id.as_str() == item)
                    .map(|(_, qty)| *qty)
            })
            .unwrap_or(0)
    }
}

/// Which of the player's owners an item goes to or comes from.
#[derive(Clone, Copy, Debug)]
enum Side {
    Account,
    Hero,
}

impl Side {
    fn owner(self, player: &UserId) -> OwnerId {
        match self {
            Side::Account => account(player),
            Side::Hero => hero(player),
        }
    }
}

/// What looting can find: item, smallest and largest amount, where it goes.
const LOOT: &[(&str, u64, u64, Side)] = &[
    ("wood", 1, 5, Side::Account),
    ("iron-ore", 1, 3, Side::Account),
    ("leather", 1, 2, Side::Account),
    ("gold", 5, 25, Side::Account),
    ("gem", 1, 1, Side::Account),
    ("health-potion", 1, 1, Side::Hero),
];

/// Grants a random find to the player.
pub(crate) fn grant(player: &UserId, rng: &mut impl Rng) -> Planned {
    let &(item, least, most, side) = LOOT
        .choose(rng)
        .unwrap_or_else(|| unreachable!("the loot table is not empty"));
    let n = rng.random_range(least..=most);
    Planned {
        change: Change::new(ChangeId::random()).grant(side.owner(player), id(item), qty(n)),
        summary: format!("Found {n} {}", name(item)),
    }
}

/// What the hero can use up, and the sentence for it.
const CONSUMABLES: &[(&str, &str)] = &[
    ("health-potion", "The hero drank a Health potion"),
    ("torch", "The hero burned down a Torch"),
];

/// The hero uses one consumable they carry.
pub(crate) fn consume(
    player: &UserId,
    holdings: &Holdings,
    rng: &mut impl Rng,
) -> Result<Planned, ApiError> {
    let owner = hero(player);
    let held: Vec<_> = CONSUMABLES
        .iter()
        .filter(|(item, _)| holdings.qty(&owner, item) > 0)
        .collect();
    let &&(item, summary) = held.choose(rng).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InsufficientBalance,
            "the hero carries nothing to use (no potion, no torch)",
        )
    })?;
    Ok(Planned {
        change: Change::new(ChangeId::random()).consume(owner, id(item), qty(1)),
        summary: summary.to_owned(),
    })
}

/// One deal the merchant offers: what the player gives (from where), what
/// the merchant gives back (to where).
struct Offer {
    gives: (&'static str, u64, Side),
    gets: (&'static str, u64, Side),
}

const OFFERS: &[Offer] = &[
    Offer {
        gives: ("wood", 5, Side::Account),
        gets: ("gold", 8, Side::Account),
    },
    Offer {
        gives: ("iron-ore", 3, Side::Account),
        gets: ("gold", 9, Side::Account),
    },
    Offer {
        gives: ("leather", 2, Side::Account),
        gets: ("gold", 6, Side::Account),
    },
    Offer {
        gives: ("gem", 1, Side::Account),
        gets: ("gold", 40, Side::Account),
    },
    Offer {
        gives: ("gold", 12, Side::Account),
        gets: ("health-potion", 1, Side::Hero),
    },
    Offer {
        gives: ("gold", 5, Side::Account),
        gets: ("torch", 1, Side::Hero),
    },
];

/// A trade with the merchant that the player can afford: both sides move
/// in one atomic change, conserving every item.
pub(crate) fn trade(
    player: &UserId,
    holdings: &Holdings,
    rng: &mut impl Rng,
) -> Result<Planned, ApiError> {
    let affordable: Vec<&Offer> = OFFERS
        .iter()
        .filter(|offer| {
            let (item, n, side) = offer.gives;
            holdings.qty(&side.owner(player), item) >= n
        })
        .collect();
    let offer = affordable.choose(rng).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InsufficientBalance,
            "the player has nothing the merchant wants and too little gold to buy",
        )
    })?;
    let shop = account(&merchant());
    let (give, give_n, from) = offer.gives;
    let (get, get_n, to) = offer.gets;
    let change = Change::new(ChangeId::random())
        .with_kind(ChangeKind::Trade)
        .consume(from.owner(player), id(give), qty(give_n))
        .grant(shop.clone(), id(give), qty(give_n))
        .consume(shop, id(get), qty(get_n))
        .grant(to.owner(player), id(get), qty(get_n));
    let summary = if give == "gold" {
        format!(
            "Bought {get_n} {} from the merchant for {give_n} {}",
            name(get),
            name(give)
        )
    } else {
        format!(
            "Sold {give_n} {} to the merchant for {get_n} {}",
            name(give),
            name(get)
        )
    };
    Ok(Planned { change, summary })
}

/// A craft to carry out, and what it means.
#[derive(Debug)]
pub(crate) struct PlannedCraft {
    pub order: CraftOrder,
    pub summary: String,
}

/// Crafts one item of a recipe the player's bank can pay for: a new unique
/// descriptor instantiating the recipe's template, its stat rolled, its
/// inputs recorded, created at `now_ms`.
pub(crate) fn craft(
    player: &UserId,
    holdings: &Holdings,
    rng: &mut impl Rng,
    now_ms: u64,
) -> Result<PlannedCraft, ApiError> {
    let bank = account(player);
    let affordable: Vec<_> = RECIPES
        .iter()
        .filter(|recipe| {
            recipe
                .inputs
                .iter()
                .all(|(item, n)| holdings.qty(&bank, item) >= *n)
        })
        .collect();
    let recipe = affordable.choose(rng).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InsufficientBalance,
            "the bank lacks the materials of every recipe (3 iron ore and 2 wood, 3 leather and 1 iron ore, or 1 sapphire and 10 gold)",
        )
    })?;
    let (least, most) = recipe.roll;
    let roll = rng.random_range(least..=most);
    let rank = usize::try_from((roll - least) * (QUALITIES.len() as i64 - 1) / (most - least))
        .unwrap_or(0);
    let quality = QUALITIES[rank.min(QUALITIES.len() - 1)];
    let item_name = format!("{quality} {}", name(recipe.template).to_lowercase());
    let inputs = recipe.inputs.iter().map(|(item, n)| (id(item), qty(*n)));
    let order = CraftOrder::new(ChangeId::random(), bank, item_name.clone(), inputs, now_ms)
        .with_template(id(recipe.template))
        .with_attribute(recipe.stat, AttributeValue::Int(roll))
        .with_attribute("quality", AttributeValue::Text(quality.to_lowercase()));
    Ok(PlannedCraft {
        summary: format!(
            "Crafted a {item_name} ({} {roll}) from {}",
            recipe.stat,
            amounts(recipe.inputs.iter().map(|(item, n)| (*item, *n)))
        ),
        order,
    })
}

/// A burn to carry out, and what it means.
#[derive(Debug)]
pub(crate) struct PlannedBurn {
    pub order: BurnOrder,
    pub summary: String,
}

/// Burns one of the player's crafted items (`crafted`: where each is held
/// and its descriptor), recovering half of its inputs, rounded up.
pub(crate) fn burn(
    crafted: &[(OwnerId, Descriptor)],
    rng: &mut impl Rng,
) -> Result<PlannedBurn, ApiError> {
    let (owner, descriptor) = crafted.choose(rng).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InsufficientBalance,
            "the player holds no crafted item to burn; craft one first",
        )
    })?;
    let recovered: Vec<_> = descriptor
        .inputs
        .iter()
        .map(|input| (input.item.clone(), qty(input.qty.get().div_ceil(2))))
        .collect();
    let summary = format!(
        "Burned a {} back into {}",
        descriptor.name.to_lowercase(),
        amounts(recovered.iter().map(|(item, n)| (item.as_str(), n.get())))
    );
    Ok(PlannedBurn {
        order: BurnOrder {
            change: ChangeId::random(),
            owner: owner.clone(),
            item: descriptor.id.clone(),
            recovered,
        },
        summary,
    })
}

/// "3 Iron ore, 2 Oak wood".
fn amounts<'a>(items: impl Iterator<Item = (&'a str, u64)>) -> String {
    items
        .map(|(item, n)| format!("{n} {}", name(item)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use protocol::{ItemId, Operation, Version};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn player() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn holdings(owners: &[(OwnerId, &[(&str, u64)])]) -> Holdings {
        Holdings::new(
            owners
                .iter()
                .map(|(owner, items)| OwnerSnapshot {
                    owner: owner.clone(),
                    version: Version::new(1),
                    items: items
                        .iter()
                        .map(|(item, n)| (ItemId::parse(*item).unwrap(), *n))
                        .collect::<BTreeMap<_, _>>(),
                })
                .collect(),
        )
    }

    #[test]
    fn grants_are_valid_finds_of_the_loot_table() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let planned = grant(&player(), &mut rng);
            let change = planned.change.validate().unwrap();
            let [Operation::Grant { owner, item, qty }] = change.ops() else {
                panic!("one grant: {:?}", change.ops());
            };
            let &(_, least, most, side) =
                LOOT.iter().find(|(id, ..)| *id == item.as_str()).unwrap();
            assert_eq!(*owner, side.owner(&player()));
            assert!((least..=most).contains(&qty.get()));
            assert!(planned.summary.starts_with("Found "), "{}", planned.summary);
        }
    }

    #[test]
    fn consume_uses_only_what_the_hero_carries() {
        let mut rng = StdRng::seed_from_u64(7);
        let held = holdings(&[(hero(&player()), &[("torch", 1), ("wood", 3)])]);
        for _ in 0..20 {
            let change = consume(&player(), &held, &mut rng)
                .unwrap()
                .change
                .validate()
                .unwrap();
            assert_eq!(change.ops()[0].item().as_str(), "torch");
        }
        let account_only = holdings(&[(account(&player()), &[("health-potion", 5)])]);
        let err = consume(&player(), &account_only, &mut rng).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientBalance);
    }

    #[test]
    fn trades_are_valid_affordable_and_conserve_items() {
        let mut rng = StdRng::seed_from_u64(7);
        let held = holdings(&[(account(&player()), &[("gem", 1), ("wood", 4)])]);
        for _ in 0..20 {
            let planned = trade(&player(), &held, &mut rng).unwrap();
            let change = planned.change.validate().unwrap();
            assert_eq!(change.kind(), ChangeKind::Trade);
            let bank = account(&player());
            let gave = change
                .ops_for(&bank)
                .find(|op| matches!(op, Operation::Consume { .. }))
                .unwrap();
            assert_eq!(gave.item().as_str(), "gem", "wood 4 < 5 cannot be sold");
            assert_eq!(
                planned.summary,
                "Sold 1 Sapphire to the merchant for 40 Gold coins"
            );
        }
        let err = trade(&player(), &Holdings::default(), &mut rng).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientBalance);
    }

    #[test]
    fn crafts_pick_an_affordable_recipe_and_make_a_valid_unique_item() {
        let mut rng = StdRng::seed_from_u64(7);
        let held = holdings(&[(
            account(&player()),
            &[("iron-ore", 3), ("wood", 2), ("gem", 1)],
        )]);
        for _ in 0..20 {
            let planned = craft(&player(), &held, &mut rng, 1_700_000_000_000).unwrap();
            let order = &planned.order;
            let change = order.change().unwrap();
            assert_eq!(change.kind(), ChangeKind::Craft);
            let d = &order.descriptor;
            assert_eq!(
                d.template.as_ref().unwrap().as_str(),
                "iron-sword",
                "the only affordable one"
            );
            assert_eq!(d.crafted_by.as_ref(), Some(&player()));
            let AttributeValue::Int(damage) = d.attributes["damage"] else {
                panic!("{:?}", d.attributes);
            };
            assert!((9..=16).contains(&damage));
            assert!(d.name.ends_with(" iron sword"), "{}", d.name);
            assert!(
                planned.summary.ends_with("from 3 Iron ore, 2 Oak wood"),
                "{}",
                planned.summary
            );
        }
        let err = craft(&player(), &Holdings::default(), &mut rng, 0).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientBalance);
    }

    #[test]
    fn qualities_follow_the_roll() {
        let held = holdings(&[(account(&player()), &[("leather", 3), ("iron-ore", 1)])]);
        let mut seen = BTreeMap::new();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let d = craft(&player(), &held, &mut rng, 0)
                .unwrap()
                .order
                .descriptor;
            let AttributeValue::Int(armor) = d.attributes["armor"] else {
                panic!()
            };
            seen.insert(armor, d.name);
        }
        assert_eq!(seen[&5], "Crude leather armor");
        assert_eq!(seen[&11], "Masterwork leather armor");
        assert_eq!(seen.len(), 7, "every roll of 5..=11 comes up: {seen:?}");
    }

    #[test]
    fn burns_recover_half_the_inputs_rounded_up() {
        let mut rng = StdRng::seed_from_u64(7);
        let crafted = craft(
            &player(),
            &holdings(&[(account(&player()), &[("iron-ore", 3), ("wood", 2)])]),
            &mut rng,
            0,
        )
        .unwrap()
        .order
        .descriptor;
        let planned = burn(&[(account(&player()), crafted.clone())], &mut rng).unwrap();
        let change = planned.order.change().unwrap();
        assert_eq!(change.kind(), ChangeKind::Burn);
        assert_eq!(planned.order.item, crafted.id);
        let recovered: Vec<_> = planned
            .order
            .recovered
            .iter()
            .map(|(item, n)| (item.as_str(), n.get()))
            .collect();
        assert_eq!(recovered, [("iron-ore", 2), ("wood", 1)]);
        assert!(
            planned
                .summary
                .ends_with("back into 2 Iron ore, 1 Oak wood"),
            "{}",
            planned.summary
        );
        let err = burn(&[], &mut rng).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientBalance);
    }

    #[test]
    fn crafted_items_are_the_uniques_outside_the_catalog() {
        let held = holdings(&[
            (account(&player()), &[("x-1", 1), ("gem", 1), ("wood", 4)]),
            (hero(&player()), &[("x-2", 1), ("torch", 1)]),
        ]);
        let uniques: Vec<_> = held
            .uniques()
            .into_iter()
            .map(|(owner, item)| (owner.to_string(), item.to_string()))
            .collect();
        assert_eq!(
            uniques,
            [
                ("a:alice".to_owned(), "x-1".to_owned()),
                ("c:alice:hero".to_owned(), "x-2".to_owned())
            ]
        );
    }

    #[test]
    fn buying_puts_the_goods_on_the_hero() {
        let mut rng = StdRng::seed_from_u64(7);
        let held = holdings(&[(account(&player()), &[("gold", 5)])]);
        let planned = trade(&player(), &held, &mut rng).unwrap();
        let change = planned.change.validate().unwrap();
        let carried = hero(&player());
        let got: Vec<_> = change.ops_for(&carried).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].item().as_str(), "torch");
        assert_eq!(
            planned.summary,
            "Bought 1 Torch from the merchant for 5 Gold coins"
        );
    }
}
