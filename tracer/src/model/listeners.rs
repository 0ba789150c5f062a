//! Listening sockets' owners by (netns, local port): the owner of their children until the
//! child itself is touched from process context. Bounded, least recently used out: a listener
//! that has had no child for the longest is the one whose owner is least likely to be asked
//! for; evicting it only leaves its later children without an owner.
use std::collections::VecDeque;

// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::owners::OwnerKey;

type Key = (u32, u16);

pub struct Listeners {
    /// Each owner with the number of its last use.
    owners: HashMap<Key, (OwnerKey, u64)>,
    /// Uses, oldest first; a use made stale by a later one or a removal is skipped.
    uses: VecDeque<(Key, u64)>,
    last_use: u64,
    cap: usize,
    evicted: u64,
}

impl Listeners {
    pub fn new(cap: usize) -> Listeners {
        Listeners {
            owners: HashMap::default(),
            uses: VecDeque::new(),
            last_use: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn insert(&mut self, key: Key, owner: OwnerKey) {
        self.last_use += 1;
        self.owners.insert(key, (owner, self.last_use));
        self.used(key);
        while self.owners.len() > self.cap {
            let Some((k, n)) = self.uses.pop_front() else {
                break;
            };
            if self.owners.get(&k).is_some_and(|(_, last)| *last == n) {
                self.owners.remove(&k);
                self.evicted += 1;
            }
        }
    }

    /// The owner of the listener on this port, now its most recently used.
    pub fn owner(&mut self, key: Key) -> Option<OwnerKey> {
        self.last_use += 1;
        let (owner, last) = self.owners.get_mut(&key)?;
        *last = self.last_use;
        let owner = *owner;
        self.used(key);
        Some(owner)
    }

    pub fn contains(&self, key: Key) -> bool {
        self.owners.contains_key(&key)
    }

    pub fn remove(&mut self, key: Key) {
        self.owners.remove(&key);
    }

    fn used(&mut self, key: Key) {
        self.uses.push_back((key, self.last_use));
        // Drop stale uses once they outnumber the live ones: amortized O(1) a use.
        if self.uses.len() > 2 * self.owners.len() + 64 {
            let owners = &self.owners;
            self.uses
                .retain(|(k, n)| owners.get(k).is_some_and(|(_, last)| last == n));
        }
    }
}
