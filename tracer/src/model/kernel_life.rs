//! A LIFE record (kernel aggregation) taken apart into the transitions the kernel saw, so the
//! same rules decide its end, role and owner as for events sent one by one. Its dwell times
//! were counted by the kernel's histograms: the steps made here for its socket carry none.
use tracer_common::life::flags;

use super::{
    Event, EventKind, Model, Note, Step, TcpState, TimerPhase, event::LifeTimewait,
    sockets::Handover,
};

/// How long a timewait event waits for the LIFE record carrying its start: that record's
/// CLOSE follows the event by microseconds, and the rings' reorder window is 10 ms.
pub const AHEAD_WAIT_NS: u64 = 100_000_000;
/// Timewait events held at most at once; past that they are applied as they come.
const AHEAD_HELD: usize = 1024;

impl Model {
    pub(super) fn apply_life(&mut self, ev: &Event, unsure: bool, steps: &mut Vec<Step>) {
        let EventKind::Life {
            old,
            new,
            path,
            flags: life_flags,
            start_ns,
            entered_ns,
            timewait,
        } = ev.kind
        else {
            return;
        };
        // A life that starts here (a connect, or a listener's child) settles the held end of
        // the address's previous life now, before the steps whose durations the kernel counted.
        let starts = matches!(
            path.states().next(),
            Some(TcpState::Close | TcpState::Listen)
        );
        if starts {
            steps.extend(self.sockets.take_held_end(ev.sk));
            // A handover left by an earlier life at this address whose CLOSE never came.
            if self.kernel_handover.is_some_and(|(sk, _)| sk == ev.sk) {
                self.kernel_handover = None;
            }
        }
        let first = steps.len();
        // The last transition at the record's time, the one into `old` when the kernel says,
        // a life's first (a connect, a child's making) at its own time, as a connection's life
        // is measured from it; the others, whose times the kernel does not keep, with the one
        // into `old`.
        let entered = match entered_ns {
            0 => ev.ts_ns,
            t => t.min(ev.ts_ns),
        };
        let change = |old, new, ts_ns| Event {
            kind: EventKind::StateChange { old, new },
            ts_ns,
            ..ev.clone()
        };
        let whole = life_flags & flags::PATH_FULL == 0;
        let len = path.states().count();
        let pairs = path.states().zip(path.states().skip(1));
        for (i, (from, to)) in pairs.enumerate() {
            let last = whole && i + 2 == len && (from, to) == (old, new);
            if last {
                self.before_last(ev, (new, timewait), life_flags, unsure, steps);
                self.apply_one(&change(from, to, ev.ts_ns), unsure, steps);
                continue;
            }
            let ts_ns = match i == 0 && starts && start_ns != 0 && start_ns <= entered {
                true => start_ns,
                false => entered,
            };
            self.apply_one(&change(from, to, ts_ns), unsure, steps);
        }
        let written = whole && path.states().last() == Some(new);
        if !written {
            // The middle of a long life is missing (the model counts the gap), or a path the
            // kernel does not write (a corrupt record): its last transition is known.
            self.before_last(ev, (new, timewait), life_flags, unsure, steps);
            self.apply_one(&change(old, new, ev.ts_ns), unsure, steps);
        }
        if new != TcpState::Close
            && let Some(tw) = timewait
        {
            // Sent before its CLOSE (its timewait ended at once): the timewait started last.
            self.timewait_starts(ev, tw, unsure, steps);
        }
        // Only this socket's: a timewait of the peer that its FIN turned into TIME_WAIT
        // (loopback) is timed by the model.
        for step in steps[first..].iter_mut().filter(|s| s.sk == ev.sk) {
            step.dwell_ns = None;
            if step.note == Some(Note::StartNotSeen) {
                step.note = None;
            }
        }
        self.sockets.untime_held_end(ev.sk);
    }

    /// What comes right before a life's CLOSE: the start of the timewait socket taking it
    /// over, and the resets the kernel noted (a received RST comes before the CLOSE it causes).
    fn before_last(
        &mut self,
        ev: &Event,
        (new, timewait): (TcpState, Option<LifeTimewait>),
        life_flags: u8,
        unsure: bool,
        steps: &mut Vec<Step>,
    ) {
        if new == TcpState::Close
            && let Some(tw) = timewait
        {
            self.timewait_starts(ev, tw, unsure, steps);
        }
        for (flag, kind) in [
            (flags::RST_RECEIVED, EventKind::ResetReceived),
            (flags::RST_SENT, EventKind::ResetSent),
        ] {
            if life_flags & flag != 0 {
                let reset = Event { kind, ..ev.clone() };
                self.apply_one(&reset, unsure, steps);
            }
        }
    }

    /// A timewait event whose start is still to come in a LIFE record: held until then (at
    /// most [`AHEAD_WAIT_NS`]), unless its timewait is followed already.
    pub(super) fn hold_ahead(&mut self, ev: &Event, unsure: bool, steps: &mut Vec<Step>) {
        if self.timewaits.follows(ev.sk) || self.ahead.len() >= AHEAD_HELD {
            self.apply_one(ev, unsure, steps);
        } else {
            self.ahead.push(ev.clone());
        }
    }

    /// Applies the held events whose LIFE record did not come in time (lost, or a kernel
    /// that does not send it), as they are.
    pub(super) fn release_ahead(&mut self, now_ns: u64, steps: &mut Vec<Step>) {
        let late: Vec<Event> = self
            .ahead
            .extract_if(.., |e| e.ts_ns.saturating_add(AHEAD_WAIT_NS) < now_ns)
            .collect();
        for ev in late {
            let unsure = ev.ts_ns < self.unsure_until_ns;
            self.apply_one(&ev, unsure, steps);
        }
    }

    /// The timer start of the timewait socket that took the life over, as the timewait hooks
    /// would have sent it, then the events of that timewait held until it came. A timewait
    /// the kernel follows only makes the life's CLOSE a handover.
    fn timewait_starts(
        &mut self,
        ev: &Event,
        tw: LifeTimewait,
        unsure: bool,
        steps: &mut Vec<Step>,
    ) {
        if tw.in_kernel {
            let handed = match tw.substate {
                TcpState::FinWait2 => Handover::ContinuesFinWait2,
                _ => Handover::TimeWait,
            };
            self.kernel_handover = Some((ev.sk, handed));
            return;
        }
        let start = Event {
            kind: EventKind::TimeWait {
                phase: TimerPhase::Start,
                substate: tw.substate,
            },
            sk: tw.sk,
            ts_ns: tw.ts_ns,
            ..ev.clone()
        };
        self.apply_one(&start, unsure, steps);
        let held: Vec<Event> = self.ahead.extract_if(.., |e| e.sk == tw.sk).collect();
        for ev in held {
            self.apply_one(&ev, unsure, steps);
        }
    }
}
