//! Who listens to what: a name (channel, session or user) to the set of
//! clients under it, and which user each session belongs to.
//!
//! Plain data owned by the router thread; no threads, no I/O.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// A connection's number, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub u64);

/// `c_1f`: how the public id (`c_1f-9606376f`) begins, so a client is
/// named one way even where only its number is at hand.
impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c_{:x}", self.0)
    }
}

/// Hashes a [`ClientId`] with one multiplication. The default SipHash
/// guards a map against keys an attacker chooses; a `ClientId` is a
/// counter the hub hands out, and a fan-out looks up one per recipient,
/// where SipHash took a tenth of the router's time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

/// Fibonacci hashing's multiplier: odd, so no two ids collide, and it
/// spreads consecutive ids over the high bits a table looks at.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(SPREAD);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
    }
}

/// Maps and sets keyed by [`ClientId`].
pub(crate) type ById = BuildHasherDefault<IdHasher>;
pub(crate) type IdMap<V> = HashMap<ClientId, V, ById>;
pub(crate) type IdSet = HashSet<ClientId, ById>;

/// Names to the clients under each. Empty names are dropped at once, so the
/// index never holds more entries than there are live memberships.
#[derive(Debug, Default)]
pub(crate) struct Index {
    members: HashMap<Box<str>, IdSet>,
}

impl Index {
    /// Adds `client` under `name`; `false` when it was already there.
    pub(crate) fn add(&mut self, name: &str, client: ClientId) -> bool {
        match self.members.get_mut(name) {
            Some(set) => set.insert(client),
            None => {
                let mut set = IdSet::default();
                set.insert(client);
                self.members.insert(name.into(), set);
                true
            }
        }
    }

    /// Removes `client` from `name`; `false` when it was not there.
    pub(crate) fn remove(&mut self, name: &str, client: ClientId) -> bool {
        let Some(set) = self.members.get_mut(name) else {
            return false;
        };
        let removed = set.remove(&client);
        if set.is_empty() {
            self.members.remove(name);
        }
        removed
    }

    /// The clients under `name` (none if the name is unknown).
    pub(crate) fn members(&self, name: &str) -> impl Iterator<Item = ClientId> + '_ {
        self.members.get(name).into_iter().flatten().copied()
    }

    /// How many clients are under `name`.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.members.get(name).map_or(0, HashSet::len)
    }

    /// How many names have at least one client.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Every name with at least one client.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.members.keys().map(|name| &**name)
    }

    /// Every name with at least one client, and how many.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.members.iter().map(|(name, set)| (&**name, set.len()))
    }
}

/// Sessions: their subscribers and, when auth is on, the user each belongs to.
///
/// A session belongs to the user who first joins it. It stays theirs while
/// it has subscribers and for a retention period after the last one leaves,
/// so nobody can take it over between two of its owner's connections.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    members: Index,
    owners: HashMap<Box<str>, Owner>,
    /// How many sessions each user owns, vacant ones included.
    owned: HashMap<Box<str>, usize>,
}

#[derive(Debug)]
struct Owner {
    user: Box<str>,
    /// Since when the session has had no subscriber.
    vacant_since: Option<Instant>,
}

/// Why a user may not join a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// It belongs to another user.
    Taken,
    /// The user owns as many sessions as allowed already.
    TooMany,
}

impl Sessions {
    /// Whether `user` may use `session`: it is unowned or theirs. `None`
    /// means ownership does not apply (development mode, admins).
    pub(crate) fn may_use(&self, session: &str, user: Option<&str>) -> bool {
        match user {
            None => true,
            Some(user) => self.owners.get(session).is_none_or(|o| *o.user == *user),
        }
    }

    /// Subscribes `client` (of `user`, when ownership applies), claiming an
    /// unowned session if the user owns fewer than `max_owned`. `Ok(false)`
    /// when it was already subscribed.
    pub(crate) fn join(
        &mut self,
        session: &str,
        client: ClientId,
        user: Option<&str>,
        max_owned: usize,
    ) -> Result<bool, Refused> {
        if let Some(user) = user {
            match self.owners.get_mut(session) {
                Some(owner) if *owner.user != *user => return Err(Refused::Taken),
                Some(owner) => owner.vacant_since = None,
                None => {
                    let owned = self.owned.entry(user.into()).or_default();
                    if *owned >= max_owned {
                        return Err(Refused::TooMany);
                    }
                    *owned += 1;
                    let owner = Owner {
                        user: user.into(),
                        vacant_since: None,
                    };
                    self.owners.insert(session.into(), owner);
                }
            }
        }
        Ok(self.members.add(session, client))
    }

    /// Unsubscribes `client`; the retention period of an owned session
    /// starts when its last subscriber leaves.
    pub(crate) fn leave(&mut self, session: &str, client: ClientId, now: Instant) -> bool {
        let removed = self.members.remove(session, client);
        if removed
            && self.members.count(session) == 0
            && let Some(owner) = self.owners.get_mut(session)
        {
            owner.vacant_since = Some(now);
        }
        removed
    }

    /// Forgets the owners of sessions vacant for longer than `retention`.
    pub(crate) fn sweep(&mut self, now: Instant, retention: Duration) {
        let owned = &mut self.owned;
        self.owners.retain(|_, owner| {
            let keep = owner
                .vacant_since
                .is_none_or(|since| now.saturating_duration_since(since) < retention);
            if !keep && let Some(count) = owned.get_mut(&owner.user) {
                *count -= 1;
                if *count == 0 {
                    owned.remove(&owner.user);
                }
            }
            keep
        });
    }

    /// The subscribers of `session`.
    pub(crate) fn members(&self, session: &str) -> impl Iterator<Item = ClientId> + '_ {
        self.members.members(session)
    }

    /// Sessions with at least one subscriber.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Sessions with an owner and a subscriber: the claims to keep alive.
    pub(crate) fn owned_in_use(&self) -> impl Iterator<Item = &str> + '_ {
        self.members
            .names()
            .filter(|session| self.owners.contains_key(*session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_first_user_until_retention_ends() {
        let start = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut sessions = Sessions::default();
        assert_eq!(sessions.join("s", ClientId(1), Some("alice"), 10), Ok(true));
        assert_eq!(
            sessions.join("s", ClientId(2), Some("bob"), 10),
            Err(Refused::Taken)
        );
        assert!(!sessions.may_use("s", Some("bob")));
        assert!(
            sessions.may_use("s", None),
            "no ownership for admins or dev mode"
        );
        assert_eq!(sessions.join("s", ClientId(3), None, 10), Ok(true));
        assert_eq!(sessions.join("s", ClientId(4), Some("alice"), 10), Ok(true));

        for id in [1, 3, 4] {
            assert!(sessions.leave("s", ClientId(id), start));
        }
        assert_eq!(sessions.len(), 0);
        sessions.sweep(start + hour / 2, hour);
        assert_eq!(
            sessions.join("s", ClientId(5), Some("bob"), 10),
            Err(Refused::Taken),
            "still alice's"
        );
        sessions.sweep(start + hour, hour);
        assert_eq!(
            sessions.join("s", ClientId(5), Some("bob"), 10),
            Ok(true),
            "free after retention"
        );
    }

    #[test]
    fn a_user_owns_at_most_so_many_sessions_until_some_expire() {
        let start = Instant::now();
        let mut sessions = Sessions::default();
        for s in ["a", "b"] {
            assert_eq!(sessions.join(s, ClientId(1), Some("alice"), 2), Ok(true));
        }
        assert_eq!(
            sessions.join("c", ClientId(1), Some("alice"), 2),
            Err(Refused::TooMany)
        );
        assert_eq!(
            sessions.join("a", ClientId(2), Some("alice"), 2),
            Ok(true),
            "joining her own is fine"
        );
        assert_eq!(
            sessions.join("c", ClientId(3), Some("bob"), 2),
            Ok(true),
            "the cap is per user"
        );
        sessions.leave("a", ClientId(1), start);
        sessions.leave("a", ClientId(2), start);
        assert_eq!(
            sessions.join("e", ClientId(1), Some("alice"), 2),
            Err(Refused::TooMany),
            "the empty session still counts as hers"
        );
        sessions.sweep(start + Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(sessions.join("d", ClientId(1), Some("alice"), 2), Ok(true));
    }

    #[test]
    fn an_owned_session_in_use_is_never_swept() {
        let start = Instant::now();
        let mut sessions = Sessions::default();
        sessions.join("s", ClientId(1), Some("alice"), 10).unwrap();
        sessions.sweep(
            start + Duration::from_secs(1_000_000),
            Duration::from_secs(1),
        );
        assert!(!sessions.may_use("s", Some("bob")));
    }

    #[test]
    fn add_and_remove_track_membership() {
        let mut index = Index::default();
        assert!(index.add("files", ClientId(1)));
        assert!(!index.add("files", ClientId(1)), "second add is a no-op");
        assert!(index.add("files", ClientId(2)));
        assert_eq!(index.count("files"), 2);

        let mut members: Vec<_> = index.members("files").collect();
        members.sort();
        assert_eq!(members, [ClientId(1), ClientId(2)]);

        assert!(index.remove("files", ClientId(1)));
        assert!(!index.remove("files", ClientId(1)));
        assert!(!index.remove("nothing", ClientId(1)));
        assert_eq!(index.count("files"), 1);
    }

    #[test]
    fn empty_names_are_dropped() {
        let mut index = Index::default();
        index.add("a", ClientId(1));
        index.add("b", ClientId(1));
        assert_eq!(index.len(), 2);
        index.remove("a", ClientId(1));
        assert_eq!(index.len(), 1);
        assert_eq!(index.members("a").count(), 0);
    }
}
