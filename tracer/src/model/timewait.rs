//! Lives of timewait sockets, followed through their timer.
//!
//! Kernel behaviour this encodes (verified on 6.18):
//! - `timer_cancel` fires both right before an expiry or a re-arm of the same timer and alone
//!   for an early kill (tw reuse, RST, netns exit). A cancel only becomes an early end once no
//!   expiry or re-arm followed within [`CANCEL_GRACE_NS`].
//! - A freed timewait's memory is soon reused by the next one. A start at a live address is a
//!   new life when a full socket with that tuple is closing (a handover), else a re-arm.
//! - An orphaned socket is handed over in FIN_WAIT2 substate; when the peer's FIN arrives within
//!   the timer wheel's granularity (~2 s at 60 s) the re-arm is invisible, and only the substate
//!   read at the end shows TIME_WAIT. TIME_WAIT is then counted from the timewait's start.
use std::collections::VecDeque;

// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::{
    Anomalies, Event, InProgress, Note, Owner, Step, TcpState, TimerPhase, Tuple,
    seed::{Seed, Seeds},
    sockets::{Closing, Handover},
};

/// An expiry or re-arm follows its cancel within microseconds on the same CPU.
pub const CANCEL_GRACE_NS: u64 = 5_000_000;

struct TimeWait {
    substate: TcpState,
    /// When the timewait socket's timer first started.
    started_ns: u64,
    /// When the current substate began (for FIN_WAIT2: when the full socket entered it).
    since_ns: u64,
    /// A cancel not yet known to be an early end: its time and the substate it reported.
    cancel: Option<(u64, TcpState)>,
    tuple: Tuple,
    netns: u32,
    owner: Owner,
    role: super::Role,
    handed_over: bool,
}

#[derive(Default)]
pub struct TimeWaits {
    live: HashMap<u64, TimeWait>,
    /// Cancels waiting to become certain, oldest first: (time, timewait address).
    cancels: VecDeque<(u64, u64)>,
    by_tuple: HashMap<(u32, Tuple), u64>,
    /// TIME_WAITs from the attach-time snapshot, dated by their timer; matched by tuple when
    /// their timer first fires.
    seeds: Seeds,
}

impl TimeWaits {
    /// Ends the timewaits whose cancel was not followed by an expiry or re-arm before `now_ns`.
    pub fn settle(&mut self, now_ns: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(&(at, addr)) = self.cancels.front() {
            if at.saturating_add(CANCEL_GRACE_NS) >= now_ns {
                break;
            }
            self.cancels.pop_front();
            self.end_if_cancelled(addr, at, &mut steps);
        }
        steps
    }

    fn end_if_cancelled(&mut self, addr: u64, at: u64, steps: &mut Vec<Step>) {
        let Some((cancel_at, substate)) = self.live.get(&addr).and_then(|tw| tw.cancel) else {
            return;
        };
        if cancel_at == at {
            steps.extend(self.end(addr, at, substate, Note::EndedEarly));
        }
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

    /// On one host both ends are visible: the peer's `CLOSE_WAIT -> LAST_ACK` is the moment its
    /// FIN leaves, turning our FIN_WAIT2-substate timewait (the reversed tuple) into TIME_WAIT.
    pub fn peer_sent_fin(&mut self, peer: &Tuple, netns: u32, ts_ns: u64) -> Option<Step> {
        let reversed = Tuple::new(peer.remote, peer.remote_port, peer.local, peer.local_port);
        let addr = *self.by_tuple.get(&(netns, reversed))?;
        let tw = self.live.get_mut(&addr)?;
        if tw.substate != TcpState::FinWait2 {
            return None;
        }
        let step = Step {
            ts_ns,
            sk: addr,
            tuple: tw.tuple,
            netns: tw.netns,
            owner: tw.owner.clone(),
            from: TcpState::FinWait2,
            to: TcpState::TimeWait,
            dwell_ns: Some(ts_ns.saturating_sub(tw.since_ns)),
            note: None,
            end: None,
        };
        tw.substate = TcpState::TimeWait;
        tw.since_ns = ts_ns;
        Some(step)
    }

    pub fn seed(&mut self, seed: Seed) {
        self.seeds.insert(seed);
    }

    /// A timer event for an address not followed yet may belong to a snapshot TIME_WAIT.
    fn adopt_seed(&mut self, ev: &Event, phase: TimerPhase) {
        if phase == TimerPhase::Start || self.live.contains_key(&ev.sk) {
            return;
        }
        let Some(seed) = self.seeds.take(ev.netns, &ev.tuple) else {
            return;
        };
        self.live.insert(
            ev.sk,
            TimeWait {
                substate: TcpState::TimeWait,
                started_ns: seed.entered_ns,
                since_ns: seed.entered_ns,
                cancel: None,
                tuple: ev.tuple,
                netns: ev.netns,
                owner: seed.owner,
                role: seed.role,
                handed_over: true,
            },
        );
        self.by_tuple.insert((ev.netns, ev.tuple), ev.sk);
    }

    pub fn timer(
        &mut self,
        ev: &Event,
        phase: TimerPhase,
        substate: TcpState,
        closing: Option<Closing>,
        anomalies: &mut Anomalies,
    ) -> Vec<Step> {
        self.adopt_seed(ev, phase);
        match phase {
            TimerPhase::Start => self.start(ev, substate, closing, anomalies),
            TimerPhase::Cancel => {
                if let Some(tw) = self.live.get_mut(&ev.sk) {
                    tw.cancel = Some((ev.ts_ns, substate));
                    self.cancels.push_back((ev.ts_ns, ev.sk));
                }
                Vec::new()
            }
            TimerPhase::Expire if self.live.contains_key(&ev.sk) => {
                self.end(ev.sk, ev.ts_ns, substate, Note::Expired)
            }
            TimerPhase::Expire => {
                anomalies.timewait_start_not_seen += 1;
                vec![Step {
                    ts_ns: ev.ts_ns,
                    sk: ev.sk,
                    tuple: ev.tuple,
                    netns: ev.netns,
                    owner: Owner::default(),
                    from: substate,
                    to: TcpState::Close,
                    dwell_ns: None,
                    note: Some(Note::StartNotSeen),
                    end: None,
                }]
            }
        }
    }

    fn start(
        &mut self,
        ev: &Event,
        substate: TcpState,
        closing: Option<Closing>,
        anomalies: &mut Anomalies,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(tw) = self.live.get(&ev.sk) {
            // A re-arm keeps its tuple; a handover or another tuple means a new timewait.
            if closing.is_none() && tw.tuple == ev.tuple {
                return self.rearm(ev, substate).into_iter().collect();
            }
            // A new timewait at the address of one that was killed: end the old life first.
            match self.live.get(&ev.sk).and_then(|tw| tw.cancel) {
                Some((at, old_substate)) => {
                    steps.extend(self.end(ev.sk, at, old_substate, Note::EndedEarly))
                }
                None => {
                    anomalies.timewait_start_not_seen += 1;
                    self.forget(ev.sk);
                }
            }
        }
        let from = closing.as_ref().map_or(TcpState::FinWait2, |c| c.state);
        let since_ns = match &closing {
            Some(c) if substate == TcpState::FinWait2 && c.state == TcpState::FinWait2 => {
                c.entered_ns
            }
            _ => ev.ts_ns,
        };
        let role = closing.as_ref().map_or(super::Role::Unknown, |c| c.role);
        let owner = closing.map(|c| c.owner).unwrap_or_default();
        self.live.insert(
            ev.sk,
            TimeWait {
                substate,
                started_ns: ev.ts_ns,
                since_ns,
                cancel: None,
                tuple: ev.tuple,
                netns: ev.netns,
                owner: owner.clone(),
                role,
                handed_over: false,
            },
        );
        self.by_tuple.insert((ev.netns, ev.tuple), ev.sk);
        // An orphaned FIN_WAIT2 goes on quietly; the line worth printing is TIME_WAIT's start.
        if substate == TcpState::TimeWait {
            steps.push(Step {
                ts_ns: ev.ts_ns,
                sk: ev.sk,
                tuple: ev.tuple,
                netns: ev.netns,
                owner,
                from,
                to: TcpState::TimeWait,
                dwell_ns: None,
                note: None,
                end: None,
            });
        }
        steps
    }

    /// A re-arm of a live timewait: a substate change or a refreshed timeout.
    fn rearm(&mut self, ev: &Event, substate: TcpState) -> Option<Step> {
        let tw = self.live.get_mut(&ev.sk)?;
        tw.cancel = None;
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
            end: None,
        };
        tw.substate = substate;
        tw.since_ns = ev.ts_ns;
        Some(step)
    }

    fn forget(&mut self, addr: u64) -> Option<TimeWait> {
        let tw = self.live.remove(&addr)?;
        if self.by_tuple.get(&(tw.netns, tw.tuple)) == Some(&addr) {
            self.by_tuple.remove(&(tw.netns, tw.tuple));
        }
        Some(tw)
    }

    /// Ends a timewait at `at_ns`; `final_substate` is what the kernel reported at the end.
    fn end(&mut self, addr: u64, at_ns: u64, final_substate: TcpState, note: Note) -> Vec<Step> {
        let Some(mut tw) = self.forget(addr) else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        if tw.substate == TcpState::FinWait2 && final_substate == TcpState::TimeWait {
            // The FIN arrived without a visible re-arm: FIN_WAIT2 is known up to the
            // timewait's start, TIME_WAIT is counted from there.
            steps.push(Step {
                ts_ns: tw.started_ns,
                sk: addr,
                tuple: tw.tuple,
                netns: tw.netns,
                owner: tw.owner.clone(),
                from: TcpState::FinWait2,
                to: TcpState::TimeWait,
                dwell_ns: Some(tw.started_ns.saturating_sub(tw.since_ns)),
                note: None,
                end: None,
            });
            tw.substate = TcpState::TimeWait;
            tw.since_ns = tw.started_ns;
        }
        steps.push(Step {
            ts_ns: at_ns,
            sk: addr,
            tuple: tw.tuple,
            netns: tw.netns,
            owner: tw.owner,
            from: tw.substate,
            to: TcpState::Close,
            dwell_ns: Some(at_ns.saturating_sub(tw.since_ns)),
            note: Some(note),
            end: None,
        });
        steps
    }

    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        self.live
            .values()
            .map(|tw| InProgress {
                state: tw.substate,
                age_ns: now_ns.saturating_sub(tw.since_ns),
                tuple: tw.tuple,
                exact: true,
                role: tw.role,
                owner: tw.owner.clone(),
            })
            .chain(self.seeds.in_progress(now_ns))
            .collect()
    }
}
