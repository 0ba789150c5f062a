//! Lives of timewait sockets, followed through their timer. The kernel reports a detach of the
//! timer (`timer_cancel`) both right before an expiry or a re-arm and alone for an early kill, so
//! a cancel only becomes an early end once no expiry or re-arm followed within [`CANCEL_GRACE_NS`].
use std::collections::{HashMap, VecDeque};

use super::{
    Anomalies, Event, InProgress, Note, Owner, Step, TcpState, TimerPhase, Tuple,
    sockets::{Closing, Handover},
};

/// An expiry or re-arm follows its cancel within microseconds on the same CPU.
pub const CANCEL_GRACE_NS: u64 = 5_000_000;

struct TimeWait {
    substate: TcpState,
    /// When the current substate began (for FIN_WAIT2: when the full socket entered it).
    since_ns: u64,
    cancel_at: Option<u64>,
    tuple: Tuple,
    netns: u32,
    owner: Owner,
    handed_over: bool,
}

#[derive(Default)]
pub struct TimeWaits {
    live: HashMap<u64, TimeWait>,
    /// Cancels waiting to become certain, oldest first: (time, timewait address).
    cancels: VecDeque<(u64, u64)>,
    by_tuple: HashMap<(u32, Tuple), u64>,
}

impl TimeWaits {
    /// Ends the timewaits whose cancel was not followed by an expiry or re-arm before `now_ns`.
    pub fn settle(&mut self, now_ns: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(&(at, addr)) = self.cancels.front() {
            if at.saturating_add(CANCEL_GRACE_NS) >= now_ns && now_ns != u64::MAX {
                break;
            }
            self.cancels.pop_front();
            if self.live.get(&addr).and_then(|tw| tw.cancel_at) == Some(at) {
                steps.extend(self.end(addr, at, Note::EndedEarly));
            }
        }
        steps
    }

    /// Called when a full socket with this tuple goes to CLOSE: did a timewait take it over?
    pub fn takes_over(&mut self, tuple: &Tuple, netns: u32) -> Handover {
        let Some(tw) = self
            .by_tuple
            .get(&(netns, *tuple))
            .and_then(|addr| self.live.get_mut(addr))
        else {
            return Handover::None;
        };
        if tw.handed_over {
            return Handover::None;
        }
        tw.handed_over = true;
        if tw.substate == TcpState::FinWait2 {
            Handover::ContinuesFinWait2
        } else {
            Handover::TimeWait
        }
    }

    pub fn timer(
        &mut self,
        ev: &Event,
        phase: TimerPhase,
        substate: TcpState,
        closing: Option<Closing>,
        anomalies: &mut Anomalies,
    ) -> Option<Step> {
        match phase {
            TimerPhase::Start => self.start(ev, substate, closing),
            TimerPhase::Cancel => {
                if let Some(tw) = self.live.get_mut(&ev.sk) {
                    tw.cancel_at = Some(ev.ts_ns);
                    self.cancels.push_back((ev.ts_ns, ev.sk));
                }
                None
            }
            TimerPhase::Expire => {
                if self.live.contains_key(&ev.sk) {
                    self.end(ev.sk, ev.ts_ns, Note::Expired)
                } else {
                    anomalies.timewait_start_not_seen += 1;
                    Some(Step {
                        ts_ns: ev.ts_ns,
                        sk: ev.sk,
                        tuple: ev.tuple,
                        netns: ev.netns,
                        owner: Owner::default(),
                        from: substate,
                        to: TcpState::Close,
                        dwell_ns: None,
                        note: Some(Note::StartNotSeen),
                    })
                }
            }
        }
    }

    fn start(&mut self, ev: &Event, substate: TcpState, closing: Option<Closing>) -> Option<Step> {
        if let Some(tw) = self.live.get_mut(&ev.sk) {
            // A re-arm of a live timewait: a substate change or a refreshed timeout.
            tw.cancel_at = None;
            if tw.substate == substate {
                return None;
            }
            let step = Step {
                ts_ns: ev.ts_ns,
                sk: ev.sk,
                tuple: tw.tuple,
                netns: tw.netns,
                owner: tw.owner.clone(),
                from: tw.substate,
                to: substate,
                dwell_ns: Some(ev.ts_ns.saturating_sub(tw.since_ns)),
                note: None,
            };
            tw.substate = substate;
            tw.since_ns = ev.ts_ns;
            return Some(step);
        }
        let from = closing
            .as_ref()
            .map_or(TcpState::FinWait2, |closing| closing.state);
        let since_ns = match &closing {
            Some(c) if substate == TcpState::FinWait2 && c.state == TcpState::FinWait2 => {
                c.entered_ns
            }
            _ => ev.ts_ns,
        };
        let owner = closing.map(|c| c.owner).unwrap_or_default();
        self.live.insert(
            ev.sk,
            TimeWait {
                substate,
                since_ns,
                cancel_at: None,
                tuple: ev.tuple,
                netns: ev.netns,
                owner: owner.clone(),
                handed_over: false,
            },
        );
        self.by_tuple.insert((ev.netns, ev.tuple), ev.sk);
        // An orphaned FIN_WAIT2 goes on quietly; the line worth printing is TIME_WAIT's start.
        (substate == TcpState::TimeWait).then_some(Step {
            ts_ns: ev.ts_ns,
            sk: ev.sk,
            tuple: ev.tuple,
            netns: ev.netns,
            owner,
            from,
            to: TcpState::TimeWait,
            dwell_ns: None,
            note: None,
        })
    }

    fn end(&mut self, addr: u64, at_ns: u64, note: Note) -> Option<Step> {
        let tw = self.live.remove(&addr)?;
        if self.by_tuple.get(&(tw.netns, tw.tuple)) == Some(&addr) {
            self.by_tuple.remove(&(tw.netns, tw.tuple));
        }
        Some(Step {
            ts_ns: at_ns,
            sk: addr,
            tuple: tw.tuple,
            netns: tw.netns,
            owner: tw.owner,
            from: tw.substate,
            to: TcpState::Close,
            dwell_ns: Some(at_ns.saturating_sub(tw.since_ns)),
            note: Some(note),
        })
    }

    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        self.live
            .values()
            .map(|tw| InProgress {
                state: tw.substate,
                age_ns: now_ns.saturating_sub(tw.since_ns),
                tuple: tw.tuple,
            })
            .collect()
    }
}
