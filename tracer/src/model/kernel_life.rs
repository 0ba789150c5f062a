//! A LIFE record (kernel aggregation) taken apart into the transitions the kernel saw, so the
//! same rules decide its end, role and owner as for events sent one by one. Its dwell times
//! were counted by the kernel's histograms: the steps made here for its socket carry none.
use tracer_common::life::flags;

use super::{Event, EventKind, LifePath, Model, Note, Step, TcpState};

impl Model {
    pub(super) fn apply_life(
        &mut self,
        ev: &Event,
        (old, new, start_ns): (TcpState, TcpState, u64),
        path: LifePath,
        life_flags: u8,
        unsure: bool,
        steps: &mut Vec<Step>,
    ) {
        // A life that starts here settles the held end of the address's previous life now,
        // before the steps whose durations the kernel counted.
        let starts = path.states().next() == Some(TcpState::Close);
        if starts {
            steps.extend(self.sockets.take_held_end(ev.sk));
        }
        let first = steps.len();
        let change = |old, new| Event {
            kind: EventKind::StateChange { old, new },
            ..ev.clone()
        };
        let mut states = path.states();
        let mut at = states.next();
        let mut opening = true;
        for next in states {
            if let Some(from) = at {
                // A connect at its own time (a connection's life is measured from it), the
                // others at the record's.
                let mut change = change(from, next);
                if std::mem::take(&mut opening) && starts && start_ns != 0 && start_ns <= ev.ts_ns {
                    change.ts_ns = start_ns;
                }
                let last = (from, next) == (old, new) && life_flags & flags::PATH_FULL == 0;
                if last {
                    self.resets(ev, life_flags, unsure, steps);
                }
                self.apply_one(&change, unsure, steps);
            }
            at = Some(next);
        }
        if life_flags & flags::PATH_FULL != 0 {
            // The middle of a long life is missing: the model counts the gap.
            self.resets(ev, life_flags, unsure, steps);
            self.apply_one(&change(old, new), unsure, steps);
        } else if at != Some(new) {
            // Not a path the kernel writes (a corrupt record): its last transition is known.
            self.apply_one(&change(old, new), unsure, steps);
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

    /// The resets the kernel noted during the life, in front of its last transition (a
    /// received RST comes before the CLOSE it causes).
    fn resets(&mut self, ev: &Event, life_flags: u8, unsure: bool, steps: &mut Vec<Step>) {
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
}
