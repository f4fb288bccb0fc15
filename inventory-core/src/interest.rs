//! Zone interest with reference counting, as pure bookkeeping: which holders
//! (game zones, client feeds) of this process hold which players, and when a
//! player's first interest appears or its last one goes.

use std::collections::{BTreeSet, HashMap};

use protocol::{UserId, ZoneId};

/// What holds a player in this process: a game zone, or the client
/// connections of one of the zone node's feeds.
///
/// Game zones are [`ZoneId`]s, parsed by the id grammar from the outside
/// world; a feed's holder is a separate variant, so no zone name a game server
/// or an operator sends can ever be mistaken for one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Holder {
    /// A game zone.
    Zone(ZoneId),
    /// The client connections of one feed, by the feed's incarnation number.
    Clients(u64),
}

impl Holder {
    /// The game zone, if this holder is one.
    #[must_use]
    pub fn zone(&self) -> Option<&ZoneId> {
        match self {
            Self::Zone(zone) => Some(zone),
            Self::Clients(_) => None,
        }
    }
}

impl From<ZoneId> for Holder {
    fn from(zone: ZoneId) -> Self {
        Self::Zone(zone)
    }
}

impl From<&ZoneId> for Holder {
    fn from(zone: &ZoneId) -> Self {
        Self::Zone(zone.clone())
    }
}

/// How a join or leave changed a player's interest in this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum InterestChange {
    /// The first holder took an interest: the process must subscribe and hydrate.
    First,
    /// The last holder let go: the process must unsubscribe and drop the cache.
    Last,
    /// The count moved but stayed positive.
    Counted,
    /// Nothing changed (a join of a holder already holding the player, or a
    /// leave of a holder not holding them).
    Unchanged,
}

/// Which holders hold which players. The reference count of a player is the
/// number of holders holding them; a holder holds a player at most once, so a
/// repeated join or a stray leave cannot unbalance the count.
#[derive(Clone, Debug, Default)]
pub struct ZoneInterest {
    holders: HashMap<UserId, BTreeSet<Holder>>,
}

impl ZoneInterest {
    /// No interest at all.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `holder` takes an interest in `user`.
    pub fn join(&mut self, holder: &Holder, user: &UserId) -> InterestChange {
        let holders = self.holders.entry(user.clone()).or_default();
        if !holders.insert(holder.clone()) {
            return InterestChange::Unchanged;
        }
        if holders.len() == 1 {
            InterestChange::First
        } else {
            InterestChange::Counted
        }
    }

    /// `holder` lets go of `user`.
    pub fn leave(&mut self, holder: &Holder, user: &UserId) -> InterestChange {
        let Some(holders) = self.holders.get_mut(user) else {
            return InterestChange::Unchanged;
        };
        if !holders.remove(holder) {
            return InterestChange::Unchanged;
        }
        if holders.is_empty() {
            self.holders.remove(user);
            InterestChange::Last
        } else {
            InterestChange::Counted
        }
    }

    /// How many holders hold `user`.
    #[must_use]
    pub fn count(&self, user: &UserId) -> usize {
        self.holders.get(user).map_or(0, BTreeSet::len)
    }

    /// True if any holder holds `user`.
    #[must_use]
    pub fn is_interested(&self, user: &UserId) -> bool {
        self.holders.contains_key(user)
    }

    /// Every user some holder holds.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.holders.keys()
    }

    /// The holders holding `user`.
    pub fn holders_of(&self, user: &UserId) -> impl Iterator<Item = &Holder> {
        self.holders.get(user).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Step {
        Join(&'static str),
        Leave(&'static str),
    }
    use InterestChange::{Counted, First, Last, Unchanged};
    use Step::{Join, Leave};

    fn zone(name: &str) -> Holder {
        Holder::Zone(ZoneId::parse(name).unwrap())
    }

    fn check(steps: &[(Step, InterestChange, usize)]) {
        let user = UserId::parse("alice").unwrap();
        let mut interest = ZoneInterest::new();
        for (i, (step, expected, count)) in steps.iter().enumerate() {
            let got = match step {
                Join(z) => interest.join(&zone(z), &user),
                Leave(z) => interest.leave(&zone(z), &user),
            };
            assert_eq!(got, *expected, "step {i}");
            assert_eq!(interest.count(&user), *count, "count after step {i}");
            assert_eq!(interest.is_interested(&user), *count > 0, "step {i}");
        }
    }

    #[test]
    fn first_join_and_last_leave() {
        check(&[(Join("forest"), First, 1), (Leave("forest"), Last, 0)]);
    }

    #[test]
    fn crossing_zones_keeps_interest() {
        check(&[
            (Join("forest"), First, 1),
            (Join("town"), Counted, 2),
            (Leave("forest"), Counted, 1),
            (Join("cave"), Counted, 2),
            (Leave("town"), Counted, 1),
            (Leave("cave"), Last, 0),
            (Join("cave"), First, 1),
        ]);
    }

    #[test]
    fn repeated_join_and_stray_leave_do_not_unbalance() {
        check(&[
            (Leave("forest"), Unchanged, 0),
            (Join("forest"), First, 1),
            (Join("forest"), Unchanged, 1),
            (Leave("town"), Unchanged, 1),
            (Leave("forest"), Last, 0),
            (Leave("forest"), Unchanged, 0),
        ]);
    }

    #[test]
    fn users_are_counted_independently() {
        let mut interest = ZoneInterest::new();
        let forest = zone("forest");
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(interest.join(&forest, &alice), First);
        assert_eq!(interest.join(&forest, &bob), First);
        assert_eq!(interest.leave(&forest, &alice), Last);
        assert!(interest.is_interested(&bob));
        assert_eq!(interest.users().collect::<Vec<_>>(), vec![&bob]);
        assert_eq!(interest.holders_of(&bob).collect::<Vec<_>>(), vec![&forest]);
    }

    #[test]
    fn a_feed_and_a_zone_hold_a_player_independently() {
        let mut interest = ZoneInterest::new();
        let alice = UserId::parse("alice").unwrap();
        let forest = zone("forest");
        assert_eq!(interest.join(&Holder::Clients(0), &alice), First);
        assert_eq!(interest.join(&forest, &alice), Counted);
        assert_eq!(interest.leave(&Holder::Clients(1), &alice), Unchanged);
        assert_eq!(interest.leave(&Holder::Clients(0), &alice), Counted);
        let zones: Vec<_> = interest
            .holders_of(&alice)
            .filter_map(Holder::zone)
            .collect();
        assert_eq!(zones, vec![&ZoneId::parse("forest").unwrap()]);
        assert_eq!(interest.leave(&forest, &alice), Last);
    }
}
