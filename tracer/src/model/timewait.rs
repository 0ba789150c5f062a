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
//!
//! What is not known gives no duration: a FIN_WAIT2 handed over by a full socket not followed
//! began before the timewait did; and for a while after an eviction (a table was full: the
//! caller says so with `unsure`) a timer start at an unknown address may re-arm an evicted
//! timewait, a start at a known one may be a new timewait of an evicted full socket, and a
//! full socket closing with no timewait found may have been taken over by an evicted one.
use std::collections::VecDeque;

use super::{
    Anomalies, Event, Held, InProgress, Note, Step, TcpState, TimerPhase, Tuple,
    limits::Limits,
    owners::Owners,
    seed::{Seed, Seeds},
    sockets::{Closing, Handover},
    table::family::Rows,
    tw_life::{TimeWait, TimeWaitRow},
};

/// An expiry or re-arm follows its cancel within microseconds on the same CPU.
pub const CANCEL_GRACE_NS: u64 = 5_000_000;

/// How long after an eviction what was evicted may still show up: a timewait's 60 s timer
/// (plus the timer wheel's rounding), twice over for a re-arm in between.
pub const UNSURE_AFTER_EVICTION_NS: u64 = 130_000_000_000;

pub struct TimeWaits {
    /// Timewaits by address, and by (netns, tuple) for the full socket handing over.
    live: Rows<TimeWaitRow>,
    /// Cancels waiting to become certain, oldest first: (time, timewait address).
    cancels: VecDeque<(u64, u64)>,
    /// TIME_WAITs from the attach-time snapshot, dated by their timer; matched by tuple when
    /// their timer first fires.
    seeds: Seeds,
}

/// The duration of a state left at `to_ns`, and the note saying when its start is unknown.
fn dwell(
    known: bool,
    since_ns: u64,
    to_ns: u64,
    note: Option<Note>,
) -> (Option<u64>, Option<Note>) {
    match known {
        true => (Some(to_ns.saturating_sub(since_ns)), note),
        false => (None, Some(Note::StartNotSeen)),
    }
}

impl TimeWaits {
    pub fn new(limits: &Limits) -> TimeWaits {
        TimeWaits {
            live: Rows::new(limits.timewaits),
            cancels: VecDeque::new(),
            seeds: Seeds::new(limits.timewaits),
        }
    }

    /// Ends the timewaits whose cancel was not followed by an expiry or re-arm before `now_ns`.
    pub fn settle(&mut self, now_ns: u64, owners: &Owners, steps: &mut Vec<Step>) {
        while let Some(&(at, addr)) = self.cancels.front() {
            if at.saturating_add(CANCEL_GRACE_NS) >= now_ns {
                break;
            }
            self.cancels.pop_front();
            if let Some((cancel_at, substate)) = self.get(addr).and_then(|tw| tw.cancel)
                && cancel_at == at
            {
                self.end(addr, at, substate, Note::EndedEarly, owners, steps);
            }
        }
    }

    /// Whether the timewait at `addr` is followed now.
    pub fn follows(&self, addr: u64) -> bool {
        self.live.get(addr).is_some()
    }

    fn get(&self, addr: u64) -> Option<TimeWait> {
        self.live.get(addr).map(TimeWait::from_row)
    }

    fn put(&mut self, tw: &TimeWait) {
        self.live.put(tw.row());
    }

    /// Called when a full socket with this tuple goes to CLOSE: did a timewait take it over?
    pub fn takes_over(&mut self, tuple: &Tuple, netns: u32, unsure: bool) -> Handover {
        let found = self.live.latest(netns, tuple).map(TimeWait::from_row);
        let Some(mut tw) = found.filter(|tw| !tw.handed_over) else {
            return if unsure {
                Handover::Unsure
            } else {
                Handover::None
            };
        };
        tw.handed_over = true;
        self.put(&tw);
        if tw.substate == TcpState::FinWait2 {
            Handover::ContinuesFinWait2
        } else {
            Handover::TimeWait
        }
    }

    /// On one host both ends are visible: the peer's `CLOSE_WAIT -> LAST_ACK` is the moment its
    /// FIN leaves, turning our FIN_WAIT2-substate timewait (the reversed tuple) into TIME_WAIT.
    pub fn peer_sent_fin(&mut self, peer: &Tuple, ev: &Event, owners: &Owners) -> Option<Step> {
        let reversed = Tuple::new(peer.remote, peer.remote_port, peer.local, peer.local_port);
        let mut tw = TimeWait::from_row(self.live.latest(ev.netns, &reversed)?);
        if tw.substate != TcpState::FinWait2 {
            return None;
        }
        let (dwell_ns, note) = dwell(tw.since_known, tw.since_ns, ev.ts_ns, None);
        let step = self.step(&tw, ev.ts_ns, TcpState::TimeWait, dwell_ns, note, owners);
        tw.substate = TcpState::TimeWait;
        tw.since_ns = ev.ts_ns;
        tw.since_known = true;
        self.put(&tw);
        Some(step)
    }

    pub fn seed(&mut self, seed: Seed, owners: &mut Owners) {
        self.seeds.insert(seed, owners);
    }

    /// A timer event for an address not followed yet may belong to a snapshot TIME_WAIT.
    fn adopt_seed(&mut self, ev: &Event, phase: TimerPhase) {
        if phase == TimerPhase::Start || self.follows(ev.sk) {
            return;
        }
        let Some(seed) = self.seeds.take(ev.netns, &ev.tuple) else {
            return;
        };
        let tw = TimeWait {
            sk: ev.sk,
            netns: ev.netns,
            tuple: ev.tuple,
            substate: TcpState::TimeWait,
            started_ns: seed.entered_ns,
            since_ns: seed.entered_ns,
            cancel: None,
            owner: seed.owner,
            role: seed.role,
            handed_over: true,
            start_seen: seed.exact,
            since_known: seed.exact,
        };
        self.put(&tw);
    }

    pub fn timer(
        &mut self,
        ev: &Event,
        (phase, substate): (TimerPhase, TcpState),
        (closing, unsure): (Option<Closing>, bool),
        (anomalies, owners): (&mut Anomalies, &Owners),
        steps: &mut Vec<Step>,
    ) {
        self.adopt_seed(ev, phase);
        match phase {
            TimerPhase::Start => {
                let known = (closing, unsure);
                self.start(ev, substate, known, (anomalies, owners), steps);
            }
            TimerPhase::Cancel => {
                if let Some(mut tw) = self.get(ev.sk) {
                    tw.cancel = Some((ev.ts_ns, substate));
                    self.put(&tw);
                    self.cancels.push_back((ev.ts_ns, ev.sk));
                    self.forget_stale_cancels();
                }
            }
            TimerPhase::Expire if self.follows(ev.sk) => {
                self.end(ev.sk, ev.ts_ns, substate, Note::Expired, owners, steps);
            }
            TimerPhase::Expire => {
                anomalies.timewait_start_not_seen += 1;
                steps.push(Step {
                    ts_ns: ev.ts_ns,
                    sk: ev.sk,
                    tuple: ev.tuple,
                    netns: ev.netns,
                    owner: Default::default(),
                    from: substate,
                    to: TcpState::Close,
                    dwell_ns: None,
                    note: Some(Note::StartNotSeen),
                    end: None,
                });
            }
        }
    }

    /// Cancels are settled by time; if time stalls, drop those whose timewait moved on, so
    /// the queue stays within the table's size.
    fn forget_stale_cancels(&mut self) {
        if self.cancels.len() > 2 * self.live.len() + 1024 {
            let live = &self.live;
            self.cancels.retain(|&(at, addr)| {
                live.get(addr)
                    .and_then(|row| TimeWait::from_row(row).cancel)
                    .is_some_and(|(cancel_at, _)| cancel_at == at)
            });
        }
    }

    fn start(
        &mut self,
        ev: &Event,
        substate: TcpState,
        (closing, unsure): (Option<Closing>, bool),
        (anomalies, owners): (&mut Anomalies, &Owners),
        steps: &mut Vec<Step>,
    ) {
        if let Some(mut tw) = self.get(ev.sk) {
            // A re-arm keeps its tuple; a handover or another tuple means a new timewait.
            if closing.is_none() && tw.tuple == ev.tuple {
                // Or a new timewait of an evicted full socket: then neither start is known.
                if unsure && tw.substate == substate {
                    (tw.start_seen, tw.since_known) = (false, false);
                }
                steps.extend(self.rearm(tw, ev, substate, owners));
                return;
            }
            // A new timewait at the address of one that was killed: end the old life first.
            match tw.cancel {
                Some((at, old)) => self.end(ev.sk, at, old, Note::EndedEarly, owners, steps),
                // Neither its expiry nor a kill was seen: that end never arrived.
                None => {
                    anomalies.ends_not_seen += 1;
                    self.live.remove(ev.sk);
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
        let start_seen = closing.is_some() || !unsure;
        let tw = TimeWait {
            sk: ev.sk,
            netns: ev.netns,
            tuple: ev.tuple,
            substate,
            started_ns: ev.ts_ns,
            since_ns,
            cancel: None,
            owner: closing.as_ref().map_or(0, |c| c.owner),
            role: closing.as_ref().map_or(super::Role::Unknown, |c| c.role),
            handed_over: false,
            start_seen,
            since_known: start_seen && (closing.is_some() || substate != TcpState::FinWait2),
        };
        self.put(&tw);
        // An orphaned FIN_WAIT2 goes on quietly; the line worth printing is TIME_WAIT's start.
        if substate == TcpState::TimeWait {
            let mut step = self.step(&tw, ev.ts_ns, TcpState::TimeWait, None, None, owners);
            step.from = from;
            steps.push(step);
        }
    }

    /// A re-arm of a live timewait: a substate change or a refreshed timeout.
    fn rearm(&mut self, mut tw: TimeWait, ev: &Event, sub: TcpState, o: &Owners) -> Option<Step> {
        tw.cancel = None;
        if tw.substate == sub {
            self.put(&tw);
            return None;
        }
        let (dwell_ns, note) = dwell(tw.since_known, tw.since_ns, ev.ts_ns, None);
        let step = self.step(&tw, ev.ts_ns, sub, dwell_ns, note, o);
        tw.substate = sub;
        tw.since_ns = ev.ts_ns;
        tw.since_known = true;
        self.put(&tw);
        Some(step)
    }

    /// A step of `tw` from its substate to `to` at `ts_ns`.
    fn step(
        &self,
        tw: &TimeWait,
        ts_ns: u64,
        to: TcpState,
        dwell_ns: Option<u64>,
        note: Option<Note>,
        owners: &Owners,
    ) -> Step {
        #[rustfmt::skip]
        let step = Step {
            ts_ns, sk: tw.sk, tuple: tw.tuple, netns: tw.netns, owner: owners.owner(tw.owner),
            from: tw.substate, to, dwell_ns, note, end: None,
        };
        step
    }

    /// Ends a timewait at `at_ns`; `final_substate` is what the kernel reported at the end.
    fn end(
        &mut self,
        addr: u64,
        at_ns: u64,
        final_substate: TcpState,
        note: Note,
        owners: &Owners,
        steps: &mut Vec<Step>,
    ) {
        let Some(mut tw) = self.live.remove(addr).map(TimeWait::from_row) else {
            return;
        };
        if tw.substate == TcpState::FinWait2 && final_substate == TcpState::TimeWait {
            // The FIN arrived without a visible re-arm: FIN_WAIT2 is known up to the
            // timewait's start, TIME_WAIT is counted from there.
            let (dwell_ns, fw2_note) = dwell(tw.since_known, tw.since_ns, tw.started_ns, None);
            let started = tw.started_ns;
            steps.push(self.step(&tw, started, TcpState::TimeWait, dwell_ns, fw2_note, owners));
            tw.substate = TcpState::TimeWait;
            tw.since_ns = tw.started_ns;
            tw.since_known = tw.start_seen;
        }
        let (dwell_ns, note) = dwell(tw.since_known, tw.since_ns, at_ns, Some(note));
        steps.push(self.step(&tw, at_ns, TcpState::Close, dwell_ns, note, owners));
    }

    pub fn in_progress<'a>(
        &'a self,
        now_ns: u64,
        owners: &'a Owners,
    ) -> impl Iterator<Item = InProgress> + 'a {
        self.live
            .iter()
            .map(TimeWait::from_row)
            .map(move |tw| InProgress {
                state: tw.substate,
                age_ns: now_ns.saturating_sub(tw.since_ns),
                tuple: tw.tuple,
                exact: tw.since_known,
                role: tw.role,
                owner: owners.owner(tw.owner),
            })
            .chain(self.seeds.in_progress(now_ns, owners))
    }

    /// What each timewait in progress holds, without copying its owner out.
    pub fn held(&self) -> impl Iterator<Item = Held> + '_ {
        let live = self.live.iter().map(TimeWait::from_row);
        live.map(|tw| Held {
            state: tw.substate,
            tuple: tw.tuple,
            role: tw.role,
            owner: tw.owner,
        })
        .chain(self.seeds.held())
    }

    /// (state, age, exact) of each timewait in progress, without building an [`InProgress`].
    pub fn ages(&self, now_ns: u64) -> impl Iterator<Item = (TcpState, u64, bool)> + '_ {
        let live = self.live.iter().map(TimeWait::from_row);
        live.map(move |tw| {
            (
                tw.substate,
                now_ns.saturating_sub(tw.since_ns),
                tw.since_known,
            )
        })
        .chain(self.seeds.ages(now_ns))
    }

    /// Timewaits followed, and snapshot TIME_WAITs not yet seen live.
    pub fn tracked(&self) -> usize {
        self.live.len() + self.seeds.len()
    }

    /// Evictions of (timewaits, snapshot TIME_WAITs).
    pub fn evicted(&self) -> (u64, u64) {
        (self.live.evicted(), self.seeds.evicted())
    }

    /// Every owner id held, to mark or renumber them.
    pub fn owners_mut(&mut self, f: &mut dyn FnMut(&mut u32)) {
        self.live.owners_mut(f);
        self.seeds.owners_mut(f);
    }
}
