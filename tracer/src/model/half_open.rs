//! SYN_RECV as operators mean it: the half-open time of a request socket, from the SYN to the
//! final ACK (or to its drop). The kernel reports one event per request socket, at its end
//! ([`EventKind::RequestEnd`]). When the final ACK completes it, a child socket takes over: the
//! request's end comes between the child's `LISTEN -> SYN_RECV` and its next transition
//! (`SYN_RECV -> ESTABLISHED` microseconds later), which then carries the whole half-open time.
//! The child is matched at that next transition, by its tuple then: older kernels (6.1) report
//! its `LISTEN -> SYN_RECV` before its ports and peer address are set. The child's own
//! microseconds in SYN_RECV are never a SYN_RECV duration: without its request's end the step
//! has none (`StartNotSeen`). A request socket that ends without a child becomes a
//! `SYN_RECV -> CLOSE` step of its own (handshake not completed): at once when its timer ran
//! out, after [`CHILD_GRACE_NS`] when it was unlinked (no child claimed it: an RST, a netns
//! exit).
use std::collections::HashMap;

use super::{
    Event, EventKind, Note, Owner, Step, TcpState, Tuple,
    close::{CloseKind, End, Role, Service},
    event::RequestEnd,
};

/// `SYN_RECV -> CLOSE` of a child that never took its request socket over (two CPUs each made
/// a child for one handshake; the one hashed second is closed at once): shown, but no
/// duration, no end, and it leaves the request socket's end to the child that completed it.
pub fn child_lost(ev: &Event, owner: Owner) -> Step {
    Step {
        note: Some(Note::ChildLost),
        ..syn_recv_closed(ev, owner)
    }
}

/// A `SYN_RECV -> CLOSE` step at `ev`, with no duration, note or end yet.
fn syn_recv_closed(ev: &Event, owner: Owner) -> Step {
    Step {
        ts_ns: ev.ts_ns,
        sk: ev.sk,
        tuple: ev.tuple,
        netns: ev.netns,
        owner,
        from: TcpState::SynRecv,
        to: TcpState::Close,
        dwell_ns: None,
        note: None,
        end: None,
    }
}

/// How long an unlinked request socket's end waits for a child to claim it. The child's next
/// transition follows the end within microseconds, but [`super::Model::finish`] runs on the
/// wall clock: a batch delivered late (a slow or loaded host, a VM under software emulation)
/// must not release the end before its child's event is read. (The rare qemu failure this was
/// raised from 100 ms for was a second child of one handshake: [`child_lost`].)
pub const CHILD_GRACE_NS: u64 = 1_000_000_000;

/// Unlinked request sockets waiting for their child, by (netns, tuple). Bounded: when full,
/// the oldest are released at once as ends of their own.
pub struct HalfOpens {
    unlinked: HashMap<(u32, Tuple), Step>,
    cap: usize,
}

/// The step a request socket's end makes when no child takes it over.
fn own_step(ev: &Event, start_ns: Option<u64>, how: RequestEnd, listener: (Owner, bool)) -> Step {
    let (owner, listens) = listener;
    Step {
        dwell_ns: start_ns.map(|s| ev.ts_ns.saturating_sub(s)),
        note: Some(match (how, start_ns) {
            (_, None) => Note::StartNotSeen,
            (RequestEnd::Expired, _) => Note::SynAckUnanswered,
            (RequestEnd::Unlinked, _) => Note::RequestRemoved,
        }),
        end: Some(End {
            kind: CloseKind::HandshakeIncomplete,
            role: Role::Server,
            service: Service::of(Role::Server, &ev.tuple, listens),
            timewait: false,
        }),
        ..syn_recv_closed(ev, owner)
    }
}

/// The start of a request socket's own step: it keeps it as its dwell (none when unknown).
fn start_of(step: &Step) -> Option<u64> {
    step.dwell_ns.map(|d| step.ts_ns.saturating_sub(d))
}

impl HalfOpens {
    pub fn new(cap: usize) -> HalfOpens {
        HalfOpens {
            unlinked: HashMap::new(),
            cap: cap.max(2),
        }
    }

    /// Request sockets waiting for their child now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.unlinked.len()
    }

    /// A full socket's transition: a child's step from SYN_RECV gets its request socket's
    /// half-open time, or none. `steps` are the steps this transition produced.
    pub fn on_change(&mut self, ev: &Event, steps: &mut [Step]) {
        let EventKind::StateChange { old, .. } = ev.kind else {
            return;
        };
        if old != TcpState::SynRecv {
            return;
        }
        let start_ns = self
            .unlinked
            .remove(&(ev.netns, ev.tuple))
            .and_then(|r| start_of(&r));
        for step in steps
            .iter_mut()
            .filter(|s| s.sk == ev.sk && s.from == TcpState::SynRecv)
        {
            step.dwell_ns = start_ns.map(|s| ev.ts_ns.saturating_sub(s));
            step.note = match step.dwell_ns {
                Some(_) => None,
                None => Some(Note::StartNotSeen),
            };
        }
    }

    /// A request socket ended: dropped by its timer (a step at once), or unlinked (held for a
    /// child to claim). `listener` is the owner and whether its port is a known listener.
    pub fn request_end(&mut self, ev: &Event, listener: (Owner, bool), out: &mut Vec<Step>) {
        let EventKind::RequestEnd { start_ns, how, .. } = ev.kind else {
            return;
        };
        let step = own_step(ev, start_ns, how, listener);
        if how == RequestEnd::Expired {
            out.push(step);
            return;
        }
        let key = (ev.netns, ev.tuple);
        // The same request socket ended twice (its timer expired after its unlink and was
        // re-armed, on a kernel that records both): one end.
        if self
            .unlinked
            .get(&key)
            .is_some_and(|held| held.sk == step.sk && start_of(held) == start_of(&step))
        {
            return;
        }
        if self.unlinked.len() >= self.cap {
            self.release(u64::MAX, out);
        }
        if let Some(earlier) = self.unlinked.insert(key, step) {
            out.push(earlier);
        }
    }

    /// Releases, as ends of their own, the unlinked request sockets no child claimed within
    /// [`CHILD_GRACE_NS`] of `now_ns` (all of them for `u64::MAX`), oldest first.
    pub fn release(&mut self, now_ns: u64, out: &mut Vec<Step>) {
        if self.unlinked.is_empty() {
            return;
        }
        let due = |s: &Step| now_ns == u64::MAX || s.ts_ns.saturating_add(CHILD_GRACE_NS) < now_ns;
        let mut released: Vec<Step> = Vec::new();
        self.unlinked.retain(|_, s| {
            if due(s) {
                released.push(s.clone());
                false
            } else {
                true
            }
        });
        released.sort_by_key(|s| s.ts_ns);
        out.extend(released);
    }
}
