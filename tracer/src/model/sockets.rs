//! Lives of full sockets, keyed by kernel socket address. An address is reused by the allocator,
//! so a life starts at `CLOSE -> SYN_SENT`, `CLOSE -> LISTEN` or `LISTEN -> SYN_RECV` and no
//! duration is ever computed across two lives.
use std::collections::HashMap;

use super::{Anomalies, Event, InProgress, Note, Owner, Step, TcpState, Tuple};

/// What the timewait side knows about a full socket that is handing over to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    None,
    /// A timewait socket in FIN_WAIT2 substate continues this socket's FIN_WAIT2.
    ContinuesFinWait2,
    /// A timewait socket in TIME_WAIT took over.
    TimeWait,
}

/// A closing full socket, as the timewait side asks about it when its timer starts.
pub struct Closing {
    pub state: TcpState,
    pub entered_ns: u64,
    pub owner: Owner,
}

struct Life {
    state: TcpState,
    entered_ns: u64,
    tuple: Tuple,
    owner: Owner,
}

#[derive(Default)]
pub struct Sockets {
    lives: HashMap<u64, Life>,
    /// Listening sockets' owners by (netns, local port): the owner of their children until
    /// the child itself is touched from process context.
    listeners: HashMap<(u32, u16), Owner>,
    /// Sockets in FIN_WAIT1, FIN_WAIT2 or CLOSING by (netns, tuple), so the timewait socket
    /// that takes one over can find it in O(1).
    closing_index: HashMap<(u32, Tuple), u64>,
}

fn is_closing(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
    )
}

fn starts_life(old: TcpState, new: TcpState) -> bool {
    use TcpState::*;
    matches!(
        (old, new),
        (Close, SynSent) | (Close, Listen) | (Listen, SynRecv)
    )
}

/// Transitions that only happen inside a system call of the owning process
/// (connect, listen, close, shutdown), so the current task is the owner.
fn in_owner_context(old: TcpState, new: TcpState) -> bool {
    use TcpState::*;
    matches!(
        (old, new),
        (Close, SynSent) | (Close, Listen) | (Established, FinWait1) | (CloseWait, LastAck)
    )
}

impl Sockets {
    pub fn change(
        &mut self,
        ev: &Event,
        old: TcpState,
        new: TcpState,
        handover: Handover,
        anomalies: &mut Anomalies,
    ) -> Option<Step> {
        let fresh = starts_life(old, new);
        let current = Owner {
            pid: ev.pid,
            comm: ev.comm.clone(),
        };
        let (dwell_ns, mut note, mut owner) = match self.lives.get(&ev.sk) {
            Some(life) if !fresh && life.state == old => (
                Some(ev.ts_ns.saturating_sub(life.entered_ns)),
                None,
                life.owner.clone(),
            ),
            known => {
                if known.is_some() && !fresh {
                    anomalies.state_mismatch += 1;
                }
                let note = (!fresh).then_some(Note::StartNotSeen);
                let owner = if old == TcpState::Listen {
                    self.listener_owner(ev)
                } else {
                    Owner::default()
                };
                (None, note, owner)
            }
        };
        if in_owner_context(old, new) || (owner.pid == 0 && ev.pid != 0 && !fresh) {
            owner = current;
        }
        let dwell_ns = match handover {
            Handover::ContinuesFinWait2 if new == TcpState::Close => None,
            _ => dwell_ns,
        };
        if new == TcpState::Close && handover != Handover::None {
            note = Some(Note::TimewaitTakesOver);
        }
        self.track(ev, old, new, &owner);
        Some(Step {
            ts_ns: ev.ts_ns,
            sk: ev.sk,
            tuple: ev.tuple,
            netns: ev.netns,
            owner,
            from: old,
            to: new,
            dwell_ns,
            note,
        })
    }

    fn listener_owner(&self, ev: &Event) -> Owner {
        self.listeners
            .get(&(ev.netns, ev.tuple.local_port))
            .cloned()
            .unwrap_or_default()
    }

    fn track(&mut self, ev: &Event, old: TcpState, new: TcpState, owner: &Owner) {
        let key = (ev.netns, ev.tuple.local_port);
        if new == TcpState::Listen {
            self.listeners.insert(key, owner.clone());
        } else if old == TcpState::Listen && new == TcpState::Close {
            self.listeners.remove(&key);
        }
        if is_closing(old) && !is_closing(new) {
            self.closing_index.remove(&(ev.netns, ev.tuple));
        }
        if is_closing(new) {
            self.closing_index.insert((ev.netns, ev.tuple), ev.sk);
        }
        if new == TcpState::Close {
            self.lives.remove(&ev.sk);
            return;
        }
        self.lives.insert(
            ev.sk,
            Life {
                state: new,
                entered_ns: ev.ts_ns,
                tuple: ev.tuple,
                owner: owner.clone(),
            },
        );
    }

    /// The closing full socket with this tuple, if one is followed.
    pub fn closing(&self, tuple: &Tuple, netns: u32) -> Option<Closing> {
        let sk = self.closing_index.get(&(netns, *tuple))?;
        let life = self.lives.get(sk)?;
        Some(Closing {
            state: life.state,
            entered_ns: life.entered_ns,
            owner: life.owner.clone(),
        })
    }

    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        self.lives
            .values()
            .map(|l| InProgress {
                state: l.state,
                age_ns: now_ns.saturating_sub(l.entered_ns),
                tuple: l.tuple,
            })
            .collect()
    }
}
