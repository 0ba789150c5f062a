//! The pure state model: events in, [`Step`]s out. No BPF, no clock, no I/O, so every rule here
//! is unit-tested from synthetic event sequences.
pub mod close;
pub mod event;
mod pending;
mod seed;
mod sockets;
pub mod state;
mod timewait;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use close::{CloseKind, End, Role, Service};
pub use event::{Comm, Event, EventKind, TimerPhase, Tuple};
pub use seed::Seed;
pub use state::TcpState;

use sockets::Sockets;
use timewait::TimeWaits;

/// Who a socket belongs to, as far as the model could tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
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

impl InProgress {
    /// The service this socket belongs to (see [`Service::of`]).
    pub fn service(&self) -> Service {
        Service::of(self.role, &self.tuple, false)
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
}

/// Sockets and timewait sockets being followed, and what they have done.
#[derive(Default)]
pub struct Model {
    sockets: Sockets,
    timewaits: TimeWaits,
    anomalies: Anomalies,
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one event; returns the steps it completes (possibly none, possibly an earlier
    /// timewait end that this event's time makes certain).
    pub fn apply(&mut self, ev: &Event) -> Vec<Step> {
        let mut steps = self.finish(ev.ts_ns);
        match ev.kind {
            // shutdown() then close() can report FIN_WAIT1 -> FIN_WAIT1: not a change.
            EventKind::StateChange { old, new } if old == new => {}
            EventKind::StateChange { old, new } => {
                let handed = if new == TcpState::Close {
                    self.timewaits.takes_over(&ev.tuple, ev.netns)
                } else {
                    sockets::Handover::None
                };
                steps.extend(
                    self.sockets
                        .change(ev, old, new, handed, &mut self.anomalies),
                );
                if (old, new) == (TcpState::CloseWait, TcpState::LastAck) {
                    steps.extend(self.timewaits.peer_sent_fin(&ev.tuple, ev.netns, ev.ts_ns));
                }
            }
            EventKind::TimeWait { phase, substate } => {
                let closing = self.sockets.closing(&ev.tuple, ev.netns);
                steps.extend(self.timewaits.timer(
                    ev,
                    phase,
                    substate,
                    closing,
                    &mut self.anomalies,
                ));
            }
            EventKind::ResetSent => steps.extend(self.sockets.reset(ev, true)),
            EventKind::ResetReceived => steps.extend(self.sockets.reset(ev, false)),
        }
        steps
    }

    /// Releases what became certain by `now_ns`: timewaits whose cancel was not followed by an
    /// expiry or re-arm (early ends), and aborts whose RST did not come. Call it on a timer and
    /// before a final summary.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Step> {
        let mut steps = self.timewaits.settle(now_ns);
        steps.extend(self.sockets.settle(now_ns));
        steps
    }

    /// Sockets still in a state at `now_ns`, with their age in it.
    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        let mut all = self.sockets.in_progress(now_ns);
        all.extend(self.timewaits.in_progress(now_ns));
        all
    }

    /// Adds the sockets that existed at attach time (see [`Seed`]). TIME_WAIT seeds become
    /// timewait lives when their timer fires; listeners give their owner to their children.
    pub fn seed(&mut self, seeds: impl IntoIterator<Item = Seed>) {
        for seed in seeds {
            match seed.state {
                TcpState::TimeWait => self.timewaits.seed(seed),
                _ => self.sockets.seed(seed),
            }
        }
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }
}
