//! The demo's gameplay decisions as pure functions: given what a player
//! holds and a random source, the change a game server would send for
//! "loot something", "use something" or "trade with the merchant", and a
//! sentence saying what happened. Applying it is the caller's job; the store
//! still guards every consume, so a decision made on a stale view fails
//! cleanly instead of overdrawing.

use protocol::{Change, ChangeId, ChangeKind, ErrorCode, OwnerId, OwnerSnapshot, UserId};
use rand::Rng;
use rand::seq::IndexedRandom;

use super::catalog::{account, hero, id, merchant, name, qty};
use crate::ApiError;

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
