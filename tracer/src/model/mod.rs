//! The pure state model: events in, [`Step`]s out. No BPF, no clock, no I/O, so every rule here
//! is unit-tested from synthetic event sequences.
pub mod event;
mod sockets;
pub mod state;
mod timewait;

#[cfg(test)]
mod tests;

use serde::Serialize;

pub use event::{Event, EventKind, TimerPhase, Tuple};
pub use state::TcpState;

use sockets::Sockets;
use timewait::TimeWaits;

/// Who a socket belongs to, as far as the model could tell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
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
}

/// A socket still in some state when asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InProgress {
    pub state: TcpState,
    pub age_ns: u64,
    pub tuple: Tuple,
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
        let mut steps = self.timewaits.settle(ev.ts_ns);
        match ev.kind {
            EventKind::StateChange { old, new } => {
                let handed = if new == TcpState::Close {
                    self.timewaits.takes_over(&ev.tuple, ev.netns)
                } else {
                    sockets::Handover::None
                };
                let step = self
                    .sockets
                    .change(ev, old, new, handed, &mut self.anomalies);
                if let Some(step) = step {
                    steps.push(step);
                }
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
            EventKind::ResetSent | EventKind::ResetReceived => {}
        }
        steps
    }

    /// Ends the timewaits whose early end is certain at `now_ns` (no expiry or re-arm
    /// followed their cancel); call on a timer and before a final summary.
    pub fn finish(&mut self, now_ns: u64) -> Vec<Step> {
        self.timewaits.settle(now_ns)
    }

    /// Sockets still in a state at `now_ns`, with their age in it.
    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        let mut all = self.sockets.in_progress(now_ns);
        all.extend(self.timewaits.in_progress(now_ns));
        all
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }
}
