//! Connection ends held back for a short while: an abort reports `* -> CLOSE` before its
//! `tcp_send_reset` (verified on 6.18), so the end is only classified once the RST came or
//! [`RESET_GRACE_NS`] passed without it.
use std::collections::VecDeque;

// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::{Event, Step, close::CloseKind};

/// The RST follows its CLOSE within microseconds, in the same kernel call.
pub const RESET_GRACE_NS: u64 = 5_000_000;

#[derive(Default)]
pub struct PendingEnds {
    held: HashMap<u64, Step>,
    order: VecDeque<(u64, u64)>,
}

impl PendingEnds {
    /// Holds `step`; returns an earlier end still held for the same address (its life is
    /// over for good now), so no end is ever dropped.
    pub fn hold(&mut self, step: Step) -> Option<Step> {
        self.order.push_back((step.ts_ns, step.sk));
        self.held.insert(step.sk, step)
    }

    /// Releases the held end of the socket at `sk`, unchanged (its life is over for good).
    pub fn take(&mut self, sk: u64) -> Option<Step> {
        self.held.remove(&sk)
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

    pub fn settle(&mut self, now_ns: u64) -> Vec<Step> {
        let mut out = Vec::new();
        while let Some(&(at, sk)) = self.order.front() {
            if at.saturating_add(RESET_GRACE_NS) >= now_ns {
                break;
            }
            self.order.pop_front();
            if self.held.get(&sk).is_some_and(|s| s.ts_ns == at) {
                out.extend(self.held.remove(&sk));
            }
        }
        out
    }
}
