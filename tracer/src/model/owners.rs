//! Owners interned once and referred to by a 4-byte id: a million sockets usually have a few
//! thousand owners, and an [`Owner`] with its `String` costs 40 bytes plus a heap block.
//!
//! Ids are not reference-counted (every holder would have to release them on every path);
//! instead, once the table has doubled since the last sweep, [`Owners::sweep`] keeps only the
//! owners still referred to and renumbers them. Processes come and go, so this is what bounds
//! the table: at most twice the owners in use.
// Per-event lookups: a fast hasher, seeded per map.
use foldhash::HashMap;

use super::{Comm, Event, Owner};

/// An owner as the kernel names it, kept inline (no allocation until a [`Owner`] is needed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OwnerKey {
    pub pid: u32,
    pub comm: Comm,
    pub cgroup_id: u64,
}

impl OwnerKey {
    /// The task current at `ev`.
    pub fn of(ev: &Event) -> OwnerKey {
        OwnerKey {
            pid: ev.pid,
            comm: ev.comm,
            cgroup_id: ev.cgroup_id,
        }
    }

    pub fn from_owner(owner: &Owner) -> OwnerKey {
        OwnerKey {
            pid: owner.pid,
            comm: owner.comm,
            cgroup_id: owner.cgroup_id,
        }
    }

    pub fn owner(&self) -> Owner {
        Owner {
            pid: self.pid,
            comm: self.comm,
            cgroup_id: self.cgroup_id,
        }
    }
}

/// An interned owner; 0 is always the unknown owner ([`Owner::default`]).
pub type OwnerId = u32;

/// Below this many owners the table is never swept.
const MIN_SWEEP: usize = 4096;

pub struct Owners {
    keys: Vec<OwnerKey>,
    ids: HashMap<OwnerKey, OwnerId>,
    sweep_at: usize,
}

impl Default for Owners {
    fn default() -> Self {
        Owners {
            keys: vec![OwnerKey::default()],
            ids: HashMap::default(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl Owners {
    pub fn intern(&mut self, key: OwnerKey) -> OwnerId {
        if key == OwnerKey::default() {
            return 0;
        }
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = OwnerId::try_from(self.keys.len()).unwrap_or(0);
        self.keys.push(key);
        self.ids.insert(key, id);
        id
    }

    pub fn key(&self, id: OwnerId) -> OwnerKey {
        self.keys.get(id as usize).copied().unwrap_or_default()
    }

    pub fn owner(&self, id: OwnerId) -> Owner {
        self.key(id).owner()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn needs_sweep(&self) -> bool {
        self.keys.len() >= self.sweep_at
    }

    /// Keeps the owners `visit` reaches and renumbers them: `visit` is called twice, with a
    /// function to give every id in use to (first to mark it, then to rewrite it).
    pub fn sweep(&mut self, mut visit: impl FnMut(&mut dyn FnMut(&mut OwnerId))) {
        let mut used = vec![false; self.keys.len()];
        if let Some(unknown) = used.first_mut() {
            *unknown = true;
        }
        visit(&mut |id| {
            if let Some(u) = used.get_mut(*id as usize) {
                *u = true;
            }
        });
        let mut renumber = vec![0; self.keys.len()];
        let mut keys = Vec::with_capacity(used.iter().filter(|u| **u).count());
        for (old, key) in self.keys.iter().enumerate() {
            if used.get(old).copied().unwrap_or(false) {
                if let Some(r) = renumber.get_mut(old) {
                    *r = OwnerId::try_from(keys.len()).unwrap_or(0);
                }
                keys.push(*key);
            }
        }
        visit(&mut |id| *id = renumber.get(*id as usize).copied().unwrap_or(0));
        self.ids = keys
            .iter()
            .enumerate()
            .skip(1)
            .map(|(id, key)| (*key, OwnerId::try_from(id).unwrap_or(0)))
            .collect();
        self.keys = keys;
        self.sweep_at = (self.keys.len() * 2).max(MIN_SWEEP);
    }
}
