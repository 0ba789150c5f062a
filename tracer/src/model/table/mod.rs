//! Compact tables of socket rows: a row is a small `Copy` value kept in [`chunks`], found by its
//! kernel socket address and, when it says so, by its (netns, tuple) through two [`index`]es of
//! row numbers. A million IPv4 full sockets cost about 48 MiB here (40-byte rows, 8 MiB of
//! index), a fraction of what a `HashMap` of lives would.
//!
//! Tables are bounded by their owner ([`family::Rows`]): when full, it evicts the least
//! recently changed of a few rows sampled at random ([`Table::oldest`]; Redis's approximated
//! LRU). A row's change time is what LRU needs (a socket that changed long ago is the one
//! whose end is least likely to come: lost, or opened before the trace), exact LRU would need
//! a linked list (16 more bytes a row) or a clock bit, and eight samples come close to it.
pub mod chunks;
pub mod family;
pub mod index;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hash};

use chunks::Chunks;
use index::Index;

/// Rows compared when one must be evicted.
const EVICTION_SAMPLES: usize = 8;

/// What a [`Table`] keeps.
pub trait Row: Copy {
    /// The second key (netns and addresses).
    type Alt: Hash + Eq;
    fn sk(&self) -> u64;
    /// When the row last changed: the oldest of a sample is evicted.
    fn touched_ns(&self) -> u64;
    /// The second key, when the row should be found by it.
    fn alt(&self) -> Option<Self::Alt>;
}

pub struct Table<R> {
    rows: Chunks<R>,
    by_sk: Index,
    by_alt: Index,
    // A fast hasher, seeded per table so remote peers cannot aim collisions at the tuple index.
    hasher: foldhash::fast::RandomState,
    /// xorshift state for eviction samples.
    rng: u64,
}

impl<R> Default for Table<R> {
    fn default() -> Self {
        Table {
            rows: Chunks::default(),
            by_sk: Index::default(),
            by_alt: Index::default(),
            hasher: foldhash::fast::RandomState::default(),
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl<R: Row> Table<R> {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn slot(&self, sk: u64) -> Option<u32> {
        let rows = &self.rows;
        let is = |r| rows.get(r).is_some_and(|x: &R| x.sk() == sk);
        self.by_sk
            .find(self.hasher.hash_one(sk), is)
            .map(|(_, r)| r)
    }

    pub fn get(&self, sk: u64) -> Option<R> {
        self.rows.get(self.slot(sk)?).copied()
    }

    /// Inserts `row`, or replaces the row with its address; returns whether it was new.
    pub fn upsert(&mut self, row: R) -> bool {
        let Some(slot) = self.slot(row.sk()) else {
            let slot = self.rows.push(row);
            let (rows, hasher) = (&self.rows, &self.hasher);
            let rehash = |r: u32| rows.get(r).map_or(0, |x| hasher.hash_one(x.sk()));
            self.by_sk.insert(hasher.hash_one(row.sk()), slot, rehash);
            self.index_alt(slot, &row);
            return true;
        };
        let old = self.rows.get(slot).copied();
        if old.and_then(|o| o.alt()) != row.alt() {
            if let Some(old) = old {
                self.unindex_alt(slot, &old);
            }
            self.index_alt(slot, &row);
        }
        if let Some(place) = self.rows.get_mut(slot) {
            *place = row;
        }
        false
    }

    /// Adds `row` (already stored at `slot`) to the second index, if it has a second key.
    fn index_alt(&mut self, slot: u32, row: &R) {
        let Some(alt) = row.alt() else { return };
        let (rows, hasher, new) = (&self.rows, &self.hasher, *row);
        // `slot` may still hold the row being replaced: hash the new one for it.
        let rehash = |r: u32| {
            let x = if r == slot {
                Some(new)
            } else {
                rows.get(r).copied()
            };
            x.and_then(|x| x.alt()).map_or(0, |a| hasher.hash_one(a))
        };
        self.by_alt.insert(hasher.hash_one(alt), slot, rehash);
    }

    /// Removes row `slot` (holding `row`) from the second index.
    fn unindex_alt(&mut self, slot: u32, row: &R) {
        let Some(alt) = row.alt() else { return };
        let (rows, hasher) = (&self.rows, &self.hasher);
        let hash = hasher.hash_one(&alt);
        let rehash = |r: u32| {
            let x = if r == slot {
                Some(*row)
            } else {
                rows.get(r).copied()
            };
            x.and_then(|x| x.alt()).map_or(0, |a| hasher.hash_one(a))
        };
        if let Some((bucket, _)) = self.by_alt.find(hash, |r| r == slot) {
            self.by_alt.remove(bucket, rehash);
        }
    }

    pub fn remove(&mut self, sk: u64) -> Option<R> {
        let slot = self.slot(sk)?;
        self.remove_slot(slot)
    }

    fn remove_slot(&mut self, slot: u32) -> Option<R> {
        let row = self.rows.get(slot).copied()?;
        let hash = self.hasher.hash_one(row.sk());
        if let Some((bucket, _)) = self.by_sk.find(hash, |r| r == slot) {
            let (rows, hasher) = (&self.rows, &self.hasher);
            let rehash = |r: u32| rows.get(r).map_or(0, |x| hasher.hash_one(x.sk()));
            self.by_sk.remove(bucket, rehash);
        }
        self.unindex_alt(slot, &row);
        // The last row moves into the freed slot: point its index entries there.
        let last = u32::try_from(self.rows.len().saturating_sub(1)).unwrap_or(u32::MAX);
        if last != slot
            && let Some(moved) = self.rows.get(last).copied()
        {
            let hash = self.hasher.hash_one(moved.sk());
            if let Some((b, _)) = self.by_sk.find(hash, |r| r == last) {
                self.by_sk.set(b, slot);
            }
            if let Some(alt) = moved.alt() {
                let hash = self.hasher.hash_one(alt);
                if let Some((b, _)) = self.by_alt.find(hash, |r| r == last) {
                    self.by_alt.set(b, slot);
                }
            }
        }
        self.rows.swap_remove(slot)
    }

    /// Among the rows whose second key is `alt`, the most recently changed.
    pub fn latest(&self, alt: &R::Alt) -> Option<R> {
        self.by_alt
            .candidates(self.hasher.hash_one(alt))
            .filter_map(|(_, r)| self.rows.get(r).copied())
            .filter(|x| x.alt().as_ref() == Some(alt))
            .max_by_key(|x| x.touched_ns())
    }

    /// Removes the least recently changed of a few rows sampled at random (of all of them in a
    /// table no bigger than the sample), never `keep`.
    #[cfg(test)]
    pub fn evict_oldest(&mut self, keep: u64) -> Option<R> {
        let (slot, _) = self.oldest(keep)?;
        self.remove_slot(slot)
    }

    /// The row [`Table::evict_oldest`] would remove: its number and change time.
    pub fn oldest(&mut self, keep: u64) -> Option<(u32, u64)> {
        let len = self.rows.len();
        let mut slots = [0u32; EVICTION_SAMPLES];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = match len <= EVICTION_SAMPLES {
                true => u32::try_from(i).unwrap_or(0),
                false => self.random_slot(len),
            };
        }
        let rows = &self.rows;
        let row = |slot: u32| Some((slot, rows.get(slot)?)).filter(|(_, x)| x.sk() != keep);
        let sampled = slots.into_iter().take(len).filter_map(row);
        // When every sample hit `keep`, any other row will do.
        let (slot, x) = sampled
            .min_by_key(|(_, x)| x.touched_ns())
            .or_else(|| (0..2).find_map(row))?;
        Some((slot, x.touched_ns()))
    }

    /// Removes row number `slot` (from [`Table::oldest`]).
    pub fn evict(&mut self, slot: u32) -> Option<R> {
        self.remove_slot(slot)
    }

    fn random_slot(&mut self, len: usize) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        u32::try_from(self.rng % (len.max(1) as u64)).unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.rows.iter()
    }

    /// Every row, to change what is neither its address nor its second key (owner ids).
    pub fn for_each_mut(&mut self, f: impl FnMut(&mut R)) {
        self.rows.iter_mut().for_each(f);
    }
}
