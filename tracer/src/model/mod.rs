//! The pure state model: events in, [`Step`]s out. No BPF, no clock, no I/O, so every rule here
//! is unit-tested from synthetic event sequences.
mod bits;
pub mod cgroup_names;
pub mod close;
pub mod event;
mod half_open;
mod kernel_life;
mod life;
pub mod limits;
mod listeners;
mod owners;
mod pending;
mod seed;
mod sockets;
pub mod state;
mod table;
mod timewait;
mod tw_life;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use close::{CloseKind, End, Role, Service};
pub use event::{Comm, Event, EventKind, LifePath, RequestEnd, TimerPhase, Tuple};
pub use limits::{DEFAULT_MAX_SOCKETS, Evictions, Limits};
pub use owners::OwnerId;
pub use seed::Seed;
pub use state::{OPEN_STATES, TcpState};
pub use timewait::CANCEL_GRACE_NS;

use half_open::HalfOpens;
use owners::Owners;
use sockets::Sockets;
use timewait::TimeWaits;

/// Who a socket belongs to, as far as the model could tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: Comm,
    /// cgroup (v2) id of the owner when it was seen: its container.
    pub cgroup_id: u64,
}

/// Why a step is worth a remark on its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// The full socket closed because its timewait socket took over.
    TimewaitTakesOver,
    /// The timewait socket's timer ran out: the normal end.
    Expired,
    /// The timewait socket was killed before its timer ran out (reuse, RST, netns exit).
    EndedEarly,
    /// The state's start was not seen (the socket predates the tracer or an event was lost).
    StartNotSeen,
    /// A half-open connection dropped by its timer: the client never answered the SYN-ACKs.
    SynAckUnanswered,
    /// A half-open connection taken out of the SYN queue without completing (an RST, a netns
    /// exit).
    RequestRemoved,
    /// A listener's child that never took its request socket over, closed at once: another
    /// CPU's child for the same handshake did ([`tracer_common::life::flags::CHILD_LOST`]).
    /// No connection ended; its SYN_RECV is no half-open time.
    ChildLost,
}

/// One state change as the model understands it, with the time spent in the state it left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub ts_ns: u64,
    pub sk: u64,
    pub tuple: Tuple,
    pub netns: u32,
    pub owner: Owner,
    pub from: TcpState,
    pub to: TcpState,
    /// Nanoseconds spent in `from`; `None` when its start was not seen or the state goes on in
    /// another socket (an orphaned FIN_WAIT2 handed to a timewait socket).
    pub dwell_ns: Option<u64>,
    pub note: Option<Note>,
    /// Set on the step that ends a connection: who closed it and how.
    pub end: Option<End>,
}

/// A socket still in some state when asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InProgress {
    pub state: TcpState,
    pub age_ns: u64,
    pub tuple: Tuple,
    /// False for a socket that predates the trace: its age is only a lower bound.
    pub exact: bool,
    pub role: Role,
    pub owner: Owner,
}

/// A socket still in some state, as the tables hold it: 4 bytes of owner id rather than a
/// copied [`Owner`], so a screen over a million sockets allocates nothing per socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub state: TcpState,
    pub tuple: Tuple,
    pub role: Role,
    pub owner: OwnerId,
}

/// The sockets still in one state: how many, and the oldest one's age (and whether that age
/// is exact, as for [`InProgress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Open {
    pub count: u64,
    pub oldest_ns: u64,
    pub oldest_exact: bool,
}

impl Open {
    /// Counts one more socket of age `age_ns` (only a lower bound unless `exact`). Of equally
    /// old sockets, one whose age is only a lower bound is the oldest.
    pub fn add(&mut self, age_ns: u64, exact: bool) {
        if self.count == 0 || (age_ns, !exact) > (self.oldest_ns, !self.oldest_exact) {
            (self.oldest_ns, self.oldest_exact) = (age_ns, exact);
        }
        self.count += 1;
    }
}

impl Default for Open {
    fn default() -> Self {
        Open {
            count: 0,
            oldest_ns: 0,
            oldest_exact: true,
        }
    }
}

/// Counters of things the model could not make sense of, shown so nothing is hidden.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// A transition whose old state did not match what the model knew (an event was lost or
    /// the socket predates the tracer): no duration was computed across it.
    pub state_mismatch: u64,
    /// Timer events for a timewait socket whose start was not seen.
    pub timewait_start_not_seen: u64,
    /// A new life began at a socket address while the model still had the previous life
    /// open (a full socket not closed, a timewait neither expired nor killed): the kernel
    /// frees a socket only after its end, so that end never arrived (an event was lost, or
    /// the kernel did not hand it to eBPF at all).
    pub ends_not_seen: u64,
}

impl Anomalies {
    /// Transitions a socket must have made that never arrived, each inferred once.
    pub fn gaps(&self) -> u64 {
        self.state_mismatch.saturating_add(self.ends_not_seen)
    }
}

/// Sockets and timewait sockets being followed, and what they have done. Every table is
/// bounded ([`Limits`]); what a full table evicted is counted ([`Model::evictions`]).
pub struct Model {
    sockets: Sockets,
    timewaits: TimeWaits,
    /// Request sockets unlinked, waiting for the child that completes them (half-open times).
    half_opens: HalfOpens,
    /// Owners interned for both: sockets keep a 4-byte id.
    owners: Owners,
    anomalies: Anomalies,
    limits: Limits,
    /// Full sockets and timewaits evicted so far, and until when what they did may still
    /// show up ([`timewait::UNSURE_AFTER_EVICTION_NS`] after the last eviction).
    evicted: u64,
    unsure_until_ns: u64,
    /// Timewait events waiting for the LIFE record that carries their timewait's start.
    ahead: Vec<Event>,
    /// A socket whose LIFE record said the kernel follows its timewait (the model keeps
    /// nothing of it), and that handover, for its CLOSE: in the record, or one by one after it.
    kernel_handover: Option<(u64, sockets::Handover)>,
}

impl Default for Model {
    /// A model with the configured cap (`--max-sockets`, else [`DEFAULT_MAX_SOCKETS`]).
    fn default() -> Self {
        Model::with_max_sockets(limits::configured_max_sockets())
    }
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// A model following at most `max_sockets` full sockets (at least 1), and proportionate
    /// numbers of everything else ([`Limits::for_sockets`]).
    pub fn with_max_sockets(max_sockets: usize) -> Self {
        let limits = Limits::for_sockets(max_sockets);
        Model {
            sockets: Sockets::new(&limits),
            timewaits: TimeWaits::new(&limits),
            half_opens: HalfOpens::new(limits.listeners),
            owners: Owners::default(),
            anomalies: Anomalies::default(),
            limits,
            evicted: 0,
            unsure_until_ns: 0,
            ahead: Vec::new(),
            kernel_handover: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Entries dropped from full tables so far.
    pub fn evictions(&self) -> Evictions {
        let (sockets, listeners, seeds, pending_ends) = self.sockets.evicted();
        let (timewaits, tw_seeds) = self.timewaits.evicted();
        Evictions {
            sockets,
            timewaits,
            listeners,
            seeds: seeds + tw_seeds,
            pending_ends,
        }
    }

    /// Sockets and timewait sockets followed now (snapshot ones not yet seen live included).
    pub fn tracked(&self) -> usize {
        self.sockets.tracked() + self.timewaits.tracked()
    }

    /// Feeds one event; returns the steps it completes (possibly none, possibly an earlier
    /// timewait end that this event's time makes certain).
    pub fn apply(&mut self, ev: &Event) -> Vec<Step> {
        let mut steps = Vec::new();
        self.apply_into(ev, &mut steps);
        steps
    }

    /// [`Model::apply`] appending to `steps`: the collector reuses one buffer for every event,
    /// so the hot path allocates nothing.
    pub fn apply_into(&mut self, ev: &Event, steps: &mut Vec<Step>) {
        self.finish_into(ev.ts_ns, steps);
        let unsure = ev.ts_ns < self.unsure_until_ns;
        match ev.kind {
            EventKind::Life { .. } => self.apply_life(ev, unsure, steps),
            EventKind::TimeWaitAhead { .. } => self.hold_ahead(ev, unsure, steps),
            _ => self.apply_one(ev, unsure, steps),
        }
        let e = self.evictions();
        if e.sockets + e.timewaits != self.evicted {
            self.evicted = e.sockets + e.timewaits;
            self.unsure_until_ns = ev.ts_ns.saturating_add(timewait::UNSURE_AFTER_EVICTION_NS);
        }
        self.sweep_owners();
    }

    /// One event the kernel reported as it happened.
    fn apply_one(&mut self, ev: &Event, unsure: bool, steps: &mut Vec<Step>) {
        match ev.kind {
            // shutdown() then close() can report FIN_WAIT1 -> FIN_WAIT1: not a change.
            EventKind::StateChange { old, new } if old == new => {}
            EventKind::StateChange { old, new } => {
                // The kernel hands a socket over to a timewait only from FIN_WAIT2 or CLOSING
                // (`tcp_time_wait`); FIN_WAIT1 for a kernel that would do it unseen.
                let from_closing = matches!(
                    old,
                    TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
                );
                let handed = if new == TcpState::Close && from_closing {
                    match self.kernel_handover {
                        Some((sk, handed)) if sk == ev.sk => {
                            self.kernel_handover = None;
                            handed
                        }
                        _ => self.timewaits.takes_over(&ev.tuple, ev.netns, unsure),
                    }
                } else {
                    sockets::Handover::None
                };
                let (anomalies, owners) = (&mut self.anomalies, &mut self.owners);
                let first = steps.len();
                self.sockets
                    .change(ev, (old, new), handed, (anomalies, owners), steps);
                self.half_opens.on_change(ev, &mut steps[first..]);
                if (old, new) == (TcpState::CloseWait, TcpState::LastAck) {
                    steps.extend(self.timewaits.peer_sent_fin(&ev.tuple, ev, &self.owners));
                }
            }
            EventKind::TimeWait { phase, substate }
            | EventKind::TimeWaitAhead { phase, substate } => {
                let closing = self.sockets.closing(&ev.tuple, ev.netns);
                let (anomalies, owners) = (&mut self.anomalies, &self.owners);
                let (timer, known) = ((phase, substate), (closing, unsure));
                self.timewaits
                    .timer(ev, timer, known, (anomalies, owners), steps);
            }
            EventKind::ResetSent => steps.extend(self.sockets.reset(ev, true)),
            EventKind::ResetReceived => steps.extend(self.sockets.reset(ev, false)),
            EventKind::Followed { old, new } => {
                let change = Event {
                    kind: EventKind::StateChange { old, new },
                    ..ev.clone()
                };
                self.apply_one(&change, unsure, steps);
                self.sockets.followed_in_kernel(ev.sk);
            }
            // Taken apart by apply_life into the events above.
            EventKind::Life { .. } => {}
            // Neither an end nor a SYN_RECV time, nor the child its request socket's end waits
            // for.
            EventKind::ChildLost => {
                let owner = self.sockets.forget(ev.sk).map(|id| self.owners.owner(id));
                steps.push(half_open::child_lost(ev, owner.unwrap_or_default()));
            }
            EventKind::RequestEnd { .. } => {
                let (owner, listens) = self.sockets.listener(ev.netns, ev.tuple.local_port);
                let owner = owner.map(|k| k.owner()).unwrap_or_default();
                self.half_opens.request_end(ev, (owner, listens), steps);
            }
        }
    }
}

impl Model {
    /// Drops the owners no socket refers to any more, once enough have come and gone.
    fn sweep_owners(&mut self) {
        if !self.owners.needs_sweep() {
            return;
        }
        let (sockets, timewaits) = (&mut self.sockets, &mut self.timewaits);
        self.owners.sweep(|f| {
            sockets.owners_mut(f);
            timewaits.owners_mut(f);
        });
    }

    /// Releases what became certain by `now_ns`: timewaits whose cancel was not followed by an
    /// expiry or re-arm (early ends), aborts whose RST did not come, and half-opens removed
    /// without a child. Call it on a timer and before a final summary.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        self.finish_into(now_ns, &mut steps);
        steps
    }

    /// [`Model::finish`] appending to `steps`.
    pub fn finish_into(&mut self, now_ns: u64, steps: &mut Vec<Step>) {
        self.release_ahead(now_ns, steps);
        self.timewaits.settle(now_ns, &self.owners, steps);
        self.sockets.settle(now_ns, steps);
        self.half_opens.release(now_ns, steps);
    }

    /// Sockets still in a state at `now_ns`, with their age in it.
    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        let owners = &self.owners;
        let sockets = self.sockets.in_progress(now_ns, owners);
        sockets
            .chain(self.timewaits.in_progress(now_ns, owners))
            .collect()
    }

    /// [`Model::in_progress`] counted per state (indexed by [`TcpState::index`]) in place: a
    /// million open sockets copied out as [`InProgress`] would take some 130 MiB for a moment.
    /// Of equally old sockets, one whose age is only a lower bound is the oldest.
    pub fn open_by_state(&self, now_ns: u64) -> [Open; TcpState::ALL.len()] {
        let mut open = [Open::default(); TcpState::ALL.len()];
        let all = self.sockets.ages(now_ns).chain(self.timewaits.ages(now_ns));
        for (state, age_ns, exact) in all {
            if let Some(o) = open.get_mut(state.index()) {
                o.add(age_ns, exact);
            }
        }
        open
    }

    /// Whether the model follows the full socket at `sk` itself: a life the kernel has just
    /// taken over (kernel aggregation) is counted here until the model hears of it.
    pub fn holds(&self, sk: u64) -> bool {
        self.sockets.holds(sk)
    }

    /// Every socket and timewait in progress ([`Held`]); [`Model::owner`] names its owner.
    pub fn held(&self) -> impl Iterator<Item = Held> + '_ {
        self.sockets.held().chain(self.timewaits.held())
    }

    /// The owner behind an id of [`Held`].
    pub fn owner(&self, id: OwnerId) -> Owner {
        self.owners.owner(id)
    }

    /// Adds the sockets that existed at attach time (see [`Seed`]). TIME_WAIT seeds become
    /// timewait lives when their timer fires; listeners give their owner to their children.
    pub fn seed(&mut self, seeds: impl IntoIterator<Item = Seed>) {
        for seed in seeds {
            match seed.state {
                TcpState::TimeWait => self.timewaits.seed(seed, &mut self.owners),
                _ => self.sockets.seed(seed, &mut self.owners),
            }
            self.sweep_owners();
        }
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }
}
