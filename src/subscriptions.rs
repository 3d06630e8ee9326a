//! Who listens to what: a name (channel, session or user) to the set of
//! clients under it.
//!
//! Plain data owned by the router thread; no threads, no I/O.

use std::collections::{HashMap, HashSet};

/// A connection's number, unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientId(pub u64);

/// Names to the clients under each. Empty names are dropped at once, so the
/// index never holds more entries than there are live memberships.
#[derive(Debug, Default)]
pub(crate) struct Index {
    members: HashMap<Box<str>, HashSet<ClientId>>,
}

impl Index {
    /// Adds `client` under `name`; `false` when it was already there.
    pub(crate) fn add(&mut self, name: &str, client: ClientId) -> bool {
        match self.members.get_mut(name) {
            Some(set) => set.insert(client),
            None => {
                self.members.insert(name.into(), HashSet::from([client]));
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

    /// Whether `client` is under `name`.
    pub(crate) fn contains(&self, name: &str, client: ClientId) -> bool {
        self.members
            .get(name)
            .is_some_and(|set| set.contains(&client))
    }

    /// How many names have at least one client.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Every name with at least one client.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.members.keys().map(|name| &**name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_remove_track_membership() {
        let mut index = Index::default();
        assert!(index.add("files", ClientId(1)));
        assert!(!index.add("files", ClientId(1)), "second add is a no-op");
        assert!(index.add("files", ClientId(2)));
        assert_eq!(index.count("files"), 2);
        assert!(index.contains("files", ClientId(2)));

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
        assert_eq!(index.names().collect::<Vec<_>>(), ["b"]);
        assert_eq!(index.members("a").count(), 0);
    }
}
