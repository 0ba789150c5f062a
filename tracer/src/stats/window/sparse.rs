//! A duration histogram that stores only the buckets it uses, as sorted `(bucket, count)`
//! pairs: an empty one costs nothing, a busy one at most its budget. Its buckets are
//! hdrhistogram's at 3 significant digits (11 significant bits: `bucket(v, 11)` is the lowest
//! value hdrhistogram counts `v` with), or a power of two coarser, so counts merged into an
//! hdrhistogram land in the bucket they came from.

/// Significant bits of hdrhistogram's buckets at 3 significant digits (2048 sub-buckets).
pub const FULL_BITS: u32 = 11;

/// The lowest value of `value`'s bucket when `bits` significant bits are kept.
pub fn bucket(value: u64, bits: u32) -> u64 {
    let len = u64::BITS - value.leading_zeros();
    if len <= bits {
        value
    } else {
        let shift = len - bits;
        value >> shift << shift
    }
}

/// How many values `key`'s bucket holds when `bits` significant bits are kept.
pub fn width(key: u64, bits: u32) -> u64 {
    let len = u64::BITS - key.leading_zeros();
    if len <= bits { 1 } else { 1 << (len - bits) }
}

/// The value that stands for a bucket when its values are not known: its middle.
pub fn middle(key: u64, bits: u32) -> u64 {
    key.saturating_add(width(key, bits) / 2)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sparse {
    pairs: Vec<(u64, u64)>,
}

impl Sparse {
    /// Adds `count` to bucket `key`; true when that bucket is new.
    pub fn add(&mut self, key: u64, count: u64) -> bool {
        match self.pairs.binary_search_by_key(&key, |p| p.0) {
            Ok(i) => {
                self.pairs[i].1 += count;
                false
            }
            Err(i) => {
                self.pairs.insert(i, (key, count));
                true
            }
        }
    }

    /// Buckets in use.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.pairs.iter().map(|p| p.1).sum()
    }

    /// `(bucket, count)`, lowest bucket first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pairs.iter().copied()
    }

    /// Rebuckets with `bits` significant bits (no more than it has): neighbours merge.
    pub fn coarsen(&mut self, bits: u32) {
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.pairs.len());
        for &(key, count) in &self.pairs {
            let key = bucket(key, bits);
            match out.last_mut() {
                Some(last) if last.0 == key => last.1 += count,
                _ => out.push((key, count)),
            }
        }
        self.pairs = out;
    }

    /// Adds every bucket of `other`, rebucketed with `bits` (no more than either has).
    pub fn merge(&mut self, other: &Sparse, bits: u32) {
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.pairs.len() + other.pairs.len());
        let (mut a, mut b) = (self.pairs.iter().peekable(), other.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&y)) if x.0 <= bucket(y.0, bits) => a.next().copied(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next().map(|(k, c)| (bucket(k, bits), c)),
                (Some(_), None) => a.next().copied(),
                (None, None) => break,
            };
            let Some((key, count)) = next else { break };
            match out.last_mut() {
                Some(last) if last.0 == key => last.1 += count,
                _ => out.push((key, count)),
            }
        }
        self.pairs = out;
    }

    /// Gives back spare capacity (a slot that is no longer written).
    pub fn shrink(&mut self) {
        self.pairs.shrink_to_fit();
    }
}
