//! Connection ends held back for a short while: an abort reports `* -> CLOSE` before its
//! `tcp_send_reset` (verified on 6.18), so the end is only classified once the RST came or
//! [`RESET_GRACE_NS`] passed without it. Bounded: past the cap the oldest held end is released
//! at once, classified as if its grace had passed (counted as evicted).
use std::collections::VecDeque;

// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::{Event, Step, close::CloseKind};

/// The RST follows its CLOSE within microseconds, in the same kernel call.
pub const RESET_GRACE_NS: u64 = 5_000_000;

pub struct PendingEnds {
    held: HashMap<u64, Step>,
    /// (time, address) of each end held, oldest first; stale once taken.
    order: VecDeque<(u64, u64)>,
    cap: usize,
    evicted: u64,
}

impl PendingEnds {
    pub fn new(cap: usize) -> PendingEnds {
        PendingEnds {
            held: HashMap::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Holds `step`; releases into `out` an earlier end still held for the same address (its
    /// life is over for good now) and, when full, the oldest end held: no end is ever dropped.
    pub fn hold(&mut self, step: Step, out: &mut Vec<Step>) {
        self.order.push_back((step.ts_ns, step.sk));
        out.extend(self.held.insert(step.sk, step));
        while self.held.len() > self.cap {
            let Some((at, sk)) = self.order.pop_front() else {
                break;
            };
            if self.held.get(&sk).is_some_and(|s| s.ts_ns == at) {
                out.extend(self.held.remove(&sk));
                self.evicted += 1;
            }
        }
        if self.order.len() > 2 * self.held.len() + 64 {
            let held = &self.held;
            self.order
                .retain(|(at, sk)| held.get(sk).is_some_and(|s| s.ts_ns == *at));
        }
    }

    /// Releases the held end of the socket at `sk`, unchanged (its life is over for good).
    pub fn take(&mut self, sk: u64) -> Option<Step> {
        self.held.remove(&sk)
    }

    /// The held end of `sk` keeps no duration: the kernel counted it (kernel aggregation).
    pub fn untime(&mut self, sk: u64) {
        if let Some(step) = self.held.get_mut(&sk) {
            step.dwell_ns = None;
        }
    }

    /// An RST sent by the socket whose end is held (same address and tuple): an abort by us.
    pub fn reset_sent(&mut self, ev: &Event) -> Option<Step> {
        if self.held.get(&ev.sk)?.tuple != ev.tuple {
            return None;
        }
        let mut step = self.held.remove(&ev.sk)?;
        if let Some(end) = step.end.as_mut() {
            end.kind = CloseKind::RstSent;
        }
        Some(step)
    }

    pub fn settle(&mut self, now_ns: u64, out: &mut Vec<Step>) {
        while let Some(&(at, sk)) = self.order.front() {
            if at.saturating_add(RESET_GRACE_NS) >= now_ns {
                break;
            }
            self.order.pop_front();
            if self.held.get(&sk).is_some_and(|s| s.ts_ns == at) {
                out.extend(self.held.remove(&sk));
            }
        }
    }
}
