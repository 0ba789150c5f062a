//! One time slot of the daemon's history: the durations that ended in it (per state, sparse),
//! the connection ends, and the events read. Its memory is bounded: at most [`BUCKET_BUDGET`]
//! duration buckets (it coarsens its buckets rather than grow past them) and
//! [`CloseStats::limited`] groups.
use hdrhistogram::Histogram;

use super::sparse::{FULL_BITS, Sparse, bucket, middle};
use crate::{
    model::{Note, Step, TcpState},
    stats::{MAX_TRACKABLE_NS, closes::CloseStats},
};

/// Duration buckets a slot holds, all states together (16 bytes each): 16 KiB.
pub const BUCKET_BUDGET: usize = 1024;
/// Services, and processes, a slot groups connection ends by before it counts them as `other`
/// (a group is about 0.7 KiB: its row, map entry and up to two owners).
pub const GROUP_BUDGET: usize = 24;
/// The significant bits a slot falls back to, in turn, when its buckets exceed the budget. At
/// 1 bit every state holds at most 66 buckets (one per power of two), so the budget always holds.
const COARSER: [u32; 4] = [8, 5, 2, 1];

/// The durations of one state that ended in a slot.
#[derive(Clone, Debug, Default)]
pub struct Dwells {
    pub buckets: Sparse,
    /// Exact extremes, so the merged minimum and maximum stay exact however coarse the buckets.
    pub min: u64,
    pub max: u64,
    pub start_not_seen: u64,
}

impl Dwells {
    fn note(&mut self, ns: u64) {
        if self.buckets.is_empty() || ns < self.min {
            self.min = ns;
        }
        self.max = self.max.max(ns);
    }
}

#[derive(Clone, Debug)]
pub struct Slot {
    /// Which slot: its start is `number * slot_ns` on the history's shifted clock.
    pub number: u64,
    /// Significant bits of its buckets: [`FULL_BITS`], or fewer once it had to coarsen.
    pub bits: u32,
    dwells: Vec<Dwells>,
    pub closes: CloseStats,
    pub events: u64,
}

impl Slot {
    pub fn new(number: u64) -> Slot {
        Slot {
            number,
            bits: FULL_BITS,
            dwells: vec![Dwells::default(); TcpState::ALL.len()],
            closes: CloseStats::limited(GROUP_BUDGET),
            events: 0,
        }
    }

    pub fn dwells(&self, state: TcpState) -> &Dwells {
        &self.dwells[state.index()]
    }

    /// Duration buckets held, all states together.
    pub fn buckets(&self) -> usize {
        self.dwells.iter().map(|d| d.buckets.len()).sum()
    }

    pub fn record(&mut self, step: &Step) {
        self.closes.record(step);
        match step.dwell_ns {
            Some(ns) => self.record_dwell(step.from, ns, 1),
            None if step.note == Some(Note::StartNotSeen) => {
                self.dwells[step.from.index()].start_not_seen += 1
            }
            None => {}
        }
    }

    /// Counts `n` sockets that spent `ns` in `state`.
    pub fn record_dwell(&mut self, state: TcpState, ns: u64, n: u64) {
        let ns = ns.clamp(1, MAX_TRACKABLE_NS);
        let dwells = &mut self.dwells[state.index()];
        dwells.note(ns);
        if dwells.buckets.add(bucket(ns, self.bits), n) {
            self.fit();
        }
    }

    /// Adds everything `other` holds (a finer slot folded into a coarser one).
    pub fn absorb(&mut self, other: &Slot) {
        if other.bits < self.bits {
            self.coarsen(other.bits);
        }
        for (mine, theirs) in self.dwells.iter_mut().zip(&other.dwells) {
            if theirs.buckets.is_empty() {
                mine.start_not_seen += theirs.start_not_seen;
                continue;
            }
            if mine.buckets.is_empty() {
                mine.min = theirs.min;
            }
            mine.min = mine.min.min(theirs.min);
            mine.max = mine.max.max(theirs.max);
            mine.start_not_seen += theirs.start_not_seen;
            mine.buckets.merge(&theirs.buckets, self.bits);
        }
        self.closes.merge(&other.closes);
        self.events += other.events;
        self.fit();
        self.shrink();
    }

    /// Coarsens the buckets until they fit the budget.
    fn fit(&mut self) {
        while self.buckets() > BUCKET_BUDGET {
            let Some(&bits) = COARSER.iter().find(|&&b| b < self.bits) else {
                return;
            };
            self.coarsen(bits);
        }
    }

    fn coarsen(&mut self, bits: u32) {
        for dwells in &mut self.dwells {
            dwells.buckets.coarsen(bits);
        }
        self.bits = bits;
    }

    /// Gives back spare capacity once the slot is no longer the one written to.
    pub fn shrink(&mut self) {
        for dwells in &mut self.dwells {
            dwells.buckets.shrink();
        }
    }
}

/// Adds a slot's durations of one state to `hist` (3 significant digits): each bucket's count at
/// its middle, except its exact minimum and maximum, so the histogram's `min()` and `max()` are
/// what a histogram fed every value would say.
pub fn add_to(hist: &mut Histogram<u64>, dwells: &Dwells, bits: u32) {
    let record = |hist: &mut Histogram<u64>, value: u64, n: u64| {
        if n > 0 && hist.record_n(value, n).is_err() {
            hist.saturating_record_n(value, n);
        }
    };
    let (low, high) = (bucket(dwells.min, bits), bucket(dwells.max, bits));
    for (key, count) in dwells.buckets.iter() {
        let mut rest = count;
        if key == low && rest > 0 {
            record(hist, dwells.min, 1);
            rest -= 1;
        }
        if key == high && rest > 0 {
            record(hist, dwells.max, 1);
            rest -= 1;
        }
        // Clamped: the middle of the lowest or highest bucket may lie beyond what was seen.
        record(hist, middle(key, bits).clamp(dwells.min, dwells.max), rest);
    }
}
