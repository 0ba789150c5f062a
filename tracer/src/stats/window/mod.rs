//! The daemon's history, so queries can ask for "the last 5 minutes" or "since 14:00": what
//! ended in each time slot, kept in two tiers. Fine slots ([`DEFAULT_SLOT`], 10 s) cover the
//! last [`FINE_SLOTS`] of them (1 hour); as they age out they are folded into coarse slots
//! ([`COARSE_FACTOR`] fine ones: 15 min) kept for [`COARSE_SLOTS`] of them (24 hours). Slot
//! edges fall on wall-clock multiples of their length (14:00:00, 14:00:10, ...). Only slots
//! that saw something exist, and each is bounded ([`slot`]): at most 16 KiB of duration buckets
//! and 2 × ([`slot::GROUP_BUDGET`] + 4 `other`) close groups of ~0.7 KiB, about 55 KiB. So the
//! history holds at most 360 + 96 slots, about 25 MiB in the worst case; an idle hour costs
//! nothing, a steady host with a few services a few KiB per slot (1–2 MiB in all).
pub mod slot;
pub mod sparse;

#[cfg(test)]
mod tests;

use std::{collections::VecDeque, time::Duration};

use hdrhistogram::Histogram;
use slot::Slot;

use super::{StateStats, closes::CloseStats};
use crate::model::{Step, TcpState};

/// The fine slot length `tracer run` uses (a hidden `--slot` changes it, for tests).
pub const DEFAULT_SLOT: Duration = Duration::from_secs(10);
/// Fine slots kept: 1 hour of 10 s slots.
pub const FINE_SLOTS: u64 = 360;
/// Fine slots per coarse slot: 15 minutes.
pub const COARSE_FACTOR: u64 = 90;
/// Coarse slots kept: 24 hours of 15 min slots.
pub const COARSE_SLOTS: u64 = 96;

/// Slots of one length, oldest first; only those that saw something.
#[derive(Debug)]
struct Tier {
    slot_ns: u64,
    keep: u64,
    slots: VecDeque<Slot>,
}

impl Tier {
    fn new(slot_ns: u64, keep: u64) -> Tier {
        Tier {
            slot_ns,
            keep,
            slots: VecDeque::new(),
        }
    }

    fn slot(&mut self, number: u64) -> &mut Slot {
        let i = match self.slots.back() {
            Some(last) if last.number == number => self.slots.len() - 1,
            Some(last) if last.number > number => {
                match self.slots.binary_search_by_key(&number, |s| s.number) {
                    Ok(i) => i,
                    Err(i) => {
                        self.slots.insert(i, Slot::new(number));
                        i
                    }
                }
            }
            _ => {
                if let Some(last) = self.slots.back_mut() {
                    last.shrink();
                }
                self.slots.push_back(Slot::new(number));
                self.slots.len() - 1
            }
        };
        &mut self.slots[i]
    }

    /// The first slot number kept when `now` is slot number `now`.
    fn first_kept(&self, now: u64) -> u64 {
        (now + 1).saturating_sub(self.keep)
    }
}

/// What a history answers for an interval: everything that ended in its slots, merged.
pub struct Merged {
    pub stats: StateStats,
    pub closes: CloseStats,
    pub events: u64,
    /// The fewest significant bits of any slot merged ([`sparse::FULL_BITS`] when none
    /// coarsened).
    pub bits: u32,
}

/// Where an interval asked for starts, once fitted to the slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Boot-time ns of the slot edge the answer counts from.
    pub at_ns: u64,
    /// The slot length that edge is a multiple of.
    pub slot_ns: u64,
    /// The history did not reach back to the start asked for: it starts at its oldest slot.
    pub beyond_history: bool,
}

#[derive(Debug)]
pub struct History {
    fine: Tier,
    coarse: Tier,
    /// Added to boot-time ns so that slot edges fall on wall-clock multiples of their length.
    shift_ns: u64,
    /// The newest fine slot number seen: the history's "now".
    now: u64,
}

impl History {
    /// `slot` is the fine slot length; `realtime_at_boot_ns` is the wall clock (ns since the
    /// epoch) at boot time 0, to put the slot edges on round wall-clock times.
    pub fn new(slot: Duration, realtime_at_boot_ns: i64) -> History {
        let fine = u64::try_from(slot.as_nanos()).unwrap_or(u64::MAX).max(1);
        let coarse = fine.saturating_mul(COARSE_FACTOR);
        let shift = i128::from(realtime_at_boot_ns).rem_euclid(i128::from(coarse));
        History {
            fine: Tier::new(fine, FINE_SLOTS),
            coarse: Tier::new(coarse, COARSE_SLOTS),
            shift_ns: u64::try_from(shift).unwrap_or(0),
            now: 0,
        }
    }

    pub fn slot_ns(&self) -> u64 {
        self.fine.slot_ns
    }

    fn shifted(&self, boot_ns: u64) -> u64 {
        boot_ns.saturating_add(self.shift_ns)
    }

    /// Counts a step in the slot of its time (a late one in the slot it belongs to, while kept).
    pub fn record(&mut self, step: &Step) {
        if let Some(slot) = self.slot_at(step.ts_ns) {
            slot.record(step);
        }
    }

    /// Counts `n` sockets that spent `ns` in `state`, in the slot of `ts_ns`.
    pub fn record_dwell(&mut self, ts_ns: u64, state: TcpState, ns: u64, n: u64) {
        if let Some(slot) = self.slot_at(ts_ns) {
            slot.record_dwell(state, ns, n);
        }
    }

    /// Counts an event read, in the slot of its time.
    pub fn count_event(&mut self, ts_ns: u64) {
        if let Some(slot) = self.slot_at(ts_ns) {
            slot.events += 1;
        }
    }

    fn slot_at(&mut self, ts_ns: u64) -> Option<&mut Slot> {
        let at = self.shifted(ts_ns);
        let number = at / self.fine.slot_ns;
        self.advance_to(number);
        if number >= self.fine.first_kept(self.now) {
            return Some(self.fine.slot(number));
        }
        let number = at / self.coarse.slot_ns;
        let now = self.shifted_now() / self.coarse.slot_ns;
        (number >= self.coarse.first_kept(now)).then(|| self.coarse.slot(number))
    }

    fn shifted_now(&self) -> u64 {
        self.now.saturating_mul(self.fine.slot_ns)
    }

    /// Moves the history's "now" to boot time `now_ns`: fine slots that age out are folded into
    /// their coarse slot, coarse ones that age out are dropped.
    pub fn advance(&mut self, now_ns: u64) {
        self.advance_to(self.shifted(now_ns) / self.fine.slot_ns);
    }

    fn advance_to(&mut self, number: u64) {
        if number <= self.now {
            return;
        }
        self.now = number;
        let first = self.fine.first_kept(number);
        while self.fine.slots.front().is_some_and(|s| s.number < first) {
            let Some(old) = self.fine.slots.pop_front() else {
                break;
            };
            let coarse = old.number.saturating_mul(self.fine.slot_ns) / self.coarse.slot_ns;
            self.coarse.slot(coarse).absorb(&old);
        }
        let first = self
            .coarse
            .first_kept(self.shifted_now() / self.coarse.slot_ns);
        while self.coarse.slots.front().is_some_and(|s| s.number < first) {
            self.coarse.slots.pop_front();
        }
    }

    /// The slot edge an answer for "since boot time `from_ns`" counts from: `from_ns` rounded
    /// down to a fine slot while fine slots reach back that far, else to a coarse one, and no
    /// earlier than the oldest coarse slot kept.
    pub fn start(&self, from_ns: u64) -> Start {
        let from = self.shifted(from_ns);
        let fine_from = self.fine.first_kept(self.now) * self.fine.slot_ns;
        let (edge, slot_ns, beyond_history) = if from >= fine_from {
            let len = self.fine.slot_ns;
            (from / len * len, len, false)
        } else {
            let len = self.coarse.slot_ns;
            let oldest = self.coarse.first_kept(self.shifted_now() / len) * len;
            let edge = from / len * len;
            (edge.max(oldest), len, edge < oldest)
        };
        Start {
            at_ns: edge.saturating_sub(self.shift_ns),
            slot_ns,
            beyond_history,
        }
    }

    /// Everything that ended from `start` (see [`History::start`]) on, merged: fine slots from
    /// there, and coarse ones too when `start` is a coarse edge (they hold only what the fine
    /// slots no longer do, so nothing counts twice).
    pub fn merged(&self, start: Start) -> Merged {
        let from = self.shifted(start.at_ns);
        let fine = self
            .fine
            .slots
            .iter()
            .filter(|s| s.number.saturating_mul(self.fine.slot_ns) >= from);
        let coarse = self
            .coarse
            .slots
            .iter()
            .filter(|_| start.slot_ns == self.coarse.slot_ns)
            .filter(|s| s.number.saturating_mul(self.coarse.slot_ns) >= from);
        merge(coarse.chain(fine))
    }

    /// Slots held (fine, coarse).
    pub fn slots(&self) -> (usize, usize) {
        (self.fine.slots.len(), self.coarse.slots.len())
    }
}

fn merge<'a>(slots: impl Iterator<Item = &'a Slot>) -> Merged {
    let mut hists: Vec<Histogram<u64>> = TcpState::ALL
        .iter()
        .map(|_| Histogram::new(3).expect("3 significant digits are valid"))
        .collect();
    let mut start_not_seen = [0; 11];
    let mut closes = CloseStats::default();
    let (mut events, mut bits) = (0, sparse::FULL_BITS);
    for slot in slots {
        for state in TcpState::ALL {
            let dwells = slot.dwells(state);
            slot::add_to(&mut hists[state.index()], dwells, slot.bits);
            start_not_seen[state.index()] += dwells.start_not_seen;
        }
        closes.merge(&slot.closes);
        events += slot.events;
        bits = bits.min(slot.bits);
    }
    Merged {
        stats: StateStats::from_parts(hists, start_not_seen),
        closes,
        events,
        bits,
    }
}
