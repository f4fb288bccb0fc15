//! Zone interest with reference counting, as pure bookkeeping: which zones of
//! this process hold which players, and when a player's first interest appears
//! or its last one goes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use protocol::UserId;

/// A zone hosted by a server process (a map instance, a crafting or trading
/// service: anything that needs a player's inventory while the player is there).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ZoneId(Arc<str>);

impl ZoneId {
    /// A zone named `name`.
    #[must_use]
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }

    /// The zone's name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ZoneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZoneId({:?})", &*self.0)
    }
}

/// How a join or leave changed a player's interest in this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum InterestChange {
    /// The first zone took an interest: the process must subscribe and hydrate.
    First,
    /// The last zone let go: the process must unsubscribe and drop the cache.
    Last,
    /// The count moved but stayed positive.
    Counted,
    /// Nothing changed (a join of a zone already holding the player, or a
    /// leave of a zone not holding them).
    Unchanged,
}

/// Which zones hold which players. The reference count of a player is the
/// number of zones holding them; a zone holds a player at most once, so a
/// repeated join or a stray leave cannot unbalance the count.
#[derive(Clone, Debug, Default)]
pub struct ZoneInterest {
    zones: HashMap<UserId, BTreeSet<ZoneId>>,
}

impl ZoneInterest {
    /// No interest at all.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `zone` takes an interest in `user`.
    pub fn join(&mut self, zone: &ZoneId, user: &UserId) -> InterestChange {
        let zones = self.zones.entry(user.clone()).or_default();
        if !zones.insert(zone.clone()) {
            return InterestChange::Unchanged;
        }
        if zones.len() == 1 {
            InterestChange::First
        } else {
            InterestChange::Counted
        }
    }

    /// `zone` lets go of `user`.
    pub fn leave(&mut self, zone: &ZoneId, user: &UserId) -> InterestChange {
        let Some(zones) = self.zones.get_mut(user) else {
            return InterestChange::Unchanged;
        };
        if !zones.remove(zone) {
            return InterestChange::Unchanged;
        }
        if zones.is_empty() {
            self.zones.remove(user);
            InterestChange::Last
        } else {
            InterestChange::Counted
        }
    }

    /// How many zones hold `user`.
    #[must_use]
    pub fn count(&self, user: &UserId) -> usize {
        self.zones.get(user).map_or(0, BTreeSet::len)
    }

    /// True if any zone holds `user`.
    #[must_use]
    pub fn is_interested(&self, user: &UserId) -> bool {
        self.zones.contains_key(user)
    }

    /// Every user some zone holds.
    pub fn users(&self) -> impl Iterator<Item = &UserId> {
        self.zones.keys()
    }

    /// The zones holding `user`.
    pub fn zones_of(&self, user: &UserId) -> impl Iterator<Item = &ZoneId> {
        self.zones.get(user).into_iter().flatten()
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

    fn check(steps: &[(Step, InterestChange, usize)]) {
        let user = UserId::parse("alice").unwrap();
        let mut interest = ZoneInterest::new();
        for (i, (step, expected, count)) in steps.iter().enumerate() {
            let got = match step {
                Join(z) => interest.join(&ZoneId::new(z), &user),
                Leave(z) => interest.leave(&ZoneId::new(z), &user),
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
        let forest = ZoneId::new("forest");
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(interest.join(&forest, &alice), First);
        assert_eq!(interest.join(&forest, &bob), First);
        assert_eq!(interest.leave(&forest, &alice), Last);
        assert!(interest.is_interested(&bob));
        assert_eq!(interest.users().collect::<Vec<_>>(), vec![&bob]);
        assert_eq!(interest.zones_of(&bob).collect::<Vec<_>>(), vec![&forest]);
    }
}
