//! Lives of full sockets, keyed by kernel socket address. An address is reused by the allocator,
//! so a life starts at `CLOSE -> SYN_SENT`, `CLOSE -> LISTEN` or `LISTEN -> SYN_RECV` and no
//! duration or close classification ever spans two lives.
// Per-event maps: a fast hasher, seeded per map so remote peers cannot aim collisions.
use foldhash::HashMap;

use super::{
    Anomalies, Event, InProgress, Note, Owner, Step, TcpState, Tuple,
    close::{CloseKind, End, Role, Service},
    pending::PendingEnds,
    seed::{Seed, Seeds},
};

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
    pub role: Role,
}

struct Life {
    state: TcpState,
    entered_ns: u64,
    tuple: Tuple,
    owner: Owner,
    role: Role,
    first_close: Option<CloseKind>,
    rst_received: bool,
    rst_sent: bool,
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
    /// Ends that wait for a `tcp_send_reset` that follows the CLOSE it belongs to.
    pending: PendingEnds,
    /// Sockets from the attach-time snapshot not yet seen live.
    seeds: Seeds,
}

fn is_closing(state: TcpState) -> bool {
    matches!(
        state,
        TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
    )
}

fn new_life_role(old: TcpState, new: TcpState) -> Option<Role> {
    use TcpState::*;
    match (old, new) {
        (Close, SynSent) => Some(Role::Client),
        (Close, Listen) => Some(Role::Listener),
        (Listen, SynRecv) => Some(Role::Server),
        _ => None,
    }
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
    ) -> Vec<Step> {
        // A new life at this address settles the end of the previous one: no RST can follow.
        let mut out = if new_life_role(old, new).is_some() {
            self.pending.take(ev.sk).into_iter().collect()
        } else {
            Vec::new()
        };
        let mut life = self.continue_or_start(ev, old, new, anomalies);
        let dwell_ns = match (life.as_ref(), handover) {
            (_, Handover::ContinuesFinWait2) if new == TcpState::Close => None,
            (Some((_, dwell)), _) => *dwell,
            (None, _) => None,
        };
        let mut life = match life.take() {
            Some((life, _)) => life,
            None => self.fresh_life(ev, old, new),
        };
        // Softirq events carry whatever task was interrupted: only trust syscall transitions.
        if in_owner_context(old, new) {
            life.owner = owner_of(ev);
        }
        if let Some(kind) = CloseKind::from_first_close(old, new)
            && life.first_close.is_none()
        {
            life.first_close = Some(kind);
        }
        if (old, new) == (TcpState::FinWait1, TcpState::Closing) {
            life.first_close = Some(CloseKind::Simultaneous);
        }
        let note = if new == TcpState::Close && handover != Handover::None {
            Some(Note::TimewaitTakesOver)
        } else if dwell_ns.is_none() && new_life_role(old, new).is_none() {
            Some(Note::StartNotSeen)
        } else {
            None
        };
        let mut step = Step {
            ts_ns: ev.ts_ns,
            sk: ev.sk,
            tuple: ev.tuple,
            netns: ev.netns,
            owner: life.owner.clone(),
            from: old,
            to: new,
            dwell_ns,
            note,
            end: None,
        };
        self.index(ev, old, new, &life.owner);
        if new != TcpState::Close {
            life.state = new;
            life.entered_ns = ev.ts_ns;
            life.tuple = ev.tuple;
            self.lives.insert(ev.sk, life);
            out.push(step);
            return out;
        }
        if life.role == Role::Listener {
            out.push(step);
            return out;
        }
        let service = self.service(&life, ev);
        let end = |kind| End {
            kind,
            role: life.role,
            service,
            timewait: handover != Handover::None,
        };
        let kind = life.first_close.or(match old {
            TcpState::SynSent => Some(CloseKind::ConnectFailed),
            TcpState::SynRecv => Some(CloseKind::HandshakeIncomplete),
            _ if life.rst_received => Some(CloseKind::RstReceived),
            _ if life.rst_sent => Some(CloseKind::RstSent),
            // First seen mid-close: the state it closes from still tells who sent the FIN.
            TcpState::FinWait1 | TcpState::FinWait2 => Some(CloseKind::LocalFirst),
            TcpState::Closing => Some(CloseKind::Simultaneous),
            TcpState::CloseWait | TcpState::LastAck => Some(CloseKind::PeerFirst),
            _ => None,
        });
        match kind {
            Some(kind) => {
                step.end = Some(end(kind));
                out.push(step);
            }
            // An abort reports CLOSE before its RST: wait for it (or its absence).
            None => {
                step.end = Some(end(CloseKind::Aborted));
                out.extend(self.pending.hold(step));
            }
        }
        out
    }

    /// The life this transition continues, with the time spent in `old`; `None` when the
    /// transition starts a new life or does not follow from what was known.
    fn continue_or_start(
        &mut self,
        ev: &Event,
        old: TcpState,
        new: TcpState,
        anomalies: &mut Anomalies,
    ) -> Option<(Life, Option<u64>)> {
        let known = self.lives.remove(&ev.sk);
        if let Some(life) = &known
            && self.closing_index.get(&(ev.netns, life.tuple)) == Some(&ev.sk)
            && !(life.state == old && new_life_role(old, new).is_none())
        {
            // The life it indexed is over (replaced or out of step): drop its stale entry.
            self.closing_index.remove(&(ev.netns, life.tuple));
        }
        match known {
            Some(life) if new_life_role(old, new).is_none() && life.state == old => {
                let dwell = ev.ts_ns.saturating_sub(life.entered_ns);
                Some((life, Some(dwell)))
            }
            Some(_) if new_life_role(old, new).is_none() => {
                anomalies.state_mismatch += 1;
                None
            }
            _ => None,
        }
    }

    fn fresh_life(&mut self, ev: &Event, old: TcpState, new: TcpState) -> Life {
        if new_life_role(old, new).is_none()
            && let Some(seed) = self.seeds.take(ev.netns, &ev.tuple)
        {
            // A socket from the snapshot, now seen live: keep what the snapshot knew of it.
            return Life {
                state: old,
                entered_ns: ev.ts_ns,
                tuple: ev.tuple,
                owner: seed.owner,
                role: seed.role,
                first_close: None,
                rst_received: false,
                rst_sent: false,
            };
        }
        let role = new_life_role(old, new).unwrap_or(Role::Unknown);
        let owner = if role == Role::Server {
            self.listeners
                .get(&(ev.netns, ev.tuple.local_port))
                .cloned()
                .unwrap_or_default()
        } else {
            Owner::default()
        };
        Life {
            state: old,
            entered_ns: ev.ts_ns,
            tuple: ev.tuple,
            owner,
            role,
            first_close: None,
            rst_received: false,
            rst_sent: false,
        }
    }

    fn service(&self, life: &Life, ev: &Event) -> Service {
        let listens = self
            .listeners
            .contains_key(&(ev.netns, ev.tuple.local_port));
        Service::of(life.role, &ev.tuple, listens)
    }

    fn index(&mut self, ev: &Event, old: TcpState, new: TcpState, owner: &Owner) {
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
    }

    /// `tcp_receive_reset` comes before the CLOSE it causes; `tcp_send_reset` after it
    /// (an abort) or before it (a reset while the socket lives on).
    pub fn reset(&mut self, ev: &Event, sent: bool) -> Option<Step> {
        if sent && let Some(step) = self.pending.reset_sent(ev) {
            return Some(step);
        }
        if let Some(life) = self.lives.get_mut(&ev.sk) {
            if sent {
                life.rst_sent = true;
            } else {
                life.rst_received = true;
            }
        }
        None
    }

    /// Ends held for an RST that did not come within the grace: aborted without one.
    pub fn settle(&mut self, now_ns: u64) -> Vec<Step> {
        self.pending.settle(now_ns)
    }

    /// The closing full socket with this tuple, if one is followed.
    pub fn closing(&self, tuple: &Tuple, netns: u32) -> Option<Closing> {
        let sk = self.closing_index.get(&(netns, *tuple))?;
        let life = self
            .lives
            .get(sk)
            .filter(|l| l.tuple == *tuple && is_closing(l.state))?;
        Some(Closing {
            state: life.state,
            entered_ns: life.entered_ns,
            owner: life.owner.clone(),
            role: life.role,
        })
    }

    pub fn in_progress(&self, now_ns: u64) -> Vec<InProgress> {
        self.lives
            .values()
            .map(|l| InProgress {
                state: l.state,
                age_ns: now_ns.saturating_sub(l.entered_ns),
                tuple: l.tuple,
                exact: true,
                role: l.role,
                owner: l.owner.clone(),
            })
            .chain(self.seeds.in_progress(now_ns))
            .collect()
    }

    /// A pre-existing socket: listeners hand their owner to children at once; the others
    /// wait for the live stream.
    pub fn seed(&mut self, seed: Seed) {
        if seed.state == TcpState::Listen {
            self.listeners
                .insert((seed.netns, seed.tuple.local_port), seed.owner.clone());
        }
        self.seeds.insert(seed);
    }
}

fn owner_of(ev: &Event) -> Owner {
    Owner {
        pid: ev.pid,
        comm: ev.comm.as_str().to_owned(),
        cgroup_id: ev.cgroup_id,
    }
}
