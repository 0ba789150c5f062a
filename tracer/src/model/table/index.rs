//! A hash index of row numbers: 4 bytes a bucket. Over a million rows it costs 8 MiB where a
//! `HashMap<u64, u32>` costs 34 MiB (16-byte buckets plus control bytes, doubled past 7/8 load).
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones, so probe
//! sequences never lengthen with churn). The keys stay in the caller's rows: the caller gives
//! the hash to look for, says whether a row matches, and can hash any row again (for deletion
//! and growth). The load stays between 1/16 and 3/4, so a probe always meets an empty bucket.
//!
//! A bucket holds the row number in its low 24 bits and 8 bits of the row's hash above them:
//! a probe skips almost every row of another key without loading it (each load is a cache
//! miss in a big table).

const EMPTY: u32 = u32::MAX;
const ROW_BITS: u32 = 24;
const ROW_MASK: u32 = (1 << ROW_BITS) - 1;
/// Rows a table may hold: row numbers stop below the all-ones pattern [`EMPTY`] uses.
pub const MAX_ROWS: usize = ROW_MASK as usize;
const MIN_BUCKETS: usize = 16;

#[derive(Default)]
pub struct Index {
    buckets: Vec<u32>,
    len: usize,
}

impl Index {
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    fn at(&self, bucket: usize) -> u32 {
        self.buckets.get(bucket).copied().unwrap_or(EMPTY)
    }

    fn tag(hash: u64) -> u32 {
        ((hash >> 56) as u32) << ROW_BITS
    }

    /// The rows in the probe sequence of `hash` whose stored hash bits match: every row with
    /// that hash is among them.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = (usize, u32)> + '_ {
        let mask = self.mask();
        let start = hash as usize & mask;
        let tag = Self::tag(hash);
        (0..self.buckets.len())
            .map(move |i| (start + i) & mask)
            .map(|b| (b, self.at(b)))
            .take_while(|&(_, entry)| entry != EMPTY)
            .filter(move |&(_, entry)| entry & !ROW_MASK == tag)
            .map(|(b, entry)| (b, entry & ROW_MASK))
    }

    /// The bucket and row of the first row with this hash for which `is` holds.
    pub fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        self.candidates(hash).find(|&(_, row)| is(row))
    }

    /// Adds `row` (the caller ensures it is not there yet); `rehash` gives any row's hash.
    pub fn insert(&mut self, hash: u64, row: u32, rehash: impl Fn(u32) -> u64) {
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.resize((self.buckets.len() * 2).max(MIN_BUCKETS), &rehash);
        }
        self.place(hash, row);
    }

    fn place(&mut self, hash: u64, row: u32) {
        debug_assert!(
            (row as usize) < MAX_ROWS,
            "row {row} beyond the index's 24 bits"
        );
        let entry = Self::tag(hash) | (row & ROW_MASK);
        let mask = self.mask();
        let mut b = hash as usize & mask;
        for _ in 0..self.buckets.len() {
            if let Some(slot) = self.buckets.get_mut(b)
                && *slot == EMPTY
            {
                *slot = entry;
                self.len += 1;
                return;
            }
            b = (b + 1) & mask;
        }
    }

    /// Points `bucket` at another row with the same hash (a row that moved).
    pub fn set(&mut self, bucket: usize, row: u32) {
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot = (*slot & !ROW_MASK) | (row & ROW_MASK);
        }
    }

    fn set_entry(&mut self, bucket: usize, entry: u32) {
        if let Some(slot) = self.buckets.get_mut(bucket) {
            *slot = entry;
        }
    }

    /// Empties `bucket`, shifting back the rows after it that probed past it.
    pub fn remove(&mut self, bucket: usize, rehash: impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut hole = bucket;
        let mut next = (hole + 1) & mask;
        for _ in 0..self.buckets.len() {
            let entry = self.at(next);
            if entry == EMPTY {
                break;
            }
            let home = rehash(entry & ROW_MASK) as usize & mask;
            // The row may fill the hole unless its home lies in (hole, next].
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(hole) & mask) {
                self.set_entry(hole, entry);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.set_entry(hole, EMPTY);
        self.len = self.len.saturating_sub(1);
        if self.buckets.len() > MIN_BUCKETS && self.len * 16 < self.buckets.len() {
            self.resize(self.buckets.len() / 2, &rehash);
        }
    }

    fn resize(&mut self, buckets: usize, rehash: &impl Fn(u32) -> u64) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        self.len = 0;
        for entry in old.into_iter().filter(|&e| e != EMPTY) {
            let row = entry & ROW_MASK;
            self.place(rehash(row), row);
        }
    }
}
